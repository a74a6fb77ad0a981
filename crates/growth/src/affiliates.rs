//! AffiliateService: applications approved, suspended, reactivated and terminated by operators;
//! sales attributed to an affiliate (the first affiliate a customer came through keeps them for
//! the commission duration) earning a commission that waits out the holding period before the
//! sweeper credits it to the affiliate's wallet; refunds that reduce or claw back; a dashboard
//! read from monthly aggregates.

use std::sync::Arc;

use kernel::ids::{check_text, parse_uuid};
use kernel::{ErrorCode, IdempotencyKey, Principal, Role, ServiceError, Violations};
use proto::growth::v1 as pb;
use proto::growth::v1::affiliate_service_server::{AffiliateService, AffiliateServiceServer};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::convert::{not_found, time};
use crate::entity::{affiliate, affiliate_month, commission};
use crate::metrics::local_date;
use crate::state::Growth;
use crate::{DOMAIN, codes, events, links};

/// The default commission: 20 % for 3 months from the customer's attribution.
pub const DEFAULT_COMMISSION_BPS: i32 = 2000;
pub const DEFAULT_COMMISSION_MONTHS: i32 = 3;

pub struct AffiliateGrpc {
    core: Arc<Growth>,
}

pub fn grpc(core: Arc<Growth>) -> AffiliateServiceServer<AffiliateGrpc> {
    AffiliateServiceServer::new(AffiliateGrpc { core })
}

fn affiliate_to_proto(row: &affiliate::Model) -> pb::Affiliate {
    pb::Affiliate {
        id: row.id.to_string(),
        customer_id: row.customer_id.to_string(),
        code: row.code.clone(),
        status: row.status,
        company_name: row.company_name.clone(),
        website: row.website.clone(),
        commission_bps: u32::try_from(row.commission_bps).unwrap_or(0),
        commission_months: u32::try_from(row.commission_months).unwrap_or(0),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

pub(crate) async fn get_affiliate<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<affiliate::Model, ServiceError> {
    affiliate::Entity::find_by_id((workspace_id, id))
        .one(connection)
        .await?
        .ok_or_else(|| not_found("AFFILIATE_NOT_FOUND", "affiliate"))
}

/// The affiliate a caller may read: operators any; a customer token only its own (another's
/// answers like an unknown one). An empty id means the caller's own.
async fn readable_affiliate<C: ConnectionTrait>(
    connection: &C,
    principal: &Principal,
    id: &str,
) -> Result<affiliate::Model, ServiceError> {
    let operator = principal.has_any_role(&[Role::Admin, Role::Ops]);
    let row = if id.is_empty() {
        if operator {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "affiliate_id",
                "is required",
            ));
        }
        affiliate::Entity::find()
            .filter(affiliate::Column::WorkspaceId.eq(principal.workspace_id))
            .filter(affiliate::Column::CustomerId.eq(principal.subject))
            .one(connection)
            .await?
            .ok_or_else(|| not_found("AFFILIATE_NOT_FOUND", "affiliate"))?
    } else {
        get_affiliate(
            connection,
            principal.workspace_id,
            parse_uuid(DOMAIN, "affiliate_id", id)?,
        )
        .await?
    };
    if !operator && row.customer_id != principal.subject {
        return Err(not_found("AFFILIATE_NOT_FOUND", "affiliate"));
    }
    Ok(row)
}

/// The month (YYYY-MM, workspace time zone) `now` falls in.
pub(crate) async fn local_month<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    now: i64,
) -> Result<String, ServiceError> {
    Ok(local_date(connection, workspace_id, now)
        .await?
        .format("%Y-%m")
        .to_string())
}

fn check_website(violations: &mut Violations, website: &str) {
    if website.is_empty() {
        return;
    }
    violations.take("website", links::check_url("website", website));
}

/// A status change: the method it is, the states it starts from, where it goes, and an
/// approval's rate overrides (0 keeps the current value).
struct Transition {
    method: &'static str,
    from: &'static [pb::AffiliateStatus],
    to: pb::AffiliateStatus,
    rates: (u32, u32),
}

impl AffiliateGrpc {
    /// Moves an affiliate along `transition`, applying the rate overrides of an approval.
    async fn transition(
        &self,
        principal: &Principal,
        request_id: &str,
        body: &impl prost::Message,
        id: &str,
        transition: Transition,
    ) -> Result<pb::Affiliate, ServiceError> {
        let Transition {
            method,
            from,
            to,
            rates,
        } = transition;
        let key = IdempotencyKey::new(DOMAIN, principal, request_id, method, body)?;
        let id = parse_uuid(DOMAIN, "id", id)?;
        let mut violations = Violations::new(DOMAIN);
        violations.check(
            rates.0 <= kernel::money::BPS_WHOLE,
            "commission_bps",
            "must be at most 10000 basis points",
        );
        violations.check(rates.1 <= 120, "commission_months", "must be at most 120");
        violations.finish()?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        self.core
            .context
            .idempotent(&key, |txn| async move {
                let mut row = get_affiliate(&*txn, workspace_id, id).await?;
                if !from.iter().any(|status| *status as i32 == row.status) {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        "AFFILIATE_STATUS_CONFLICT",
                        format!("affiliates/{id}"),
                        format!(
                            "this affiliate is {}",
                            pb::AffiliateStatus::try_from(row.status)
                                .map(|status| status.as_str_name())
                                .unwrap_or("in another state")
                        ),
                    ));
                }
                row.status = to as i32;
                if rates.0 > 0 {
                    row.commission_bps = rates.0 as i32;
                }
                if rates.1 > 0 {
                    row.commission_months = rates.1 as i32;
                }
                row.updated_at = now;
                kernel::db::update(
                    &*txn,
                    affiliate::ActiveModel {
                        workspace_id: Set(workspace_id),
                        id: Set(id),
                        status: Set(row.status),
                        commission_bps: Set(row.commission_bps),
                        commission_months: Set(row.commission_months),
                        updated_at: Set(now),
                        ..Default::default()
                    },
                )
                .await?;
                events::emit(
                    &txn,
                    workspace_id,
                    events::AFFILIATE_STATUS_CHANGED,
                    format!("affiliates/{id}"),
                    json!({"affiliate_id": id.to_string(), "status": to.as_str_name()}),
                    now,
                )
                .await?;
                Ok((txn, affiliate_to_proto(&row)))
            })
            .await
    }
}

#[tonic::async_trait]
impl AffiliateService for AffiliateGrpc {
    async fn apply_affiliate(
        &self,
        request: Request<pb::ApplyAffiliateRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key =
            IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "ApplyAffiliate", body)?;
        let customer_id = principal
            .acting_customer(DOMAIN, "customer_id", &body.customer_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "customer_id", "is required"))?;
        let mut violations = Violations::new(DOMAIN);
        violations.take(
            "company_name",
            check_text(DOMAIN, "company_name", &body.company_name, 200, true),
        );
        check_website(&mut violations, &body.website);
        violations.finish()?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let existing = affiliate::Entity::find()
                    .filter(affiliate::Column::WorkspaceId.eq(workspace_id))
                    .filter(affiliate::Column::CustomerId.eq(customer_id))
                    .one(&*txn)
                    .await?;
                if existing.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::AlreadyExists,
                        DOMAIN,
                        "AFFILIATE_EXISTS",
                        "this customer has already applied as an affiliate",
                    ));
                }
                let mut code = codes::person_code("AFF");
                for _ in 0..8 {
                    let taken = affiliate::Entity::find()
                        .filter(affiliate::Column::WorkspaceId.eq(workspace_id))
                        .filter(affiliate::Column::Code.eq(&code))
                        .one(&*txn)
                        .await?;
                    if taken.is_none() {
                        break;
                    }
                    code = codes::person_code("AFF");
                }
                let row = affiliate::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    customer_id,
                    code,
                    status: pb::AffiliateStatus::Pending as i32,
                    company_name: body.company_name.clone(),
                    website: body.website.clone(),
                    commission_bps: DEFAULT_COMMISSION_BPS,
                    commission_months: DEFAULT_COMMISSION_MONTHS,
                    created_at: now,
                    updated_at: now,
                };
                kernel::db::insert(&*txn, affiliate::ActiveModel::from(row.clone())).await?;
                Ok((txn, affiliate_to_proto(&row)))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn approve_affiliate(
        &self,
        request: Request<pb::ApproveAffiliateRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        Ok(Response::new(
            self.transition(
                principal,
                &body.request_id,
                body,
                &body.id,
                Transition {
                    method: "ApproveAffiliate",
                    from: &[pb::AffiliateStatus::Pending],
                    to: pb::AffiliateStatus::Active,
                    rates: (body.commission_bps, body.commission_months),
                },
            )
            .await?,
        ))
    }

    async fn suspend_affiliate(
        &self,
        request: Request<pb::AffiliateActionRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        Ok(Response::new(
            self.transition(
                principal,
                &body.request_id,
                body,
                &body.id,
                Transition {
                    method: "SuspendAffiliate",
                    from: &[pb::AffiliateStatus::Active],
                    to: pb::AffiliateStatus::Suspended,
                    rates: (0, 0),
                },
            )
            .await?,
        ))
    }

    async fn reactivate_affiliate(
        &self,
        request: Request<pb::AffiliateActionRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        Ok(Response::new(
            self.transition(
                principal,
                &body.request_id,
                body,
                &body.id,
                Transition {
                    method: "ReactivateAffiliate",
                    from: &[pb::AffiliateStatus::Suspended],
                    to: pb::AffiliateStatus::Active,
                    rates: (0, 0),
                },
            )
            .await?,
        ))
    }

    async fn terminate_affiliate(
        &self,
        request: Request<pb::AffiliateActionRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        Ok(Response::new(
            self.transition(
                principal,
                &body.request_id,
                body,
                &body.id,
                Transition {
                    method: "TerminateAffiliate",
                    from: &[
                        pb::AffiliateStatus::Pending,
                        pb::AffiliateStatus::Active,
                        pb::AffiliateStatus::Suspended,
                    ],
                    to: pb::AffiliateStatus::Terminated,
                    rates: (0, 0),
                },
            )
            .await?,
        ))
    }

    async fn get_affiliate(
        &self,
        request: Request<pb::GetAffiliateRequest>,
    ) -> Result<Response<pb::Affiliate>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let row = readable_affiliate(
            self.core.context.db.connection(),
            principal,
            &request.get_ref().id,
        )
        .await?;
        Ok(Response::new(affiliate_to_proto(&row)))
    }

    async fn record_affiliate_sale(
        &self,
        request: Request<pb::RecordAffiliateSaleRequest>,
    ) -> Result<Response<pb::Commission>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let response = crate::sales::record_sale(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(response))
    }

    async fn record_refund(
        &self,
        request: Request<pb::RecordRefundRequest>,
    ) -> Result<Response<pb::RecordRefundResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let response =
            crate::sales::record_refund(&self.core, principal, request.get_ref()).await?;
        Ok(Response::new(response))
    }

    async fn get_affiliate_dashboard(
        &self,
        request: Request<pb::GetAffiliateDashboardRequest>,
    ) -> Result<Response<pb::AffiliateDashboard>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let connection = self.core.context.db.connection();
        let owner =
            readable_affiliate(connection, principal, &request.get_ref().affiliate_id).await?;
        let workspace_id = principal.workspace_id;
        let months = affiliate_month::Entity::find()
            .filter(affiliate_month::Column::WorkspaceId.eq(workspace_id))
            .filter(affiliate_month::Column::AffiliateId.eq(owner.id))
            .order_by_asc(affiliate_month::Column::Month)
            .all(connection)
            .await
            .map_err(ServiceError::from)?;
        let commissions = commission::Entity::find()
            .filter(commission::Column::WorkspaceId.eq(workspace_id))
            .filter(commission::Column::AffiliateId.eq(owner.id))
            .order_by_asc(commission::Column::Id)
            .all(connection)
            .await
            .map_err(ServiceError::from)?;
        let currency = commissions
            .first()
            .map(|row| row.currency.clone())
            .unwrap_or_default();
        let mut dashboard = pb::AffiliateDashboard {
            affiliate: Some(affiliate_to_proto(&owner)),
            clawback_owed: crate::commissions::owed(connection, workspace_id, owner.id, &currency)
                .await?,
            currency: currency.clone(),
            ..pb::AffiliateDashboard::default()
        };
        for row in commissions.iter().filter(|row| row.currency == currency) {
            match pb::CommissionStatus::try_from(row.status) {
                Ok(pb::CommissionStatus::Pending) => dashboard.commission_pending += row.amount,
                Ok(pb::CommissionStatus::Due) => dashboard.commission_due += row.credited_amount,
                Ok(pb::CommissionStatus::Paid) => dashboard.commission_paid += row.credited_amount,
                _ => {}
            }
        }
        for month in &months {
            dashboard.clicks += month.clicks;
            dashboard.conversions += month.conversions;
            dashboard.revenue += month.revenue;
            dashboard.months.push(pb::DashboardMonth {
                month: month.month.clone(),
                clicks: month.clicks,
                conversions: month.conversions,
                revenue: month.revenue,
                commission: month.commission,
            });
        }
        dashboard.conversion_rate_bps = if dashboard.clicks > 0 {
            u32::try_from(
                (i128::from(dashboard.conversions) * 10_000 / i128::from(dashboard.clicks))
                    .min(i128::from(u32::MAX)),
            )
            .unwrap_or(u32::MAX)
        } else {
            0
        };
        Ok(Response::new(dashboard))
    }
}
