//! The growth module's shared state, its background work, and how the gateway starts it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use kernel::background::{Item, ItemBackoff};
use kernel::{Context, ServiceError};
use marketing::Marketing;
use sha2::Sha256;
use uuid::Uuid;

/// How often the sweeper credits commissions whose holding period ended and expires referrals.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Items one sweep takes on at most, per kind.
pub(crate) const SWEEP_LIMIT: u64 = 500;

/// Shared state of the growth module.
pub struct Growth {
    pub(crate) context: Context,
    pub(crate) marketing: Arc<Marketing>,
    /// Key of the visitor hash: HMAC-SHA-256 of (workspace, address, user agent) under a key
    /// derived from the server secret, so a stored visitor id cannot be reversed to an address
    /// by hashing the IPv4 space.
    visitor_key: Vec<u8>,
    bots: isbot::Bots,
    /// What short URLs start with (`http://host:port`; empty: the path alone).
    short_url_base: String,
    /// The click writer and its caches.
    pub(crate) clicks: Arc<crate::clicks::ClickCounter>,
}

impl Growth {
    /// `secret` is the server's signing secret (the visitor key is derived from it);
    /// `short_url_base` the public address of the HTTP listener, if any.
    pub fn start(
        context: Context,
        marketing: Arc<Marketing>,
        secret: &[u8],
        short_url_base: &str,
    ) -> Arc<Growth> {
        let visitor_key = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(b"promo.growth visitor key v1");
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => secret.to_vec(),
        };
        Arc::new(Growth {
            clicks: crate::clicks::ClickCounter::start(context.clone(), marketing.clone()),
            context,
            marketing,
            visitor_key,
            bots: isbot::Bots::default(),
            short_url_base: short_url_base.trim_end_matches('/').to_owned(),
        })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub(crate) fn now(&self) -> i64 {
        kernel::clock::to_micros(self.context.clock.now())
    }

    /// The visitor id of an address and user agent in a workspace: 32 hex digits of a keyed hash.
    /// The address itself is never stored.
    pub(crate) fn visitor(&self, workspace_id: Uuid, ip: &str, user_agent: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.visitor_key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(workspace_id.as_bytes());
        for part in [ip.trim(), user_agent.trim()] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether a user agent belongs to a known crawler, monitor or script (the isbot crate's
    /// maintained list); no user agent at all counts as a bot.
    pub(crate) fn is_bot(&self, user_agent: &str) -> bool {
        let user_agent = user_agent.trim();
        user_agent.is_empty() || self.bots.is_bot(user_agent)
    }

    pub(crate) fn short_url(&self, code: &str) -> String {
        format!("{}/l/{code}", self.short_url_base)
    }

    /// Runs the sweeper every second until the task is aborted.
    pub async fn run_background(self: Arc<Self>) {
        let mut interval = tokio::time::interval(SWEEP_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = ItemBackoff::new("growth_sweeper");
        loop {
            interval.tick().await;
            self.sweep_with(&mut backoff).await;
        }
    }

    /// One sweep (tests call it directly): credits commissions whose holding period ended and
    /// expires referrals that waited past their time. Returns how many items it changed.
    pub async fn sweep(self: &Arc<Self>) -> usize {
        self.sweep_with(&mut ItemBackoff::new("growth_sweeper"))
            .await
    }

    async fn sweep_with(self: &Arc<Self>, backoff: &mut ItemBackoff<Item>) -> usize {
        let now = self.now();
        let mut changed = 0;
        let connection = self.context.db.connection();
        match crate::commissions::due(connection, now, SWEEP_LIMIT).await {
            Ok(rows) => {
                for row in rows {
                    let item = Item(row.workspace_id, row.id);
                    if !backoff.ready(&item) {
                        continue;
                    }
                    match crate::commissions::mature(self, &row, now).await {
                        Ok(done) => {
                            backoff.succeeded(&item);
                            changed += usize::from(done);
                        }
                        Err(error) => backoff.failed(&item, &error),
                    }
                }
            }
            Err(error) => log_failure("commissions", &error),
        }
        match crate::referrals::expire_due(self, now).await {
            Ok(expired) => changed += expired,
            Err(error) => log_failure("referrals", &error),
        }
        changed
    }
}

fn log_failure(what: &'static str, error: &ServiceError) {
    metrics::counter!("promo_background_failures_total", "job" => "growth_sweeper").increment(1);
    tracing::warn!(%error, what, "growth sweep failed; retrying next round");
}
