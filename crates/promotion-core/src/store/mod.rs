//! sea-orm entities and queries for this crate's tables (`promo_*`).

use std::collections::BTreeMap;

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

mod entity;
pub use entity::{audit, impression, material, promotion, usage};

pub fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

impl material::Model {
    pub fn tag_list(&self) -> Result<Vec<String>, ServiceError> {
        parse_list("promo_material", self.key(), "tags", &self.tags)
    }

    pub fn property_map(&self) -> Result<BTreeMap<String, String>, ServiceError> {
        parse_map("promo_material", self.key(), "properties", &self.properties)
    }

    fn key(&self) -> String {
        format!("({}, {})", self.workspace_id, self.id)
    }
}

impl promotion::Model {
    pub fn project_type_list(&self) -> Result<Vec<String>, ServiceError> {
        parse_list(
            "promo_promotion",
            format!("({}, {})", self.workspace_id, self.id),
            "project_types",
            &self.project_types,
        )
    }
}

impl material_type::Model {
    pub fn synonym_list(&self) -> Result<Vec<String>, ServiceError> {
        parse_list(
            "promo_type",
            format!("({}, {})", self.workspace_id, self.name),
            "synonyms",
            &self.synonyms,
        )
    }
}

/// A JSON list column of `table` row `row` (an error naming them when it does not parse).
pub fn parse_list(
    table: &str,
    row: impl std::fmt::Display,
    column: &str,
    text: &str,
) -> Result<Vec<String>, ServiceError> {
    kernel::db::json_column(table, row, column, text)
}

pub fn json_map(values: &BTreeMap<String, String>) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned())
}

/// A JSON object column of `table` row `row` (an error naming them when it does not parse).
pub fn parse_map(
    table: &str,
    row: impl std::fmt::Display,
    column: &str,
    text: &str,
) -> Result<BTreeMap<String, String>, ServiceError> {
    kernel::db::json_column(table, row, column, text)
}

/// Tells every replica's snapshot refresher that this workspace's selection inputs changed.
pub async fn bump_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<(), ServiceError> {
    kernel::db::bump_workspace_version(connection, "promo_version", workspace_id).await
}

pub async fn current_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<i64, ServiceError> {
    kernel::db::workspace_version(connection, "promo_version", workspace_id).await
}

pub async fn get_material<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<material::Model>, ServiceError> {
    Ok(material::Entity::find_by_id((workspace_id, id))
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
    Ok(promotion::Entity::find_by_id((workspace_id, id))
        .one(connection)
        .await?)
}

/// The promotion, locked for update on PostgreSQL (SQLite write transactions are exclusive).
pub async fn lock_promotion<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<promotion::Model>, ServiceError> {
    let mut query = promotion::Entity::find_by_id((workspace_id, id));
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

/// A settings section of a workspace (its defaults for one that does not exist).
pub async fn workspace_section<S: kernel::settings::Section, C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<S, ServiceError> {
    kernel::settings::of_workspace(connection, workspace_id).await
}

/// The promotion settings of a workspace (defaults for one that does not exist).
pub async fn promotion_settings<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<crate::settings::PromotionSettings, ServiceError> {
    workspace_section(connection, workspace_id).await
}

/// Stores a new promotion.
pub async fn insert_promotion<C: ConnectionTrait>(
    connection: &C,
    row: &promotion::Model,
) -> Result<(), ServiceError> {
    promotion::Entity::insert(promotion::ActiveModel::from(row.clone()))
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

/// Changes the fields `changes` sets on one promotion (its key is taken from `workspace_id` and
/// `id`) and returns the row as stored.
pub async fn update_promotion<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    mut changes: promotion::ActiveModel,
) -> Result<promotion::Model, ServiceError> {
    changes.workspace_id = Set(workspace_id);
    changes.id = Set(id);
    Ok(promotion::Entity::update(changes).exec(connection).await?)
}

/// One page of `(id, name, type)` of a workspace's materials in id order, after `after`.
pub async fn material_page<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<(Uuid, String, String)>, ServiceError> {
    let mut query = material::Entity::find()
        .select_only()
        .columns([
            material::Column::Id,
            material::Column::Name,
            material::Column::MaterialType,
        ])
        .filter(material::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(material::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(material::Column::Id.gt(after));
    }
    Ok(query.into_tuple().all(connection).await?)
}

/// Every promotion of a workspace stored as PENDING or ACTIVE (the ones selection may serve).
pub async fn open_promotions<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<Vec<promotion::Model>, ServiceError> {
    use crate::domain::Status;
    Ok(promotion::Entity::find()
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .filter(promotion::Column::Status.is_in([Status::Pending as i32, Status::Active as i32]))
        .all(connection)
        .await?)
}

/// What the promotions list may filter on: the caller's own (a factory) or everyone's, one
/// material, after an id.
pub struct PromotionFilter {
    pub factory_id: Option<Uuid>,
    pub material_id: Option<Uuid>,
    pub after: Option<Uuid>,
}

/// Promotions of a workspace in id order, filtered, up to `limit`.
pub async fn list_promotions<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    filter: &PromotionFilter,
    limit: u64,
) -> Result<Vec<promotion::Model>, ServiceError> {
    let mut query = promotion::Entity::find()
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(promotion::Column::Id)
        .limit(limit);
    if let Some(factory_id) = filter.factory_id {
        query = query.filter(promotion::Column::FactoryId.eq(factory_id));
    }
    if let Some(material_id) = filter.material_id {
        query = query.filter(promotion::Column::MaterialId.eq(material_id));
    }
    if let Some(after) = filter.after {
        query = query.filter(promotion::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// Every promotion of one factory.
pub async fn factory_promotions<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    factory_id: Uuid,
) -> Result<Vec<promotion::Model>, ServiceError> {
    Ok(promotion::Entity::find()
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .filter(promotion::Column::FactoryId.eq(factory_id))
        .all(connection)
        .await?)
}

/// A promotion's audit entries in id order after `after`, up to `limit`.
pub async fn list_audit<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    promotion_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<audit::Model>, ServiceError> {
    let mut query = audit::Entity::find()
        .filter(audit::Column::WorkspaceId.eq(workspace_id))
        .filter(audit::Column::PromotionId.eq(promotion_id))
        .order_by_asc(audit::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(audit::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// `(created_at, charge)` of every impression and of every use of the given promotions, for
/// daily series.
pub async fn charge_times<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    promotion_ids: &[Uuid],
) -> Result<(Vec<(i64, i64)>, Vec<(i64, i64)>), ServiceError> {
    let impressions: Vec<(i64, i64)> = impression::Entity::find()
        .select_only()
        .columns([impression::Column::CreatedAt, impression::Column::Charge])
        .filter(impression::Column::WorkspaceId.eq(workspace_id))
        .filter(impression::Column::PromotionId.is_in(promotion_ids.iter().copied()))
        .into_tuple()
        .all(connection)
        .await?;
    let uses: Vec<(i64, i64)> = usage::Entity::find()
        .select_only()
        .columns([usage::Column::CreatedAt, usage::Column::Charge])
        .filter(usage::Column::WorkspaceId.eq(workspace_id))
        .filter(usage::Column::PromotionId.is_in(promotion_ids.iter().copied()))
        .into_tuple()
        .all(connection)
        .await?;
    Ok((impressions, uses))
}

/// Adds to a promotion's counters in one statement.
pub async fn add_to_counters<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    promotion_id: Uuid,
    impressions: i64,
    uses: i64,
    spent: i64,
    now: i64,
) -> Result<(), ServiceError> {
    promotion::Entity::update_many()
        .col_expr(
            promotion::Column::ImpressionCount,
            Expr::col(promotion::Column::ImpressionCount).add(impressions),
        )
        .col_expr(
            promotion::Column::UsageCount,
            Expr::col(promotion::Column::UsageCount).add(uses),
        )
        .col_expr(
            promotion::Column::CreditsSpent,
            Expr::col(promotion::Column::CreditsSpent).add(spent),
        )
        .col_expr(promotion::Column::UpdatedAt, Expr::value(now))
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .filter(promotion::Column::Id.eq(promotion_id))
        .exec(connection)
        .await?;
    Ok(())
}

/// Which of `decision_ids` already have an impression recorded.
pub async fn recorded_impressions<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    decision_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, ServiceError> {
    let mut recorded = std::collections::HashSet::new();
    for chunk in decision_ids.chunks(500) {
        let rows: Vec<Uuid> = impression::Entity::find()
            .select_only()
            .column(impression::Column::DecisionId)
            .filter(impression::Column::WorkspaceId.eq(workspace_id))
            .filter(impression::Column::DecisionId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(connection)
            .await?;
        recorded.extend(rows);
    }
    Ok(recorded)
}

pub async fn get_impression<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    decision_id: Uuid,
) -> Result<Option<impression::Model>, ServiceError> {
    Ok(impression::Entity::find_by_id((workspace_id, decision_id))
        .one(connection)
        .await?)
}

pub async fn get_usage<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    decision_id: Uuid,
) -> Result<Option<usage::Model>, ServiceError> {
    Ok(usage::Entity::find_by_id((workspace_id, decision_id))
        .one(connection)
        .await?)
}

/// Inserts rows; a key another transaction inserted meanwhile makes the whole transaction retry
/// (and then see it), which is what keeps impressions and uses exactly-once.
pub async fn insert_all<C, A>(connection: &C, rows: Vec<A>) -> Result<(), ServiceError>
where
    C: ConnectionTrait,
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(500).collect();
        match <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(connection)
            .await
        {
            Ok(_) => {}
            Err(error) if kernel::db::is_unique_violation(&error) => {
                return Err(ServiceError::retryable_conflict(error));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Workspaces with promotions that are not completed.
pub async fn workspaces_with_open_promotions<C: ConnectionTrait>(
    connection: &C,
) -> Result<Vec<Uuid>, ServiceError> {
    Ok(promotion::Entity::find()
        .select_only()
        .column(promotion::Column::WorkspaceId)
        .distinct()
        .filter(promotion::Column::Status.ne(crate::domain::Status::Completed as i32))
        .into_tuple()
        .all(connection)
        .await?)
}

/// Promotions due to complete: not completed and past their end time, in any workspace.
pub async fn ended_promotions<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<(Uuid, Uuid)>, ServiceError> {
    Ok(promotion::Entity::find()
        .select_only()
        .columns([promotion::Column::WorkspaceId, promotion::Column::Id])
        .filter(promotion::Column::Status.ne(crate::domain::Status::Completed as i32))
        .filter(promotion::Column::EndTime.lte(now))
        .order_by_asc(promotion::Column::EndTime)
        .limit(limit)
        .into_tuple()
        .all(connection)
        .await?)
}

/// Running promotions of a workspace whose budget holds less than `threshold`.
pub async fn exhausted_promotions<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    threshold: i64,
    now: i64,
) -> Result<Vec<(Uuid, Uuid)>, ServiceError> {
    use sea_orm::sea_query::Condition;
    Ok(promotion::Entity::find()
        .select_only()
        .columns([promotion::Column::WorkspaceId, promotion::Column::Id])
        .filter(promotion::Column::WorkspaceId.eq(workspace_id))
        .filter(promotion::Column::Status.is_in([
            crate::domain::Status::Pending as i32,
            crate::domain::Status::Active as i32,
        ]))
        .filter(
            Condition::any()
                .add(promotion::Column::StartTime.is_null())
                .add(promotion::Column::StartTime.lte(now)),
        )
        .filter(
            Expr::col(promotion::Column::CreditsAllocated)
                .sub(Expr::col(promotion::Column::CreditsSpent))
                .sub(Expr::col(promotion::Column::CreditsRefunded))
                .lt(threshold),
        )
        .into_tuple()
        .all(connection)
        .await?)
}

mod taxonomy;

pub use taxonomy::*;
