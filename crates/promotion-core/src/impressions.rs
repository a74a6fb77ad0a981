//! The impression writer: promoted picks are recorded (and, when impressions cost credits,
//! charged) in batches off the selection path, exactly once per decision, and never dropped.
//!
//! - Backpressure: selection waits for room in a bounded queue instead of dropping an impression.
//! - Exactly once: an impression is keyed by its decision, and its charge is a ledger transfer
//!   whose id is derived from the decision; a retried selection or a batch written twice records
//!   and charges nothing new.
//! - Isolation: when a batch fails, each promotion's impressions are written alone; a promotion
//!   that keeps failing is retried with backoff while the others go on.
//! - Shutdown: the gateway drains calls, then [`ImpressionQueue::flush`]es before it exits.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::settings::PromotionSettings;
use kernel::ServiceError;
use kernel::background::ItemBackoff;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::state::{Item, PromotionCore};

/// Impressions waiting in memory before selection has to wait.
const QUEUE_CAPACITY: usize = 65_536;
/// Most impressions written in one transaction.
const MAX_BATCH: usize = 5_000;

/// A promoted pick, on its way to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImpressionEvent {
    pub workspace_id: Uuid,
    pub promotion_id: Uuid,
    pub decision_id: Uuid,
    /// When the pick was served (microseconds).
    pub at: i64,
}

/// The sending side, held by the module's state.
pub(crate) struct ImpressionQueue {
    sender: mpsc::Sender<ImpressionEvent>,
    /// Impressions ever queued.
    queued: AtomicU64,
    /// Impressions ever written (or found already written); flush waits on it.
    written: watch::Receiver<u64>,
}

impl ImpressionQueue {
    pub(crate) fn start(core: Weak<PromotionCore>) -> ImpressionQueue {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (written_sender, written) = watch::channel(0);
        tokio::spawn(run(core, receiver, written_sender));
        ImpressionQueue {
            sender,
            queued: AtomicU64::new(0),
            written,
        }
    }

    pub(crate) async fn send(&self, events: Vec<ImpressionEvent>) -> Result<(), ServiceError> {
        for event in events {
            self.queued.fetch_add(1, Ordering::SeqCst);
            if self.sender.send(event).await.is_err() {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(ServiceError::unavailable(
                    "SHUTTING_DOWN",
                    "the server is shutting down",
                    "impression writer gone",
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn flush(&self, timeout: Duration) -> Result<(), u64> {
        let target = self.queued.load(Ordering::SeqCst);
        let mut written = self.written.clone();
        let reached =
            tokio::time::timeout(timeout, written.wait_for(|count| *count >= target)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(target.saturating_sub(*self.written.borrow())),
        }
    }
}

/// Impressions of one promotion, waiting to be written.
type Groups = BTreeMap<Item, Vec<ImpressionEvent>>;

async fn run(
    core: Weak<PromotionCore>,
    mut receiver: mpsc::Receiver<ImpressionEvent>,
    written: watch::Sender<u64>,
) {
    let mut waiting: Groups = BTreeMap::new();
    let mut backoff: ItemBackoff<Item> = ItemBackoff::new("impression_writer");
    let mut open = true;
    loop {
        if open {
            let next = if waiting.is_empty() {
                receiver.recv().await
            } else {
                // Failed groups wait for their backoff; look again at least every second.
                tokio::time::timeout(Duration::from_secs(1), receiver.recv())
                    .await
                    .unwrap_or(None)
            };
            match next {
                Some(first) => {
                    add(&mut waiting, first);
                    let mut taken = 1;
                    while taken < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(event) => {
                                add(&mut waiting, event);
                                taken += 1;
                            }
                            Err(_) => break,
                        }
                    }
                }
                None if receiver.is_closed() && receiver.is_empty() => open = false,
                None => {}
            }
        }
        if !open && waiting.is_empty() {
            return;
        }
        let Some(core) = core.upgrade() else {
            return;
        };
        let ready: Groups = waiting
            .iter()
            .filter(|(item, _)| backoff.ready(item))
            .map(|(item, events)| (*item, events.clone()))
            .collect();
        if ready.is_empty() {
            if !open {
                // Only failing groups are left and nothing more can come: keep retrying them.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        }
        let done = write(&core, &ready, &mut backoff).await;
        let mut count = 0;
        for item in done {
            if let Some(events) = waiting.remove(&item) {
                count += events.len() as u64;
            }
        }
        written.send_modify(|total| *total += count);
    }
}

fn add(groups: &mut Groups, event: ImpressionEvent) {
    groups
        .entry(Item(event.workspace_id, event.promotion_id))
        .or_default()
        .push(event);
}

/// Writes the groups in one transaction, or each alone when that fails; returns the groups that
/// are now in the database.
async fn write(
    core: &PromotionCore,
    groups: &Groups,
    backoff: &mut ItemBackoff<Item>,
) -> Vec<Item> {
    match write_groups(core, groups).await {
        Ok(()) => {
            for item in groups.keys() {
                backoff.succeeded(item);
            }
            groups.keys().copied().collect()
        }
        Err(batch_error) if groups.len() == 1 => {
            for item in groups.keys() {
                backoff.failed(item, &batch_error);
            }
            Vec::new()
        }
        Err(_) => {
            let mut done = Vec::new();
            for (item, events) in groups {
                let alone = BTreeMap::from([(*item, events.clone())]);
                match write_groups(core, &alone).await {
                    Ok(()) => {
                        backoff.succeeded(item);
                        done.push(*item);
                    }
                    Err(error) => backoff.failed(item, &error),
                }
            }
            done
        }
    }
}

async fn write_groups(core: &PromotionCore, groups: &Groups) -> Result<(), ServiceError> {
    let exhausted = core
        .context
        .write(|txn| async move {
            let now = core.now();
            let mut exhausted = Vec::new();
            // Groups come sorted by workspace: read each workspace's settings once.
            let mut settings: Option<(Uuid, PromotionSettings)> = None;
            for (item, events) in groups {
                if settings
                    .as_ref()
                    .is_none_or(|(workspace, _)| *workspace != item.0)
                {
                    let loaded = crate::store::promotion_settings(&*txn, item.0).await?;
                    settings = Some((item.0, loaded));
                }
                let Some((_, settings)) = &settings else {
                    continue;
                };
                if crate::charging::record_impressions(core, &txn, *item, events, settings, now)
                    .await?
                {
                    exhausted.push(*item);
                }
            }
            Ok((txn, exhausted))
        })
        .await?;
    for item in exhausted {
        core.snapshots.exclude(item.1);
        core.snapshots.invalidate(item.0);
    }
    Ok(())
}
