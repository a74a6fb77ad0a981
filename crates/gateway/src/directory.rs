//! A short-lived cache of which modules each workspace has enabled, read on every call.
//!
//! Entries live a couple of seconds, so a `SetModules` on another replica takes effect within
//! that time; on this replica it takes effect at once through [`WorkspaceDirectory::invalidate`].

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kernel::{Db, Module, ServiceError};
use uuid::Uuid;

/// When an entry was read, and the enabled modules (`None`: the workspace does not exist).
type CachedModules = (Instant, Option<BTreeSet<Module>>);

pub struct WorkspaceDirectory {
    db: Db,
    cache: RwLock<HashMap<Uuid, CachedModules>>,
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

    /// The enabled modules, or `None` when the workspace does not exist.
    pub async fn modules(
        &self,
        workspace_id: Uuid,
    ) -> Result<Option<BTreeSet<Module>>, ServiceError> {
        if let Ok(cache) = self.cache.read()
            && let Some((fetched, modules)) = cache.get(&workspace_id)
            && fetched.elapsed() < self.ttl
        {
            return Ok(modules.clone());
        }
        let modules = kernel::workspace::get(self.db.connection(), workspace_id)
            .await?
            .map(|row| kernel::workspace::modules_of(&row));
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(workspace_id, (Instant::now(), modules.clone()));
        }
        Ok(modules)
    }

    pub fn invalidate(&self, workspace_id: Uuid) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(&workspace_id);
        }
    }
}
