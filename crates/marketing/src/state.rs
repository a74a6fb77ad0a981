//! The marketing module's shared state, its background work, and how the gateway starts it.

use std::sync::Arc;
use std::time::Duration;

use kernel::background::ItemBackoff;
use kernel::{Context, IdempotencyKey, ServiceError, WriteTxn};
use uuid::Uuid;

use crate::model::CouponDef;
use crate::snapshot::{Change, SnapshotCache};
use crate::store;

/// How often the sweeper expires reservations, moves campaigns along their windows and picks up
/// coupon batches a stopped server left.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Items one sweep takes on at most, per kind.
const SWEEP_LIMIT: u64 = 500;

pub use kernel::background::Item;

/// Stripes of the in-process queue that reservations of one hot coupon or campaign wait in.
const STRIPES: usize = 256;

/// Shared state of the marketing module.
pub struct Marketing {
    pub(crate) context: Context,
    pub(crate) snapshots: Arc<SnapshotCache>,
    /// Reservations touching the same coupon or limited campaign queue here, one at a time per
    /// stripe, before they take a database connection: a thousand concurrent calls for one coupon
    /// then wait in memory instead of holding the pool's connections while they wait for the row.
    /// (The database locks still decide; this only keeps the pool free.)
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl Marketing {
    pub fn start(context: Context) -> Arc<Marketing> {
        Arc::new(Marketing {
            snapshots: Arc::new(SnapshotCache::new(context.clone())),
            context,
            stripes: (0..STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCache> {
        &self.snapshots
    }

    /// What keeps pricing snapshots in step with settings changes.
    pub fn settings_observer(&self) -> Arc<dyn kernel::settings::Observer> {
        Arc::new(crate::settings::SettingsObserver {
            snapshots: self.snapshots.clone(),
        })
    }

    /// Waits for the stripes of `keys` (taken in ascending order, so waiters never deadlock) and
    /// holds them until the guards drop.
    pub(crate) async fn queue_for<K: std::hash::Hash>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let mut indices: Vec<usize> = keys
            .into_iter()
            .map(|key| (hasher.hash_one(key) % STRIPES as u64) as usize)
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards = Vec::with_capacity(indices.len());
        for index in indices {
            guards.push(self.stripes[index].clone().lock_owned().await);
        }
        guards
    }

    /// Makes coupons this replica just committed visible to its snapshot at once (the snapshot
    /// then covers the version their transaction produced, when nothing else moved it).
    pub(crate) async fn record_new_coupons(&self, workspace_id: Uuid, coupons: Vec<CouponDef>) {
        if coupons.is_empty() {
            return;
        }
        let version = store::current_version(self.context.db.connection(), workspace_id)
            .await
            .ok();
        let changes = coupons.into_iter().map(Change::Coupon).collect();
        self.snapshots.record(workspace_id, changes, version);
    }

    pub(crate) fn now(&self) -> i64 {
        kernel::clock::to_micros(self.context.clock.now())
    }

    /// Runs an idempotent change of definitions pricing reads (campaigns, rules, displays): one
    /// transaction that also bumps the workspace's snapshot version; then this replica's snapshot
    /// is rebuilt before the caller hears back.
    pub(crate) async fn change_definitions<R, F, Fut>(
        &self,
        key: &IdempotencyKey,
        workspace_id: Uuid,
        effect: F,
    ) -> Result<R, ServiceError>
    where
        R: prost::Message + Default,
        F: Fn(WriteTxn) -> Fut,
        Fut: std::future::Future<Output = Result<(WriteTxn, R), ServiceError>>,
    {
        let effect = &effect;
        let response = self
            .context
            .idempotent(key, |txn| async move {
                let (txn, response) = effect(txn).await?;
                store::bump_version(&*txn, workspace_id).await?;
                Ok((txn, response))
            })
            .await?;
        self.refresh(workspace_id).await;
        Ok(response)
    }

    /// After a change whose effects this replica already recorded in its snapshot bumped the
    /// version: the snapshot covers it without a rebuild (when nothing else moved it).
    pub(crate) async fn cover_own_change(&self, workspace_id: Uuid) {
        if let Ok(version) =
            store::current_version(self.context.db.connection(), workspace_id).await
        {
            self.snapshots.cover(workspace_id, version);
        }
    }

    /// Rebuilds this replica's snapshot of a workspace (when it has one) so a change it just
    /// committed is visible at once; a failure leaves it to the refresher.
    pub(crate) async fn refresh(&self, workspace_id: Uuid) {
        if let Err(error) = self.snapshots.rebuild(workspace_id).await {
            tracing::warn!(%error, %workspace_id, "pricing snapshot rebuild failed; the refresher retries");
        }
    }

    /// The snapshot refresher and the sweeper.
    pub async fn run_background(self: Arc<Self>) {
        let refresher = tokio::spawn(
            self.snapshots
                .clone()
                .run_refresher(Duration::from_millis(500)),
        );
        let mut interval = tokio::time::interval(SWEEP_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = ItemBackoff::new("marketing_sweeper");
        loop {
            interval.tick().await;
            self.sweep_with(&mut backoff).await;
            if refresher.is_finished() {
                return;
            }
        }
    }

    /// One sweep (tests call it directly): expires reservations past their time, moves launched
    /// campaigns whose window opened or closed, and resumes coupon batches left running by a
    /// stopped server. Returns how many items it changed.
    pub async fn sweep(self: &Arc<Self>) -> usize {
        self.sweep_with(&mut ItemBackoff::new("marketing_sweeper"))
            .await
    }

    async fn sweep_with(self: &Arc<Self>, backoff: &mut ItemBackoff<Item>) -> usize {
        let connection = self.context.db.connection();
        let now = self.now();
        let mut changed = 0;
        match store::expired_redemptions(connection, now, SWEEP_LIMIT).await {
            Ok(rows) => {
                for row in rows {
                    let item = Item(row.workspace_id, row.id);
                    if !backoff.ready(&item) {
                        continue;
                    }
                    match crate::holds::expire(self, &row).await {
                        Ok(done) => {
                            backoff.succeeded(&item);
                            changed += usize::from(done);
                        }
                        Err(error) => backoff.failed(&item, &error),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "listing expired reservations failed"),
        }
        match store::campaigns_due(connection, now, SWEEP_LIMIT).await {
            Ok(rows) => {
                for row in rows {
                    let item = Item(row.workspace_id, row.id);
                    if !backoff.ready(&item) {
                        continue;
                    }
                    match crate::campaigns::advance_due(self, row.workspace_id, row.id).await {
                        Ok(done) => {
                            backoff.succeeded(&item);
                            changed += usize::from(done);
                        }
                        Err(error) => backoff.failed(&item, &error),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "listing campaigns due failed"),
        }
        let stale_before = now - crate::batches::BATCH_STALL_MICROS;
        match store::stalled_batches(connection, stale_before, 10).await {
            Ok(rows) => {
                for row in rows {
                    match crate::batches::claim_stalled(self, &row).await {
                        Ok(true) => {
                            tracing::info!(batch_id = %row.id, generated = row.generated, "resuming a coupon batch");
                            crate::batches::spawn_batch(self.clone(), row.workspace_id, row.id);
                            changed += 1;
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(%error, batch_id = %row.id, "claiming a stalled coupon batch failed")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "listing stalled coupon batches failed"),
        }
        changed
    }
}
