//! promo.promotion.v1.SelectionService: the generator's API. Selection is served from the
//! in-memory snapshot; impressions go to the batched writer; usage is charged in one transaction.

use std::sync::{Arc, Mutex};

use kernel::ids::parse_uuid;
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::promotion::v1 as pb;
use proto::promotion::v1::selection_service_server::{SelectionService, SelectionServiceServer};
use tonic::{Request, Response, Status};

use crate::DOMAIN;
use crate::domain::Decision;
use crate::impressions::ImpressionEvent;
use crate::state::PromotionCore;
use crate::taxonomy::normalize_phrase;

pub const MAX_PROMPT_CHARS: usize = 4_000;
pub const MAX_TYPES_PER_CALL: usize = 32;
pub const MAX_DECISIONS_PER_REPORT: usize = 1_000;

pub struct SelectionGrpc {
    core: Arc<PromotionCore>,
}

pub fn grpc(core: Arc<PromotionCore>) -> SelectionServiceServer<SelectionGrpc> {
    SelectionServiceServer::new(SelectionGrpc { core })
}

fn rejection_to_proto(rejection: crate::charging::Rejection) -> pb::UsageRejection {
    use crate::charging::Rejection;
    match rejection {
        Rejection::UnknownDecision => pb::UsageRejection::UnknownDecision,
        Rejection::Expired => pb::UsageRejection::Expired,
        Rejection::AlreadyUsed => pb::UsageRejection::AlreadyUsed,
        Rejection::NotPromoted => pb::UsageRejection::NotPromoted,
    }
}

#[tonic::async_trait]
impl SelectionService for SelectionGrpc {
    async fn select_materials(
        &self,
        request: Request<pb::SelectMaterialsRequest>,
    ) -> Result<Response<pb::SelectMaterialsResponse>, Status> {
        let principal = Principal::of(&request)?;
        let workspace_id = principal.workspace_id;
        let body = request.get_ref();
        // The request id is what makes a retry answer the same: its randomness and decision ids
        // are derived from it.
        let request_id = parse_uuid(DOMAIN, "request_id", &body.request_id)?;
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
            normalize_phrase(&body.project_type).ok_or_else(|| {
                ServiceError::invalid_field(
                    DOMAIN,
                    "project_type",
                    "must be letters, digits and spaces, at most 64 characters",
                )
            })?
        };
        let snapshot = self.core.snapshots().get(workspace_id).await?;
        let types = if body.material_types.is_empty() {
            snapshot
                .taxonomy
                .types_in_prompt(&body.prompt, &snapshot.known_types)
        } else {
            let mut types = Vec::with_capacity(body.material_types.len());
            for (index, raw) in body.material_types.iter().enumerate() {
                let known = normalize_phrase(raw)
                    .map(|phrase| snapshot.taxonomy.canonical(&phrase))
                    .filter(|material_type| snapshot.known_types.contains(material_type));
                types.push(known.ok_or_else(|| {
                    ServiceError::invalid_field(
                        DOMAIN,
                        &format!("material_types[{index}]"),
                        format!(
                            "{} is not a material type with materials in this workspace (MaterialService.ListMaterialTypes lists the types)",
                            kernel::ids::echo(raw)
                        ),
                    )
                })?);
            }
            types
        };
        let now = kernel::clock::to_micros(self.core.context.clock.now());
        let signer = self.core.signer();
        let mut rng = signer.selection_rng(workspace_id, request_id, self.core.selection_seed);
        let snapshots = self.core.snapshots();
        let mut selections = Vec::with_capacity(types.len());
        let mut impressions = Vec::new();
        for (index, material_type) in types.into_iter().enumerate() {
            let Some(pick) =
                snapshot.select_excluding(&mut rng, &material_type, &project_type, |id| {
                    snapshots.is_excluded(id)
                })
            else {
                continue;
            };
            let decision = Decision {
                id: signer.decision_id(workspace_id, request_id, index),
                workspace_id,
                material_id: pick.material_id,
                promotion_id: pick.promotion_id.unwrap_or_default(),
            };
            if let Some(promotion_id) = pick.promotion_id {
                impressions.push(ImpressionEvent {
                    workspace_id,
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
                decision_id: signer.encode(&decision),
            });
        }
        self.core.record_impressions(impressions).await?;
        Ok(Response::new(pb::SelectMaterialsResponse { selections }))
    }

    async fn report_usage(
        &self,
        request: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let workspace_id = principal.workspace_id;
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "ReportUsage", body)?;
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
            crate::store::promotion_settings(context.db.connection(), workspace_id).await?;
        // The last attempt that committed says which promotions ran out.
        let exhausted = Mutex::new(Vec::new());
        let (settings, exhausted_ref) = (&settings, &exhausted);
        let response = context
            .idempotent(&key, |txn| async move {
                let report = self
                    .core
                    .report_usage(&txn, workspace_id, &body.decision_ids, settings)
                    .await?;
                if let Ok(mut exhausted) = exhausted_ref.lock() {
                    *exhausted = report.exhausted;
                }
                let response = pb::ReportUsageResponse {
                    accepted: report.accepted as i32,
                    rejected_decision_ids: report
                        .rejected
                        .iter()
                        .map(|(id, _)| id.clone())
                        .collect(),
                    rejections: report
                        .rejected
                        .into_iter()
                        .map(|(decision_id, reason)| pb::Rejection {
                            decision_id,
                            reason: rejection_to_proto(reason) as i32,
                        })
                        .collect(),
                };
                Ok((txn, response))
            })
            .await?;
        let exhausted = exhausted.into_inner().unwrap_or_default();
        if !exhausted.is_empty() {
            for promotion_id in exhausted {
                self.core.snapshots().exclude(promotion_id);
            }
            self.core.snapshots().invalidate(workspace_id);
        }
        Ok(Response::new(response))
    }
}
