//! promo.promotion.v1.MaterialService: the materials knowledge base and the workspace's
//! taxonomy of material types.

use std::collections::BTreeSet;
use std::sync::Arc;

use kernel::clock::{micros_to_timestamp, to_micros};
use kernel::ids::{parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, Role, ServiceError, Violations};
use proto::promotion::v1 as pb;
use proto::promotion::v1::material_service_server::{MaterialService, MaterialServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::DOMAIN;
use crate::state::PromotionCore;
use crate::store::{self, material, material_type};
use crate::taxonomy::{MAX_SYNONYMS, Taxonomy, normalize_phrase};

/// Most materials one import may carry.
pub const MAX_IMPORT: usize = 10_000;
const MAX_NAME_CHARS: usize = 200;
const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 32;
const MAX_PROPERTIES: usize = 32;

pub struct MaterialGrpc {
    core: Arc<PromotionCore>,
}

pub fn grpc(core: Arc<PromotionCore>) -> MaterialServiceServer<MaterialGrpc> {
    MaterialServiceServer::new(MaterialGrpc { core })
}

pub fn material_to_proto(row: &material::Model) -> Result<pb::Material, ServiceError> {
    Ok(pb::Material {
        id: row.id.to_string(),
        name: row.name.clone(),
        material_type: row.material_type.clone(),
        tags: row.tag_list()?,
        owner_id: row
            .owner_id
            .map(|owner| owner.to_string())
            .unwrap_or_default(),
        properties: row.property_map()?,
        create_time: Some(micros_to_timestamp(row.created_at)),
    })
}

fn normalize_tag(tag: &str) -> Option<String> {
    let tag = tag.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_CHARS
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then_some(tag)
}

/// Validates one material for `principal`, returning the row to insert or every violation, with
/// field paths under `prefix`.
fn validate_material(
    principal: &Principal,
    prefix: &str,
    material: &pb::Material,
    now: i64,
) -> Result<material::Model, Violations> {
    let mut violations = Violations::under(DOMAIN, prefix);
    let mut violate = |field: &str, description: &str| violations.add(field, description);
    let name = material.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        violate("name", "must be 1 to 200 printable characters");
    }
    // Resolved through the taxonomy inside the transaction that stores the material.
    let material_type = normalize_phrase(&material.material_type);
    if material_type.is_none() {
        violate(
            "material_type",
            "must be letters and digits (any script) and spaces, at most 64 characters",
        );
    }
    let mut tags = Vec::new();
    if material.tags.len() > MAX_TAGS {
        violate("tags", "must hold at most 20 tags");
    }
    for tag in &material.tags {
        match normalize_tag(tag) {
            Some(tag) if !tags.contains(&tag) => tags.push(tag),
            Some(_) => {}
            None => violate("tags", "each tag must be 1 to 32 of a-z, 0-9 and '-'"),
        }
    }
    let properties_ok = material.properties.len() <= MAX_PROPERTIES
        && material.properties.iter().all(|(key, value)| {
            !key.is_empty()
                && key.len() <= 64
                && value.len() <= 256
                && !key.chars().chain(value.chars()).any(char::is_control)
        });
    if !properties_ok {
        violate(
            "properties",
            "at most 32 entries, keys up to 64 and values up to 256 printable characters",
        );
    }
    let requested_owner = violations.optional_uuid("owner_id", &material.owner_id);
    let manages_catalogue = principal.has_any_role(&[Role::Admin, Role::Ops]);
    let owner_id = if manages_catalogue {
        requested_owner
    } else {
        if requested_owner.is_some_and(|owner| owner != principal.subject) {
            violations.add("owner_id", "a factory can only create its own materials");
        }
        Some(principal.subject)
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(material::Model {
        id: Uuid::now_v7(),
        workspace_id: principal.workspace_id,
        name: name.to_owned(),
        material_type: material_type.unwrap_or_default(),
        tags: store::json_list(&tags),
        owner_id,
        properties: store::json_map(&material.properties),
        created_at: now,
    })
}

pub fn material_type_to_proto(
    row: &material_type::Model,
) -> Result<pb::MaterialType, ServiceError> {
    Ok(pb::MaterialType {
        name: row.name.clone(),
        synonyms: row.synonym_list()?,
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    })
}

/// A type and its synonyms, normalised and checked against the rest of the taxonomy.
fn checked_type(
    taxonomy: &Taxonomy,
    requested: Option<&pb::MaterialType>,
    creating: bool,
) -> Result<(String, Vec<String>), ServiceError> {
    let requested = requested
        .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "material_type", "is required"))?;
    let name = normalize_phrase(&requested.name).ok_or_else(|| {
        ServiceError::invalid_field(
            DOMAIN,
            "material_type.name",
            "must be letters and digits (any script) and spaces, at most 64 characters",
        )
    })?;
    if requested.synonyms.len() > MAX_SYNONYMS {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "material_type.synonyms",
            format!("must hold at most {MAX_SYNONYMS} synonyms"),
        ));
    }
    let mut synonyms = BTreeSet::new();
    for (index, synonym) in requested.synonyms.iter().enumerate() {
        let normalized = normalize_phrase(synonym).ok_or_else(|| {
            ServiceError::invalid_field(
                DOMAIN,
                &format!("material_type.synonyms[{index}]"),
                "must be letters and digits (any script) and spaces, at most 64 characters",
            )
        })?;
        synonyms.insert(normalized);
    }
    if creating && taxonomy.has_type(&name) {
        return Err(ServiceError::new(
            kernel::ErrorCode::AlreadyExists,
            DOMAIN,
            "MATERIAL_TYPE_EXISTS",
            format!(
                "the material type {} exists; UpdateMaterialType changes its synonyms",
                kernel::ids::echo(&name)
            ),
        ));
    }
    if !creating && !taxonomy.has_type(&name) {
        return Err(ServiceError::not_found(
            DOMAIN,
            "MATERIAL_TYPE_NOT_FOUND",
            "material type",
        ));
    }
    if let Some(owner) = taxonomy.type_of_synonym(&name) {
        return Err(ServiceError::failed_precondition(
            DOMAIN,
            "NAME_IS_A_SYNONYM",
            format!("material_type:{owner}"),
            format!(
                "{} is a synonym of the type {}; remove it from that type's synonyms first",
                kernel::ids::echo(&name),
                kernel::ids::echo(owner)
            ),
        ));
    }
    for synonym in &synonyms {
        if taxonomy.has_type(synonym) || *synonym == name {
            return Err(ServiceError::failed_precondition(
                DOMAIN,
                "SYNONYM_IS_A_TYPE",
                format!("material_type:{synonym}"),
                format!(
                    "{} is a material type itself and cannot name another",
                    kernel::ids::echo(synonym)
                ),
            ));
        }
        if let Some(owner) = taxonomy.type_of_synonym(synonym)
            && owner != name
        {
            return Err(ServiceError::failed_precondition(
                DOMAIN,
                "SYNONYM_IN_USE",
                format!("material_type:{owner}"),
                format!(
                    "{} already names the type {}; remove it there first",
                    kernel::ids::echo(synonym),
                    kernel::ids::echo(owner)
                ),
            ));
        }
    }
    Ok((name, synonyms.into_iter().collect()))
}

impl MaterialGrpc {
    /// Resolves the rows' types through the taxonomy (adding new types) and inserts them with the
    /// request's idempotency record, in one transaction.
    async fn insert(
        &self,
        key: &IdempotencyKey,
        workspace_id: Uuid,
        rows: &[material::Model],
    ) -> Result<pb::ImportMaterialsResponse, ServiceError> {
        let context = &self.core.context;
        let response = context
            .idempotent(key, |txn| async move {
                let now = to_micros(context.clock.now());
                let taxonomy = store::load_taxonomy(&*txn, workspace_id).await?;
                let mut rows = rows.to_vec();
                let mut new_types = BTreeSet::new();
                for row in &mut rows {
                    row.material_type = taxonomy.canonical(&row.material_type);
                    if !taxonomy.has_type(&row.material_type) {
                        new_types.insert(row.material_type.clone());
                    }
                }
                if !new_types.is_empty() {
                    store::seed_taxonomy(&*txn, workspace_id, now).await?;
                    for name in &new_types {
                        store::save_type(&*txn, workspace_id, name, &[], now).await?;
                    }
                }
                let active: Vec<material::ActiveModel> = rows
                    .iter()
                    .cloned()
                    .map(material::ActiveModel::from)
                    .collect();
                store::insert_all(&*txn, active).await?;
                store::bump_version(&*txn, workspace_id).await?;
                let response = pb::ImportMaterialsResponse {
                    materials: rows
                        .iter()
                        .map(material_to_proto)
                        .collect::<Result<_, _>>()?,
                };
                Ok((txn, response))
            })
            .await?;
        self.core.snapshots.invalidate(workspace_id);
        Ok(response)
    }

    /// Creates (`creating`) or changes a material type, in one transaction.
    async fn save_type(
        &self,
        principal: &Principal,
        request_id: &str,
        method: &'static str,
        requested: Option<&pb::MaterialType>,
        body: &impl prost::Message,
        creating: bool,
    ) -> Result<pb::MaterialType, ServiceError> {
        let key = IdempotencyKey::new(DOMAIN, principal, request_id, method, body)?;
        let workspace_id = principal.workspace_id;
        let context = &self.core.context;
        let response = context
            .idempotent(&key, |txn| async move {
                let now = to_micros(context.clock.now());
                let taxonomy = store::load_taxonomy(&*txn, workspace_id).await?;
                let (name, synonyms) = checked_type(&taxonomy, requested, creating)?;
                store::seed_taxonomy(&*txn, workspace_id, now).await?;
                let row = store::save_type(&*txn, workspace_id, &name, &synonyms, now).await?;
                store::bump_version(&*txn, workspace_id).await?;
                Ok((txn, material_type_to_proto(&row)?))
            })
            .await?;
        self.core.snapshots.invalidate(workspace_id);
        tracing::info!(workspace_id = %workspace_id, material_type = %response.name, creating, "material type saved");
        Ok(response)
    }
}

#[tonic::async_trait]
impl MaterialService for MaterialGrpc {
    async fn create_material(
        &self,
        request: Request<pb::CreateMaterialRequest>,
    ) -> Result<Response<pb::Material>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key =
            IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "CreateMaterial", body)?;
        let material = body
            .material
            .as_ref()
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "material", "is required"))?;
        let now = to_micros(self.core.context.clock.now());
        let row = validate_material(&principal, "material.", material, now)
            .map_err(Violations::into_error)?;
        let mut response = self.insert(&key, principal.workspace_id, &[row]).await?;
        response
            .materials
            .pop()
            .map(Response::new)
            .ok_or_else(|| ServiceError::internal("create_material stored no material").into())
    }

    async fn import_materials(
        &self,
        request: Request<pb::ImportMaterialsRequest>,
    ) -> Result<Response<pb::ImportMaterialsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "ImportMaterials",
            body,
        )?;
        if body.materials.is_empty() || body.materials.len() > MAX_IMPORT {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "materials",
                format!("must hold 1 to {MAX_IMPORT} materials"),
            )
            .into());
        }
        let now = to_micros(self.core.context.clock.now());
        let mut rows = Vec::with_capacity(body.materials.len());
        let mut violations = Violations::new(DOMAIN);
        for (index, material) in body.materials.iter().enumerate() {
            match validate_material(&principal, &format!("materials[{index}]."), material, now) {
                Ok(row) => rows.push(row),
                Err(row_violations) => violations.extend(row_violations),
            }
        }
        violations.finish()?;
        Ok(Response::new(
            self.insert(&key, principal.workspace_id, &rows).await?,
        ))
    }

    async fn get_material(
        &self,
        request: Request<pb::GetMaterialRequest>,
    ) -> Result<Response<pb::Material>, Status> {
        let principal = Principal::of(&request)?;
        let id = parse_uuid(DOMAIN, "id", &request.get_ref().id)?;
        let row = store::get_material(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(|| ServiceError::not_found(DOMAIN, "MATERIAL_NOT_FOUND", "material"))?;
        Ok(Response::new(material_to_proto(&row)?))
    }

    async fn list_materials(
        &self,
        request: Request<pb::ListMaterialsRequest>,
    ) -> Result<Response<pb::ListMaterialsResponse>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let (materials, next_page_token) = list_page(
            &self.core,
            principal.workspace_id,
            &body.material_type,
            &body.owner_id,
            &body.tag,
            body.page_size,
            &body.page_token,
        )
        .await?;
        Ok(Response::new(pb::ListMaterialsResponse {
            materials,
            next_page_token,
        }))
    }

    async fn list_material_types(
        &self,
        request: Request<pb::ListMaterialTypesRequest>,
    ) -> Result<Response<pb::ListMaterialTypesResponse>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&["material_types"]);
        let after = PageToken::decode(DOMAIN, &digest, &body.page_token)?;
        let connection = self.core.context.db.connection();
        let mut types: Vec<pb::MaterialType> =
            if store::taxonomy_seeded(connection, principal.workspace_id).await? {
                store::list_types(
                    connection,
                    principal.workspace_id,
                    after.as_deref(),
                    limit + 1,
                )
                .await?
                .iter()
                .map(material_type_to_proto)
                .collect::<Result<_, _>>()?
            } else {
                Taxonomy::defaults()
                    .types()
                    .iter()
                    .filter(|(name, _)| after.as_deref().is_none_or(|after| name.as_str() > after))
                    .take(limit as usize + 1)
                    .map(|(name, synonyms)| pb::MaterialType {
                        name: name.clone(),
                        synonyms: synonyms.clone(),
                        create_time: None,
                        update_time: None,
                    })
                    .collect()
            };
        let next_page_token =
            kernel::pagination::finish_page(&mut types, limit, &digest, |row| row.name.clone());
        Ok(Response::new(pb::ListMaterialTypesResponse {
            material_types: types,
            next_page_token,
        }))
    }

    async fn create_material_type(
        &self,
        request: Request<pb::CreateMaterialTypeRequest>,
    ) -> Result<Response<pb::MaterialType>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let saved = self
            .save_type(
                &principal,
                &body.request_id,
                "CreateMaterialType",
                body.material_type.as_ref(),
                body,
                true,
            )
            .await?;
        Ok(Response::new(saved))
    }

    async fn update_material_type(
        &self,
        request: Request<pb::UpdateMaterialTypeRequest>,
    ) -> Result<Response<pb::MaterialType>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let saved = self
            .save_type(
                &principal,
                &body.request_id,
                "UpdateMaterialType",
                body.material_type.as_ref(),
                body,
                false,
            )
            .await?;
        Ok(Response::new(saved))
    }
}

/// One page of materials, shared by ListMaterials and ListFactoryMaterials.
pub async fn list_page(
    core: &PromotionCore,
    workspace_id: Uuid,
    material_type: &str,
    owner_id: &str,
    tag: &str,
    requested_size: i32,
    page_token: &str,
) -> Result<(Vec<pb::Material>, String), ServiceError> {
    let limit = page_size(DOMAIN, requested_size)?;
    let material_type = if material_type.is_empty() {
        None
    } else {
        let phrase = normalize_phrase(material_type).ok_or_else(|| {
            ServiceError::invalid_field(DOMAIN, "material_type", "is not a valid type")
        })?;
        let taxonomy = store::load_taxonomy(core.context.db.connection(), workspace_id).await?;
        Some(taxonomy.canonical(&phrase))
    };
    let owner = parse_optional_uuid(DOMAIN, "owner_id", owner_id)?;
    let tag = if tag.is_empty() {
        None
    } else {
        Some(
            normalize_tag(tag)
                .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "tag", "is not a valid tag"))?,
        )
    };
    let digest = PageToken::query_digest(&[
        "materials",
        material_type.as_deref().unwrap_or(""),
        owner_id,
        tag.as_deref().unwrap_or(""),
    ]);
    let after = kernel::pagination::decode_uuid_cursor(DOMAIN, &digest, page_token)?;
    let mut rows = store::list_materials(
        core.context.db.connection(),
        workspace_id,
        material_type.as_deref(),
        owner,
        tag.as_deref(),
        after,
        limit + 1,
    )
    .await?;
    let next = kernel::pagination::finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
    Ok((
        rows.iter()
            .map(material_to_proto)
            .collect::<Result<_, _>>()?,
        next,
    ))
}
