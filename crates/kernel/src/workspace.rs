//! Workspaces (tenants) and the modules their subscription enables. Their typed settings are
//! in [`crate::settings`].

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

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
    Growth,
    RevenueSplit,
    Payouts,
}

impl Module {
    pub const ALL: [Module; 6] = [
        Module::Ledger,
        Module::MaterialPromotion,
        Module::Marketing,
        Module::Growth,
        Module::RevenueSplit,
        Module::Payouts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::Ledger => "ledger",
            Module::MaterialPromotion => "material_promotion",
            Module::Marketing => "marketing",
            Module::Growth => "growth",
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
    // Every section starts at its defaults (crate::settings).
    let settings = "{}".to_owned();
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

/// Stores settings the registry validated (crate::settings::Registry::apply); `None` when the
/// workspace does not exist.
pub async fn update_settings<C: ConnectionTrait>(
    connection: &C,
    id: Uuid,
    settings: &crate::settings::Stored,
    now: DateTime<Utc>,
) -> Result<Option<entity::Model>, ServiceError> {
    let Some(row) = get(connection, id).await? else {
        return Ok(None);
    };
    let mut active: entity::ActiveModel = row.into();
    active.settings = Set(settings.to_column());
    active.updated_at = Set(to_micros(now));
    Ok(Some(active.update(connection).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
