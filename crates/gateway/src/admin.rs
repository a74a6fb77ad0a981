//! promo.admin.v1.WorkspaceService: workspaces, their modules and their typed settings.

use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::error::ServiceError;
use kernel::pagination::{PageToken, page_size};
use kernel::workspace::{self, DOMAIN, Fraction, WorkspaceSettings};
use kernel::{Context, IdempotencyKey, Principal};
use proto::admin::v1 as pb;
use proto::admin::v1::workspace_service_server::{WorkspaceService, WorkspaceServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::directory::WorkspaceDirectory;

pub struct AdminService {
    context: Context,
    /// Told when modules change so this replica enforces the change at once.
    directory: Arc<WorkspaceDirectory>,
    /// Told when settings change so selection uses them at once (other replicas within seconds).
    promotions: Arc<promotion_core::PromotionCore>,
}

pub fn grpc(
    context: Context,
    directory: Arc<WorkspaceDirectory>,
    promotions: Arc<promotion_core::PromotionCore>,
) -> WorkspaceServiceServer<AdminService> {
    WorkspaceServiceServer::new(AdminService {
        context,
        directory,
        promotions,
    })
}

const MAX_DISPLAY_NAME_CHARS: usize = 200;

fn workspace_to_proto(row: &workspace::entity::Model) -> pb::Workspace {
    pb::Workspace {
        id: row.id.to_string(),
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        modules: workspace::modules_of(row)
            .iter()
            .map(|module| module.as_str().to_owned())
            .collect(),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    }
}

fn settings_to_proto(row: &workspace::entity::Model) -> Result<pb::Settings, ServiceError> {
    let settings = workspace::settings_of(row)?;
    let promotion = &settings.promotion;
    Ok(pb::Settings {
        workspace_id: row.id.to_string(),
        time_zone: settings.time_zone.clone(),
        promotion: Some(pb::PromotionSettings {
            selection_probability: Some(pb::Fraction {
                numerator: promotion.selection_probability.numerator,
                denominator: promotion.selection_probability.denominator,
            }),
            cost_per_use: promotion.cost_per_use,
            cost_per_impression: promotion.cost_per_impression,
            usage_window_seconds: promotion.usage_window_seconds,
        }),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    })
}

fn workspace_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "WORKSPACE_NOT_FOUND", "workspace")
}

/// Applies the masked fields of `update` to `current`; unknown paths and missing values are
/// field violations.
fn apply_mask(
    current: &WorkspaceSettings,
    update: &pb::Settings,
    paths: &[String],
) -> Result<WorkspaceSettings, ServiceError> {
    if paths.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "update_mask",
            "is required: name the settings to change, or \"*\" for all",
        ));
    }
    let mut next = current.clone();
    let missing_promotion =
        || ServiceError::invalid_field(DOMAIN, "settings.promotion", "is required by update_mask");
    for (index, path) in paths.iter().enumerate() {
        match path.as_str() {
            "time_zone" => next.time_zone = update.time_zone.clone(),
            "*" | "promotion" => {
                let promotion = update.promotion.as_ref().ok_or_else(missing_promotion)?;
                if path == "*" {
                    next.time_zone = update.time_zone.clone();
                }
                let probability = promotion.selection_probability.unwrap_or_default();
                next.promotion.selection_probability = Fraction {
                    numerator: probability.numerator,
                    denominator: probability.denominator,
                };
                next.promotion.cost_per_use = promotion.cost_per_use;
                next.promotion.cost_per_impression = promotion.cost_per_impression;
                next.promotion.usage_window_seconds = promotion.usage_window_seconds;
            }
            "promotion.selection_probability" => {
                let probability = update
                    .promotion
                    .as_ref()
                    .and_then(|promotion| promotion.selection_probability)
                    .ok_or_else(|| {
                        ServiceError::invalid_field(
                            DOMAIN,
                            "settings.promotion.selection_probability",
                            "is required by update_mask",
                        )
                    })?;
                next.promotion.selection_probability = Fraction {
                    numerator: probability.numerator,
                    denominator: probability.denominator,
                };
            }
            "promotion.cost_per_use" => {
                next.promotion.cost_per_use = update
                    .promotion
                    .as_ref()
                    .ok_or_else(missing_promotion)?
                    .cost_per_use;
            }
            "promotion.cost_per_impression" => {
                next.promotion.cost_per_impression = update
                    .promotion
                    .as_ref()
                    .ok_or_else(missing_promotion)?
                    .cost_per_impression;
            }
            "promotion.usage_window_seconds" => {
                next.promotion.usage_window_seconds = update
                    .promotion
                    .as_ref()
                    .ok_or_else(missing_promotion)?
                    .usage_window_seconds;
            }
            other => {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    &format!("update_mask.paths[{index}]"),
                    format!("unknown settings path {other:?}"),
                ));
            }
        }
    }
    Ok(next)
}

impl AdminService {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.context.clock.now()
    }
}

#[tonic::async_trait]
impl WorkspaceService for AdminService {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            principal.workspace_id,
            &body.request_id,
            "CreateWorkspace",
            body,
        )?;
        workspace::validate_name(&body.name)?;
        kernel::ids::check_text(
            DOMAIN,
            "display_name",
            &body.display_name,
            MAX_DISPLAY_NAME_CHARS,
            true,
        )?;
        let modules = workspace::parse_modules("modules", &body.modules, true)?;
        let db = &self.context.db;
        let response = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                if let Some(stored) = key.begin::<_, pb::Workspace>(&*txn, self.now()).await? {
                    return Ok(stored);
                }
                let row =
                    workspace::create(&*txn, &body.name, &body.display_name, &modules, self.now())
                        .await?;
                let response = workspace_to_proto(&row);
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                tracing::info!(workspace_id = %row.id, name = %row.name, "workspace created");
                Ok(response)
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let principal = Principal::of(&request)?;
        let workspace_id = principal.target_workspace(DOMAIN, "id", &request.get_ref().id)?;
        let row = workspace::get(self.context.db.connection(), workspace_id)
            .await?
            .ok_or_else(workspace_not_found)?;
        Ok(Response::new(workspace_to_proto(&row)))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&["workspaces"]);
        let after = PageToken::decode(DOMAIN, &digest, &body.page_token)?;
        let mut rows =
            workspace::list(self.context.db.connection(), after.as_deref(), limit + 1).await?;
        let next_page_token =
            kernel::pagination::finish_page(&mut rows, limit, &digest, |row| row.name.clone());
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: rows.iter().map(workspace_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn set_modules(
        &self,
        request: Request<pb::SetModulesRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            principal.workspace_id,
            &body.request_id,
            "SetModules",
            body,
        )?;
        let workspace_id = kernel::ids::parse_uuid(DOMAIN, "workspace_id", &body.workspace_id)?;
        let modules = workspace::parse_modules("modules", &body.modules, false)?;
        let db = &self.context.db;
        let response = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                if let Some(stored) = key.begin::<_, pb::Workspace>(&*txn, self.now()).await? {
                    return Ok(stored);
                }
                let row = workspace::set_modules(&*txn, workspace_id, &modules, self.now())
                    .await?
                    .ok_or_else(workspace_not_found)?;
                let response = workspace_to_proto(&row);
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                Ok(response)
            })
            .await?;
        self.directory.invalidate(workspace_id);
        tracing::info!(workspace_id = %workspace_id, modules = ?response.modules, "modules set");
        Ok(Response::new(response))
    }

    async fn get_settings(
        &self,
        request: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let principal = Principal::of(&request)?;
        let workspace_id =
            principal.target_workspace(DOMAIN, "workspace_id", &request.get_ref().workspace_id)?;
        let row = workspace::get(self.context.db.connection(), workspace_id)
            .await?
            .ok_or_else(workspace_not_found)?;
        Ok(Response::new(settings_to_proto(&row)?))
    }

    async fn update_settings(
        &self,
        request: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            principal.workspace_id,
            &body.request_id,
            "UpdateSettings",
            body,
        )?;
        let workspace_id: Uuid =
            principal.target_workspace(DOMAIN, "workspace_id", &body.workspace_id)?;
        let update = body
            .settings
            .as_ref()
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "settings", "is required"))?;
        let paths = body
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.clone())
            .unwrap_or_default();
        let db = &self.context.db;
        let response = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                if let Some(stored) = key.begin::<_, pb::Settings>(&*txn, self.now()).await? {
                    return Ok(stored);
                }
                let row = workspace::get(&*txn, workspace_id)
                    .await?
                    .ok_or_else(workspace_not_found)?;
                let next = apply_mask(&workspace::settings_of(&row)?, update, &paths)?;
                let row = workspace::update_settings(&*txn, workspace_id, &next, self.now())
                    .await?
                    .ok_or_else(workspace_not_found)?;
                // Selection settings live in every replica's snapshot: announce the change.
                promotion_core::store::bump_version(&*txn, workspace_id).await?;
                let response = settings_to_proto(&row)?;
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                Ok(response)
            })
            .await?;
        tracing::info!(workspace_id = %workspace_id, paths = ?paths, "settings updated");
        self.promotions.snapshots().invalidate(workspace_id);
        Ok(Response::new(response))
    }
}
