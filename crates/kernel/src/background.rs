//! Background jobs (sweepers, writers) isolate failures per item: an item that fails is logged,
//! counted in `promo_background_failures_total{job}` and retried with exponential backoff, while
//! every other item, in its own tenant or any other, goes on.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::error::ServiceError;

/// First wait after a failure; it doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts at one item.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A `(workspace_id, id)` key as background jobs log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item(pub uuid::Uuid, pub uuid::Uuid);

impl Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// When each failing item of one job may be tried again.
#[derive(Debug)]
pub struct ItemBackoff<K> {
    job: &'static str,
    /// Failing items: consecutive failures and the earliest next attempt.
    failing: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq + Clone + Display> ItemBackoff<K> {
    pub fn new(job: &'static str) -> ItemBackoff<K> {
        ItemBackoff {
            job,
            failing: HashMap::new(),
        }
    }

    /// Whether `item` may be attempted now (it is not failing, or its backoff has passed).
    pub fn ready(&self, item: &K) -> bool {
        self.failing
            .get(item)
            .is_none_or(|(_, next)| Instant::now() >= *next)
    }

    /// Records a failed attempt: logs it, counts it, and schedules the next attempt.
    pub fn failed(&mut self, item: &K, error: &ServiceError) {
        let attempts = self
            .failing
            .get(item)
            .map_or(1, |(n, _)| n.saturating_add(1));
        let wait = FIRST_BACKOFF
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
            .min(MAX_BACKOFF);
        self.failing
            .insert(item.clone(), (attempts, Instant::now() + wait));
        metrics::counter!("promo_background_failures_total", "job" => self.job).increment(1);
        tracing::warn!(job = self.job, item = %item, attempts, retry_in_ms = wait.as_millis() as u64, %error, "background item failed; other items continue");
    }

    /// Records a successful attempt: the item is no longer failing.
    pub fn succeeded(&mut self, item: &K) {
        if self.failing.remove(item).is_some() {
            tracing::info!(job = self.job, item = %item, "background item recovered");
        }
    }

    /// How many items are failing now.
    pub fn failing(&self) -> usize {
        self.failing.len()
    }

    /// Forgets items no longer due (completed some other way, by another replica say), so the
    /// record of failing items stays as small as the work still to do.
    pub fn retain(&mut self, still_due: impl Fn(&K) -> bool) {
        self.failing.retain(|item, _| still_due(item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_item_waits_and_a_success_clears_it() {
        let mut backoff = ItemBackoff::new("test");
        let error = ServiceError::internal("boom");
        assert!(backoff.ready(&1));
        backoff.failed(&1, &error);
        assert!(!backoff.ready(&1), "backing off");
        assert!(backoff.ready(&2), "other items go on");
        assert_eq!(backoff.failing(), 1);
        backoff.succeeded(&1);
        assert!(backoff.ready(&1));
        assert_eq!(backoff.failing(), 0);
        backoff.failed(&3, &error);
        backoff.retain(|item| *item != 3);
        assert!(backoff.ready(&3), "an item no longer due is forgotten");
    }
}
