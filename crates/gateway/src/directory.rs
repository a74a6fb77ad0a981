//! A short-lived cache of what the gateway enforces per workspace (enabled modules and rate
//! limits), read on every call.
//!
//! Entries live a couple of seconds, so a `SetModules` or `UpdateSettings` on another replica
//! takes effect within that time; on this replica it takes effect at once through
//! [`WorkspaceDirectory::invalidate`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kernel::settings::{RateLimit, RateLimits};
use kernel::{Db, Module, ServiceError};
use uuid::Uuid;

/// What the gateway enforces for one workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspacePolicy {
    pub modules: BTreeSet<Module>,
    /// Rate limits by role name that replace the server's for this workspace.
    pub rate_limits: BTreeMap<String, RateLimit>,
}

/// When an entry was read, and the policy (`None`: the workspace does not exist).
type Cached = (Instant, Option<Arc<WorkspacePolicy>>);

pub struct WorkspaceDirectory {
    db: Db,
    cache: RwLock<HashMap<Uuid, Cached>>,
    ttl: Duration,
}

/// Bound on cached workspaces; past it the cache is cleared rather than grown.
const MAX_CACHED: usize = 100_000;

impl WorkspaceDirectory {
    pub fn new(db: Db, ttl: Duration) -> WorkspaceDirectory {
        WorkspaceDirectory {
            db,
            cache: RwLock::new(HashMap::new()),
            ttl,
        }
    }

    /// The workspace's policy, or `None` when the workspace does not exist.
    pub async fn policy(
        &self,
        workspace_id: Uuid,
    ) -> Result<Option<Arc<WorkspacePolicy>>, ServiceError> {
        if let Ok(cache) = self.cache.read()
            && let Some((fetched, policy)) = cache.get(&workspace_id)
            && fetched.elapsed() < self.ttl
        {
            return Ok(policy.clone());
        }
        let policy = match kernel::workspace::get(self.db.connection(), workspace_id).await? {
            Some(row) => Some(Arc::new(WorkspacePolicy {
                modules: kernel::workspace::modules_of(&row),
                rate_limits: kernel::settings::read::<RateLimits>(&row)?.0,
            })),
            None => None,
        };
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(workspace_id, (Instant::now(), policy.clone()));
        }
        Ok(policy)
    }

    pub fn invalidate(&self, workspace_id: Uuid) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(&workspace_id);
        }
    }
}
