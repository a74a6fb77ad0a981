//! promo.promotion.v1.PromotionService: factories' promotions, their analytics and audit trail.

use std::collections::BTreeMap;
use std::sync::Arc;

use kernel::clock::{from_micros, micros_to_timestamp, parse_timestamp, to_micros};
use kernel::ids::{parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, Role, ServiceError};
use proto::promotion::v1 as pb;
use proto::promotion::v1::promotion_service_server::{PromotionService, PromotionServiceServer};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::DOMAIN;
use crate::domain::{self, Status};
use crate::lifecycle::{NewPromotion, may_manage, promotion_not_found};
use crate::state::PromotionCore;
use crate::store::{self, promotion};

/// Largest allocation one call may make.
const MAX_CREDITS: i64 = 1_000_000_000_000;
const MAX_PROJECT_TYPES: usize = 20;

pub struct PromotionGrpc {
    core: Arc<PromotionCore>,
}

pub fn grpc(core: Arc<PromotionCore>) -> PromotionServiceServer<PromotionGrpc> {
    PromotionServiceServer::new(PromotionGrpc { core })
}

fn status_to_proto(status: Status) -> pb::PromotionStatus {
    match status {
        Status::Pending => pb::PromotionStatus::Pending,
        Status::Active => pb::PromotionStatus::Active,
        Status::Inactive => pb::PromotionStatus::Inactive,
        Status::Completed => pb::PromotionStatus::Completed,
    }
}

pub fn promotion_to_proto(row: &promotion::Model, now: i64) -> Result<pb::Promotion, ServiceError> {
    let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
    let status = domain::effective_status(stored, row.start_time, row.end_time, now);
    Ok(pb::Promotion {
        id: row.id.to_string(),
        material_id: row.material_id.to_string(),
        factory_id: row.factory_id.to_string(),
        material_type: row.material_type.clone(),
        status: status_to_proto(status) as i32,
        credits_allocated: row.credits_allocated,
        credits_spent: row.credits_spent,
        credits_remaining: row.credits_remaining(),
        impression_count: row.impression_count,
        usage_count: row.usage_count,
        start_time: row.start_time.map(micros_to_timestamp),
        end_time: row.end_time.map(micros_to_timestamp),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
        project_types: row.project_type_list()?,
    })
}

fn check_credits(credits: i64) -> Result<(), ServiceError> {
    if credits <= 0 || credits > MAX_CREDITS {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "credits",
            format!("must be between 1 and {MAX_CREDITS}"),
        ));
    }
    Ok(())
}

/// Impressions, uses and charges per day in the workspace's time zone.
async fn daily_series(
    core: &PromotionCore,
    workspace_id: Uuid,
    promotion_ids: &[Uuid],
) -> Result<Vec<pb::DailyPoint>, ServiceError> {
    let connection = core.context.db.connection();
    let zone = store::workspace_section::<kernel::settings::TimeZone, _>(connection, workspace_id)
        .await?
        .zone();
    let day = |micros: i64| {
        from_micros(micros)
            .with_timezone(&zone)
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut points: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for chunk in promotion_ids.chunks(500) {
        let (impressions, uses) = store::charge_times(connection, workspace_id, chunk).await?;
        for (at, charge) in impressions {
            let point = points.entry(day(at)).or_default();
            point.0 += 1;
            point.2 += charge;
        }
        for (at, charge) in uses {
            let point = points.entry(day(at)).or_default();
            point.1 += 1;
            point.2 += charge;
        }
    }
    Ok(points
        .into_iter()
        .map(|(day, (impressions, uses, credits_spent))| pb::DailyPoint {
            day,
            impressions,
            uses,
            credits_spent,
        })
        .collect())
}

fn usage_rate_bps(uses: i64, impressions: i64) -> i64 {
    if impressions == 0 {
        0
    } else {
        uses.saturating_mul(10_000) / impressions
    }
}

impl PromotionGrpc {
    fn now(&self) -> i64 {
        to_micros(self.core.context.clock.now())
    }

    async fn visible(
        &self,
        principal: &Principal,
        field: &str,
        id: &str,
    ) -> Result<promotion::Model, ServiceError> {
        let id = parse_uuid(DOMAIN, field, id)?;
        store::get_promotion(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .filter(|row| may_manage(principal, row))
        .ok_or_else(promotion_not_found)
    }

    /// Runs a promotion-changing operation in one transaction with its idempotency record, then
    /// rebuilds this replica's selection snapshot so the change is visible at once.
    async fn mutate<F, Fut>(
        &self,
        key: &IdempotencyKey,
        workspace_id: Uuid,
        operation: F,
    ) -> Result<pb::Promotion, ServiceError>
    where
        F: Fn(kernel::WriteTxn) -> Fut,
        Fut: std::future::Future<Output = Result<(kernel::WriteTxn, promotion::Model), ServiceError>>,
    {
        let operation = &operation;
        let response = self
            .core
            .context
            .idempotent(key, |txn| async move {
                let (txn, row) = operation(txn).await?;
                Ok((txn, promotion_to_proto(&row, self.now())?))
            })
            .await?;
        if response.status == pb::PromotionStatus::Completed as i32
            && let Some(promotion_id) = kernel::ids::parse_uuid_text(&response.id)
        {
            self.core.snapshots.exclude(promotion_id);
        }
        self.core.snapshots.invalidate(workspace_id);
        Ok(response)
    }
}

#[tonic::async_trait]
impl PromotionService for PromotionGrpc {
    async fn create_promotion(
        &self,
        request: Request<pb::CreatePromotionRequest>,
    ) -> Result<Response<pb::Promotion>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "CreatePromotion",
            body,
        )?;
        let material_id = parse_uuid(DOMAIN, "material_id", &body.material_id)?;
        check_credits(body.credits)?;
        let start_time = parse_timestamp(DOMAIN, "start_time", body.start_time.as_ref())?;
        let end_time = parse_timestamp(DOMAIN, "end_time", body.end_time.as_ref())?;
        if let Some(end) = end_time {
            if start_time.is_some_and(|start| end <= start) {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "end_time",
                    "must be after start_time",
                )
                .into());
            }
            if end <= self.now() {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "end_time",
                    "must be in the future",
                )
                .into());
            }
        }
        if body.project_types.len() > MAX_PROJECT_TYPES {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "project_types",
                "must hold at most 20 types",
            )
            .into());
        }
        let mut project_types = Vec::new();
        for (index, project_type) in body.project_types.iter().enumerate() {
            let normalized = crate::taxonomy::normalize_phrase(project_type).ok_or_else(|| {
                ServiceError::invalid_field(
                    DOMAIN,
                    &format!("project_types[{index}]"),
                    "is not a valid project type",
                )
            })?;
            if !project_types.contains(&normalized) {
                project_types.push(normalized);
            }
        }
        let new = NewPromotion {
            material_id,
            credits: body.credits,
            start_time,
            end_time,
            project_types,
        };
        let response = self
            .mutate(&key, principal.workspace_id, |txn| {
                let (principal, new) = (&principal, &new);
                async move {
                    let row = self.core.create_promotion(&txn, principal, new).await?;
                    Ok((txn, row))
                }
            })
            .await?;
        tracing::info!(promotion_id = %response.id, credits = body.credits, "promotion created");
        Ok(Response::new(response))
    }

    async fn allocate_credits(
        &self,
        request: Request<pb::AllocateCreditsRequest>,
    ) -> Result<Response<pb::Promotion>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "AllocateCredits",
            body,
        )?;
        let promotion_id = parse_uuid(DOMAIN, "promotion_id", &body.promotion_id)?;
        check_credits(body.credits)?;
        let response = self
            .mutate(&key, principal.workspace_id, |txn| {
                let principal = &principal;
                async move {
                    let row = self
                        .core
                        .allocate(&txn, principal, promotion_id, body.credits)
                        .await?;
                    Ok((txn, row))
                }
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_promotion(
        &self,
        request: Request<pb::GetPromotionRequest>,
    ) -> Result<Response<pb::Promotion>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let row = self.visible(principal, "id", &request.get_ref().id).await?;
        Ok(Response::new(promotion_to_proto(&row, self.now())?))
    }

    async fn list_promotions(
        &self,
        request: Request<pb::ListPromotionsRequest>,
    ) -> Result<Response<pb::ListPromotionsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let material_id = parse_optional_uuid(DOMAIN, "material_id", &body.material_id)?;
        let wanted_status = match pb::PromotionStatus::try_from(body.status) {
            Ok(pb::PromotionStatus::Unspecified) => None,
            Ok(status) => Some(status),
            Err(_) => {
                return Err(
                    ServiceError::invalid_field(DOMAIN, "status", "is not a known status").into(),
                );
            }
        };
        let all = principal.has_any_role(&[Role::Admin, Role::Ops]);
        let digest =
            PageToken::query_digest(&["promotions", &body.material_id, &body.status.to_string()]);
        let after = kernel::pagination::decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let now = self.now();
        let mut promotions = Vec::new();
        let mut cursor = after;
        // Status depends on the clock, so it is filtered here; pages are refilled until full.
        loop {
            let filter = store::PromotionFilter {
                factory_id: (!all).then_some(principal.subject),
                material_id,
                after: cursor,
            };
            let rows = store::list_promotions(
                self.core.context.db.connection(),
                principal.workspace_id,
                &filter,
                limit + 1,
            )
            .await?;
            let exhausted = rows.len() as u64 <= limit;
            for row in rows {
                cursor = Some(row.id);
                let proto = promotion_to_proto(&row, now)?;
                if wanted_status.is_none_or(|status| proto.status == status as i32) {
                    promotions.push(proto);
                    if promotions.len() as u64 > limit {
                        break;
                    }
                }
            }
            if exhausted || promotions.len() as u64 > limit {
                break;
            }
        }
        let next_page_token = if promotions.len() as u64 > limit {
            promotions.truncate(limit as usize);
            promotions
                .last()
                .map(|last| PageToken::encode(&digest, &last.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListPromotionsResponse {
            promotions,
            next_page_token,
        }))
    }

    async fn update_promotion_status(
        &self,
        request: Request<pb::UpdatePromotionStatusRequest>,
    ) -> Result<Response<pb::Promotion>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "UpdatePromotionStatus",
            body,
        )?;
        let promotion_id = parse_uuid(DOMAIN, "promotion_id", &body.promotion_id)?;
        let wanted = match pb::PromotionStatus::try_from(body.status) {
            Ok(pb::PromotionStatus::Active) => Status::Active,
            Ok(pb::PromotionStatus::Inactive) => Status::Inactive,
            Ok(pb::PromotionStatus::Completed) => Status::Completed,
            _ => {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "status",
                    "must be ACTIVE, INACTIVE or COMPLETED",
                )
                .into());
            }
        };
        let response = self
            .mutate(&key, principal.workspace_id, |txn| {
                let principal = &principal;
                async move {
                    let row = self
                        .core
                        .set_status(&txn, principal, promotion_id, wanted)
                        .await?;
                    Ok((txn, row))
                }
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn get_promotion_analytics(
        &self,
        request: Request<pb::GetPromotionAnalyticsRequest>,
    ) -> Result<Response<pb::PromotionAnalytics>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let row = self
            .visible(principal, "promotion_id", &request.get_ref().promotion_id)
            .await?;
        let daily = daily_series(&self.core, principal.workspace_id, &[row.id]).await?;
        Ok(Response::new(pb::PromotionAnalytics {
            promotion_id: row.id.to_string(),
            credits_allocated: row.credits_allocated,
            credits_spent: row.credits_spent,
            credits_remaining: row.credits_remaining(),
            impressions: row.impression_count,
            uses: row.usage_count,
            usage_rate_bps: usage_rate_bps(row.usage_count, row.impression_count),
            cost_per_use: if row.usage_count == 0 {
                0
            } else {
                row.credits_spent / row.usage_count
            },
            daily,
        }))
    }

    async fn get_factory_analytics(
        &self,
        request: Request<pb::GetFactoryAnalyticsRequest>,
    ) -> Result<Response<pb::FactoryAnalytics>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let factory_id = self.factory_of(principal, &request.get_ref().factory_id)?;
        let rows = store::factory_promotions(
            self.core.context.db.connection(),
            principal.workspace_id,
            factory_id,
        )
        .await?;
        let now = self.now();
        // Saturating: a sum past i64 is reported as the largest value, never wrapped or a panic.
        let sum = |field: fn(&promotion::Model) -> i64| {
            rows.iter()
                .map(field)
                .fold(0i64, |total, value| total.saturating_add(value))
        };
        let (impressions, uses, spent) = (
            sum(|r| r.impression_count),
            sum(|r| r.usage_count),
            sum(|r| r.credits_spent),
        );
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        Ok(Response::new(pb::FactoryAnalytics {
            factory_id: factory_id.to_string(),
            credits_allocated: sum(|r| r.credits_allocated),
            credits_spent: spent,
            credits_remaining: sum(promotion::Model::credits_remaining),
            impressions,
            uses,
            usage_rate_bps: usage_rate_bps(uses, impressions),
            cost_per_use: if uses == 0 { 0 } else { spent / uses },
            active_promotions: rows
                .iter()
                .filter(|row| {
                    let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
                    domain::effective_status(stored, row.start_time, row.end_time, now)
                        == Status::Active
                })
                .count() as i64,
            daily: daily_series(&self.core, principal.workspace_id, &ids).await?,
        }))
    }

    async fn list_factory_materials(
        &self,
        request: Request<pb::ListFactoryMaterialsRequest>,
    ) -> Result<Response<pb::ListFactoryMaterialsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let factory_id = self.factory_of(principal, &body.factory_id)?;
        let (materials, next_page_token) = crate::materials::list_page(
            &self.core,
            principal.workspace_id,
            "",
            &factory_id.to_string(),
            "",
            body.page_size,
            &body.page_token,
        )
        .await?;
        Ok(Response::new(pb::ListFactoryMaterialsResponse {
            materials,
            next_page_token,
        }))
    }

    async fn list_promotion_audit(
        &self,
        request: Request<pb::ListPromotionAuditRequest>,
    ) -> Result<Response<pb::ListPromotionAuditResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let row = self
            .visible(principal, "promotion_id", &body.promotion_id)
            .await?;
        let limit = page_size(DOMAIN, body.page_size)?;
        let digest = PageToken::query_digest(&["audit", &body.promotion_id]);
        let after = kernel::pagination::decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let mut entries = store::list_audit(
            self.core.context.db.connection(),
            row.workspace_id,
            row.id,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token =
            kernel::pagination::finish_page(&mut entries, limit, &digest, |row| row.id.to_string());
        Ok(Response::new(pb::ListPromotionAuditResponse {
            entries: entries
                .iter()
                .map(|entry| pb::AuditEntry {
                    promotion_id: entry.promotion_id.to_string(),
                    actor_id: entry
                        .actor_id
                        .map(|actor| actor.to_string())
                        .unwrap_or_default(),
                    action: entry.action.clone(),
                    detail: entry.detail.clone(),
                    time: Some(micros_to_timestamp(entry.created_at)),
                })
                .collect(),
            next_page_token,
        }))
    }
}

impl PromotionGrpc {
    /// A factory always means itself; admins and ops may name any factory.
    fn factory_of(&self, principal: &Principal, requested: &str) -> Result<Uuid, ServiceError> {
        let requested = parse_optional_uuid(DOMAIN, "factory_id", requested)?;
        if principal.has_any_role(&[Role::Admin, Role::Ops]) {
            return requested.ok_or_else(|| {
                ServiceError::invalid_field(DOMAIN, "factory_id", "is required for admins")
            });
        }
        match requested {
            Some(factory) if factory != principal.subject => Err(promotion_not_found()),
            _ => Ok(principal.subject),
        }
    }
}
