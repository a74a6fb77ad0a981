//! Workspace settings, composed from sections that each domain declares for itself.
//!
//! A section is a typed struct a domain owns (its names, defaults, validation and documentation)
//! together with the message it fills in the admin service's `promo.admin.v1.Settings`, a message
//! the domain declares in its own proto package. The kernel owns two sections every domain may
//! read: the workspace's time zone and its rate limits. The gateway builds one [`Registry`] of
//! every section; GetSettings and UpdateSettings are written once, against the registry, and know
//! no domain. Adding a setting to a domain touches that domain's section and its proto message;
//! adding a domain's section is one `with::<Section>()` where the gateway composes the domains.
//!
//! Storage: a workspace's settings are one JSON object in `kernel_workspace.settings`, a key per
//! section. A key that is absent is that section's defaults, and a field absent from a stored
//! section is its default (sections use `#[serde(default)]`), so rows written by older versions
//! read as they were meant. A section that does not parse is an error naming the workspace and
//! the section, never silently its defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::admin::v1 as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::Role;
use crate::db::WriteTxn;
use crate::error::ServiceError;
use crate::validation::Violations;
use crate::workspace::{self, DOMAIN};

/// One domain's typed settings.
pub trait Section:
    Serialize + DeserializeOwned + Default + Clone + PartialEq + Send + Sync + 'static
{
    /// The section's key in the stored settings, its field in `Settings` and the first element
    /// of its update_mask paths.
    const NAME: &'static str;
    /// The fields an update_mask may name below [`Section::NAME`] (`NAME.field`), each with a
    /// line of documentation that states its default. Empty when the section is one value.
    const FIELDS: &'static [(&'static str, &'static str)];
    /// What the section governs, for operators (`promo settings`).
    const ABOUT: &'static str;
    /// True when only a platform-admin may change it (a workspace's subscription terms).
    const PLATFORM_ADMIN_ONLY: bool = false;

    /// Records every bad value, with field paths under `settings.` (for example
    /// `promotion.cost_per_use`).
    fn validate(&self, violations: &mut Violations);

    /// Writes the section into the composed message.
    fn to_proto(&self, settings: &mut pb::Settings);

    /// Takes `field` (one of [`Section::FIELDS`]), or every field when `None`, from `update`.
    /// `Err` describes what `update` lacks ("is required by update_mask").
    fn merge(&mut self, update: &pb::Settings, field: Option<&str>) -> Result<(), String>;
}

/// The settings stored for one workspace, as read from its row.
#[derive(Clone, Debug)]
pub struct Stored {
    workspace_id: Uuid,
    sections: Map<String, Value>,
}

impl Stored {
    /// Parses a workspace row's settings column; a column that is not a JSON object is an error
    /// naming the workspace.
    pub fn of(row: &workspace::entity::Model) -> Result<Stored, ServiceError> {
        Stored::parse(row.id, &row.settings)
    }

    pub fn parse(workspace_id: Uuid, column: &str) -> Result<Stored, ServiceError> {
        match serde_json::from_str::<Value>(column) {
            Ok(Value::Object(sections)) => Ok(Stored {
                workspace_id,
                sections,
            }),
            Ok(_) => Err(ServiceError::internal(format!(
                "kernel_workspace row {workspace_id}: settings is not a JSON object"
            ))),
            Err(error) => Err(ServiceError::internal(format!(
                "kernel_workspace row {workspace_id}: settings do not parse: {error}"
            ))),
        }
    }

    /// No section set: every section its defaults.
    pub fn empty(workspace_id: Uuid) -> Stored {
        Stored {
            workspace_id,
            sections: Map::new(),
        }
    }

    /// The section `S`: its defaults when never set; an error naming the workspace and the
    /// section when the stored value does not parse.
    pub fn get<S: Section>(&self) -> Result<S, ServiceError> {
        match self.sections.get(S::NAME) {
            None => Ok(S::default()),
            Some(value) => S::deserialize(value).map_err(|error| {
                ServiceError::internal(format!(
                    "kernel_workspace row {}: settings section {:?} does not parse: {error}",
                    self.workspace_id,
                    S::NAME
                ))
            }),
        }
    }

    pub fn set<S: Section>(&mut self, value: &S) -> Result<(), ServiceError> {
        let value = serde_json::to_value(value).map_err(|error| {
            ServiceError::internal(format!("settings section {:?}: {error}", S::NAME))
        })?;
        self.sections.insert(S::NAME.to_owned(), value);
        Ok(())
    }

    /// The column value to store.
    pub fn to_column(&self) -> String {
        Value::Object(self.sections.clone()).to_string()
    }
}

/// Reads one section of a workspace's settings from its row.
pub fn read<S: Section>(row: &workspace::entity::Model) -> Result<S, ServiceError> {
    Stored::of(row)?.get::<S>()
}

/// Reads one section of a workspace's settings (its defaults for a workspace that does not exist).
pub async fn of_workspace<S: Section, C: sea_orm::ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<S, ServiceError> {
    match workspace::get(connection, workspace_id).await? {
        Some(row) => read::<S>(&row),
        None => Ok(S::default()),
    }
}

/// The calendar day `micros` (microseconds since the epoch) falls on in the workspace's time
/// zone: what "daily" and "monthly" mean for every domain.
pub async fn local_date<C: sea_orm::ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    micros: i64,
) -> Result<chrono::NaiveDate, ServiceError> {
    let zone = of_workspace::<TimeZone, _>(connection, workspace_id)
        .await?
        .zone();
    Ok(crate::clock::from_micros(micros)
        .with_timezone(&zone)
        .date_naive())
}

/// Something that must follow a settings change: a domain that caches settings.
#[async_trait::async_trait]
pub trait Observer: Send + Sync {
    /// Runs inside the transaction that stores the change, with the names of the sections that
    /// changed (for example to bump a version other replicas watch).
    async fn changing(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        sections: &[&'static str],
    ) -> Result<(), ServiceError>;

    /// Runs after the change committed (for example to drop this replica's cache).
    fn changed(&self, workspace_id: Uuid, sections: &[&'static str]);
}

/// The erased operations the registry needs from a section.
trait Entry: Send + Sync {
    fn name(&self) -> &'static str;
    fn fields(&self) -> &'static [(&'static str, &'static str)];
    fn about(&self) -> &'static str;
    fn platform_admin_only(&self) -> bool;
    fn default_json(&self) -> Value;
    fn write(&self, stored: &Stored, settings: &mut pb::Settings) -> Result<(), ServiceError>;
    /// Merges `update` into `next`; the inner `Err` says what `update` lacks.
    fn merge(
        &self,
        next: &mut Stored,
        update: &pb::Settings,
        field: Option<&str>,
    ) -> Result<Result<(), String>, ServiceError>;
    /// Whether the section reads differently in the two (absent and default read the same).
    fn differs(&self, current: &Stored, next: &Stored) -> Result<bool, ServiceError>;
    fn validate(&self, stored: &Stored, violations: &mut Violations) -> Result<(), ServiceError>;
}

struct Typed<S>(std::marker::PhantomData<fn() -> S>);

impl<S: Section> Entry for Typed<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn fields(&self) -> &'static [(&'static str, &'static str)] {
        S::FIELDS
    }

    fn about(&self) -> &'static str {
        S::ABOUT
    }

    fn platform_admin_only(&self) -> bool {
        S::PLATFORM_ADMIN_ONLY
    }

    fn default_json(&self) -> Value {
        serde_json::to_value(S::default()).unwrap_or(Value::Null)
    }

    fn write(&self, stored: &Stored, settings: &mut pb::Settings) -> Result<(), ServiceError> {
        stored.get::<S>()?.to_proto(settings);
        Ok(())
    }

    fn merge(
        &self,
        next: &mut Stored,
        update: &pb::Settings,
        field: Option<&str>,
    ) -> Result<Result<(), String>, ServiceError> {
        let mut value = next.get::<S>()?;
        if let Err(missing) = value.merge(update, field) {
            return Ok(Err(missing));
        }
        next.set(&value)?;
        Ok(Ok(()))
    }

    fn differs(&self, current: &Stored, next: &Stored) -> Result<bool, ServiceError> {
        Ok(current.get::<S>()? != next.get::<S>()?)
    }

    fn validate(&self, stored: &Stored, violations: &mut Violations) -> Result<(), ServiceError> {
        stored.get::<S>()?.validate(violations);
        Ok(())
    }
}

/// A settings path an update_mask may name, with its documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathDoc {
    pub path: String,
    pub doc: &'static str,
    pub platform_admin_only: bool,
}

/// Every section of every domain the gateway composes, in the order they were added.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Arc<dyn Entry>>,
    observers: Vec<Arc<dyn Observer>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// The kernel's own sections: `time_zone` and `rate_limits`.
    pub fn new() -> Registry {
        Registry {
            entries: Vec::new(),
            observers: Vec::new(),
        }
        .with::<TimeZone>()
        .with::<RateLimits>()
    }

    /// Adds a domain's section.
    ///
    /// # Panics
    /// When a section of the same name was added already: two domains claiming one name is a
    /// programming error the first test run shows.
    pub fn with<S: Section>(mut self) -> Registry {
        assert!(
            self.entries.iter().all(|entry| entry.name() != S::NAME),
            "settings section {:?} registered twice",
            S::NAME
        );
        self.entries
            .push(Arc::new(Typed::<S>(std::marker::PhantomData)));
        self
    }

    /// Adds something to tell of every change.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Registry {
        self.observers.push(observer);
        self
    }

    /// Every path an update_mask may name, with its documentation.
    pub fn paths(&self) -> Vec<PathDoc> {
        let mut paths = Vec::new();
        for entry in &self.entries {
            paths.push(PathDoc {
                path: entry.name().to_owned(),
                doc: entry.about(),
                platform_admin_only: entry.platform_admin_only(),
            });
            for (field, doc) in entry.fields() {
                paths.push(PathDoc {
                    path: format!("{}.{field}", entry.name()),
                    doc,
                    platform_admin_only: entry.platform_admin_only(),
                });
            }
        }
        paths
    }

    /// Each section's defaults, as stored JSON (for `promo settings`).
    pub fn defaults(&self) -> BTreeMap<&'static str, Value> {
        self.entries
            .iter()
            .map(|entry| (entry.name(), entry.default_json()))
            .collect()
    }

    fn path_list(&self) -> String {
        let mut names: Vec<String> = self.paths().into_iter().map(|doc| doc.path).collect();
        names.push("*".to_owned());
        names.join(", ")
    }

    /// The composed message of a workspace's settings.
    pub fn compose(&self, row: &workspace::entity::Model) -> Result<pb::Settings, ServiceError> {
        let stored = Stored::of(row)?;
        let mut settings = pb::Settings {
            workspace_id: row.id.to_string(),
            update_time: Some(crate::clock::micros_to_timestamp(row.updated_at)),
            ..pb::Settings::default()
        };
        for entry in &self.entries {
            entry.write(&stored, &mut settings)?;
        }
        Ok(settings)
    }

    /// Applies the fields of `update` that `paths` name to the stored settings and validates the
    /// result: the new stored settings and the names of the sections that changed, or one error
    /// naming every bad value. "*" names every section; a section a platform-admin alone may
    /// change may be named by anyone else only with its current value.
    pub fn apply(
        &self,
        current: &Stored,
        update: &pb::Settings,
        paths: &[String],
        caller_roles: &[Role],
    ) -> Result<(Stored, Vec<&'static str>), ServiceError> {
        if paths.is_empty() {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "update_mask",
                format!(
                    "is required: name the settings to change ({}); with grpcurl, \"updateMask\": {{\"paths\": [\"time_zone\"]}}",
                    self.path_list()
                ),
            ));
        }
        let platform_admin = caller_roles.contains(&Role::PlatformAdmin);
        let need_platform_admin = |name: &str| {
            ServiceError::permission_denied(
                DOMAIN,
                &format!("{}_NEED_PLATFORM_ADMIN", name.to_ascii_uppercase()),
                format!(
                    "a workspace's {} are set by a platform-admin; leave {name} out of update_mask",
                    name.replace('_', " ")
                ),
            )
        };
        let mut next = current.clone();
        for (index, path) in paths.iter().enumerate() {
            let targets: Vec<(&Arc<dyn Entry>, Option<&str>)> = if path == "*" {
                self.entries.iter().map(|entry| (entry, None)).collect()
            } else {
                let (name, field) = match path.split_once('.') {
                    Some((name, field)) => (name, Some(field)),
                    None => (path.as_str(), None),
                };
                let entry = self.entries.iter().find(|entry| {
                    entry.name() == name
                        && field.is_none_or(|field| {
                            entry.fields().iter().any(|(known, _)| *known == field)
                        })
                });
                let Some(entry) = entry else {
                    return Err(ServiceError::invalid_field(
                        DOMAIN,
                        &format!("update_mask.paths[{index}]"),
                        format!(
                            "unknown settings path {}; the paths are {} (proto field names, in snake_case)",
                            crate::ids::echo(path),
                            self.path_list()
                        ),
                    ));
                };
                // Naming such a section is asking to change it.
                if entry.platform_admin_only() && !platform_admin {
                    return Err(need_platform_admin(entry.name()));
                }
                vec![(entry, field)]
            };
            for (entry, field) in targets {
                if let Err(missing) = entry.merge(&mut next, update, field)? {
                    let name = match field {
                        Some(field) => format!("settings.{}.{field}", entry.name()),
                        None => format!("settings.{}", entry.name()),
                    };
                    return Err(ServiceError::invalid_field(DOMAIN, &name, missing));
                }
            }
        }
        let mut changed = Vec::new();
        for entry in &self.entries {
            if entry.differs(current, &next)? {
                // "*" from anyone else keeps such a section as it is.
                if entry.platform_admin_only() && !platform_admin {
                    return Err(need_platform_admin(entry.name()));
                }
                changed.push(entry.name());
            }
        }
        let mut violations = Violations::under(DOMAIN, "settings.");
        for entry in &self.entries {
            entry.validate(&next, &mut violations)?;
        }
        violations.finish()?;
        Ok((next, changed))
    }

    /// Tells every observer, inside the storing transaction, which sections change.
    pub async fn changing(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        sections: &[&'static str],
    ) -> Result<(), ServiceError> {
        if sections.is_empty() {
            return Ok(());
        }
        for observer in &self.observers {
            observer.changing(txn, workspace_id, sections).await?;
        }
        Ok(())
    }

    /// Tells every observer, after commit, which sections changed.
    pub fn changed(&self, workspace_id: Uuid, sections: &[&'static str]) {
        if sections.is_empty() {
            return;
        }
        for observer in &self.observers {
            observer.changed(workspace_id, sections);
        }
    }
}

/// The IANA time zone in which a workspace's "daily" and "monthly" periods are computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TimeZone(pub String);

impl Default for TimeZone {
    fn default() -> TimeZone {
        TimeZone("UTC".to_owned())
    }
}

impl TimeZone {
    /// The parsed zone (UTC when the stored name is not one, which validation prevents).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl Section for TimeZone {
    const NAME: &'static str = "time_zone";
    const FIELDS: &'static [(&'static str, &'static str)] = &[];
    const ABOUT: &'static str =
        "IANA time zone in which daily and monthly periods are computed (default UTC)";

    fn validate(&self, violations: &mut Violations) {
        if self.0.parse::<chrono_tz::Tz>().is_err() {
            violations.add(
                "time_zone",
                format!(
                    "unknown IANA time zone {} (for example \"Europe/Berlin\")",
                    crate::ids::echo(&self.0)
                ),
            );
        }
    }

    fn to_proto(&self, settings: &mut pb::Settings) {
        settings.time_zone = self.0.clone();
    }

    fn merge(&mut self, update: &pb::Settings, _field: Option<&str>) -> Result<(), String> {
        self.0 = update.time_zone.clone();
        Ok(())
    }
}

/// A rate limit per principal: a sustained rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Bounds of a rate limit, wherever it is set.
pub const MAX_RATE_PER_SECOND: u32 = 10_000_000;

impl RateLimit {
    /// Why this limit is nonsense, if it is.
    pub fn problem(&self) -> Option<String> {
        if !(1..=MAX_RATE_PER_SECOND).contains(&self.per_second) {
            return Some(format!(
                "per_second must be between 1 and {MAX_RATE_PER_SECOND}"
            ));
        }
        if self.burst < self.per_second || self.burst > MAX_RATE_PER_SECOND.saturating_mul(10) {
            return Some(
                "burst must be at least per_second and at most 10 × the maximum rate".to_owned(),
            );
        }
        None
    }
}

/// Rate limits per role name for a workspace, replacing the server's configured limit of that
/// role; roles not named keep the server's. Part of a subscription: only a platform-admin sets
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RateLimits(pub BTreeMap<String, RateLimit>);

impl Section for RateLimits {
    const NAME: &'static str = "rate_limits";
    const FIELDS: &'static [(&'static str, &'static str)] = &[];
    const ABOUT: &'static str = "calls per second and burst per role name, replacing the server's limit for that role (platform-admin only)";
    const PLATFORM_ADMIN_ONLY: bool = true;

    fn validate(&self, violations: &mut Violations) {
        for (role, limit) in &self.0 {
            let field = format!("rate_limits[{}]", crate::ids::echo(role));
            if let Err(message) = role.parse::<Role>() {
                violations.add(&field, message);
            } else if let Some(problem) = limit.problem() {
                violations.add(&field, problem);
            }
        }
    }

    fn to_proto(&self, settings: &mut pb::Settings) {
        settings.rate_limits = self
            .0
            .iter()
            .map(|(role, limit)| {
                (
                    role.clone(),
                    pb::RateLimit {
                        per_second: limit.per_second,
                        burst: limit.burst,
                    },
                )
            })
            .collect();
    }

    fn merge(&mut self, update: &pb::Settings, _field: Option<&str>) -> Result<(), String> {
        self.0 = update
            .rate_limits
            .iter()
            .map(|(role, limit)| {
                (
                    role.clone(),
                    RateLimit {
                        per_second: limit.per_second,
                        burst: limit.burst,
                    },
                )
            })
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(json: &str) -> Stored {
        Stored::parse(Uuid::nil(), json).expect("an object")
    }

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|path| (*path).to_owned()).collect()
    }

    #[test]
    fn absent_sections_read_their_defaults_and_corrupt_ones_name_the_row() {
        let settings = stored("{}");
        assert_eq!(settings.get::<TimeZone>().ok(), Some(TimeZone::default()));
        let id = Uuid::now_v7();
        let corrupt = Stored::parse(id, r#"{"time_zone": 7}"#).expect("an object");
        let error = corrupt.get::<TimeZone>().expect_err("not a string");
        assert_eq!(error.code(), crate::ErrorCode::Internal);
        let detail = format!("{error:?}");
        assert!(
            detail.contains(&id.to_string()) && detail.contains("time_zone"),
            "{detail}"
        );
        assert!(Stored::parse(id, "not json").is_err());
        assert!(Stored::parse(id, "[1]").is_err());
    }

    #[test]
    fn updates_follow_the_mask_and_report_what_changed() {
        let registry = Registry::new();
        let update = pb::Settings {
            time_zone: "Europe/Berlin".to_owned(),
            ..pb::Settings::default()
        };
        let (next, changed) = registry
            .apply(
                &stored("{}"),
                &update,
                &paths(&["time_zone"]),
                &[Role::Admin],
            )
            .expect("applies");
        assert_eq!(
            next.get::<TimeZone>().ok(),
            Some(TimeZone("Europe/Berlin".into()))
        );
        assert_eq!(changed, ["time_zone"]);
        // The same value again changes nothing.
        let (_, changed) = registry
            .apply(&next, &update, &paths(&["time_zone"]), &[Role::Admin])
            .expect("applies");
        assert!(changed.is_empty());
        // Unknown paths and an empty mask are refused, naming the paths there are.
        let error = registry
            .apply(
                &next,
                &update,
                &paths(&["time_zone", "time_zone.x"]),
                &[Role::Admin],
            )
            .expect_err("unknown path");
        assert_eq!(error.field_violations()[0].0, "update_mask.paths[1]");
        assert!(
            error.message().contains("rate_limits"),
            "{}",
            error.message()
        );
        let error = registry
            .apply(&next, &update, &[], &[Role::Admin])
            .expect_err("no mask");
        assert_eq!(error.field_violations()[0].0, "update_mask");
    }

    #[test]
    fn platform_admin_sections_are_guarded_even_under_a_star() {
        let registry = Registry::new();
        let mut update = pb::Settings {
            time_zone: "UTC".to_owned(),
            ..pb::Settings::default()
        };
        // "*" with the current (empty) limits is fine for an admin.
        assert!(
            registry
                .apply(&stored("{}"), &update, &paths(&["*"]), &[Role::Admin])
                .is_ok()
        );
        update.rate_limits.insert(
            "admin".to_owned(),
            pb::RateLimit {
                per_second: 5,
                burst: 10,
            },
        );
        for mask in [&["*"][..], &["rate_limits"][..]] {
            let error = registry
                .apply(&stored("{}"), &update, &paths(mask), &[Role::Admin])
                .expect_err("admin may not");
            assert_eq!(error.reason(), "RATE_LIMITS_NEED_PLATFORM_ADMIN");
        }
        let (next, changed) = registry
            .apply(
                &stored("{}"),
                &update,
                &paths(&["rate_limits"]),
                &[Role::PlatformAdmin],
            )
            .expect("platform-admin may");
        assert_eq!(changed, ["rate_limits"]);
        assert_eq!(
            next.get::<RateLimits>().map(|limits| limits.0.len()).ok(),
            Some(1)
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let registry = Registry::new();
        let mut update = pb::Settings {
            time_zone: "Mars/Olympus".to_owned(),
            ..pb::Settings::default()
        };
        update
            .rate_limits
            .insert("wizard".to_owned(), pb::RateLimit::default());
        let error = registry
            .apply(
                &stored("{}"),
                &update,
                &paths(&["*"]),
                &[Role::PlatformAdmin],
            )
            .expect_err("two bad values");
        let fields: Vec<&str> = error
            .field_violations()
            .iter()
            .map(|(field, _)| field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["settings.time_zone", "settings.rate_limits[\"wizard\"]"]
        );
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_section_name_is_claimed_once() {
        let _ = Registry::new().with::<TimeZone>();
    }
}
