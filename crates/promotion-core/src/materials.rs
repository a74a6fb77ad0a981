//! promo.promotion.v1.MaterialService: the materials knowledge base.

use std::sync::Arc;

use kernel::clock::{micros_to_timestamp, to_micros};
use kernel::ids::{parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, Role, ServiceError};
use proto::promotion::v1 as pb;
use proto::promotion::v1::material_service_server::{MaterialService, MaterialServiceServer};
use sea_orm::EntityTrait;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::DOMAIN;
use crate::core::PromotionCore;
use crate::domain::normalize_type;
use crate::store::{self, material};

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

pub fn material_to_proto(row: &material::Model) -> pb::Material {
    pb::Material {
        id: row.id.to_string(),
        name: row.name.clone(),
        material_type: row.material_type.clone(),
        tags: store::parse_list(&row.tags),
        owner_id: row
            .owner_id
            .map(|owner| owner.to_string())
            .unwrap_or_default(),
        properties: store::parse_map(&row.properties),
        create_time: Some(micros_to_timestamp(row.created_at)),
    }
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
) -> Result<material::Model, Vec<(String, String)>> {
    let mut violations = Vec::new();
    let mut violate = |field: &str, description: &str| {
        violations.push((format!("{prefix}{field}"), description.to_owned()))
    };
    let name = material.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        violate("name", "must be 1 to 200 printable characters");
    }
    let material_type = normalize_type(&material.material_type);
    if material_type.is_none() {
        violate(
            "material_type",
            "must be letters, digits and spaces, at most 64 characters",
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
    let requested_owner = match Uuid::try_parse(&material.owner_id) {
        _ if material.owner_id.is_empty() => None,
        Ok(owner) if material.owner_id.len() == 36 && !owner.is_nil() => Some(owner),
        _ => {
            violate("owner_id", "must be a UUID");
            None
        }
    };
    let manages_catalogue = principal.has_any_role(&[Role::Admin, Role::Ops]);
    let owner_id = if manages_catalogue {
        requested_owner
    } else {
        if requested_owner.is_some_and(|owner| owner != principal.subject) {
            violate("owner_id", "a factory can only create its own materials");
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

fn violations_error(violations: Vec<(String, String)>) -> ServiceError {
    let mut violations = violations.into_iter();
    let Some((field, description)) = violations.next() else {
        return ServiceError::invalid_field(DOMAIN, "materials", "is invalid");
    };
    violations.take(99).fold(
        ServiceError::invalid_field(DOMAIN, &field, description),
        |error, (field, description)| error.with_field(&field, description),
    )
}

impl MaterialGrpc {
    /// Inserts validated rows with the request's idempotency record, in one transaction.
    async fn insert(
        &self,
        key: &IdempotencyKey,
        workspace_id: Uuid,
        rows: &[material::Model],
    ) -> Result<pb::ImportMaterialsResponse, ServiceError> {
        let context = &self.core.context;
        let db = &context.db;
        let response = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                if let Some(stored) = key
                    .begin::<_, pb::ImportMaterialsResponse>(&*txn, context.clock.now())
                    .await?
                {
                    return Ok(stored);
                }
                for chunk in rows.chunks(500) {
                    let active: Vec<material::ActiveModel> = chunk
                        .iter()
                        .cloned()
                        .map(material::ActiveModel::from)
                        .collect();
                    material::Entity::insert_many(active)
                        .exec_without_returning(&*txn)
                        .await?;
                }
                store::bump_version(&*txn, workspace_id).await?;
                let response = pb::ImportMaterialsResponse {
                    materials: rows.iter().map(material_to_proto).collect(),
                };
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                Ok(response)
            })
            .await?;
        self.core.snapshots.invalidate(workspace_id);
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
        let key = IdempotencyKey::new(
            DOMAIN,
            principal.workspace_id,
            &body.request_id,
            "CreateMaterial",
            body,
        )?;
        let material = body
            .material
            .as_ref()
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "material", "is required"))?;
        let now = to_micros(self.core.context.clock.now());
        let row =
            validate_material(&principal, "material.", material, now).map_err(violations_error)?;
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
            principal.workspace_id,
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
        let mut violations = Vec::new();
        for (index, material) in body.materials.iter().enumerate() {
            match validate_material(&principal, &format!("materials[{index}]."), material, now) {
                Ok(row) => rows.push(row),
                Err(row_violations) => violations.extend(row_violations),
            }
        }
        if !violations.is_empty() {
            return Err(violations_error(violations).into());
        }
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
        Ok(Response::new(material_to_proto(&row)))
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
        Some(normalize_type(material_type).ok_or_else(|| {
            ServiceError::invalid_field(DOMAIN, "material_type", "is not a valid type")
        })?)
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
    Ok((rows.iter().map(material_to_proto).collect(), next))
}
