//! Click counting at volume. A click that may count is queued to one writer task, which takes
//! everything queued (up to [`MAX_BATCH`]) into one transaction: one multi-row upsert of the
//! visitor rows decides which clicks count (a visitor's row moves only when its last counted click
//! is older than the window — the same rule as one click at a time, so replicas sharing a database
//! agree, and the row keeps the counted click's time, country and referrer for attribution), then
//! the links' counts, the campaigns' days and the affiliates' months are written once per batch. Each caller waits for its batch to commit, so an
//! answer of "counted" is durable.
//!
//! Two caches keep the database off the path of what it would only repeat: the links by short code
//! (what a click needs of a link never changes), and the visitors this replica counted within the
//! window (a repeat is answered as a duplicate at once; the database still decides every click it
//! is asked about). Both are bounded; the workspace settings they use are re-read every second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kernel::{Context, ServiceError, WriteTxn};
use marketing::Marketing;
use marketing::api::LinkActivity;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement, Value};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::commissions::add_to_month;
use crate::entity::link;
use crate::settings::GrowthSettings;

/// Clicks one transaction takes at most.
pub const MAX_BATCH: usize = 2000;
/// Rows per multi-row statement (6 parameters each: well inside both databases' limits).
const ROWS_PER_STATEMENT: usize = 500;
/// Clicks queued before callers wait for room (backpressure, not drops).
const QUEUE: usize = 16_384;
/// Times the writer lets the runtime's other tasks run before it closes a batch, so clicks whose
/// requests are already being served join it instead of waiting for the next commit.
const GATHER_YIELDS: usize = 8;
/// How long a cached link or workspace setting is used before it is read again.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Bound on each cache; past it the cache is cleared rather than grown.
const MAX_CACHED: usize = 200_000;

/// A click that passed the bot filter and the local duplicate check.
#[derive(Clone, Debug)]
pub struct PendingClick {
    pub workspace_id: Uuid,
    pub link: Arc<link::Model>,
    pub visitor: String,
    pub country: String,
    pub referrer: String,
    pub at: i64,
}

struct Job {
    click: PendingClick,
    reply: oneshot::Sender<Result<bool, ServiceError>>,
}

/// A cached read: when it was made, and what it found (`None`: no such link).
type CachedLink = (Instant, Option<Arc<link::Model>>);

/// The click writer and its caches.
pub struct ClickCounter {
    queue: mpsc::Sender<Job>,
    links: Mutex<HashMap<String, CachedLink>>,
    settings: Mutex<HashMap<Uuid, (Instant, GrowthSettings)>>,
    /// (link, visitor) → when this replica last saw it counted.
    recent: Mutex<HashMap<(Uuid, String), i64>>,
}

impl ClickCounter {
    /// Starts the writer task; must be called inside a tokio runtime.
    pub fn start(context: Context, marketing: Arc<Marketing>) -> Arc<ClickCounter> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let counter = Arc::new(ClickCounter {
            queue,
            links: Mutex::new(HashMap::new()),
            settings: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
        });
        tokio::spawn(write_clicks(
            context,
            marketing,
            Arc::downgrade(&counter),
            jobs,
        ));
        counter
    }

    /// The link of a short code (of any workspace), from the cache when fresh.
    pub async fn link<C: ConnectionTrait>(
        &self,
        connection: &C,
        code: &str,
    ) -> Result<Option<Arc<link::Model>>, ServiceError> {
        if let Ok(links) = self.links.lock()
            && let Some((read, row)) = links.get(code)
            && read.elapsed() < CACHE_TTL
        {
            return Ok(row.clone());
        }
        let row = link::Entity::find()
            .filter(link::Column::ShortCode.eq(code))
            .one(connection)
            .await?
            .map(Arc::new);
        if let Ok(mut links) = self.links.lock() {
            if links.len() >= MAX_CACHED {
                links.clear();
            }
            links.insert(code.to_owned(), (Instant::now(), row.clone()));
        }
        Ok(row)
    }

    /// The workspace's growth settings, re-read at most every second.
    pub async fn settings<C: ConnectionTrait>(
        &self,
        connection: &C,
        workspace_id: Uuid,
    ) -> Result<GrowthSettings, ServiceError> {
        if let Ok(cache) = self.settings.lock()
            && let Some((read, settings)) = cache.get(&workspace_id)
            && read.elapsed() < CACHE_TTL
        {
            return Ok(settings.clone());
        }
        let settings =
            kernel::settings::of_workspace::<GrowthSettings, _>(connection, workspace_id).await?;
        if let Ok(mut cache) = self.settings.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(workspace_id, (Instant::now(), settings.clone()));
        }
        Ok(settings)
    }

    /// Whether this replica counted the visitor on the link within `window` before `now`.
    pub fn seen_recently(&self, link_id: Uuid, visitor: &str, now: i64, window: i64) -> bool {
        self.recent.lock().is_ok_and(|recent| {
            recent
                .get(&(link_id, visitor.to_owned()))
                .is_some_and(|last| now - *last < window)
        })
    }

    fn remember(&self, counted: &[(Uuid, String, i64)]) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() + counted.len() >= MAX_CACHED {
                recent.clear();
            }
            for (link_id, visitor, at) in counted {
                recent.insert((*link_id, visitor.clone()), *at);
            }
        }
    }

    /// Queues a click and waits until its batch commits; `true` when it counted.
    pub async fn submit(&self, click: PendingClick) -> Result<bool, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { click, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ServiceError {
    ServiceError::unavailable(
        "CLICK_WRITER_STOPPED",
        "click counting is restarting; retry",
        "the click writer is gone",
    )
}

/// Takes everything queued into one transaction at a time until the counter is dropped.
async fn write_clicks(
    context: Context,
    marketing: Arc<Marketing>,
    counter: std::sync::Weak<ClickCounter>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let clicks: Vec<PendingClick> = batch.iter().map(|job| job.click.clone()).collect();
        let result = context
            .write(|txn| {
                let (marketing, clicks) = (&marketing, &clicks);
                async move {
                    let counted = write_batch(&txn, marketing, clicks).await?;
                    Ok((txn, counted))
                }
            })
            .await;
        metrics::histogram!("promo_growth_click_batch_size").record(batch.len() as f64);
        match result {
            Ok(counted) => {
                if let Some(counter) = counter.upgrade() {
                    let remembered: Vec<(Uuid, String, i64)> = clicks
                        .iter()
                        .zip(&counted)
                        .filter(|(_, counted)| **counted)
                        .map(|(click, _)| (click.link.id, click.visitor.clone(), click.at))
                        .collect();
                    counter.remember(&remembered);
                }
                for (job, counted) in batch.drain(..).zip(counted) {
                    let _ = job.reply.send(Ok(counted));
                }
            }
            Err(error) => {
                metrics::counter!("promo_background_failures_total", "job" => "click_writer")
                    .increment(1);
                tracing::warn!(%error, clicks = batch.len(), "a click batch failed");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Writes one batch; returns, per click in order, whether it counted.
async fn write_batch(
    txn: &WriteTxn,
    marketing: &Marketing,
    clicks: &[PendingClick],
) -> Result<Vec<bool>, ServiceError> {
    let mut counted = vec![false; clicks.len()];
    // A visitor clicking twice inside one batch counts at most once: the first is asked about.
    let mut asked = HashSet::new();
    let mut by_workspace: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (index, click) in clicks.iter().enumerate() {
        if asked.insert((click.workspace_id, click.link.id, click.visitor.as_str())) {
            by_workspace
                .entry(click.workspace_id)
                .or_default()
                .push(index);
        }
    }
    for (workspace_id, indices) in by_workspace {
        let window = kernel::settings::of_workspace::<GrowthSettings, _>(&**txn, workspace_id)
            .await?
            .click_dedup_window_seconds
            .saturating_mul(1_000_000);
        let mut counted_here = HashSet::new();
        for chunk in indices.chunks(ROWS_PER_STATEMENT) {
            for (link_id, visitor) in upsert_visitors(txn, clicks, chunk, window).await? {
                counted_here.insert((link_id, visitor));
            }
        }
        let mut per_link: BTreeMap<Uuid, i64> = BTreeMap::new();
        let mut per_campaign: BTreeMap<Uuid, i64> = BTreeMap::new();
        let mut per_affiliate: BTreeMap<Uuid, i64> = BTreeMap::new();
        for index in indices {
            let click = &clicks[index];
            if !counted_here.contains(&(click.link.id, click.visitor.clone())) {
                continue;
            }
            counted[index] = true;
            *per_link.entry(click.link.id).or_default() += 1;
            *per_campaign.entry(click.link.campaign_id).or_default() += 1;
            if let Some(affiliate_id) = click.link.affiliate_id {
                *per_affiliate.entry(affiliate_id).or_default() += 1;
            }
        }
        let now = clicks
            .iter()
            .map(|click| click.at)
            .max()
            .unwrap_or_default();
        for (link_id, count) in per_link {
            link::Entity::update_many()
                .col_expr(
                    link::Column::ClickCount,
                    Expr::col(link::Column::ClickCount).add(count),
                )
                .filter(link::Column::WorkspaceId.eq(workspace_id))
                .filter(link::Column::Id.eq(link_id))
                .exec(&**txn)
                .await?;
        }
        for (campaign_id, clicks) in per_campaign {
            let activity = LinkActivity {
                clicks,
                ..LinkActivity::default()
            };
            marketing
                .add_link_activity(&**txn, workspace_id, campaign_id, activity, now)
                .await?;
        }
        if !per_affiliate.is_empty() {
            let month = crate::affiliates::local_month(&**txn, workspace_id, now).await?;
            for (affiliate_id, clicks) in per_affiliate {
                add_to_month(
                    &**txn,
                    workspace_id,
                    affiliate_id,
                    &month,
                    [clicks, 0, 0, 0],
                )
                .await?;
            }
        }
    }
    Ok(counted)
}

/// One multi-row upsert of the visitor rows of `indices`: a new visitor is inserted, a known
/// one moves only when its last counted click is at least `window` old. Returns the (link,
/// visitor) pairs that moved: the clicks that count.
async fn upsert_visitors(
    txn: &WriteTxn,
    clicks: &[PendingClick],
    indices: &[usize],
    window: i64,
) -> Result<Vec<(Uuid, String)>, ServiceError> {
    let backend = txn.get_database_backend();
    let mut sql = String::from(
        "INSERT INTO growth_visitor \
         (workspace_id, link_id, visitor, last_counted_at, country, referrer) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(indices.len() * 6 + 1);
    for (position, index) in indices.iter().enumerate() {
        let click = &clicks[*index];
        if position > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?)");
        values.push(click.workspace_id.into());
        values.push(click.link.id.into());
        values.push(click.visitor.clone().into());
        values.push(click.at.into());
        values.push(click.country.clone().into());
        values.push(click.referrer.clone().into());
    }
    sql.push_str(
        " ON CONFLICT (workspace_id, link_id, visitor) DO UPDATE \
         SET last_counted_at = excluded.last_counted_at, country = excluded.country, \
         referrer = excluded.referrer \
         WHERE growth_visitor.last_counted_at <= excluded.last_counted_at - ? \
         RETURNING link_id, visitor",
    );
    values.push(window.into());
    let statement = Statement::from_sql_and_values(
        backend,
        kernel::db::placeholders_for(backend, &sql),
        values,
    );
    let mut moved = Vec::new();
    for row in txn.query_all_raw(statement).await? {
        moved.push((
            row.try_get::<Uuid>("", "link_id")?,
            row.try_get::<String>("", "visitor")?,
        ));
    }
    Ok(moved)
}
