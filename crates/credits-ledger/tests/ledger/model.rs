//! An in-memory reference model of the ledger, written separately from the implementation and
//! as plainly as possible: a linked chain clones the whole model and restores it on failure.
//! Only static request validation is shared (`domain::validate`), and it has its own unit tests.

use std::collections::BTreeMap;

use credits_ledger::domain::{
    self, BALANCING_CREDIT, BALANCING_DEBIT, CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS, LINKED, PENDING, POST_PENDING_TRANSFER, VOID_PENDING_TRANSFER,
};
use credits_ledger::{NewTransfer, TransferResult};
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelAccount {
    pub asset: String,
    pub flags: u32,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Done,
    Pending { expires_at: Option<i64> },
    Posted,
    Voided,
    Expired,
}

#[derive(Clone, Debug)]
struct ModelTransfer {
    request: NewTransfer,
    debit: Uuid,
    credit: Uuid,
    amount: i64,
    state: State,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub accounts: BTreeMap<Uuid, ModelAccount>,
    transfers: BTreeMap<Uuid, ModelTransfer>,
    failed: BTreeMap<Uuid, TransferResult>,
}

impl Model {
    pub fn add_account(&mut self, id: Uuid, asset: &str, flags: u32) {
        self.accounts.insert(
            id,
            ModelAccount {
                asset: asset.to_owned(),
                flags,
                ..ModelAccount::default()
            },
        );
    }

    /// Releases pending transfers whose timeout is at or before `now`, as the sweeper does.
    pub fn sweep(&mut self, now: i64) {
        let due: Vec<Uuid> = self
            .transfers
            .iter()
            .filter(
                |(_, t)| matches!(t.state, State::Pending { expires_at: Some(at) } if at <= now),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let t = self.transfers[&id].clone();
            self.account(t.debit).debits_pending -= t.amount;
            self.account(t.credit).credits_pending -= t.amount;
            if let Some(stored) = self.transfers.get_mut(&id) {
                stored.state = State::Expired;
            }
        }
    }

    fn account(&mut self, id: Uuid) -> &mut ModelAccount {
        self.accounts.get_mut(&id).expect("model account")
    }

    pub fn apply(&mut self, now: i64, batch: &[NewTransfer]) -> Vec<TransferResult> {
        let mut results = Vec::new();
        let mut chain: Vec<&NewTransfer> = Vec::new();
        for (index, transfer) in batch.iter().enumerate() {
            chain.push(transfer);
            let closes = transfer.flags & LINKED == 0;
            if !closes && index + 1 == batch.len() {
                let open = chain.len();
                results.extend(std::iter::repeat_n(
                    TransferResult::LinkedEventFailed,
                    open - 1,
                ));
                results.push(TransferResult::LinkedEventChainOpen);
                return results;
            }
            if closes {
                results.extend(self.apply_chain(now, &chain));
                chain.clear();
            }
        }
        results
    }

    fn apply_chain(&mut self, now: i64, chain: &[&NewTransfer]) -> Vec<TransferResult> {
        let before = self.clone();
        let mut results = Vec::new();
        for (index, transfer) in chain.iter().enumerate() {
            let result = self.apply_one(now, transfer);
            results.push(result);
            if !result.is_success() {
                *self = before;
                let mut out = vec![TransferResult::LinkedEventFailed; chain.len()];
                out[index] = result;
                if result.is_transient() {
                    for (position, member) in chain.iter().enumerate() {
                        if !self.transfers.contains_key(&member.id) {
                            self.failed.entry(member.id).or_insert(out[position]);
                        }
                    }
                }
                return out;
            }
        }
        results
    }

    fn apply_one(&mut self, now: i64, t: &NewTransfer) -> TransferResult {
        use TransferResult::*;
        if let Err(result) = domain::validate(t) {
            return result;
        }
        if let Some(existing) = self.transfers.get(&t.id) {
            let r = &existing.request;
            let resolution = r.flags & (POST_PENDING_TRANSFER | VOID_PENDING_TRANSFER) != 0;
            let accounts_match =
                |stored: Uuid, asked: Uuid| stored == asked || (resolution && asked.is_nil());
            return if r.flags != t.flags {
                ExistsWithDifferentFlags
            } else if r.pending_id != t.pending_id {
                ExistsWithDifferentPendingId
            } else if r.timeout_seconds != t.timeout_seconds {
                ExistsWithDifferentTimeout
            } else if !accounts_match(existing.debit, t.debit_account_id) {
                ExistsWithDifferentDebitAccountId
            } else if !accounts_match(existing.credit, t.credit_account_id) {
                ExistsWithDifferentCreditAccountId
            } else if r.amount != t.amount {
                ExistsWithDifferentAmount
            } else if r.code != t.code {
                ExistsWithDifferentCode
            } else if r.reference != t.reference {
                ExistsWithDifferentReference
            } else if r.metadata != t.metadata {
                ExistsWithDifferentMetadata
            } else {
                Exists
            };
        }
        if self.failed.contains_key(&t.id) {
            return IdAlreadyFailed;
        }
        if t.flags & (POST_PENDING_TRANSFER | VOID_PENDING_TRANSFER) != 0 {
            self.resolve(now, t)
        } else {
            self.movement(now, t)
        }
    }

    fn movement(&mut self, now: i64, t: &NewTransfer) -> TransferResult {
        use TransferResult::*;
        let Some(debit) = self.accounts.get(&t.debit_account_id).cloned() else {
            return DebitAccountNotFound;
        };
        let Some(credit) = self.accounts.get(&t.credit_account_id).cloned() else {
            return CreditAccountNotFound;
        };
        if debit.asset != credit.asset {
            return AssetMismatch;
        }
        let mut amount = t.amount;
        if t.flags & BALANCING_DEBIT != 0 && debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
            amount = amount
                .min((debit.credits_posted - debit.debits_posted - debit.debits_pending).max(0));
        }
        if t.flags & BALANCING_CREDIT != 0 && credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
            amount = amount.min(
                (credit.debits_posted - credit.credits_posted - credit.credits_pending).max(0),
            );
        }
        if amount == 0 {
            return if t.flags & BALANCING_DEBIT != 0 {
                ExceedsCredits
            } else {
                ExceedsDebits
            };
        }
        let pending = t.flags & PENDING != 0;
        if debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS != 0
            && debit.debits_posted + debit.debits_pending + amount > debit.credits_posted
        {
            return ExceedsCredits;
        }
        if credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS != 0
            && credit.credits_posted + credit.credits_pending + amount > credit.debits_posted
        {
            return ExceedsDebits;
        }
        if pending {
            self.account(t.debit_account_id).debits_pending += amount;
            self.account(t.credit_account_id).credits_pending += amount;
        } else {
            self.account(t.debit_account_id).debits_posted += amount;
            self.account(t.credit_account_id).credits_posted += amount;
        }
        let state = if pending {
            State::Pending {
                expires_at: (t.timeout_seconds > 0).then(|| now + t.timeout_seconds * 1_000_000),
            }
        } else {
            State::Done
        };
        self.transfers.insert(
            t.id,
            ModelTransfer {
                request: t.clone(),
                debit: t.debit_account_id,
                credit: t.credit_account_id,
                amount,
                state,
            },
        );
        Created
    }

    fn resolve(&mut self, now: i64, t: &NewTransfer) -> TransferResult {
        use TransferResult::*;
        let Some(pending_id) = t.pending_id else {
            return PendingIdRequired;
        };
        let Some(pending) = self.transfers.get(&pending_id).cloned() else {
            return PendingTransferNotFound;
        };
        if pending.request.flags & PENDING == 0 {
            return PendingTransferNotPending;
        }
        if !t.debit_account_id.is_nil() && t.debit_account_id != pending.debit {
            return PendingTransferHasDifferentDebitAccountId;
        }
        if !t.credit_account_id.is_nil() && t.credit_account_id != pending.credit {
            return PendingTransferHasDifferentCreditAccountId;
        }
        match pending.state {
            State::Posted => return PendingTransferAlreadyPosted,
            State::Voided => return PendingTransferAlreadyVoided,
            State::Expired => return PendingTransferExpired,
            State::Pending {
                expires_at: Some(at),
            } if now >= at => return PendingTransferExpired,
            _ => {}
        }
        let post = t.flags & POST_PENDING_TRANSFER != 0;
        let amount = if t.amount == 0 {
            pending.amount
        } else {
            t.amount
        };
        if amount > pending.amount || (!post && amount != pending.amount) {
            return ExceedsPendingTransferAmount;
        }
        self.account(pending.debit).debits_pending -= pending.amount;
        self.account(pending.credit).credits_pending -= pending.amount;
        if post {
            self.account(pending.debit).debits_posted += amount;
            self.account(pending.credit).credits_posted += amount;
        }
        if let Some(stored) = self.transfers.get_mut(&pending_id) {
            stored.state = if post { State::Posted } else { State::Voided };
        }
        self.transfers.insert(
            t.id,
            ModelTransfer {
                request: t.clone(),
                debit: pending.debit,
                credit: pending.credit,
                amount,
                state: State::Done,
            },
        );
        Created
    }

    /// Every ledger invariant the model can state about itself.
    pub fn check_invariants(&self) {
        let mut per_asset: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for (id, account) in &self.accounts {
            let entry = per_asset.entry(&account.asset).or_default();
            entry.0 += account.credits_posted - account.debits_posted;
            entry.1 += account.debits_pending;
            entry.2 += account.credits_pending;
            assert!(
                account.debits_pending >= 0 && account.credits_pending >= 0,
                "{id} pending negative"
            );
            if account.flags & DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
                assert!(
                    account.debits_posted + account.debits_pending <= account.credits_posted,
                    "{id} overdrawn"
                );
            }
            if account.flags & CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
                assert!(
                    account.credits_posted + account.credits_pending <= account.debits_posted,
                    "{id} over-credited"
                );
            }
        }
        for (asset, (balance, debits_pending, credits_pending)) in per_asset {
            assert_eq!(balance, 0, "{asset} balances do not sum to zero");
            assert_eq!(
                debits_pending, credits_pending,
                "{asset} pending sides differ"
            );
        }
    }
}
