//! Group commit: concurrent `create_transfers` calls are coalesced into one database transaction.
//!
//! One task owns the write path. It takes the first waiting request, then every request already
//! queued behind it (up to [`MAX_TRANSFERS_PER_COMMIT`]), applies them in arrival order inside one
//! transaction, commits, and only then answers each caller with exactly its own results. Under
//! light load a batch is one request and nothing waits; under heavy load the batch grows while the
//! previous commit is in flight. Durability is the database's commit, never weakened.

use std::sync::Arc;

use kernel::{Context, ServiceError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{NewTransfer, TransferResult};
use crate::store::{self, BatchRequest};

/// Upper bound of transfers in one coalesced transaction.
pub const MAX_TRANSFERS_PER_COMMIT: usize = 16_000;

pub(crate) struct WriteJob {
    pub workspace_id: Uuid,
    pub transfers: Vec<NewTransfer>,
    pub reply: oneshot::Sender<Result<Vec<TransferResult>, ServiceError>>,
}

pub(crate) fn spawn(context: Context) -> mpsc::Sender<WriteJob> {
    let (sender, receiver) = mpsc::channel(4096);
    tokio::spawn(run(context, receiver));
    sender
}

async fn run(context: Context, mut receiver: mpsc::Receiver<WriteJob>) {
    let context = Arc::new(context);
    while let Some(first) = receiver.recv().await {
        let mut total = first.transfers.len();
        let mut jobs = vec![first];
        while total < MAX_TRANSFERS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(job) => {
                    total += job.transfers.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let outcome = commit(&context, &jobs).await;
        metrics_batch(jobs.len(), total);
        match outcome {
            Ok(results) => {
                for (job, results) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(results));
                }
            }
            Err(error) => {
                tracing::warn!(%error, requests = jobs.len(), "ledger batch failed");
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

async fn commit(
    context: &Context,
    jobs: &[WriteJob],
) -> Result<Vec<Vec<TransferResult>>, ServiceError> {
    let requests: Vec<BatchRequest<'_>> = jobs
        .iter()
        .map(|job| BatchRequest {
            workspace_id: job.workspace_id,
            transfers: &job.transfers,
        })
        .collect();
    context
        .db
        .with_retry(|| async {
            let txn = context.db.begin_write().await?;
            let now = kernel::clock::to_micros(context.clock.now());
            let results = store::apply_batch(&*txn, &requests, now).await?;
            txn.commit().await?;
            Ok(results)
        })
        .await
}

fn metrics_batch(requests: usize, transfers: usize) {
    tracing::trace!(requests, transfers, "ledger batch committed");
}
