//! Workspaces (tenants), the modules their subscription enables, and their typed settings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::clock::to_micros;
use crate::db::is_unique_violation;
use crate::error::{ErrorCode, ServiceError};

pub const DOMAIN: &str = "promo.admin";

/// The name of the workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "kernel_workspace")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub name: String,
        pub display_name: String,
        /// Enabled modules, comma-separated and sorted.
        pub modules: String,
        /// [`super::WorkspaceSettings`] as JSON.
        pub settings: String,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A product module a workspace's subscription may enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    Ledger,
    MaterialPromotion,
    Marketing,
    RevenueSplit,
    Payouts,
}

impl Module {
    pub const ALL: [Module; 5] = [
        Module::Ledger,
        Module::MaterialPromotion,
        Module::Marketing,
        Module::RevenueSplit,
        Module::Payouts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::Ledger => "ledger",
            Module::MaterialPromotion => "material_promotion",
            Module::Marketing => "marketing",
            Module::RevenueSplit => "revenue_split",
            Module::Payouts => "payouts",
        }
    }
}

impl FromStr for Module {
    type Err = String;

    fn from_str(value: &str) -> Result<Module, String> {
        Module::ALL
            .into_iter()
            .find(|module| module.as_str() == value)
            .ok_or_else(|| {
                let known: Vec<&str> = Module::ALL.iter().map(|module| module.as_str()).collect();
                format!(
                    "unknown module {}; the modules are {}",
                    crate::ids::echo(value),
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a module list from a request; empty means every module when `empty_means_all`.
pub fn parse_modules(
    field: &str,
    values: &[String],
    empty_means_all: bool,
) -> Result<BTreeSet<Module>, ServiceError> {
    if values.is_empty() && empty_means_all {
        return Ok(Module::ALL.into_iter().collect());
    }
    let mut modules = BTreeSet::new();
    for (index, value) in values.iter().enumerate() {
        let module = value.parse::<Module>().map_err(|message| {
            ServiceError::invalid_field(DOMAIN, &format!("{field}[{index}]"), message)
        })?;
        modules.insert(module);
    }
    Ok(modules)
}

fn modules_to_column(modules: &BTreeSet<Module>) -> String {
    modules
        .iter()
        .map(|module| module.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The enabled modules stored in a row (unknown names, from a newer version, are ignored).
pub fn modules_of(row: &entity::Model) -> BTreeSet<Module> {
    row.modules
        .split(',')
        .filter_map(|name| name.parse().ok())
        .collect()
}

/// An exact probability `numerator / denominator` in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    pub numerator: i64,
    pub denominator: i64,
}

/// Settings of the material promotion module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromotionSettings {
    pub selection_probability: Fraction,
    pub cost_per_use: i64,
    pub cost_per_impression: i64,
    pub usage_window_seconds: i64,
}

impl Default for PromotionSettings {
    fn default() -> PromotionSettings {
        PromotionSettings {
            selection_probability: Fraction {
                numerator: 1,
                denominator: 3,
            },
            cost_per_use: 1,
            cost_per_impression: 0,
            usage_window_seconds: 86_400,
        }
    }
}

/// A rate limit per principal: a sustained rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Every typed setting of a workspace, with its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkspaceSettings {
    pub time_zone: String,
    pub promotion: PromotionSettings,
    /// Rate limits per role name for this workspace, replacing the server's configured limit of
    /// that role; roles not named keep the server's. Only a platform-admin may change them.
    pub rate_limits: BTreeMap<String, RateLimit>,
}

impl Default for WorkspaceSettings {
    fn default() -> WorkspaceSettings {
        WorkspaceSettings {
            time_zone: "UTC".to_owned(),
            promotion: PromotionSettings::default(),
            rate_limits: BTreeMap::new(),
        }
    }
}

/// Upper bounds that keep settings sane (a cost above this is surely a typo).
const MAX_COST_CREDITS: i64 = 1_000_000_000;
const MAX_USAGE_WINDOW_SECONDS: i64 = 30 * 86_400;

impl WorkspaceSettings {
    /// Every violation at once, as BadRequest field violations under `settings.`.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let mut violations: Vec<(String, String)> = Vec::new();
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            violations.push((
                "settings.time_zone".to_owned(),
                format!(
                    "unknown IANA time zone {} (for example \"Europe/Berlin\")",
                    crate::ids::echo(&self.time_zone)
                ),
            ));
        }
        let probability = self.promotion.selection_probability;
        if probability.denominator <= 0
            || probability.numerator < 0
            || probability.numerator > probability.denominator
        {
            violations.push((
                "settings.promotion.selection_probability".to_owned(),
                "must be numerator/denominator with 0 <= numerator <= denominator and denominator > 0".to_owned(),
            ));
        }
        for (field, value) in [
            (
                "settings.promotion.cost_per_use",
                self.promotion.cost_per_use,
            ),
            (
                "settings.promotion.cost_per_impression",
                self.promotion.cost_per_impression,
            ),
        ] {
            if !(0..=MAX_COST_CREDITS).contains(&value) {
                violations.push((
                    field.to_owned(),
                    format!("must be between 0 and {MAX_COST_CREDITS}"),
                ));
            }
        }
        if self.promotion.cost_per_use == 0 && self.promotion.cost_per_impression == 0 {
            violations.push((
                "settings.promotion.cost_per_use".to_owned(),
                "cost_per_use and cost_per_impression must not both be 0".to_owned(),
            ));
        }
        if !(60..=MAX_USAGE_WINDOW_SECONDS).contains(&self.promotion.usage_window_seconds) {
            violations.push((
                "settings.promotion.usage_window_seconds".to_owned(),
                format!("must be between 60 and {MAX_USAGE_WINDOW_SECONDS}"),
            ));
        }
        for (role, limit) in &self.rate_limits {
            let field = format!("settings.rate_limits[{}]", crate::ids::echo(role));
            if let Err(message) = role.parse::<crate::Role>() {
                violations.push((field, message));
            } else if let Some(problem) = limit.problem() {
                violations.push((field, problem));
            }
        }
        let mut violations = violations.into_iter();
        let Some((field, description)) = violations.next() else {
            return Ok(());
        };
        let mut error = ServiceError::invalid_field(DOMAIN, &field, description);
        for (field, description) in violations {
            error = error.with_field(&field, description);
        }
        Err(error)
    }
}

/// The settings stored in a row; a row written by an older version gets defaults for new keys.
pub fn settings_of(row: &entity::Model) -> Result<WorkspaceSettings, ServiceError> {
    serde_json::from_str(&row.settings).map_err(|error| {
        ServiceError::internal(format!(
            "workspace {} settings do not parse: {error}",
            row.id
        ))
    })
}

/// Checks a workspace name: 1..=63 of [a-z0-9-], starting with a letter.
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid_field(
            DOMAIN,
            "name",
            "must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter",
        ))
    }
}

pub async fn create<C: ConnectionTrait>(
    connection: &C,
    name: &str,
    display_name: &str,
    modules: &BTreeSet<Module>,
    now: DateTime<Utc>,
) -> Result<entity::Model, ServiceError> {
    let settings = serde_json::to_string(&WorkspaceSettings::default())
        .map_err(|error| ServiceError::internal(format!("settings do not serialize: {error}")))?;
    let row = entity::Model {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        display_name: display_name.to_owned(),
        modules: modules_to_column(modules),
        settings,
        created_at: to_micros(now),
        updated_at: to_micros(now),
    };
    let active: entity::ActiveModel = row.clone().into();
    match entity::Entity::insert(active)
        .exec_without_returning(connection)
        .await
    {
        Ok(_) => Ok(row),
        Err(error) if is_unique_violation(&error) => Err(ServiceError::new(
            ErrorCode::AlreadyExists,
            DOMAIN,
            "WORKSPACE_ALREADY_EXISTS",
            format!("a workspace named {name:?} already exists"),
        )),
        Err(error) => Err(error.into()),
    }
}

pub async fn get<C: ConnectionTrait>(
    connection: &C,
    id: Uuid,
) -> Result<Option<entity::Model>, ServiceError> {
    Ok(entity::Entity::find_by_id(id).one(connection).await?)
}

pub async fn find_by_name<C: ConnectionTrait>(
    connection: &C,
    name: &str,
) -> Result<Option<entity::Model>, ServiceError> {
    Ok(entity::Entity::find()
        .filter(entity::Column::Name.eq(name))
        .one(connection)
        .await?)
}

/// Workspaces ordered by name, strictly after `after_name`.
pub async fn list<C: ConnectionTrait>(
    connection: &C,
    after_name: Option<&str>,
    limit: u64,
) -> Result<Vec<entity::Model>, ServiceError> {
    let mut query = entity::Entity::find()
        .order_by_asc(entity::Column::Name)
        .limit(limit);
    if let Some(after_name) = after_name {
        query = query.filter(entity::Column::Name.gt(after_name));
    }
    Ok(query.all(connection).await?)
}

/// Replaces the modules; `None` when the workspace does not exist.
pub async fn set_modules<C: ConnectionTrait>(
    connection: &C,
    id: Uuid,
    modules: &BTreeSet<Module>,
    now: DateTime<Utc>,
) -> Result<Option<entity::Model>, ServiceError> {
    let Some(row) = get(connection, id).await? else {
        return Ok(None);
    };
    let mut active: entity::ActiveModel = row.into();
    active.modules = Set(modules_to_column(modules));
    active.updated_at = Set(to_micros(now));
    Ok(Some(active.update(connection).await?))
}

/// Stores validated settings; `None` when the workspace does not exist.
pub async fn update_settings<C: ConnectionTrait>(
    connection: &C,
    id: Uuid,
    settings: &WorkspaceSettings,
    now: DateTime<Utc>,
) -> Result<Option<entity::Model>, ServiceError> {
    settings.validate()?;
    let Some(row) = get(connection, id).await? else {
        return Ok(None);
    };
    let mut active: entity::ActiveModel = row.into();
    active.settings = Set(serde_json::to_string(settings)
        .map_err(|error| ServiceError::internal(format!("settings do not serialize: {error}")))?);
    active.updated_at = Set(to_micros(now));
    Ok(Some(active.update(connection).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid_and_nonsense_is_refused_field_by_field() {
        assert!(WorkspaceSettings::default().validate().is_ok());
        let mut settings = WorkspaceSettings {
            time_zone: "Mars/Olympus".to_owned(),
            ..WorkspaceSettings::default()
        };
        settings.promotion.selection_probability = Fraction {
            numerator: 4,
            denominator: 3,
        };
        settings.promotion.cost_per_use = -1;
        let error = settings.validate().expect_err("invalid");
        let fields: Vec<_> = error
            .field_violations()
            .iter()
            .map(|(field, _)| field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "settings.time_zone",
                "settings.promotion.selection_probability",
                "settings.promotion.cost_per_use"
            ]
        );
    }

    #[test]
    fn module_lists_parse_strictly() {
        assert_eq!(
            parse_modules("modules", &[], true).map(|m| m.len()).ok(),
            Some(Module::ALL.len())
        );
        assert_eq!(
            parse_modules("modules", &[], false).map(|m| m.len()).ok(),
            Some(0)
        );
        let error = parse_modules("modules", &["ledger".into(), "casino".into()], true)
            .expect_err("unknown");
        assert_eq!(error.field_violations()[0].0, "modules[1]");
    }

    #[test]
    fn workspace_names_are_slugs() {
        assert!(validate_name("acme-3d").is_ok());
        for bad in ["", "Acme", "3d", "a_b", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
