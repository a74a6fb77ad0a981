//! Group commit: concurrent `create_transfers` calls are coalesced into one database transaction.
//!
//! One task owns the write path. It takes the first waiting request, then every request already
//! queued behind it (up to [`MAX_TRANSFERS_PER_COMMIT`]), applies them in arrival order inside one
//! transaction, commits, and only then answers each caller with exactly its own results. Under
//! light load a batch is one request and nothing waits; under heavy load the batch grows while the
//! previous commit is in flight. Durability is the database's commit, never weakened.
//!
//! Failures stay with the request that caused them: when a coalesced batch fails with an error a
//! retry cannot cure, each request is committed again on its own, so only the one at fault fails.
//! Should the writer task ever die, a supervisor starts it again; the callers whose requests were
//! in its hands get UNAVAILABLE (their transfer ids make a retry safe), never a hang.

use std::sync::Arc;

use kernel::{Context, ServiceError};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{NewTransfer, Origin, TransferResult};
use crate::store::{self, BatchRequest};

/// Upper bound of transfers in one coalesced transaction.
pub const MAX_TRANSFERS_PER_COMMIT: usize = 16_000;

pub(crate) struct WriteJob {
    pub workspace_id: Uuid,
    pub origin: Origin,
    pub transfers: Vec<NewTransfer>,
    pub reply: oneshot::Sender<Result<Vec<TransferResult>, ServiceError>>,
    /// Makes the writer misbehave on this job, so tests can prove it recovers.
    #[cfg(test)]
    pub fault: Option<Fault>,
}

#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The batch holding this job fails with an error no retry cures.
    Fail,
    /// The writer task panics while holding this job.
    Panic,
}

type Queue = Arc<Mutex<mpsc::Receiver<WriteJob>>>;

pub(crate) fn spawn(context: Context) -> mpsc::Sender<WriteJob> {
    let (sender, receiver) = mpsc::channel(4096);
    tokio::spawn(supervise(context, Arc::new(Mutex::new(receiver))));
    sender
}

/// Runs the writer, and runs it again if it dies; returns once every sender is gone.
async fn supervise(context: Context, queue: Queue) {
    let context = Arc::new(context);
    loop {
        match tokio::spawn(run(context.clone(), queue.clone())).await {
            Ok(()) => return,
            Err(error) if error.is_panic() => {
                metrics::counter!("promo_ledger_writer_restarts_total").increment(1);
                tracing::error!(%error, "ledger writer died; starting it again");
            }
            Err(_) => return,
        }
    }
}

async fn run(context: Arc<Context>, queue: Queue) {
    let mut receiver = queue.lock().await;
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
        #[cfg(test)]
        if jobs.iter().any(|job| job.fault == Some(Fault::Panic)) {
            panic!("injected ledger writer fault");
        }
        process(&context, jobs).await;
    }
}

/// Commits one coalesced batch and answers each of its callers; when the batch fails with an
/// error a retry cannot cure, each request is committed alone so that only the culprit fails.
async fn process(context: &Context, jobs: Vec<WriteJob>) {
    let outcome = commit(context, &jobs).await;
    match outcome {
        Ok(results) => {
            for (job, results) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(results));
            }
        }
        Err(error) if jobs.len() == 1 || error.is_retryable() => {
            tracing::warn!(%error, requests = jobs.len(), "ledger batch failed");
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
        Err(error) => {
            tracing::warn!(%error, requests = jobs.len(), "ledger batch failed; committing its requests one by one");
            for job in jobs {
                let outcome = commit(context, std::slice::from_ref(&job)).await;
                if let Err(error) = &outcome {
                    metrics::counter!("promo_background_failures_total", "job" => "ledger_writer")
                        .increment(1);
                    tracing::warn!(%error, workspace_id = %job.workspace_id, "ledger request failed alone");
                }
                let _ = job
                    .reply
                    .send(outcome.map(|mut results| results.pop().unwrap_or_default()));
            }
        }
    }
}

async fn commit(
    context: &Context,
    jobs: &[WriteJob],
) -> Result<Vec<Vec<TransferResult>>, ServiceError> {
    #[cfg(test)]
    if jobs.iter().any(|job| job.fault == Some(Fault::Fail)) {
        return Err(ServiceError::internal("injected batch failure"));
    }
    let requests: Vec<BatchRequest<'_>> = jobs
        .iter()
        .map(|job| BatchRequest {
            workspace_id: job.workspace_id,
            origin: job.origin,
            transfers: &job.transfers,
        })
        .collect();
    let requests = &requests;
    context
        .write(|txn| async move {
            let now = kernel::clock::to_micros(context.clock.now());
            let results = store::apply_batch(&*txn, requests, now).await?;
            Ok((txn, results))
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kernel::{Db, DbOptions, SystemClock};
    use migrations::{Migrator, MigratorTrait};

    use super::*;
    use crate::{Ledger, NewAccount};

    async fn ledger() -> (Ledger, Uuid, Uuid, Uuid, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("writer.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("connect");
        Migrator::up(db.connection(), None).await.expect("migrate");
        let ledger = Ledger::start(Context::new(db, Arc::new(SystemClock)));
        let (workspace_id, source, sink) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let accounts = [source, sink]
            .into_iter()
            .map(|id| NewAccount {
                id,
                owner_id: None,
                asset: "CREDITS".to_owned(),
                code: "TEST".to_owned(),
                flags: 0,
                metadata: BTreeMap::new(),
            })
            .collect();
        ledger
            .create_accounts(workspace_id, accounts)
            .await
            .expect("accounts");
        (ledger, workspace_id, source, sink, dir)
    }

    fn job(
        workspace_id: Uuid,
        source: Uuid,
        sink: Uuid,
        fault: Option<Fault>,
    ) -> (
        WriteJob,
        oneshot::Receiver<Result<Vec<TransferResult>, ServiceError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let transfer = NewTransfer {
            id: Uuid::new_v4(),
            debit_account_id: source,
            credit_account_id: sink,
            amount: 1,
            code: "TEST".to_owned(),
            reference: String::new(),
            pending_id: None,
            timeout_seconds: 0,
            flags: 0,
            metadata: BTreeMap::new(),
        };
        let job = WriteJob {
            workspace_id,
            origin: Origin::Client,
            transfers: vec![transfer],
            reply,
            fault,
        };
        (job, answer)
    }

    #[tokio::test]
    async fn a_failing_request_in_a_batch_fails_alone() {
        let (ledger, workspace_id, source, sink, _dir) = ledger().await;
        let (good, good_answer) = job(workspace_id, source, sink, None);
        let (bad, bad_answer) = job(workspace_id, source, sink, Some(Fault::Fail));
        let (later, later_answer) = job(workspace_id, source, sink, None);
        process(ledger.context(), vec![good, bad, later]).await;
        let good = good_answer.await.expect("answered");
        assert_eq!(good.ok(), Some(vec![TransferResult::Created]));
        assert!(bad_answer.await.expect("answered").is_err());
        let later = later_answer.await.expect("answered");
        assert_eq!(later.ok(), Some(vec![TransferResult::Created]));
    }

    #[tokio::test]
    async fn a_dead_writer_answers_unavailable_and_is_started_again() {
        let (ledger, workspace_id, source, sink, _dir) = ledger().await;
        let (crash, crash_answer) = job(workspace_id, source, sink, Some(Fault::Panic));
        ledger.submit(crash).await.expect("queued");
        let error = crash_answer
            .await
            .map_err(|_| "dropped")
            .expect_err("the job dies with the writer");
        assert_eq!(error, "dropped");
        let transfer = job(workspace_id, source, sink, None).0.transfers;
        let results = ledger
            .create_transfers(workspace_id, transfer)
            .await
            .expect("the restarted writer serves");
        assert_eq!(results, [TransferResult::Created]);
    }
}
