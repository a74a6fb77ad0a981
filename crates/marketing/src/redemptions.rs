//! promo.marketing.v1.PricingService: EvaluateCart from the in-memory snapshot, and two-phase
//! redemption. CreateRedemption locks the coupons it names and the limited campaigns it may use
//! (coupons before campaigns, each in id order; every path that moves their counters keeps that
//! order), reads their counters under the locks, prices the cart, and reserves what the effects
//! need with conditional updates — so no limit or budget is ever exceeded, on SQLite or
//! PostgreSQL. Confirm makes it final; rollback and expiry release exactly what it held.

use std::sync::Arc;

use kernel::clock::micros_to_timestamp;
use kernel::ids::parse_uuid;
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::marketing::v1 as pb;
use proto::marketing::v1::pricing_service_server::{PricingService, PricingServiceServer};
use sea_orm::ConnectionTrait;
use serde_json::json;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::holds::{Held, counter_changes, holds, release};
use crate::loaded::load;
use crate::offer::{self, MAX_CODES, Order, Priced};
use crate::state::Marketing;
use crate::store::{self, DayCounts, redemption};
use crate::{DOMAIN, events};

/// Redemption statuses (the proto enum's numbers).
pub const RESERVED: i32 = 1;
pub const CONFIRMED: i32 = 2;
pub const ROLLED_BACK: i32 = 3;
pub const EXPIRED: i32 = 4;

pub struct PricingGrpc {
    core: Arc<Marketing>,
}

pub fn grpc(core: Arc<Marketing>) -> PricingServiceServer<PricingGrpc> {
    PricingServiceServer::new(PricingGrpc { core })
}

fn redemption_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "REDEMPTION_NOT_FOUND", "redemption")
}

/// The workspace's calendar day at `now` (YYYY-MM-DD in its time zone).
pub(crate) async fn local_day<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    now: i64,
) -> Result<String, ServiceError> {
    Ok(kernel::settings::local_date(connection, workspace_id, now)
        .await?
        .format("%Y-%m-%d")
        .to_string())
}

fn effects_to_proto(priced: &Priced, order: &Order) -> Vec<pb::Effect> {
    priced
        .evaluation
        .effects
        .iter()
        .filter_map(|effect| {
            let source = priced.source(effect.key)?;
            Some(pb::Effect {
                campaign_id: source
                    .campaign_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                discount_rule_id: source.rule_id.to_string(),
                coupon_code: source
                    .coupon
                    .as_ref()
                    .map(|(_, code)| code.clone())
                    .unwrap_or_default(),
                amount: effect.amount,
                lines: effect
                    .lines
                    .iter()
                    .map(|(index, amount)| pb::LineAmount {
                        line_id: order.cart.lines[*index].line_id.clone(),
                        amount: *amount,
                    })
                    .collect(),
                shipping: effect.shipping,
            })
        })
        .collect()
}

fn rejected_to_proto(rejected: &[(String, &'static str)]) -> Vec<pb::RejectedCoupon> {
    rejected
        .iter()
        .map(|(code, reason)| pb::RejectedCoupon {
            code: kernel::ids::echo(code).trim_matches('"').to_owned(),
            reason: (*reason).to_owned(),
        })
        .collect()
}

fn evaluation_to_proto(priced: &Priced, order: &Order) -> pb::EvaluateCartResponse {
    let evaluation = &priced.evaluation;
    pb::EvaluateCartResponse {
        subtotal: evaluation.subtotal,
        line_discounts: evaluation
            .line_discounts
            .iter()
            .zip(&order.cart.lines)
            .map(|(amount, line)| pb::LineAmount {
                line_id: line.line_id.clone(),
                amount: *amount,
            })
            .collect(),
        shipping_discount: evaluation.shipping_discount,
        total_discount: evaluation.total_discount,
        total: evaluation.total,
        effects: effects_to_proto(priced, order),
        rejected_coupons: rejected_to_proto(&priced.rejected),
        currency: order.currency.clone(),
    }
}

fn check_codes(codes: &[String]) -> Result<(), ServiceError> {
    if codes.len() > MAX_CODES {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "coupon_codes",
            format!("must hold at most {MAX_CODES} codes"),
        ));
    }
    Ok(())
}

fn redemption_to_proto(row: &redemption::Model) -> Result<pb::Redemption, ServiceError> {
    let held: Held = kernel::db::json_column("mkt_redemption", row.id, "effects", &row.effects)?;
    let rejected: Vec<(String, String)> =
        kernel::db::json_column("mkt_redemption", row.id, "rejected", &row.rejected)?;
    Ok(pb::Redemption {
        id: row.id.to_string(),
        order_id: row.order_id.clone(),
        customer_id: row.customer_id.map(|id| id.to_string()).unwrap_or_default(),
        status: row.status,
        currency: row.currency.clone(),
        effects: held
            .effects
            .iter()
            .map(|effect| pb::Effect {
                campaign_id: effect
                    .campaign_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                discount_rule_id: effect.rule_id.to_string(),
                coupon_code: effect
                    .coupon
                    .as_ref()
                    .map(|(_, code)| code.clone())
                    .unwrap_or_default(),
                amount: effect.amount,
                lines: effect
                    .lines
                    .iter()
                    .map(|(line_id, amount)| pb::LineAmount {
                        line_id: line_id.clone(),
                        amount: *amount,
                    })
                    .collect(),
                shipping: effect.shipping,
            })
            .collect(),
        total_discount: row.total_discount,
        rejected_coupons: rejected
            .into_iter()
            .map(|(code, reason)| pb::RejectedCoupon { code, reason })
            .collect(),
        expire_time: Some(micros_to_timestamp(row.expire_at)),
        rollback_reason: row.rollback_reason.clone(),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
        order_amount: row.order_amount,
    })
}

impl PricingGrpc {
    async fn visible(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<redemption::Model, ServiceError> {
        let id = parse_uuid(DOMAIN, "id", id)?;
        store::get_redemption(
            self.core.context.db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(redemption_not_found)
    }
}

#[tonic::async_trait]
impl PricingService for PricingGrpc {
    async fn evaluate_cart(
        &self,
        request: Request<pb::EvaluateCartRequest>,
    ) -> Result<Response<pb::EvaluateCartResponse>, GrpcStatus> {
        let workspace_id = Principal::of(&request)?.workspace_id;
        let mut body = request.into_inner();
        check_codes(&body.coupon_codes)?;
        let snapshot = self.core.snapshots.get(workspace_id).await?;
        let now = self.core.now();
        let order = crate::convert::order_from_proto(body.cart.take(), snapshot.zone, now)?;
        let view = snapshot.view().with_codes(&body.coupon_codes);
        let priced = offer::price(&view, &order, &body.coupon_codes, now);
        Ok(Response::new(evaluation_to_proto(&priced, &order)))
    }

    async fn create_redemption(
        &self,
        request: Request<pb::CreateRedemptionRequest>,
    ) -> Result<Response<pb::Redemption>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "CreateRedemption",
            body,
        )?;
        check_codes(&body.coupon_codes)?;
        kernel::ids::check_text(DOMAIN, "order_id", &body.order_id, 128, false)?;
        let workspace_id = principal.workspace_id;
        let snapshot = self.core.snapshots.get(workspace_id).await?;
        let now = self.core.now();
        let order = crate::convert::order_from_proto(body.cart.clone(), snapshot.zone, now)?;
        let ttl = snapshot.settings.reservation_ttl_seconds;
        // Queue behind other reservations of the same coupons and limited automatic campaigns.
        let hot = body
            .coupon_codes
            .iter()
            .filter_map(|code| crate::codes::normalize(code))
            .map(|code| (workspace_id, code))
            .chain(
                snapshot
                    .limited_automatic()
                    .map(|id| (workspace_id, id.to_string())),
            );
        let _queued = self.core.queue_for(hot).await;
        let order = &order;
        let reserved = std::sync::Mutex::new(None);
        let reserved_ref = &reserved;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let loaded = load(
                    &*txn,
                    workspace_id,
                    &body.coupon_codes,
                    order.customer_id,
                    true,
                )
                .await?;
                let priced = offer::price(&loaded, order, &body.coupon_codes, now);
                let held = holds(&priced, &loaded, order);
                // Under the locks the counters are current, so these hold; a failure means a
                // path took a lock out of order, and the whole transaction runs again.
                for coupon_id in &held.coupons {
                    if !store::take_coupon_use(&*txn, workspace_id, *coupon_id, now).await? {
                        return Err(ServiceError::retryable_conflict(
                            "coupon use taken concurrently",
                        ));
                    }
                }
                for (campaign_id, amount) in held.reserved_budgets() {
                    if !store::take_campaign_use(&*txn, workspace_id, campaign_id, amount, now)
                        .await?
                    {
                        return Err(ServiceError::retryable_conflict(
                            "campaign use taken concurrently",
                        ));
                    }
                }
                if let Some(customer) = order.customer_id {
                    for scope in &held.customer_scopes {
                        let limit = loaded
                            .coupons
                            .values()
                            .find(|coupon| coupon.id == *scope)
                            .map(|coupon| coupon.usage_limit_per_customer)
                            .or_else(|| {
                                loaded
                                    .campaigns
                                    .get(scope)
                                    .map(|c| c.usage_limit_per_customer)
                            })
                            .unwrap_or(0);
                        if !store::take_customer_use(&*txn, workspace_id, *scope, customer, limit)
                            .await?
                        {
                            return Err(ServiceError::retryable_conflict(
                                "customer use taken concurrently",
                            ));
                        }
                    }
                }
                let rejected: Vec<(String, String)> = rejected_to_proto(&priced.rejected)
                    .into_iter()
                    .map(|rejected| (rejected.code, rejected.reason))
                    .collect();
                let row = redemption::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    order_id: body.order_id.clone(),
                    customer_id: order.customer_id,
                    status: RESERVED,
                    currency: order.currency.clone(),
                    order_amount: priced.evaluation.subtotal + order.cart.shipping,
                    total_discount: priced.evaluation.total_discount,
                    effects: kernel::db::to_json_column(&held)?,
                    rejected: kernel::db::to_json_column(&rejected)?,
                    expire_at: now + ttl * 1_000_000,
                    rollback_reason: String::new(),
                    created_at: now,
                    updated_at: now,
                };
                store::insert(&*txn, redemption::ActiveModel::from(row.clone())).await?;
                if let Ok(mut reserved) = reserved_ref.lock() {
                    *reserved = Some(held);
                }
                Ok((txn, redemption_to_proto(&row)?))
            })
            .await?;
        if let Ok(mut reserved) = reserved.lock()
            && let Some(held) = reserved.take()
        {
            self.core
                .snapshots
                .record(workspace_id, counter_changes(&held, 1), None);
        }
        Ok(Response::new(response))
    }

    async fn confirm_redemption(
        &self,
        request: Request<pb::ConfirmRedemptionRequest>,
    ) -> Result<Response<pb::Redemption>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "ConfirmRedemption",
            body,
        )?;
        let id = parse_uuid(DOMAIN, "id", &body.id)?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let row = store::get_redemption(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(redemption_not_found)?;
                match row.status {
                    CONFIRMED => return Ok((txn, redemption_to_proto(&row)?)),
                    RESERVED if row.expire_at > now => {}
                    _ => {
                        return Err(ServiceError::failed_precondition(
                            DOMAIN,
                            "REDEMPTION_NOT_RESERVED",
                            format!("redemptions/{id}"),
                            "only a reserved redemption that has not expired can be confirmed",
                        ));
                    }
                }
                let held: Held = kernel::db::json_column("mkt_redemption", id, "effects", &row.effects)?;
                // Coupons before campaigns, each in id order: the order CreateRedemption locks in.
                let coupons = store::lock_coupons_by_id(&*txn, workspace_id, &held.coupons).await?;
                let campaign_ids: Vec<Uuid> = held.campaigns.iter().map(|(id, _)| *id).collect();
                store::campaigns_by_ids(&*txn, workspace_id, &campaign_ids, true).await?;
                if !store::transition_redemption(&*txn, workspace_id, id, RESERVED, CONFIRMED, "", now).await? {
                    return Err(ServiceError::retryable_conflict("redemption changed concurrently"));
                }
                for coupon in &coupons {
                    store::move_coupon(&*txn, workspace_id, coupon.id, 0, 1, now).await?;
                    if let Some(participation_id) = coupon.participation_id {
                        store::set_participation_status(
                            &*txn,
                            workspace_id,
                            participation_id,
                            crate::participation::COUPON_ISSUED,
                            crate::participation::REDEEMED,
                            now,
                        )
                        .await?;
                    }
                }
                let day = local_day(&*txn, workspace_id, now).await?;
                for (campaign_id, amount) in &held.campaigns {
                    // A campaign reserved nothing when it has no budget or limit: its use and
                    // budget count from the confirmation.
                    let held_now = if held.reserved_campaigns.contains(campaign_id) {
                        (0, 0)
                    } else {
                        (1, *amount)
                    };
                    store::move_campaign(&*txn, workspace_id, *campaign_id, held_now, (1, *amount), now).await?;
                    let redeemed = coupons.iter().filter(|coupon| coupon.campaign_id == Some(*campaign_id)).count();
                    let counts = DayCounts {
                        revenue: row.order_amount,
                        coupons_redeemed: i64::try_from(redeemed).unwrap_or(0),
                        discount_given: *amount,
                        ..DayCounts::default()
                    };
                    store::add_to_day(&*txn, workspace_id, *campaign_id, &day, &row.currency, counts).await?;
                }
                let payload = json!({
                    "redemption_id": id.to_string(),
                    "order_id": row.order_id,
                    "customer_id": row.customer_id.map(|id| id.to_string()),
                    "currency": row.currency,
                    "order_amount": row.order_amount,
                    "total_discount": row.total_discount,
                    "campaign_ids": campaign_ids.iter().map(Uuid::to_string).collect::<Vec<_>>(),
                    "coupon_codes": coupons.iter().map(|coupon| coupon.code.clone()).collect::<Vec<_>>(),
                });
                events::emit(&txn, workspace_id, events::REDEMPTION_CONFIRMED, format!("redemptions/{id}"), payload, now)
                    .await?;
                let row = store::get_redemption(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(redemption_not_found)?;
                Ok((txn, redemption_to_proto(&row)?))
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn rollback_redemption(
        &self,
        request: Request<pb::RollbackRedemptionRequest>,
    ) -> Result<Response<pb::Redemption>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "RollbackRedemption",
            body,
        )?;
        let id = parse_uuid(DOMAIN, "id", &body.id)?;
        kernel::ids::check_text(DOMAIN, "reason", &body.reason, 500, true)?;
        let workspace_id = principal.workspace_id;
        let now = self.core.now();
        let released = std::sync::Mutex::new(None);
        let released_ref = &released;
        let response = self
            .core
            .context
            .idempotent(&key, |txn| async move {
                let row = store::get_redemption(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(redemption_not_found)?;
                match row.status {
                    ROLLED_BACK | EXPIRED => return Ok((txn, redemption_to_proto(&row)?)),
                    CONFIRMED => {
                        return Err(ServiceError::failed_precondition(
                            DOMAIN,
                            "REDEMPTION_ALREADY_CONFIRMED",
                            format!("redemptions/{id}"),
                            "a confirmed redemption cannot be rolled back",
                        ));
                    }
                    _ => {}
                }
                let Some(held) = release(&*txn, &row, ROLLED_BACK, &body.reason, now).await? else {
                    return Err(ServiceError::retryable_conflict(
                        "redemption changed concurrently",
                    ));
                };
                if let Ok(mut released) = released_ref.lock() {
                    *released = Some(held);
                }
                let row = store::get_redemption(&*txn, workspace_id, id)
                    .await?
                    .ok_or_else(redemption_not_found)?;
                Ok((txn, redemption_to_proto(&row)?))
            })
            .await?;
        if let Ok(mut released) = released.lock()
            && let Some(held) = released.take()
        {
            self.core
                .snapshots
                .record(workspace_id, counter_changes(&held, -1), None);
        }
        Ok(Response::new(response))
    }

    async fn redeem_promo_code(
        &self,
        request: Request<pb::RedeemPromoCodeRequest>,
    ) -> Result<Response<pb::RedeemPromoCodeResponse>, GrpcStatus> {
        let principal = Principal::of(&request)?.clone();
        let response =
            crate::promo_codes::redeem(&self.core, &principal, request.get_ref()).await?;
        Ok(Response::new(response))
    }

    async fn get_redemption(
        &self,
        request: Request<pb::GetRedemptionRequest>,
    ) -> Result<Response<pb::Redemption>, GrpcStatus> {
        let principal = Principal::of(&request)?;
        let row = self.visible(principal, &request.get_ref().id).await?;
        Ok(Response::new(redemption_to_proto(&row)?))
    }
}
