//! promo.marketing.v1.ParticipationService: a customer joins a campaign once and, when the
//! campaign entitles its participants, receives a coupon bound to it in the same transaction.

use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::ids::parse_uuid;
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{IdempotencyKey, Principal, ServiceError, WriteTxn};
use proto::marketing::v1 as pb;
use proto::marketing::v1::participation_service_server::{
    ParticipationService, ParticipationServiceServer,
};
use sea_orm::ActiveValue::Set;
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::campaigns::campaign_not_found;
use crate::coupons::{Terms, acting_customer};
use crate::model::{
    CampaignDef, CampaignStatus, CouponDef, KIND_STANDARD, TRIGGER_AUTOMATIC,
    TRIGGER_ON_CART_ABANDONMENT, TRIGGER_ON_FIRST_ORDER, TRIGGER_ON_REGISTRATION,
};
use crate::state::Marketing;
use crate::store::{self, campaign, participation};
use crate::{DOMAIN, events};

/// Participation statuses (the proto enum's numbers).
pub const REGISTERED: i32 = 1;
pub const COUPON_ISSUED: i32 = 3;
pub const REDEEMED: i32 = 4;

pub struct ParticipationGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> ParticipationServiceServer<ParticipationGrpc> {
    ParticipationServiceServer::new(ParticipationGrpc { core })
}

async fn participation_to_proto<C: sea_orm::ConnectionTrait>(
    connection: &C,
    row: &participation::Model,
) -> Result<pb::Participation, ServiceError> {
    let coupon_code = match row.coupon_id {
        Some(id) => store::get_coupon(connection, row.workspace_id, id)
            .await?
            .map(|coupon| coupon.code)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(pb::Participation {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        customer_id: row.customer_id.to_string(),
        status: row.status,
        coupon_code,
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    })
}

/// The coupon a participant of `campaign` is entitled to: the campaign's first rule, bound to the
/// customer, one use, valid until the campaign ends. Automatic campaigns need no coupon.
pub(crate) fn entitlement(
    campaign: &CampaignDef,
    kind: i32,
    trigger: i32,
    customer: Uuid,
) -> Option<Terms> {
    if kind != KIND_STANDARD || trigger == TRIGGER_AUTOMATIC {
        return None;
    }
    let rule_id = *campaign.rule_ids.first()?;
    Some(Terms {
        rule_id,
        campaign_id: Some(campaign.id),
        customer_id: Some(customer),
        valid_from: None,
        valid_until: campaign.end_time,
        usage_limit: 1,
        usage_limit_per_customer: 0,
    })
}

/// Joins `customer_id` to the campaign `row` in the open transaction (the caller checked it has
/// not joined yet): the participation, and the entitlement coupon with its event when the campaign
/// has one. Returns the participation and the coupon issued.
pub(crate) async fn enrol(
    txn: &WriteTxn,
    row: &campaign::Model,
    customer_id: Uuid,
    now: i64,
) -> Result<(participation::Model, Option<CouponDef>), ServiceError> {
    let (workspace_id, campaign_id) = (row.workspace_id, row.id);
    let campaign = CampaignDef::from_row(row)?;
    let status = campaign.status.effective(row.start_time, row.end_time, now);
    if !matches!(status, CampaignStatus::Active | CampaignStatus::Scheduled) {
        return Err(ServiceError::failed_precondition(
            DOMAIN,
            "CAMPAIGN_NOT_ACTIVE",
            format!("campaigns/{campaign_id}"),
            "only an active or scheduled campaign can be joined",
        ));
    }
    let id = Uuid::now_v7();
    let mut participation = participation::Model {
        workspace_id,
        id,
        campaign_id,
        customer_id,
        status: REGISTERED,
        coupon_id: None,
        created_at: now,
        updated_at: now,
    };
    // The participation first: the coupon refers to it.
    store::insert(
        &**txn,
        participation::ActiveModel::from(participation.clone()),
    )
    .await?;
    let Some(terms) = entitlement(&campaign, row.kind, row.trigger_type, customer_id) else {
        return Ok((participation, None));
    };
    let coupon = crate::coupons::issue(&**txn, workspace_id, &terms, None, Some(id), now).await?;
    participation.status = COUPON_ISSUED;
    participation.coupon_id = Some(coupon.id);
    store::update(
        &**txn,
        participation::ActiveModel {
            workspace_id: Set(workspace_id),
            id: Set(id),
            status: Set(COUPON_ISSUED),
            coupon_id: Set(Some(coupon.id)),
            ..Default::default()
        },
    )
    .await?;
    let payload = json!({
        "coupon_id": coupon.id.to_string(),
        "code": coupon.code,
        "campaign_id": campaign_id.to_string(),
        "customer_id": customer_id.to_string(),
        "participation_id": id.to_string(),
    });
    let subject = format!("coupons/{}", coupon.id);
    events::emit(
        txn,
        workspace_id,
        events::COUPON_ISSUED,
        subject,
        payload,
        now,
    )
    .await?;
    store::bump_version(&**txn, workspace_id).await?;
    Ok((participation, Some(CouponDef::from_row(&coupon))))
}

#[tonic::async_trait]
impl ParticipationService for ParticipationGrpc {
    async fn join_campaign(
        &self,
        request: Request<pb::JoinCampaignRequest>,
    ) -> Result<Response<pb::Participation>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "JoinCampaign", body)?;
        let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        let customer_id = acting_customer(&principal, "customer_id", &body.customer_id)?
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "customer_id", "is required"))?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let issued = std::sync::Mutex::new(None);
        let issued_ref = &issued;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let row = store::get_campaign(&*txn, workspace_id, campaign_id)
                    .await?
                    .ok_or_else(campaign_not_found)?;
                if let Some(existing) =
                    store::participation_of(&*txn, workspace_id, campaign_id, customer_id).await?
                {
                    let response = participation_to_proto(&*txn, &existing).await?;
                    return Ok((txn, response));
                }
                let (participation, coupon) = enrol(&txn, &row, customer_id, now).await?;
                if let Ok(mut issued) = issued_ref.lock() {
                    *issued = coupon;
                }
                let response = participation_to_proto(&*txn, &participation).await?;
                Ok((txn, response))
            })
            .await?;
        let coupon = issued.lock().ok().and_then(|mut issued| issued.take());
        self.core
            .record_new_coupons(workspace_id, coupon.into_iter().collect())
            .await;
        Ok(Response::new(response))
    }

    async fn list_participations(
        &self,
        request: Request<pb::ListParticipationsRequest>,
    ) -> Result<Response<pb::ListParticipationsResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let campaign_id =
            kernel::ids::parse_optional_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
        let customer_id = acting_customer(principal, "customer_id", &body.customer_id)?;
        let digest = PageToken::query_digest(&[&body.campaign_id, &body.customer_id]);
        let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let connection = self.core.context.db.connection();
        let mut rows = store::list_participations(
            connection,
            principal.workspace_id,
            campaign_id,
            customer_id,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
        let mut participations = Vec::with_capacity(rows.len());
        for row in &rows {
            participations.push(participation_to_proto(connection, row).await?);
        }
        Ok(Response::new(pb::ListParticipationsResponse {
            participations,
            next_page_token,
        }))
    }

    async fn report_customer_event(
        &self,
        request: Request<pb::ReportCustomerEventRequest>,
    ) -> Result<Response<pb::ReportCustomerEventResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "ReportCustomerEvent",
            body,
        )?;
        let customer_id = parse_uuid(DOMAIN, "customer_id", &body.customer_id)?;
        let trigger = match pb::CustomerEvent::try_from(body.event) {
            Ok(pb::CustomerEvent::Registered) => TRIGGER_ON_REGISTRATION,
            Ok(pb::CustomerEvent::FirstOrder) => TRIGGER_ON_FIRST_ORDER,
            Ok(pb::CustomerEvent::CartAbandoned) => TRIGGER_ON_CART_ABANDONMENT,
            _ => {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "event",
                    "must be one of the CUSTOMER_EVENT_ values",
                )
                .into());
            }
        };
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let issued = std::sync::Mutex::new(Vec::new());
        let issued_ref = &issued;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let mut participations = Vec::new();
                let mut coupons = Vec::new();
                for row in store::live_campaigns(&*txn, workspace_id).await? {
                    let active = CampaignStatus::from_i32(row.status).is_some_and(|s| {
                        s.effective(row.start_time, row.end_time, now) == CampaignStatus::Active
                    });
                    if row.trigger_type != trigger || !active {
                        continue;
                    }
                    let existing =
                        store::participation_of(&*txn, workspace_id, row.id, customer_id).await?;
                    let participation = match existing {
                        Some(existing) => existing,
                        None => {
                            let (participation, coupon) =
                                enrol(&txn, &row, customer_id, now).await?;
                            coupons.extend(coupon);
                            participation
                        }
                    };
                    participations.push(participation_to_proto(&*txn, &participation).await?);
                }
                if let Ok(mut issued) = issued_ref.lock() {
                    *issued = coupons;
                }
                Ok((txn, pb::ReportCustomerEventResponse { participations }))
            })
            .await?;
        let coupons = issued
            .lock()
            .map(|mut issued| std::mem::take(&mut *issued))
            .unwrap_or_default();
        self.core.record_new_coupons(workspace_id, coupons).await;
        Ok(Response::new(response))
    }
}
