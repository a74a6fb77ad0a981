//! Affiliate sales and refunds: a sale is attributed (the first affiliate a customer came through
//! keeps them for the commission duration), earns a commission at the affiliate's rate or nothing
//! with the reason, and waits out the holding period (`commissions` credits it); a refund reduces
//! a pending commission or claws back a credited one.

use chrono::Months;
use kernel::ids::check_text;
use kernel::{ErrorCode, IdempotencyKey, Principal, ServiceError, Violations, WriteTxn};
use proto::growth::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::affiliates::{get_affiliate, local_month};
use crate::commissions::{add_debt, add_to_month, commission_on, refund_effect};
use crate::convert::{days, money, money_to_proto, not_found, time};
use crate::entity::{affiliate, attribution, commission};
use crate::metrics::AFFILIATE_REVENUE;
use crate::settings::GrowthSettings;
use crate::state::Growth;
use crate::{DOMAIN, codes, events, metrics};

pub(crate) fn commission_to_proto(row: &commission::Model) -> pb::Commission {
    pb::Commission {
        id: row.id.to_string(),
        affiliate_id: row.affiliate_id.to_string(),
        order_id: row.order_id.clone(),
        customer_id: row.customer_id.map(|id| id.to_string()).unwrap_or_default(),
        sale_amount: money_to_proto(&row.currency, row.sale_amount),
        refunded_amount: money_to_proto(&row.currency, row.refunded_amount),
        amount: money_to_proto(&row.currency, row.amount),
        status: row.status,
        due_time: time(row.due_at),
        credited_amount: money_to_proto(&row.currency, row.credited_amount),
        reason: row.reason.clone(),
        commission_bps: u32::try_from(row.commission_bps).unwrap_or(0),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

/// Which affiliate a sale belongs to, attributing the buyer on their first sale through a code.
async fn attribute(
    txn: &WriteTxn,
    workspace_id: Uuid,
    code: Option<&str>,
    customer_id: Option<Uuid>,
    now: i64,
) -> Result<(affiliate::Model, i64), ServiceError> {
    let existing = match customer_id {
        Some(customer_id) => {
            attribution::Entity::find_by_id((workspace_id, customer_id))
                .one(&**txn)
                .await?
        }
        None => None,
    };
    if let Some(existing) = existing {
        let owner = get_affiliate(&**txn, workspace_id, existing.affiliate_id).await?;
        return Ok((owner, existing.attributed_at));
    }
    let Some(code) = code else {
        return Err(ServiceError::failed_precondition(
            DOMAIN,
            "CUSTOMER_NOT_ATTRIBUTED",
            "customers",
            "this customer came through no affiliate; pass the affiliate_code",
        ));
    };
    let owner = affiliate::Entity::find()
        .filter(affiliate::Column::WorkspaceId.eq(workspace_id))
        .filter(affiliate::Column::Code.eq(code))
        .one(&**txn)
        .await?
        .ok_or_else(|| not_found("AFFILIATE_NOT_FOUND", "affiliate code"))?;
    if let Some(customer_id) = customer_id
        && customer_id != owner.customer_id
    {
        kernel::db::insert(
            &**txn,
            attribution::ActiveModel {
                workspace_id: Set(workspace_id),
                customer_id: Set(customer_id),
                affiliate_id: Set(owner.id),
                attributed_at: Set(now),
            },
        )
        .await?;
    }
    Ok((owner, now))
}

pub(crate) async fn record_sale(
    core: &Growth,
    principal: &Principal,
    body: &pb::RecordAffiliateSaleRequest,
) -> Result<pb::Commission, ServiceError> {
    let key = IdempotencyKey::new(
        DOMAIN,
        principal,
        &body.request_id,
        "RecordAffiliateSale",
        body,
    )?;
    let mut violations = Violations::new(DOMAIN);
    let customer_id = violations.optional_uuid("customer_id", &body.customer_id);
    let code = if body.affiliate_code.is_empty() {
        None
    } else {
        let code = codes::normalize(&body.affiliate_code);
        violations.check(
            code.is_some(),
            "affiliate_code",
            "must be 3 to 32 letters or digits",
        );
        code
    };
    violations.check(
        code.is_some() || customer_id.is_some() || !body.customer_id.is_empty(),
        "affiliate_code",
        "an affiliate_code or a customer_id is required",
    );
    violations.take(
        "order_id",
        check_text(DOMAIN, "order_id", &body.order_id, 128, false),
    );
    let amount = violations.take("amount", money("amount", body.amount.as_ref(), false));
    violations.finish()?;
    let Some(amount) = amount else {
        return Err(ServiceError::internal("validated amount missing"));
    };
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let (code, order_id) = (code.as_deref(), body.order_id.as_str());
    let response = core
        .context
        .idempotent(&key, |txn| async move {
            let recorded = commission::Entity::find()
                .filter(commission::Column::WorkspaceId.eq(workspace_id))
                .filter(commission::Column::OrderId.eq(order_id))
                .one(&*txn)
                .await?;
            if recorded.is_some() {
                return Err(ServiceError::new(
                    ErrorCode::AlreadyExists,
                    DOMAIN,
                    "ORDER_ALREADY_RECORDED",
                    "a sale with this order id has already been recorded",
                ));
            }
            let (owner, attributed_at) =
                attribute(&txn, workspace_id, code, customer_id, now).await?;
            let ends = kernel::clock::from_micros(attributed_at)
                .checked_add_months(Months::new(u32::try_from(owner.commission_months).unwrap_or(0)))
                .map_or(i64::MAX, kernel::clock::to_micros);
            let reason = if owner.status != pb::AffiliateStatus::Active as i32 {
                "AFFILIATE_NOT_ACTIVE"
            } else if customer_id == Some(owner.customer_id) {
                "SELF_PURCHASE"
            } else if now >= ends {
                "COMMISSION_PERIOD_ENDED"
            } else {
                ""
            };
            let earned = reason.is_empty();
            let value = if earned {
                commission_on(amount.asset, amount.amount, owner.commission_bps as u32)?
            } else {
                0
            };
            let settings =
                kernel::settings::of_workspace::<GrowthSettings, _>(&*txn, workspace_id)
                    .await?;
            let month = local_month(&*txn, workspace_id, now).await?;
            let row = commission::Model {
                workspace_id,
                id: Uuid::now_v7(),
                affiliate_id: owner.id,
                order_id: order_id.to_owned(),
                customer_id,
                currency: amount.asset.code.to_owned(),
                sale_amount: amount.amount,
                refunded_amount: 0,
                amount: value,
                status: if earned {
                    pb::CommissionStatus::Pending as i32
                } else {
                    pb::CommissionStatus::NotEarned as i32
                },
                due_at: if earned {
                    now + days(settings.commission_holding_days)
                } else {
                    now
                },
                credited_amount: 0,
                transfer_id: None,
                reason: reason.to_owned(),
                commission_bps: owner.commission_bps,
                month: month.clone(),
                created_at: now,
                updated_at: now,
            };
            kernel::db::insert(&*txn, commission::ActiveModel::from(row.clone())).await?;
            if earned {
                add_to_month(&*txn, workspace_id, owner.id, &month, [0, 1, amount.amount, value])
                    .await?;
                metrics::add(&txn, workspace_id, owner.customer_id, AFFILIATE_REVENUE, amount.amount, now)
                    .await?;
            }
            events::emit(
                &txn,
                workspace_id,
                events::COMMISSION_RECORDED,
                format!("commissions/{}", row.id),
                json!({
                    "commission_id": row.id.to_string(),
                    "affiliate_id": owner.id.to_string(),
                    "order_id": order_id,
                    "currency": row.currency,
                    "amount": value,
                    "status": pb::CommissionStatus::try_from(row.status).map(|s| s.as_str_name()).unwrap_or_default(),
                    "reason": reason,
                }),
                now,
            )
            .await?;
            Ok((txn, commission_to_proto(&row)))
        })
        .await?;
    Ok(response)
}

pub(crate) async fn record_refund(
    core: &Growth,
    principal: &Principal,
    body: &pb::RecordRefundRequest,
) -> Result<pb::RecordRefundResponse, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "RecordRefund", body)?;
    let mut violations = Violations::new(DOMAIN);
    violations.take(
        "order_id",
        check_text(DOMAIN, "order_id", &body.order_id, 128, false),
    );
    let amount = violations.take("amount", money("amount", body.amount.as_ref(), false));
    violations.finish()?;
    let Some(amount) = amount else {
        return Err(ServiceError::internal("validated amount missing"));
    };
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let order_id = body.order_id.as_str();
    let response = core
        .context
        .idempotent(&key, |txn| async move {
            let row = commission::Entity::find()
                .filter(commission::Column::WorkspaceId.eq(workspace_id))
                .filter(commission::Column::OrderId.eq(order_id))
                .one(&*txn)
                .await?
                .ok_or_else(|| not_found("ORDER_NOT_FOUND", "affiliate sale of this order"))?;
            if row.currency != amount.asset.code {
                return Err(ServiceError::new(
                    ErrorCode::InvalidArgument,
                    DOMAIN,
                    "CURRENCY_MISMATCH",
                    format!("the sale was in {}", row.currency),
                ));
            }
            if amount.amount > row.sale_amount - row.refunded_amount {
                return Err(ServiceError::new(
                    ErrorCode::InvalidArgument,
                    DOMAIN,
                    "REFUND_EXCEEDS_SALE",
                    format!(
                        "only {} of this sale is left to refund",
                        row.sale_amount - row.refunded_amount
                    ),
                ));
            }
            let effect = refund_effect(&row, amount.asset, amount.amount)?;
            // The sale row is read-modify-written: make the write conditional on what was
            // read, so a concurrent refund of the same order runs again instead of losing.
            let updated = commission::Entity::update_many()
                .col_expr(
                    commission::Column::RefundedAmount,
                    Expr::value(effect.refunded),
                )
                .col_expr(commission::Column::Amount, Expr::value(effect.amount))
                .col_expr(
                    commission::Column::Status,
                    Expr::value(effect.status as i32),
                )
                .col_expr(commission::Column::UpdatedAt, Expr::value(now))
                .filter(commission::Column::WorkspaceId.eq(workspace_id))
                .filter(commission::Column::Id.eq(row.id))
                .filter(commission::Column::RefundedAmount.eq(row.refunded_amount))
                .filter(commission::Column::Status.eq(row.status))
                .exec(&*txn)
                .await?;
            if updated.rows_affected == 0 {
                return Err(ServiceError::retryable_conflict("commission moved"));
            }
            if effect.clawback > 0 {
                add_debt(
                    &txn,
                    workspace_id,
                    row.affiliate_id,
                    &row.currency,
                    effect.clawback,
                )
                .await?;
            }
            if row.status != pb::CommissionStatus::NotEarned as i32 {
                add_to_month(
                    &*txn,
                    workspace_id,
                    row.affiliate_id,
                    &row.month,
                    [0, 0, -amount.amount, effect.amount - row.amount],
                )
                .await?;
            }
            events::emit(
                &txn,
                workspace_id,
                events::COMMISSION_REFUNDED,
                format!("commissions/{}", row.id),
                json!({
                    "commission_id": row.id.to_string(),
                    "affiliate_id": row.affiliate_id.to_string(),
                    "order_id": order_id,
                    "currency": row.currency,
                    "reduced": effect.reduced,
                    "clawback": effect.clawback,
                }),
                now,
            )
            .await?;
            let mut after = row.clone();
            after.refunded_amount = effect.refunded;
            after.amount = effect.amount;
            after.status = effect.status as i32;
            after.updated_at = now;
            Ok((
                txn,
                pb::RecordRefundResponse {
                    commission: Some(commission_to_proto(&after)),
                    reduced: money_to_proto(&row.currency, effect.reduced),
                    clawback: money_to_proto(&row.currency, effect.clawback),
                },
            ))
        })
        .await?;
    Ok(response)
}
