//! Seeded random workloads: accounts of two assets with every kind of limit, and batches mixing
//! single, pending, post, void, balancing and linked transfers, retries and mistakes.

use std::collections::BTreeMap;

use credits_ledger::NewTransfer;
use credits_ledger::domain::{
    BALANCING_DEBIT, CREDITS_MUST_NOT_EXCEED_DEBITS, DEBITS_MUST_NOT_EXCEED_CREDITS, LINKED,
    PENDING, POST_PENDING_TRANSFER, VOID_PENDING_TRANSFER,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub struct Scenario {
    /// `(id, asset, flags)`; the first account of each asset may go negative (an external source).
    pub accounts: Vec<(Uuid, &'static str, u32)>,
    rng: StdRng,
    history: Vec<NewTransfer>,
    pendings: Vec<Uuid>,
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

impl Scenario {
    pub fn new(seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let accounts = vec![
            (random_uuid(&mut rng), "CREDITS", 0),
            (
                random_uuid(&mut rng),
                "CREDITS",
                DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            (
                random_uuid(&mut rng),
                "CREDITS",
                DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            (
                random_uuid(&mut rng),
                "CREDITS",
                DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            (
                random_uuid(&mut rng),
                "CREDITS",
                CREDITS_MUST_NOT_EXCEED_DEBITS,
            ),
            (random_uuid(&mut rng), "USD", 0),
            (random_uuid(&mut rng), "USD", DEBITS_MUST_NOT_EXCEED_CREDITS),
        ];
        Scenario {
            accounts,
            rng,
            history: Vec::new(),
            pendings: Vec::new(),
        }
    }

    /// Seconds the clock moves before the next batch.
    pub fn advance_seconds(&mut self) -> i64 {
        self.rng.random_range(0..=2)
    }

    fn account(&mut self) -> Uuid {
        match self.rng.random_range(0..100) {
            0..3 => random_uuid(&mut self.rng),
            3..35 => self.accounts[0].0,
            _ => {
                let index = self.rng.random_range(0..self.accounts.len());
                self.accounts[index].0
            }
        }
    }

    fn amount(&mut self) -> i64 {
        match self.rng.random_range(0..100) {
            0..3 => 0,
            3..5 => -5,
            _ => self.rng.random_range(1..=50),
        }
    }

    fn transfer(&mut self) -> NewTransfer {
        let mut transfer = NewTransfer {
            id: random_uuid(&mut self.rng),
            debit_account_id: self.account(),
            credit_account_id: self.account(),
            amount: self.amount(),
            code: "TEST".to_owned(),
            reference: String::new(),
            pending_id: None,
            timeout_seconds: 0,
            flags: 0,
            metadata: BTreeMap::new(),
        };
        match self.rng.random_range(0..100) {
            0..30 => {}
            30..45 => {
                transfer.flags = PENDING;
                if self.rng.random_bool(0.5) {
                    transfer.timeout_seconds = self.rng.random_range(1..=3);
                }
                self.pendings.push(transfer.id);
            }
            45..70 => {
                transfer.flags = if self.rng.random_bool(0.6) {
                    POST_PENDING_TRANSFER
                } else {
                    VOID_PENDING_TRANSFER
                };
                transfer.pending_id =
                    Some(if self.pendings.is_empty() || self.rng.random_bool(0.05) {
                        random_uuid(&mut self.rng)
                    } else {
                        self.pendings[self.rng.random_range(0..self.pendings.len())]
                    });
                transfer.amount = if self.rng.random_bool(0.5) {
                    0
                } else {
                    self.rng.random_range(1..=60)
                };
                if self.rng.random_bool(0.85) {
                    transfer.debit_account_id = Uuid::nil();
                    transfer.credit_account_id = Uuid::nil();
                }
            }
            70..80 => transfer.flags = BALANCING_DEBIT,
            80..95 if !self.history.is_empty() => {
                let mut retry = self.history[self.rng.random_range(0..self.history.len())].clone();
                retry.flags &= !LINKED;
                if self.rng.random_bool(0.3) {
                    retry.amount += 1;
                }
                return retry;
            }
            80..95 => {}
            _ => transfer.flags = PENDING | POST_PENDING_TRANSFER,
        }
        transfer.reference = format!("ref-{}", self.rng.random_range(0..5));
        transfer
    }

    /// One request of 1..=6 transfers; about a fifth are linked to the next.
    pub fn next_batch(&mut self) -> Vec<NewTransfer> {
        let size = self.rng.random_range(1..=6);
        let mut batch: Vec<NewTransfer> = (0..size).map(|_| self.transfer()).collect();
        for transfer in &mut batch {
            if self.rng.random_bool(0.2) {
                transfer.flags |= LINKED;
            }
        }
        self.history.extend(batch.iter().cloned());
        batch
    }
}
