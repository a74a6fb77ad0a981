//! The double-entry ledger every credit and cent moves through: accounts with no-overdraft
//! limits, transfers that are idempotent by id, two-phase (pending → post/void, with timeouts),
//! linked chains, balancing transfers, exact history, and a per-workspace hash chain.
//!
//! Other domains call [`Ledger::apply_in`] inside their own transaction, so "create a promotion and
//! fund it" is one atomic unit; the gRPC service goes through group commit.
#![forbid(unsafe_code)]

pub mod accounts;
mod chain;
mod convert;
pub mod domain;
mod expiry;
pub mod queries;
pub mod service;
pub mod store;
pub mod verify;
mod writer;

use std::collections::BTreeSet;

use kernel::background::ItemBackoff;
use kernel::{Context, ServiceError};
use sea_orm::ConnectionTrait;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use accounts::{CreateAccountResult, NewAccount, SystemAccount};
pub use domain::{Account, Key, NewTransfer, Origin, Transfer, TransferResult};

/// Pending transfers the expiry sweeper looks at per round.
const EXPIRY_ROUND: u64 = 1000;

/// The ErrorInfo domain of ledger errors.
pub const DOMAIN: &str = "promo.ledger";

/// A handle on the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    context: Context,
    writer: mpsc::Sender<writer::WriteJob>,
}

impl Ledger {
    /// Starts the group-commit writer; must be called inside a tokio runtime.
    pub fn start(context: Context) -> Ledger {
        let writer = writer::spawn(context.clone());
        Ledger { context, writer }
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Applies a client's transfers through group commit; one result per transfer, in order. A
    /// client may not use reserved ids nor move accounts a domain manages.
    pub async fn create_transfers(
        &self,
        workspace_id: Uuid,
        transfers: Vec<NewTransfer>,
    ) -> Result<Vec<TransferResult>, ServiceError> {
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.submit(writer::WriteJob {
            workspace_id,
            origin: Origin::Client,
            transfers,
            reply,
            #[cfg(test)]
            fault: None,
        })
        .await?;
        answer.await.map_err(|_| {
            ServiceError::unavailable(
                "LEDGER_WRITER_RESTARTED",
                "the ledger's writer restarted while holding this request; retry it with the same transfer ids",
                "writer dropped a job",
            )
        })?
    }

    async fn submit(&self, job: writer::WriteJob) -> Result<(), ServiceError> {
        self.writer.send(job).await.map_err(|_| {
            ServiceError::unavailable(
                "LEDGER_STOPPED",
                "the ledger is shutting down",
                "writer gone",
            )
        })
    }

    /// Applies a domain's transfers inside the caller's transaction (which must be a write
    /// transaction): the domain may use its derived ids and move the accounts it manages.
    pub async fn apply_in<C: ConnectionTrait>(
        connection: &C,
        workspace_id: Uuid,
        transfers: &[NewTransfer],
        now: i64,
    ) -> Result<Vec<TransferResult>, ServiceError> {
        let requests = [store::BatchRequest {
            workspace_id,
            origin: Origin::Domain,
            transfers,
        }];
        let mut results = store::apply_batch(connection, &requests, now).await?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Moves `amount` of `asset` between two system accounts inside the caller's transaction
    /// (both created on first use): how a domain grants credits, credits a commission or takes it
    /// back. Returns the transfer's id; a refusal the domain has to explain (an overdraft, an
    /// overflow) comes back as `Ok(Err(result))`.
    #[allow(clippy::too_many_arguments)]
    pub async fn move_in<C: ConnectionTrait>(
        connection: &C,
        workspace_id: Uuid,
        from: &SystemAccount,
        to: &SystemAccount,
        asset: &str,
        amount: i64,
        code: &str,
        reference: String,
        now: i64,
    ) -> Result<Result<Uuid, TransferResult>, ServiceError> {
        let debit_account_id =
            accounts::ensure_system_account(connection, workspace_id, from, asset, now).await?;
        let credit_account_id =
            accounts::ensure_system_account(connection, workspace_id, to, asset, now).await?;
        let transfer = NewTransfer {
            id: Uuid::now_v7(),
            debit_account_id,
            credit_account_id,
            amount,
            code: code.to_owned(),
            reference,
            pending_id: None,
            timeout_seconds: 0,
            flags: 0,
            metadata: std::collections::BTreeMap::new(),
        };
        let id = transfer.id;
        match Ledger::apply_in(connection, workspace_id, &[transfer], now)
            .await?
            .first()
        {
            Some(TransferResult::Created) => Ok(Ok(id)),
            Some(refused) => Ok(Err(*refused)),
            None => Err(ServiceError::internal("the ledger answered no result")),
        }
    }

    /// The posted balance (credits − debits) of a system account; 0 when it does not exist yet.
    pub async fn balance_of<C: ConnectionTrait>(
        connection: &C,
        workspace_id: Uuid,
        account: &SystemAccount,
        asset: &str,
    ) -> Result<i64, ServiceError> {
        Ok(
            queries::get_account(connection, workspace_id, account.id(workspace_id, asset))
                .await?
                .map_or(0, |account| queries::Balances::of(&account).balance()),
        )
    }

    /// Creates a client's accounts in one transaction.
    pub async fn create_accounts(
        &self,
        workspace_id: Uuid,
        accounts: Vec<NewAccount>,
    ) -> Result<Vec<CreateAccountResult>, ServiceError> {
        let accounts = &accounts;
        self.context
            .write(|txn| async move {
                let now = kernel::clock::to_micros(self.context.clock.now());
                let results = accounts::create_accounts(&*txn, workspace_id, accounts, now).await?;
                Ok((txn, results))
            })
            .await
    }

    /// Voids every pending transfer whose timeout has passed; returns how many.
    pub async fn expire_due(&self) -> Result<usize, ServiceError> {
        self.expire_due_isolated(&mut ItemBackoff::new("pending_expiry"))
            .await
    }

    /// [`Ledger::expire_due`], isolating failures per transfer: when a round fails, each of its
    /// transfers is voided alone, and one that keeps failing backs off without holding up the rest.
    async fn expire_due_isolated(
        &self,
        backoff: &mut ItemBackoff<KeyText>,
    ) -> Result<usize, ServiceError> {
        let mut total = 0;
        loop {
            let now = kernel::clock::to_micros(self.context.clock.now());
            let due = expiry::due_pending(self.context.db.connection(), now, EXPIRY_ROUND).await?;
            let full_round = due.len() as u64 == EXPIRY_ROUND;
            let ready: BTreeSet<Key> = due
                .into_iter()
                .filter(|key| backoff.ready(&KeyText(*key)))
                .collect();
            if ready.is_empty() {
                return Ok(total);
            }
            let expired = match self.expire_keys(&ready).await {
                Ok(expired) => {
                    for key in &ready {
                        backoff.succeeded(&KeyText(*key));
                    }
                    expired
                }
                Err(_) => {
                    let mut expired = 0;
                    for key in &ready {
                        match self.expire_keys(&BTreeSet::from([*key])).await {
                            Ok(count) => {
                                expired += count;
                                backoff.succeeded(&KeyText(*key));
                            }
                            Err(error) => backoff.failed(&KeyText(*key), &error),
                        }
                    }
                    expired
                }
            };
            total += expired;
            if !full_round || expired == 0 {
                return Ok(total);
            }
        }
    }

    async fn expire_keys(&self, keys: &BTreeSet<Key>) -> Result<usize, ServiceError> {
        self.context
            .write(|txn| async move {
                let now = kernel::clock::to_micros(self.context.clock.now());
                let expired = expiry::expire_keys(&*txn, keys, now).await?;
                Ok((txn, expired))
            })
            .await
    }

    /// Runs the expiry sweep every `period` until the task is dropped; a failing transfer is
    /// retried with backoff and never stops the others.
    pub async fn run_expiry(self, period: std::time::Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = ItemBackoff::new("pending_expiry");
        loop {
            interval.tick().await;
            match self.expire_due_isolated(&mut backoff).await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "voided expired pending transfers"),
                Err(error) => {
                    metrics::counter!("promo_background_failures_total", "job" => "pending_expiry")
                        .increment(1);
                    tracing::warn!(%error, "listing expired pending transfers failed; retrying next round");
                }
            }
        }
    }
}

/// A `(workspace_id, id)` key as background jobs log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyText(pub Key);

impl std::fmt::Display for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0.0, self.0.1)
    }
}
