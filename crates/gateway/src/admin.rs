//! promo.admin.v1.WorkspaceService: workspaces, their modules and their typed settings.

use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::error::ServiceError;
use kernel::pagination::{PageToken, page_size};
use kernel::settings::{Registry, Stored};
use kernel::workspace::{self, DOMAIN};
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
    /// Every domain's settings section, and the domains to tell of a change.
    settings: Arc<Registry>,
}

pub fn grpc(
    context: Context,
    directory: Arc<WorkspaceDirectory>,
    settings: Arc<Registry>,
) -> WorkspaceServiceServer<AdminService> {
    WorkspaceServiceServer::new(AdminService {
        context,
        directory,
        settings,
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

fn workspace_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "WORKSPACE_NOT_FOUND", "workspace")
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
        Ok(Response::new(self.settings.compose(&row)?))
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
        let (registry, roles, paths_ref) = (&*self.settings, &principal.roles, &paths);
        // The sections the committed attempt changed (none when the request is a replay).
        let changed = std::sync::Mutex::new(Vec::new());
        let changed_ref = &changed;
        let response = self
            .context
            .idempotent(&key, |txn| async move {
                let row = workspace::get(&*txn, workspace_id)
                    .await?
                    .ok_or_else(workspace_not_found)?;
                let (next, changed) =
                    registry.apply(&Stored::of(&row)?, update, paths_ref, roles)?;
                let row = workspace::update_settings(&*txn, workspace_id, &next, self.now())
                    .await?
                    .ok_or_else(workspace_not_found)?;
                registry.changing(&txn, workspace_id, &changed).await?;
                if let Ok(mut slot) = changed_ref.lock() {
                    *slot = changed;
                }
                Ok((txn, registry.compose(&row)?))
            })
            .await?;
        let changed = changed.into_inner().unwrap_or_default();
        tracing::info!(workspace_id = %workspace_id, paths = ?paths, changed = ?changed, "settings updated");
        self.settings.changed(workspace_id, &changed);
        self.directory.invalidate(workspace_id);
        Ok(Response::new(response))
    }
}
