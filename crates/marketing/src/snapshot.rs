//! Per-workspace, in-memory snapshots of what pricing reads — live campaigns, rules, usable
//! coupons, displays, the time zone and the module's settings — so EvaluateCart and ListDisplays
//! never touch the database.
//!
//! How a snapshot keeps up:
//! - Every change of a definition bumps the workspace's `mkt_version` in its transaction; each
//!   replica's refresher rebuilds a snapshot whose version it no longer covers.
//! - On the replica that made it, a change is visible at once: campaign, rule, display and
//!   settings changes rebuild before the call answers; a new coupon is added to the snapshot in
//!   place (a workspace may hold a million of them), and the snapshot then covers the new version.
//! - Usage counters (coupon uses, campaign uses and budget) move with every redemption without a
//!   version bump: this replica adds what it committed to the snapshot's counters at once; other
//!   replicas' redemptions show at the next rebuild. CreateRedemption never relies on them: it
//!   reserves with conditional updates in its transaction, so a stale count can only make
//!   EvaluateCart promise a coupon that CreateRedemption then reports as used up.
//! - A change committed while a rebuild was loading is kept: local changes are journaled with a
//!   sequence number and replayed onto any snapshot whose load began before them. (A counter
//!   change whose commit the load did see is then counted twice; a snapshot with local counter
//!   changes is therefore reloaded once it is a minute old, which bounds how long such an error
//!   lasts.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kernel::{Context, ServiceError};
use uuid::Uuid;

use crate::model::{CampaignDef, CouponDef, RuleDef};
use crate::offer::View;
use crate::settings::MarketingSettings;
use crate::store::{self, display};

/// Coupons loaded per query while building.
const COUPON_PAGE: u64 = 10_000;
/// Journal entries older than every snapshot are dropped; this bounds it in between.
const MAX_JOURNAL: usize = 100_000;
/// Age after which a snapshot whose counters moved here is reloaded.
const COUNTERS_MAX_AGE: Duration = Duration::from_secs(60);

/// What pricing reads for one workspace.
pub struct Snapshot {
    /// The `mkt_version` it was loaded at.
    pub version: i64,
    /// The version it covers: its own, or a later one whose change was applied in place.
    covered: AtomicI64,
    /// The journal position its load began at.
    loaded_at: u64,
    pub zone: chrono_tz::Tz,
    pub settings: MarketingSettings,
    campaigns: HashMap<Uuid, CampaignDef>,
    automatic: Vec<Uuid>,
    rules: HashMap<Uuid, RuleDef>,
    coupons: HashMap<String, CouponDef>,
    /// Coupons created here since the load.
    added: RwLock<HashMap<String, CouponDef>>,
    /// Counter changes committed here since the load: `(uses, budget)` by coupon or campaign id.
    counters: Mutex<HashMap<Uuid, (i64, i64)>>,
    pub displays: Vec<display::Model>,
    built: Instant,
}

impl Snapshot {
    /// Covers `version` when exactly one behind it (nothing else moved the workspace since).
    fn cover(&self, version: i64) {
        let _ =
            self.covered
                .compare_exchange(version - 1, version, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn counters_moved(&self) -> bool {
        self.counters
            .lock()
            .map(|counters| !counters.is_empty())
            .unwrap_or(false)
    }

    fn added_coupon(&self, code: &str) -> Option<CouponDef> {
        self.added.read().ok()?.get(code).cloned()
    }

    fn counter(&self, id: Uuid) -> (i64, i64) {
        self.counters
            .lock()
            .ok()
            .and_then(|counters| counters.get(&id).copied())
            .unwrap_or_default()
    }

    fn apply(&self, change: &Change) {
        match change {
            Change::Coupon(coupon) => {
                if let Ok(mut added) = self.added.write() {
                    added.insert(coupon.code.clone(), coupon.clone());
                }
            }
            Change::Counter { id, uses, budget } => {
                if let Ok(mut counters) = self.counters.lock() {
                    let entry = counters.entry(*id).or_default();
                    entry.0 += uses;
                    entry.1 += budget;
                }
            }
        }
    }

    pub fn campaign(&self, id: Uuid) -> Option<&CampaignDef> {
        self.campaigns.get(&id)
    }

    /// The automatic campaigns with a budget or a usage limit (every reservation may touch them).
    pub fn limited_automatic(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.automatic.iter().copied().filter(|id| {
            self.campaigns.get(id).is_some_and(|campaign| {
                campaign.budget.is_some()
                    || campaign.usage_limit_total > 0
                    || campaign.usage_limit_per_customer > 0
            })
        })
    }

    /// Pricing's view of the snapshot, with the coupons added since it was loaded.
    pub fn view(&self) -> SnapshotView<'_> {
        SnapshotView {
            snapshot: self,
            added: Vec::new(),
        }
    }
}

/// Reads a snapshot; coupons added in place are copied in on lookup.
pub struct SnapshotView<'a> {
    snapshot: &'a Snapshot,
    added: Vec<CouponDef>,
}

impl SnapshotView<'_> {
    /// Makes the coupons added in place under `codes` visible to this view.
    pub fn with_codes(mut self, codes: &[String]) -> Self {
        for code in codes {
            if let Some(normalized) = crate::codes::normalize(code)
                && !self.snapshot.coupons.contains_key(&normalized)
                && let Some(coupon) = self.snapshot.added_coupon(&normalized)
            {
                self.added.push(coupon);
            }
        }
        self
    }
}

impl View for SnapshotView<'_> {
    fn coupon(&self, code: &str) -> Option<&CouponDef> {
        self.snapshot
            .coupons
            .get(code)
            .or_else(|| self.added.iter().find(|coupon| coupon.code == code))
    }

    fn campaign(&self, id: Uuid) -> Option<&CampaignDef> {
        self.snapshot.campaigns.get(&id)
    }

    fn rule(&self, id: Uuid) -> Option<&RuleDef> {
        self.snapshot.rules.get(&id)
    }

    fn automatic_campaigns(&self) -> Vec<&CampaignDef> {
        self.snapshot
            .automatic
            .iter()
            .filter_map(|id| self.snapshot.campaigns.get(id))
            .collect()
    }

    fn customer_uses(&self, _scope: Uuid, _customer: Uuid) -> Option<i64> {
        None
    }

    fn coupon_uses(&self, coupon: &CouponDef) -> i64 {
        coupon.uses_held + self.snapshot.counter(coupon.id).0
    }

    fn campaign_counters(&self, campaign: &CampaignDef) -> (i64, i64) {
        let (uses, budget) = self.snapshot.counter(campaign.id);
        (campaign.uses_held + uses, campaign.budget_used + budget)
    }
}

/// A change made on this replica, applied to snapshots in place.
#[derive(Clone, Debug)]
pub enum Change {
    Coupon(CouponDef),
    Counter { id: Uuid, uses: i64, budget: i64 },
}

/// Snapshots by workspace.
pub struct SnapshotCache {
    context: Context,
    entries: RwLock<HashMap<Uuid, Arc<Snapshot>>>,
    /// Local changes by workspace, with their journal positions.
    journal: Mutex<HashMap<Uuid, Vec<(u64, Change)>>>,
    position: AtomicU64,
}

impl SnapshotCache {
    pub fn new(context: Context) -> SnapshotCache {
        SnapshotCache {
            context,
            entries: RwLock::new(HashMap::new()),
            journal: Mutex::new(HashMap::new()),
            position: AtomicU64::new(0),
        }
    }

    /// The workspace's snapshot, built on first use.
    pub async fn get(&self, workspace_id: Uuid) -> Result<Arc<Snapshot>, ServiceError> {
        if let Ok(entries) = self.entries.read()
            && let Some(snapshot) = entries.get(&workspace_id)
        {
            return Ok(snapshot.clone());
        }
        self.rebuild(workspace_id).await
    }

    /// Loads a fresh snapshot, replays the local changes made since its load began, and swaps it
    /// in unless a newer one is already there.
    pub async fn rebuild(&self, workspace_id: Uuid) -> Result<Arc<Snapshot>, ServiceError> {
        let loaded_at = self.position.fetch_add(1, Ordering::SeqCst) + 1;
        let snapshot = Arc::new(load(&self.context, workspace_id, loaded_at).await?);
        let Ok(mut entries) = self.entries.write() else {
            return Ok(snapshot);
        };
        if let Some(current) = entries.get(&workspace_id)
            && (current.version > snapshot.version
                || (current.version == snapshot.version && current.loaded_at > loaded_at))
        {
            return Ok(current.clone());
        }
        if let Ok(mut journal) = self.journal.lock()
            && let Some(changes) = journal.get_mut(&workspace_id)
        {
            changes.retain(|(position, _)| *position > loaded_at);
            for (_, change) in changes.iter() {
                snapshot.apply(change);
            }
        }
        entries.insert(workspace_id, snapshot.clone());
        Ok(snapshot)
    }

    /// Drops a workspace's snapshot: the next read loads a fresh one.
    pub fn invalidate(&self, workspace_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&workspace_id);
        }
    }

    /// Applies changes this replica committed to the current snapshot at once. `version` is the
    /// `mkt_version` the change's transaction produced, when it bumped it: a snapshot exactly one
    /// version behind then covers it without a rebuild.
    pub fn record(&self, workspace_id: Uuid, changes: Vec<Change>, version: Option<i64>) {
        if changes.is_empty() {
            return;
        }
        let Ok(entries) = self.entries.read() else {
            return;
        };
        let current = entries.get(&workspace_id);
        if let Ok(mut journal) = self.journal.lock() {
            let entry = journal.entry(workspace_id).or_default();
            for change in &changes {
                let position = self.position.fetch_add(1, Ordering::SeqCst) + 1;
                entry.push((position, change.clone()));
            }
            if entry.len() > MAX_JOURNAL {
                let excess = entry.len() - MAX_JOURNAL;
                entry.drain(..excess);
            }
        }
        if let Some(snapshot) = current {
            for change in &changes {
                snapshot.apply(change);
            }
            if let Some(version) = version {
                snapshot.cover(version);
            }
        }
    }

    /// Marks the current snapshot as covering `version` when it was exactly one behind: the
    /// change that produced it is already applied here (through [`SnapshotCache::record`]).
    pub fn cover(&self, workspace_id: Uuid, version: i64) {
        if let Ok(entries) = self.entries.read()
            && let Some(snapshot) = entries.get(&workspace_id)
        {
            snapshot.cover(version);
        }
    }

    /// Checks every cached workspace every `period` and rebuilds what another replica changed.
    pub async fn run_refresher(self: Arc<Self>, period: Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let cached: Vec<(Uuid, i64, bool)> = match self.entries.read() {
                Ok(entries) => entries
                    .iter()
                    .map(|(id, snapshot)| {
                        let aged = snapshot.built.elapsed() > COUNTERS_MAX_AGE
                            && snapshot.counters_moved();
                        (*id, snapshot.covered.load(Ordering::SeqCst), aged)
                    })
                    .collect(),
                Err(_) => continue,
            };
            for (workspace_id, covered, aged) in cached {
                let current =
                    store::current_version(self.context.db.connection(), workspace_id).await;
                match current {
                    Ok(current) if current == covered && !aged => {}
                    Ok(_) => {
                        if let Err(error) = self.rebuild(workspace_id).await {
                            tracing::warn!(%error, %workspace_id, "pricing snapshot rebuild failed");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "pricing snapshot version check failed"),
                }
            }
        }
    }
}

async fn load(
    context: &Context,
    workspace_id: Uuid,
    loaded_at: u64,
) -> Result<Snapshot, ServiceError> {
    let connection = context.db.connection();
    // The version first: a change committed while loading makes the refresher load again.
    let version = store::current_version(connection, workspace_id).await?;
    let zone =
        kernel::settings::of_workspace::<kernel::settings::TimeZone, _>(connection, workspace_id)
            .await?
            .zone();
    let settings =
        kernel::settings::of_workspace::<MarketingSettings, _>(connection, workspace_id).await?;
    let mut campaigns = HashMap::new();
    let mut automatic = Vec::new();
    for row in store::live_campaigns(connection, workspace_id).await? {
        let campaign = CampaignDef::from_row(&row)?;
        if campaign.automatic {
            automatic.push(campaign.id);
        }
        campaigns.insert(campaign.id, campaign);
    }
    let mut rules = HashMap::new();
    for row in store::all_rules(connection, workspace_id).await? {
        rules.insert(row.id, RuleDef::from_row(&row)?);
    }
    let now = kernel::clock::to_micros(context.clock.now());
    let mut coupons = HashMap::new();
    let mut after = None;
    loop {
        let page = store::usable_coupons(connection, workspace_id, now, after, COUPON_PAGE).await?;
        after = page.last().map(|row| row.id);
        let done = (page.len() as u64) < COUPON_PAGE;
        for row in &page {
            coupons.insert(row.code.clone(), CouponDef::from_row(row));
        }
        if done {
            break;
        }
    }
    let displays = store::all_displays(connection, workspace_id).await?;
    Ok(Snapshot {
        version,
        covered: AtomicI64::new(version),
        loaded_at,
        zone,
        settings,
        campaigns,
        automatic,
        rules,
        coupons,
        added: RwLock::new(HashMap::new()),
        counters: Mutex::new(HashMap::new()),
        displays,
        built: Instant::now(),
    })
}
