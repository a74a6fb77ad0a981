//! The material promotion module's shared state, what it runs in the background, and how the
//! gateway starts and stops it.

use std::sync::Arc;
use std::time::Duration;

use kernel::background::ItemBackoff;
use kernel::{Context, ServiceError};
use uuid::Uuid;

use crate::domain::DecisionSigner;
use crate::impressions::{ImpressionEvent, ImpressionQueue};
use crate::snapshot::SnapshotCache;
use crate::store;

/// How often the sweeper completes promotions past their end time.
const SWEEP_PERIOD: Duration = Duration::from_secs(2);
/// Every this many sweeps it also completes running promotions whose budget is exhausted (after
/// a settings change raised the costs, say), which takes one query per workspace.
const EXHAUSTION_SWEEP_EVERY: u32 = 15;

/// Shared state of the material promotion module.
pub struct PromotionCore {
    pub(crate) context: Context,
    pub(crate) snapshots: Arc<SnapshotCache>,
    pub(crate) signer: DecisionSigner,
    /// Impressions on their way to the database.
    pub(crate) impressions: ImpressionQueue,
    /// Varies every selection's randomness (tests and reproductions only); selection is random
    /// per request either way, and repeats itself for a retried request.
    pub(crate) selection_seed: Option<u64>,
}

/// A `(workspace_id, id)` key as background jobs log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item(pub Uuid, pub Uuid);

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub completed: usize,
    pub failed: usize,
}

impl PromotionCore {
    /// Starts the impression writer; call inside a tokio runtime. `decision_secret` must be the
    /// same on every replica, so that each accepts the others' decision ids.
    pub fn start(
        context: Context,
        decision_secret: &[u8],
        selection_seed: Option<u64>,
    ) -> Arc<PromotionCore> {
        Arc::new_cyclic(|core| PromotionCore {
            snapshots: Arc::new(SnapshotCache::new(context.clone())),
            signer: DecisionSigner::new(decision_secret),
            impressions: ImpressionQueue::start(core.clone()),
            context,
            selection_seed,
        })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCache> {
        &self.snapshots
    }

    /// What keeps selection in step with settings changes (registered with the gateway's
    /// settings registry).
    pub fn settings_observer(&self) -> Arc<dyn kernel::settings::Observer> {
        Arc::new(crate::settings::SettingsObserver {
            snapshots: self.snapshots.clone(),
        })
    }

    pub fn signer(&self) -> &DecisionSigner {
        &self.signer
    }

    pub(crate) fn now(&self) -> i64 {
        kernel::clock::to_micros(self.context.clock.now())
    }

    /// Hands promoted picks to the impression writer, waiting while its queue is full
    /// (backpressure: an impression is never dropped).
    pub async fn record_impressions(
        &self,
        events: Vec<ImpressionEvent>,
    ) -> Result<(), ServiceError> {
        self.impressions.send(events).await
    }

    /// Waits until every impression queued before this call is in the database, or `timeout`
    /// passes; `Err` carries how many are still waiting.
    pub async fn flush_impressions(&self, timeout: Duration) -> Result<(), u64> {
        self.impressions.flush(timeout).await
    }

    /// Snapshot refresher and the sweeper that completes ended and exhausted promotions.
    pub async fn run_background(self: Arc<Self>) {
        let refresher = tokio::spawn(
            self.snapshots
                .clone()
                .run_refresher(Duration::from_millis(500)),
        );
        let mut interval = tokio::time::interval(SWEEP_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = ItemBackoff::new("promotion_sweeper");
        let mut round: u32 = 0;
        loop {
            interval.tick().await;
            round = round.wrapping_add(1);
            let with_exhausted = round % EXHAUSTION_SWEEP_EVERY == 1;
            let report = self.sweep_with(&mut backoff, with_exhausted).await;
            if report.completed > 0 || report.failed > 0 {
                tracing::info!(
                    completed = report.completed,
                    failed = report.failed,
                    "promotion sweep"
                );
            }
            if refresher.is_finished() {
                return;
            }
        }
    }

    /// One sweep: completes (and refunds) every promotion past its end time and every running one
    /// whose budget cannot pay another charge. Each promotion is its own transaction: one that
    /// fails is reported and left for the next sweep, and never stops the others.
    pub async fn sweep(&self) -> SweepReport {
        self.sweep_with(&mut ItemBackoff::new("promotion_sweeper"), true)
            .await
    }

    async fn sweep_with(
        &self,
        backoff: &mut ItemBackoff<Item>,
        with_exhausted: bool,
    ) -> SweepReport {
        let mut report = SweepReport::default();
        let due = match self.due_promotions(with_exhausted).await {
            Ok(due) => due,
            Err(error) => {
                metrics::counter!("promo_background_failures_total", "job" => "promotion_sweeper")
                    .increment(1);
                tracing::warn!(%error, "listing promotions to complete failed; retrying next sweep");
                return report;
            }
        };
        backoff.retain(|item| due.contains(item));
        for item in due {
            if !backoff.ready(&item) {
                continue;
            }
            match self.complete_due(item.0, item.1).await {
                Ok(completed) => {
                    backoff.succeeded(&item);
                    if completed {
                        report.completed += 1;
                    }
                }
                Err(error) => {
                    backoff.failed(&item, &error);
                    report.failed += 1;
                }
            }
        }
        report
    }

    async fn due_promotions(&self, with_exhausted: bool) -> Result<Vec<Item>, ServiceError> {
        let connection = self.context.db.connection();
        let now = self.now();
        let mut due: Vec<Item> = store::ended_promotions(connection, now, 1000)
            .await?
            .into_iter()
            .map(|(workspace_id, id)| Item(workspace_id, id))
            .collect();
        if with_exhausted {
            for workspace_id in store::workspaces_with_open_promotions(connection).await? {
                let settings = store::promotion_settings(connection, workspace_id).await?;
                let threshold = crate::domain::charge_threshold(&settings);
                due.extend(
                    store::exhausted_promotions(connection, workspace_id, threshold, now)
                        .await?
                        .into_iter()
                        .map(|(workspace_id, id)| Item(workspace_id, id)),
                );
            }
        }
        due.sort();
        due.dedup();
        Ok(due)
    }
}
