//! promo.admin.v1.WorkspaceService: workspaces, their modules and their typed settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::error::ServiceError;
use kernel::pagination::{PageToken, page_size};
use kernel::workspace::{self, DOMAIN, Fraction, RateLimit, WorkspaceSettings};
use kernel::{Context, IdempotencyKey, Principal, Role};
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
        rate_limits: settings
            .rate_limits
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
            .collect(),
    })
}

/// The settings paths UpdateSettings knows, for messages that list them.
const SETTINGS_PATHS: &str = "time_zone, promotion, promotion.selection_probability, promotion.cost_per_use, promotion.cost_per_impression, promotion.usage_window_seconds, rate_limits, or *";

fn workspace_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "WORKSPACE_NOT_FOUND", "workspace")
}

fn rate_limits_from_proto(update: &pb::Settings) -> BTreeMap<String, RateLimit> {
    update
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
        .collect()
}

/// Applies the masked fields of `update` to `current`; unknown paths and missing values are
/// field violations. Rate limits are part of a workspace's subscription: only a platform-admin
/// may change them.
fn apply_mask(
    principal: &Principal,
    current: &WorkspaceSettings,
    update: &pb::Settings,
    paths: &[String],
) -> Result<WorkspaceSettings, ServiceError> {
    if paths.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "update_mask",
            format!(
                "is required: name the settings to change ({SETTINGS_PATHS}); with grpcurl, \"updateMask\": {{\"paths\": [\"time_zone\"]}}"
            ),
        ));
    }
    let mut next = current.clone();
    let missing_promotion =
        || ServiceError::invalid_field(DOMAIN, "settings.promotion", "is required by update_mask");
    for (index, path) in paths.iter().enumerate() {
        // "*" from anyone else keeps the rate limits as they are, unless it asks to change them.
        let changes_limits = path == "rate_limits"
            || (path == "*" && rate_limits_from_proto(update) != current.rate_limits);
        if changes_limits && !principal.has_role(Role::PlatformAdmin) {
            return Err(ServiceError::permission_denied(
                DOMAIN,
                "RATE_LIMITS_NEED_PLATFORM_ADMIN",
                "a workspace's rate limits are set by a platform-admin; leave rate_limits out of update_mask",
            ));
        }
        match path.as_str() {
            "time_zone" => next.time_zone = update.time_zone.clone(),
            "rate_limits" => {
                next.rate_limits = rate_limits_from_proto(update);
            }
            "*" | "promotion" => {
                let promotion = update.promotion.as_ref().ok_or_else(missing_promotion)?;
                if path == "*" {
                    next.time_zone = update.time_zone.clone();
                    next.rate_limits = rate_limits_from_proto(update);
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
                    format!(
                        "unknown settings path {}; the paths are {SETTINGS_PATHS} (proto field names, in snake_case)",
                        kernel::ids::echo(other)
                    ),
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
            &principal,
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
        let modules = &modules;
        let response = self
            .context
            .idempotent(&key, |txn| async move {
                let row =
                    workspace::create(&*txn, &body.name, &body.display_name, modules, self.now())
                        .await?;
                Ok((txn, workspace_to_proto(&row)))
            })
            .await?;
        tracing::info!(workspace_id = %response.id, name = %response.name, "workspace created");
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
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "SetModules", body)?;
        let workspace_id = kernel::ids::parse_uuid(DOMAIN, "workspace_id", &body.workspace_id)?;
        let modules = &workspace::parse_modules("modules", &body.modules, false)?;
        let response = self
            .context
            .idempotent(&key, |txn| async move {
                let row = workspace::set_modules(&*txn, workspace_id, modules, self.now())
                    .await?
                    .ok_or_else(workspace_not_found)?;
                Ok((txn, workspace_to_proto(&row)))
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
        let key =
            IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "UpdateSettings", body)?;
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
        let (principal, paths_ref) = (&principal, &paths);
        let response = self
            .context
            .idempotent(&key, |txn| async move {
                let row = workspace::get(&*txn, workspace_id)
                    .await?
                    .ok_or_else(workspace_not_found)?;
                let next =
                    apply_mask(principal, &workspace::settings_of(&row)?, update, paths_ref)?;
                let row = workspace::update_settings(&*txn, workspace_id, &next, self.now())
                    .await?
                    .ok_or_else(workspace_not_found)?;
                // Selection settings live in every replica's snapshot: announce the change.
                promotion_core::store::bump_version(&*txn, workspace_id).await?;
                Ok((txn, settings_to_proto(&row)?))
            })
            .await?;
        tracing::info!(workspace_id = %workspace_id, paths = ?paths, "settings updated");
        self.promotions.snapshots().invalidate(workspace_id);
        self.directory.invalidate(workspace_id);
        Ok(Response::new(response))
    }
}
