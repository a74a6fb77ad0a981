//! The payouts module's shared state, its background work, and how the gateway starts it.

use std::sync::Arc;
use std::time::Duration;

use kernel::background::{Item, ItemBackoff};
use kernel::{Context, ServiceError};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::provider::PayoutProvider;

/// How often held earnings are released and approved payouts sent.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Items one sweep takes on at most, per kind.
pub(crate) const SWEEP_LIMIT: u64 = 500;

/// Shared state of the payouts module.
pub struct Payouts {
    pub(crate) context: Context,
    /// Where payouts are sent; the built-in provider unless one is configured.
    pub(crate) provider: Arc<dyn PayoutProvider>,
}

impl Payouts {
    pub fn start(context: Context, provider: Arc<dyn PayoutProvider>) -> Arc<Payouts> {
        Arc::new(Payouts { context, provider })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub(crate) fn now(&self) -> i64 {
        kernel::clock::to_micros(self.context.clock.now())
    }

    /// Runs the sweeper every second until the task is aborted.
    pub async fn run_background(self: Arc<Self>) {
        let mut interval = tokio::time::interval(SWEEP_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = ItemBackoff::new("payouts_sweeper");
        loop {
            interval.tick().await;
            self.sweep_with(&mut backoff).await;
        }
    }

    /// One sweep (tests call it directly): makes held earnings whose holding period ended
    /// available and sends approved payouts to the provider. Returns how many items it changed.
    pub async fn sweep(self: &Arc<Self>) -> usize {
        self.sweep_with(&mut ItemBackoff::new("payouts_sweeper"))
            .await
    }

    async fn sweep_with(self: &Arc<Self>, backoff: &mut ItemBackoff<Item>) -> usize {
        let now = self.now();
        let mut changed = 0;
        match crate::earnings::due(self.context.db.connection(), now, SWEEP_LIMIT).await {
            Ok(rows) => {
                for (workspace_id, id) in rows {
                    let item = Item(workspace_id, id);
                    if !backoff.ready(&item) {
                        continue;
                    }
                    match crate::earnings::release(self, workspace_id, id, now).await {
                        Ok(done) => {
                            backoff.succeeded(&item);
                            changed += usize::from(done);
                        }
                        Err(error) => backoff.failed(&item, &error),
                    }
                }
            }
            Err(error) => log_failure("earnings", &error),
        }
        match crate::dispatch::due(self.context.db.connection(), now, SWEEP_LIMIT).await {
            Ok(rows) => {
                for (workspace_id, id) in rows {
                    let item = Item(workspace_id, id);
                    if !backoff.ready(&item) {
                        continue;
                    }
                    match crate::dispatch::send(self, workspace_id, id).await {
                        Ok(done) => {
                            backoff.succeeded(&item);
                            changed += usize::from(done);
                        }
                        Err(error) => backoff.failed(&item, &error),
                    }
                }
            }
            Err(error) => log_failure("payouts", &error),
        }
        changed
    }
}

/// The month (YYYY-MM, workspace time zone) `now` falls in.
pub(crate) async fn local_month<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    now: i64,
) -> Result<String, ServiceError> {
    Ok(kernel::settings::local_date(connection, workspace_id, now)
        .await?
        .format("%Y-%m")
        .to_string())
}

fn log_failure(what: &'static str, error: &ServiceError) {
    metrics::counter!("promo_background_failures_total", "job" => "payouts_sweeper").increment(1);
    tracing::warn!(%error, what, "payouts sweep failed; retrying next round");
}
