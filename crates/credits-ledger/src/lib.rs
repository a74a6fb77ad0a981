//! The double-entry ledger every credit and cent moves through: accounts with no-overdraft
//! limits, transfers that are idempotent by id, two-phase (pending → post/void, with timeouts),
//! linked chains, balancing transfers, exact history, and a per-workspace hash chain.
//!
//! Other domains call [`Ledger::apply_in`] inside their own transaction, so "create a promotion and
//! fund it" is one atomic unit; the gRPC service goes through group commit.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod domain;
pub mod queries;
pub mod service;
pub mod store;
pub mod verify;
mod writer;

use kernel::{Context, ServiceError};
use sea_orm::ConnectionTrait;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use accounts::{CreateAccountResult, NewAccount, SystemAccount};
pub use domain::{Account, NewTransfer, Transfer, TransferResult};

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

    /// Applies transfers through group commit; one result per transfer, in order.
    pub async fn create_transfers(
        &self,
        workspace_id: Uuid,
        transfers: Vec<NewTransfer>,
    ) -> Result<Vec<TransferResult>, ServiceError> {
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::WriteJob {
                workspace_id,
                transfers,
                reply,
            })
            .await
            .map_err(|_| {
                ServiceError::unavailable(
                    "LEDGER_STOPPED",
                    "the ledger is shutting down",
                    "writer gone",
                )
            })?;
        answer.await.map_err(|_| {
            ServiceError::unavailable(
                "LEDGER_STOPPED",
                "the ledger is shutting down",
                "writer dropped a job",
            )
        })?
    }

    /// Applies transfers inside the caller's transaction (which must be a write transaction).
    pub async fn apply_in<C: ConnectionTrait>(
        connection: &C,
        workspace_id: Uuid,
        transfers: &[NewTransfer],
        now: i64,
    ) -> Result<Vec<TransferResult>, ServiceError> {
        let requests = [store::BatchRequest {
            workspace_id,
            transfers,
        }];
        let mut results = store::apply_batch(connection, &requests, now).await?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Creates accounts in one transaction.
    pub async fn create_accounts(
        &self,
        workspace_id: Uuid,
        accounts: Vec<NewAccount>,
    ) -> Result<Vec<CreateAccountResult>, ServiceError> {
        let db = &self.context.db;
        db.with_retry(|| async {
            let txn = db.begin_write().await?;
            let now = kernel::clock::to_micros(self.context.clock.now());
            let results = accounts::create_accounts(&*txn, workspace_id, &accounts, now).await?;
            txn.commit().await?;
            Ok(results)
        })
        .await
    }

    /// Voids every pending transfer whose timeout has passed; returns how many.
    pub async fn expire_due(&self) -> Result<usize, ServiceError> {
        let db = &self.context.db;
        let mut total = 0;
        loop {
            let expired = db
                .with_retry(|| async {
                    let txn = db.begin_write().await?;
                    let now = kernel::clock::to_micros(self.context.clock.now());
                    let expired = store::expire_pending(&*txn, now, 1000).await?;
                    txn.commit().await?;
                    Ok(expired)
                })
                .await?;
            total += expired;
            if expired < 1000 {
                return Ok(total);
            }
        }
    }

    /// Runs [`Ledger::expire_due`] every `period` until the task is dropped.
    pub async fn run_expiry(self, period: std::time::Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.expire_due().await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "voided expired pending transfers"),
                Err(error) => tracing::warn!(%error, "expiring pending transfers failed"),
            }
        }
    }
}
