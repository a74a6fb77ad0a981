//! promo.promotion.v1.SelectionService: the generator's API. Selection is served from the
//! in-memory snapshot; impressions go to the batched writer; usage is charged in one transaction.

use std::sync::Arc;

use kernel::clock::to_micros;
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::promotion::v1 as pb;
use proto::promotion::v1::selection_service_server::{SelectionService, SelectionServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::DOMAIN;
use crate::core::{ImpressionEvent, PromotionCore};
use crate::domain::{Decision, normalize_type, types_in_prompt};

pub const MAX_PROMPT_CHARS: usize = 4_000;
pub const MAX_TYPES_PER_CALL: usize = 32;
pub const MAX_DECISIONS_PER_REPORT: usize = 1_000;

pub struct SelectionGrpc {
    core: Arc<PromotionCore>,
}

pub fn grpc(core: Arc<PromotionCore>) -> SelectionServiceServer<SelectionGrpc> {
    SelectionServiceServer::new(SelectionGrpc { core })
}

#[tonic::async_trait]
impl SelectionService for SelectionGrpc {
    async fn select_materials(
        &self,
        request: Request<pb::SelectMaterialsRequest>,
    ) -> Result<Response<pb::SelectMaterialsResponse>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        if body.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "prompt",
                format!("must be at most {MAX_PROMPT_CHARS} characters"),
            )
            .into());
        }
        if body.material_types.len() > MAX_TYPES_PER_CALL {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "material_types",
                format!("must hold at most {MAX_TYPES_PER_CALL} types"),
            )
            .into());
        }
        if body.material_types.is_empty() && body.prompt.trim().is_empty() {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "material_types",
                "give material types or a prompt",
            )
            .into());
        }
        let project_type = if body.project_type.is_empty() {
            String::new()
        } else {
            normalize_type(&body.project_type).ok_or_else(|| {
                ServiceError::invalid_field(DOMAIN, "project_type", "is not a valid project type")
            })?
        };
        let snapshot = self.core.snapshots().get(principal.workspace_id).await?;
        let types = if body.material_types.is_empty() {
            types_in_prompt(&body.prompt, &snapshot.known_types)
        } else {
            let mut types = Vec::with_capacity(body.material_types.len());
            for (index, raw) in body.material_types.iter().enumerate() {
                let known = normalize_type(raw)
                    .filter(|normalized| snapshot.known_types.contains(normalized));
                types.push(known.ok_or_else(|| {
                    ServiceError::invalid_field(
                        DOMAIN,
                        &format!("material_types[{index}]"),
                        "is not a known material type",
                    )
                })?);
            }
            types
        };
        let now = to_micros(self.core.context.clock.now());
        let mut selections = Vec::with_capacity(types.len());
        for material_type in types {
            let snapshots = self.core.snapshots();
            let Some(pick) = self.core.with_rng(|rng| {
                snapshot.select_excluding(rng, &material_type, &project_type, |id| {
                    snapshots.is_excluded(id)
                })
            }) else {
                continue;
            };
            let decision = Decision {
                id: Uuid::new_v4(),
                workspace_id: principal.workspace_id,
                material_id: pick.material_id,
                promotion_id: pick.promotion_id.unwrap_or_default(),
                issued_at: now,
            };
            if let Some(promotion_id) = pick.promotion_id {
                self.core.record_impression(ImpressionEvent {
                    workspace_id: principal.workspace_id,
                    promotion_id,
                    decision_id: decision.id,
                    at: now,
                });
            }
            selections.push(pb::Selection {
                material_type,
                material_id: pick.material_id.to_string(),
                material_name: pick.material_name.to_string(),
                promoted: pick.promotion_id.is_some(),
                promotion_id: pick
                    .promotion_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                decision_id: self.core.signer().encode(&decision),
            });
        }
        Ok(Response::new(pb::SelectMaterialsResponse { selections }))
    }

    async fn report_usage(
        &self,
        request: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            principal.workspace_id,
            &body.request_id,
            "ReportUsage",
            body,
        )?;
        if body.decision_ids.is_empty() || body.decision_ids.len() > MAX_DECISIONS_PER_REPORT {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "decision_ids",
                format!("must hold 1 to {MAX_DECISIONS_PER_REPORT} decision ids"),
            )
            .into());
        }
        let context = &self.core.context;
        let settings =
            match kernel::workspace::get(context.db.connection(), principal.workspace_id).await? {
                Some(row) => kernel::workspace::settings_of(&row)?,
                None => kernel::workspace::WorkspaceSettings::default(),
            };
        let db = &context.db;
        let mut exhausted = Vec::new();
        let response = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                if let Some(stored) = key
                    .begin::<_, pb::ReportUsageResponse>(&*txn, context.clock.now())
                    .await?
                {
                    return Ok((stored, Vec::new()));
                }
                let (rejected, now_exhausted) = self
                    .core
                    .report_usage(
                        &txn,
                        principal.workspace_id,
                        &body.decision_ids,
                        settings.promotion.cost_per_use,
                        settings.promotion.usage_window_seconds,
                    )
                    .await?;
                let response = pb::ReportUsageResponse {
                    accepted: (body.decision_ids.len() - rejected.len()) as i32,
                    rejected_decision_ids: rejected,
                };
                key.finish(&*txn, &response).await?;
                txn.commit().await?;
                Ok((response, now_exhausted))
            })
            .await
            .map(|(response, now_exhausted)| {
                exhausted = now_exhausted;
                response
            })?;
        if !exhausted.is_empty() {
            for promotion_id in exhausted {
                self.core.snapshots().exclude(promotion_id);
            }
            self.core.snapshots().invalidate(principal.workspace_id);
        }
        Ok(Response::new(response))
    }
}
