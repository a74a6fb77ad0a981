//! The workspace's materials taxonomy: its types with their synonyms, and the marker that says it
//! has been stored (until then a workspace uses the defaults).

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{insert_all, json_list};

pub mod material_type {
    use sea_orm::entity::prelude::*;

    /// A material type of a workspace's taxonomy, with the synonyms that name it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_type")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// JSON array of normalised synonyms.
        pub synonyms: String,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod taxonomy_seed {
    use sea_orm::entity::prelude::*;

    /// Marks a workspace whose taxonomy is stored: until then it uses the defaults.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "promo_taxonomy")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        pub seeded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Whether the workspace's taxonomy is stored (it has been changed at least once).
pub async fn taxonomy_seeded<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<bool, ServiceError> {
    Ok(taxonomy_seed::Entity::find_by_id(workspace_id)
        .one(connection)
        .await?
        .is_some())
}

/// The workspace's stored taxonomy, or the defaults when it has never been changed.
pub async fn load_taxonomy<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<crate::taxonomy::Taxonomy, ServiceError> {
    if !taxonomy_seeded(connection, workspace_id).await? {
        return Ok(crate::taxonomy::Taxonomy::defaults());
    }
    let rows = material_type::Entity::find()
        .filter(material_type::Column::WorkspaceId.eq(workspace_id))
        .all(connection)
        .await?;
    let mut types = Vec::with_capacity(rows.len());
    for row in rows {
        let synonyms = row.synonym_list()?;
        types.push((row.name, synonyms));
    }
    Ok(crate::taxonomy::Taxonomy::from_types(types))
}

/// Stores the default taxonomy for a workspace that has none stored yet; call before changing it.
pub async fn seed_taxonomy<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    now: i64,
) -> Result<(), ServiceError> {
    let marker = taxonomy_seed::ActiveModel {
        workspace_id: Set(workspace_id),
        seeded_at: Set(now),
    };
    let inserted = taxonomy_seed::Entity::insert(marker)
        .on_conflict(
            OnConflict::column(taxonomy_seed::Column::WorkspaceId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    if inserted == 0 {
        return Ok(());
    }
    let rows: Vec<material_type::ActiveModel> = crate::taxonomy::Taxonomy::defaults()
        .types()
        .iter()
        .map(|(name, synonyms)| material_type::ActiveModel {
            workspace_id: Set(workspace_id),
            name: Set(name.clone()),
            synonyms: Set(json_list(synonyms)),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    insert_all(connection, rows).await
}

/// Creates or replaces a material type with its synonyms (the taxonomy must be seeded).
pub async fn save_type<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    name: &str,
    synonyms: &[String],
    now: i64,
) -> Result<material_type::Model, ServiceError> {
    let existing = material_type::Entity::find_by_id((workspace_id, name.to_owned()))
        .one(connection)
        .await?;
    let row = material_type::Model {
        workspace_id,
        name: name.to_owned(),
        synonyms: json_list(synonyms),
        created_at: existing.as_ref().map_or(now, |row| row.created_at),
        updated_at: now,
    };
    // Every column Set: an ActiveModel made from a Model holds Unchanged values, which an
    // update would skip.
    let active = material_type::ActiveModel {
        workspace_id: Set(row.workspace_id),
        name: Set(row.name.clone()),
        synonyms: Set(row.synonyms.clone()),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    };
    if existing.is_some() {
        material_type::Entity::update(active)
            .exec(connection)
            .await?;
    } else {
        insert_all(connection, vec![active]).await?;
    }
    Ok(row)
}

/// A page of the workspace's material types by name, after `after`.
pub async fn list_types<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<material_type::Model>, ServiceError> {
    let mut query = material_type::Entity::find()
        .filter(material_type::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(material_type::Column::Name)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(material_type::Column::Name.gt(after));
    }
    Ok(query.all(connection).await?)
}
