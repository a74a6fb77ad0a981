//! Immutable, per-workspace snapshots of what selection needs — materials by type and the eligible
//! promotions with their weights — swapped atomically when something changes, so the generator's
//! hot path never touches the database.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::settings::Fraction;
use kernel::{Context, ServiceError};
use rand::Rng;
use uuid::Uuid;

use crate::domain::{self, Status, WeightedSampler};
use crate::store;
use crate::taxonomy::Taxonomy;

/// A promoted material that selection may show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotedChoice {
    pub promotion_id: Uuid,
    pub material_id: Uuid,
    pub material_name: Arc<str>,
}

/// What one material type offers.
#[derive(Clone, Debug, Default)]
pub struct TypeChoices {
    /// Every material of the type, for the uniform (non-promoted) pick.
    pub materials: Vec<(Uuid, Arc<str>)>,
    /// Eligible promotions that target every project type.
    untargeted: Vec<(PromotedChoice, u64)>,
    untargeted_sampler: Option<WeightedSampler<PromotedChoice>>,
    /// Eligible promotions restricted to some project types, by project type.
    targeted: HashMap<String, Vec<(PromotedChoice, u64)>>,
}

/// One pick for one material type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub material_id: Uuid,
    pub material_name: Arc<str>,
    pub promotion_id: Option<Uuid>,
}

/// An eligible promotion as the snapshot builder receives it.
#[derive(Clone, Debug)]
pub struct EligiblePromotion {
    pub promotion_id: Uuid,
    pub material_id: Uuid,
    pub material_type: String,
    pub weight: u64,
    pub project_types: Vec<String>,
}

#[derive(Debug)]
pub struct Snapshot {
    /// The `promo_version` this snapshot reflects.
    pub version: i64,
    /// Chance that a type with an eligible promotion gets a promoted pick.
    pub probability: Fraction,
    pub types: HashMap<String, TypeChoices>,
    /// Types that have materials: what selection can answer for.
    pub known_types: BTreeSet<String>,
    /// The workspace's types and synonyms, for reading prompts and requested types.
    pub taxonomy: Arc<Taxonomy>,
    /// The next start or end time at which eligibility changes, if any.
    pub next_boundary: Option<i64>,
    built: Instant,
}

impl Snapshot {
    /// Builds a snapshot from materials `(id, name, type)` and eligible promotions.
    pub fn build(
        version: i64,
        probability: Fraction,
        taxonomy: Taxonomy,
        materials: Vec<(Uuid, String, String)>,
        promotions: Vec<EligiblePromotion>,
        next_boundary: Option<i64>,
    ) -> Snapshot {
        let mut types: HashMap<String, TypeChoices> = HashMap::new();
        let mut names: HashMap<Uuid, Arc<str>> = HashMap::with_capacity(materials.len());
        for (id, name, material_type) in materials {
            let name: Arc<str> = Arc::from(name);
            names.insert(id, name.clone());
            types
                .entry(material_type)
                .or_default()
                .materials
                .push((id, name));
        }
        for promotion in promotions {
            let Some(name) = names.get(&promotion.material_id) else {
                continue;
            };
            let Some(choices) = types.get_mut(&promotion.material_type) else {
                continue;
            };
            let choice = PromotedChoice {
                promotion_id: promotion.promotion_id,
                material_id: promotion.material_id,
                material_name: name.clone(),
            };
            if promotion.project_types.is_empty() {
                choices.untargeted.push((choice, promotion.weight));
            } else {
                for project_type in promotion.project_types {
                    choices
                        .targeted
                        .entry(project_type)
                        .or_default()
                        .push((choice.clone(), promotion.weight));
                }
            }
        }
        for choices in types.values_mut() {
            let sampler = WeightedSampler::new(choices.untargeted.iter().cloned());
            choices.untargeted_sampler = (!sampler.is_empty()).then_some(sampler);
        }
        let known_types = types.keys().cloned().collect();
        Snapshot {
            version,
            probability,
            types,
            known_types,
            taxonomy: Arc::new(taxonomy),
            next_boundary,
            built: Instant::now(),
        }
    }

    /// One selection for `material_type`: with probability `probability` a promoted material among
    /// the eligible promotions, weighted by credits; otherwise a uniformly random material of the
    /// type. `None` when the type has no materials.
    pub fn select<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        material_type: &str,
        project_type: &str,
    ) -> Option<Pick> {
        self.select_excluding(rng, material_type, project_type, |_| false)
    }

    /// [`Snapshot::select`], except that a promoted pick of an `excluded` promotion (completed since
    /// this snapshot was built) becomes a regular pick.
    pub fn select_excluding<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        material_type: &str,
        project_type: &str,
        excluded: impl Fn(Uuid) -> bool,
    ) -> Option<Pick> {
        let choices = self.types.get(material_type)?;
        let targeted = if project_type.is_empty() {
            None
        } else {
            choices.targeted.get(project_type)
        };
        let promoted = match targeted {
            None => choices.untargeted_sampler.as_ref().and_then(|sampler| {
                domain::draw(
                    rng,
                    self.probability.numerator,
                    self.probability.denominator,
                )
                .then(|| sampler.pick(rng))
                .flatten()
                .cloned()
            }),
            Some(targeted) => {
                let sampler =
                    WeightedSampler::new(choices.untargeted.iter().chain(targeted.iter()).cloned());
                (!sampler.is_empty()
                    && domain::draw(
                        rng,
                        self.probability.numerator,
                        self.probability.denominator,
                    ))
                .then(|| sampler.pick(rng).cloned())
                .flatten()
            }
        };
        if let Some(choice) = promoted.filter(|choice| !excluded(choice.promotion_id)) {
            return Some(Pick {
                material_id: choice.material_id,
                material_name: choice.material_name,
                promotion_id: Some(choice.promotion_id),
            });
        }
        if choices.materials.is_empty() {
            return None;
        }
        let (material_id, material_name) =
            &choices.materials[rng.random_range(0..choices.materials.len())];
        Some(Pick {
            material_id: *material_id,
            material_name: material_name.clone(),
            promotion_id: None,
        })
    }
}

/// Snapshots by workspace, rebuilt when the workspace's version moves, at schedule boundaries, and
/// every few seconds (settings changes).
pub struct SnapshotCache {
    context: Context,
    entries: RwLock<HashMap<Uuid, Arc<Snapshot>>>,
    /// Promotions completed after the current snapshots were built: never picked again, from the
    /// moment they complete, whatever snapshot is being served.
    completed: RwLock<HashSet<Uuid>>,
    /// Workspaces with a background rebuild running, and whether another one was asked for meanwhile.
    rebuilding: Mutex<HashMap<Uuid, bool>>,
}

/// A snapshot older than this is rebuilt even if nothing announced a change: a safety net only,
/// since every change bumps the workspace's version (a rebuild of a million materials is costly).
const MAX_AGE: Duration = Duration::from_secs(300);

impl SnapshotCache {
    pub fn new(context: Context) -> SnapshotCache {
        SnapshotCache {
            context,
            entries: RwLock::new(HashMap::new()),
            completed: RwLock::new(HashSet::new()),
            rebuilding: Mutex::new(HashMap::new()),
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

    /// Builds a fresh snapshot and swaps it in, unless a rebuild that started later (it saw a
    /// newer version) finished first: concurrent rebuilds never put an older state back.
    pub async fn rebuild(&self, workspace_id: Uuid) -> Result<Arc<Snapshot>, ServiceError> {
        let snapshot = Arc::new(load(&self.context, workspace_id).await?);
        if let Ok(mut entries) = self.entries.write() {
            if let Some(current) = entries.get(&workspace_id)
                && current.version > snapshot.version
            {
                return Ok(current.clone());
            }
            entries.insert(workspace_id, snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Rebuilds in the background (one rebuild per workspace at a time; a change during a rebuild
    /// causes one more). Selection keeps serving the current snapshot meanwhile.
    pub fn invalidate(self: &Arc<Self>, workspace_id: Uuid) {
        {
            let Ok(mut rebuilding) = self.rebuilding.lock() else {
                return;
            };
            if let Some(again) = rebuilding.get_mut(&workspace_id) {
                *again = true;
                return;
            }
            rebuilding.insert(workspace_id, false);
        }
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = cache.rebuild(workspace_id).await {
                    tracing::warn!(%error, workspace_id = %workspace_id, "snapshot rebuild failed");
                }
                let Ok(mut rebuilding) = cache.rebuilding.lock() else {
                    return;
                };
                match rebuilding.get_mut(&workspace_id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        rebuilding.remove(&workspace_id);
                        return;
                    }
                }
            }
        });
    }

    /// Stops selecting a completed promotion at once.
    pub fn exclude(&self, promotion_id: Uuid) {
        if let Ok(mut completed) = self.completed.write() {
            completed.insert(promotion_id);
        }
    }

    pub fn is_excluded(&self, promotion_id: Uuid) -> bool {
        self.completed
            .read()
            .map(|completed| completed.contains(&promotion_id))
            .unwrap_or(false)
    }

    /// Checks every cached workspace every `period` and rebuilds what changed.
    pub async fn run_refresher(self: Arc<Self>, period: Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let cached: Vec<(Uuid, i64, Option<i64>, Instant)> = match self.entries.read() {
                Ok(entries) => entries
                    .iter()
                    .map(|(id, s)| (*id, s.version, s.next_boundary, s.built))
                    .collect(),
                Err(_) => continue,
            };
            let now = kernel::clock::to_micros(self.context.clock.now());
            for (workspace_id, version, boundary, built) in cached {
                let stale = match store::current_version(self.context.db.connection(), workspace_id)
                    .await
                {
                    Ok(current) => current != version,
                    Err(error) => {
                        tracing::warn!(%error, "snapshot version check failed");
                        false
                    }
                };
                if (stale || boundary.is_some_and(|at| now >= at) || built.elapsed() > MAX_AGE)
                    && let Err(error) = self.rebuild(workspace_id).await
                {
                    tracing::warn!(%error, workspace_id = %workspace_id, "snapshot rebuild failed");
                }
            }
        }
    }
}

/// Reads materials, promotions and settings and builds the snapshot as of the clock's now.
async fn load(context: &Context, workspace_id: Uuid) -> Result<Snapshot, ServiceError> {
    let connection = context.db.connection();
    // The version first: a change committed while loading makes the next check rebuild again.
    let version = store::current_version(connection, workspace_id).await?;
    let settings = store::promotion_settings(connection, workspace_id).await?;
    let taxonomy = store::load_taxonomy(connection, workspace_id).await?;
    let mut materials = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let page = store::material_page(connection, workspace_id, after, 10_000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.0);
        let done = page.len() < 10_000;
        materials.extend(page);
        if done {
            break;
        }
    }
    let now = kernel::clock::to_micros(context.clock.now());
    let rows = store::open_promotions(connection, workspace_id).await?;
    let mut next_boundary: Option<i64> = None;
    let mut eligible = Vec::new();
    for row in rows {
        let stored = Status::from_i32(row.status).unwrap_or(Status::Inactive);
        for boundary in [row.start_time, row.end_time]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
        {
            next_boundary = Some(next_boundary.map_or(boundary, |current| current.min(boundary)));
        }
        if domain::effective_status(stored, row.start_time, row.end_time, now) != Status::Active
            || domain::is_exhausted(row.credits_remaining(), &settings)
        {
            continue;
        }
        eligible.push(EligiblePromotion {
            promotion_id: row.id,
            material_id: row.material_id,
            material_type: row.material_type.clone(),
            weight: row.credits_allocated.max(0) as u64,
            project_types: row.project_type_list()?,
        });
    }
    Ok(Snapshot::build(
        version,
        settings.selection_probability,
        taxonomy,
        materials,
        eligible,
        next_boundary,
    ))
}
