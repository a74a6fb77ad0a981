//! sea-orm entities and queries for this crate's tables (`promo_*`).

use std::collections::BTreeMap;

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

pub mod material {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_material")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub workspace_id: Uuid,
        pub name: String,
        pub material_type: String,
        /// JSON array of tags.
        pub tags: String,
        pub owner_id: Option<Uuid>,
        /// JSON object of properties.
        pub properties: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod promotion {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_promotion")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub workspace_id: Uuid,
        pub material_id: Uuid,
        pub factory_id: Uuid,
        pub material_type: String,
        pub status: i32,
        pub credits_allocated: i64,
        pub credits_spent: i64,
        pub credits_refunded: i64,
        pub impression_count: i64,
        pub usage_count: i64,
        /// JSON array of project types; empty means all.
        pub project_types: String,
        pub start_time: Option<i64>,
        pub end_time: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    impl Model {
        /// What the promotion's budget account still holds.
        pub fn credits_remaining(&self) -> i64 {
            self.credits_allocated - self.credits_spent - self.credits_refunded
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod impression {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_impression")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub decision_id: Uuid,
        pub workspace_id: Uuid,
        pub promotion_id: Uuid,
        pub charge: i64,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod usage {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_usage")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub decision_id: Uuid,
        pub workspace_id: Uuid,
        pub promotion_id: Option<Uuid>,
        pub material_id: Uuid,
        pub charge: i64,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_audit")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub workspace_id: Uuid,
        pub promotion_id: Uuid,
        pub actor_id: Option<Uuid>,
        pub action: String,
        pub detail: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_version")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

pub fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn json_map(values: &BTreeMap<String, String>) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned())
}

pub fn parse_map(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Tells every replica's snapshot refresher that this workspace's selection inputs changed.
pub async fn bump_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<(), ServiceError> {
    let row = version::ActiveModel {
        workspace_id: Set(workspace_id),
        version: Set(1),
    };
    version::Entity::insert(row)
        .on_conflict(
            OnConflict::column(version::Column::WorkspaceId)
                .value(
                    version::Column::Version,
                    Expr::col((version::Entity, version::Column::Version)).add(1),
                )
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

pub async fn current_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<i64, ServiceError> {
    Ok(version::Entity::find_by_id(workspace_id)
        .one(connection)
        .await?
        .map_or(0, |row| row.version))
}

pub async fn get_material<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<material::Model>, ServiceError> {
    Ok(material::Entity::find_by_id(id)
        .filter(material::Column::WorkspaceId.eq(workspace_id))
        .one(connection)
        .await?)
}

/// Materials by ascending id after `after`, filtered by type, owner and tag.
pub async fn list_materials<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    material_type: Option<&str>,
    owner_id: Option<Uuid>,
    tag: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<material::Model>, ServiceError> {
    let mut query = material::Entity::find()
        .filter(material::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(material::Column::Id)
        .limit(limit);
    if let Some(material_type) = material_type {
        query = query.filter(material::Column::MaterialType.eq(material_type));
    }
    if let Some(owner_id) = owner_id {
        query = query.filter(material::Column::OwnerId.eq(owner_id));
    }
    if let Some(tag) = tag {
        // Tags are [a-z0-9-] only, so the quoted form cannot contain LIKE metacharacters.
        query = query.filter(material::Column::Tags.like(format!("%\"{tag}\"%")));
    }
    if let Some(after) = after {
        query = query.filter(material::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

pub async fn get_promotion<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<promotion::Model>, ServiceError> {
    Ok(promotion::Entity::find_by_id(id)
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .one(connection)
        .await?)
}

/// The promotion, locked for update on PostgreSQL (SQLite write transactions are exclusive).
pub async fn lock_promotion<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<promotion::Model>, ServiceError> {
    let mut query =
        promotion::Entity::find_by_id(id).filter(promotion::Column::WorkspaceId.eq(workspace_id));
    if connection.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    Ok(query.one(connection).await?)
}

pub async fn append_audit<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    promotion_id: Uuid,
    actor_id: Option<Uuid>,
    action: &str,
    detail: String,
    now: i64,
) -> Result<(), ServiceError> {
    let row = audit::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        promotion_id: Set(promotion_id),
        actor_id: Set(actor_id),
        action: Set(action.to_owned()),
        detail: Set(detail),
        created_at: Set(now),
    };
    audit::Entity::insert(row)
        .exec_without_returning(connection)
        .await?;
    Ok(())
}
