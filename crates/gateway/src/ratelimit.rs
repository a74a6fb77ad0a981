//! Rate limits per principal, with a limit per role: service principals (generator, billing,
//! storefront) call at machine rates, human roles keep abuse limits, and a workspace's settings
//! may replace a role's limit for that workspace.
//!
//! Each principal has one GCRA cell (the "theoretical arrival time" of its next call); the limit
//! applied is the most generous of its roles'. The cells live in sharded maps and are pruned when
//! full again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kernel::settings::RateLimit;
use kernel::{Principal, Role};
use uuid::Uuid;

use crate::config::Limits;

const SHARDS: usize = 16;

/// The limit that applies to a principal, and where it comes from (for the caller to see).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedLimit {
    pub limit: RateLimit,
    /// The role whose limit applies.
    pub role: Role,
    /// `workspace` (its settings) or `server` (configuration).
    pub source: &'static str,
}

/// Which limit applies to `principal`: per role, the workspace's setting, else the server's
/// per-role setting, else the service or human default; then the most generous of its roles.
pub fn applied_limit(
    principal: &Principal,
    workspace_limits: &BTreeMap<String, RateLimit>,
    limits: &Limits,
) -> Option<AppliedLimit> {
    principal
        .roles
        .iter()
        .map(|role| {
            if let Some(limit) = workspace_limits.get(role.as_str()) {
                return AppliedLimit {
                    limit: *limit,
                    role: *role,
                    source: "workspace",
                };
            }
            let limit = match limits.roles.get(role.as_str()) {
                Some(limit) => RateLimit {
                    per_second: limit.per_second,
                    burst: limit.burst,
                },
                None if role.is_service() => RateLimit {
                    per_second: limits.service_rate_limit_per_second,
                    burst: limits.service_rate_limit_burst,
                },
                None => RateLimit {
                    per_second: limits.rate_limit_per_second,
                    burst: limits.rate_limit_burst,
                },
            };
            AppliedLimit {
                limit,
                role: *role,
                source: "server",
            }
        })
        .max_by_key(|applied| (applied.limit.per_second, applied.limit.burst))
}

/// GCRA cells by `(workspace, principal)`, in nanoseconds since `epoch`.
pub struct RateLimiter {
    epoch: Instant,
    shards: Vec<Mutex<HashMap<(Uuid, Uuid), u64>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl RateLimiter {
    fn shard(&self, key: &(Uuid, Uuid)) -> &Mutex<HashMap<(Uuid, Uuid), u64>> {
        let index = (key.1.as_u128() as usize) % SHARDS;
        &self.shards[index]
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Takes one call from the principal's allowance, or says how long until there is one.
    pub fn check(&self, key: (Uuid, Uuid), limit: RateLimit) -> Result<(), Duration> {
        let now = self.now();
        let interval = 1_000_000_000 / u64::from(limit.per_second.max(1));
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let Ok(mut cells) = self.shard(&key).lock() else {
            return Ok(());
        };
        let arrival = cells.get(&key).copied().unwrap_or(now).max(now);
        let next = arrival.saturating_add(interval);
        if next - now > tolerance {
            return Err(Duration::from_nanos(next - now - tolerance));
        }
        cells.insert(key, next);
        Ok(())
    }

    /// Forgets principals whose allowance is full again; keeps memory bounded.
    pub fn prune(&self) {
        let now = self.now();
        for shard in &self.shards {
            if let Ok(mut cells) = shard.lock() {
                cells.retain(|_, arrival| *arrival > now);
                cells.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: Vec<Role>) -> Principal {
        Principal {
            subject: Uuid::new_v4(),
            workspace_id: Uuid::new_v4(),
            roles,
        }
    }

    #[test]
    fn a_burst_is_allowed_then_calls_wait() {
        let limiter = RateLimiter::default();
        let key = (Uuid::new_v4(), Uuid::new_v4());
        let limit = RateLimit {
            per_second: 1,
            burst: 3,
        };
        for _ in 0..3 {
            assert!(limiter.check(key, limit).is_ok());
        }
        let wait = limiter.check(key, limit).expect_err("over the burst");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        let other = (key.0, Uuid::new_v4());
        assert!(limiter.check(other, limit).is_ok(), "principals are apart");
    }

    #[test]
    fn service_roles_get_the_service_limit_and_the_most_generous_role_wins() {
        let limits = Limits::default();
        let none = BTreeMap::new();
        let generator =
            applied_limit(&principal(vec![Role::Generator]), &none, &limits).expect("limit");
        assert!(generator.limit.per_second >= 50_000);
        let admin = applied_limit(&principal(vec![Role::Admin]), &none, &limits).expect("limit");
        assert_eq!(admin.limit.per_second, limits.rate_limit_per_second);
        let both = applied_limit(&principal(vec![Role::Admin, Role::Billing]), &none, &limits)
            .expect("limit");
        assert_eq!(both.role, Role::Billing);
        let workspace = BTreeMap::from([(
            "admin".to_owned(),
            RateLimit {
                per_second: 3,
                burst: 3,
            },
        )]);
        let limited =
            applied_limit(&principal(vec![Role::Admin]), &workspace, &limits).expect("limit");
        assert_eq!((limited.limit.per_second, limited.source), (3, "workspace"));
    }
}
