//! Referral conversions: an order of the referee completes each of its open referrals that the
//! order qualifies for and rewards both sides exactly once — a conditional update moves the
//! referral out of PENDING, so of two concurrent conversions (any orders) only one rewards, and the
//! same order reported again answers ALREADY_REWARDED.

use kernel::ids::check_text;
use kernel::{IdempotencyKey, Principal, ServiceError, Violations, WriteTxn};
use proto::growth::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::convert::money;
use crate::entity::{program, referral};
use crate::referrals::{get_program, referral_to_proto};
use crate::rewards::{IssuedCoupons, RewardDef};
use crate::state::Growth;
use crate::{DOMAIN, events, metrics, rewards};

/// Rewards one referral for `order` inside the open transaction, if it is still PENDING; returns
/// the updated row, or `None` when another conversion rewarded it first.
async fn reward(
    core: &Growth,
    txn: &WriteTxn,
    row: &referral::Model,
    program: &program::Model,
    (order_id, amount): (&str, &crate::convert::Money),
    coupons: &IssuedCoupons,
    now: i64,
) -> Result<Option<referral::Model>, ServiceError> {
    let claimed = referral::Entity::update_many()
        .col_expr(
            referral::Column::Status,
            Expr::value(pb::ReferralStatus::Completed as i32),
        )
        .col_expr(referral::Column::OrderId, Expr::value(order_id))
        .col_expr(referral::Column::UpdatedAt, Expr::value(now))
        .filter(referral::Column::WorkspaceId.eq(row.workspace_id))
        .filter(referral::Column::Id.eq(row.id))
        .filter(referral::Column::Status.eq(pb::ReferralStatus::Pending as i32))
        .exec(&**txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    let workspace_id = row.workspace_id;
    let mut sides = Vec::with_capacity(2);
    for (column, receiver, side) in [
        ("referrer_reward", row.referrer_id, "referrer"),
        ("referee_reward", row.referee_id, "referee"),
    ] {
        let text = if side == "referrer" {
            &program.referrer_reward
        } else {
            &program.referee_reward
        };
        let def: RewardDef =
            kernel::db::json_column("growth_referral_program", program.id, column, text)?;
        let issued = rewards::issue(
            core,
            txn,
            &def,
            rewards::Receiver {
                workspace_id,
                customer_id: receiver,
                reference: format!("referral:{}:{side}", row.id),
            },
            coupons,
            now,
        )
        .await?;
        sides.push(issued);
    }
    let mut updated = row.clone();
    updated.status = pb::ReferralStatus::Rewarded as i32;
    updated.order_id = Some(order_id.to_owned());
    updated.order_currency = amount.asset.code.to_owned();
    updated.order_amount = amount.amount;
    updated.referrer_issued = kernel::db::to_json_column(&sides[0])?;
    updated.referee_issued = kernel::db::to_json_column(&sides[1])?;
    updated.updated_at = now;
    kernel::db::update(
        &**txn,
        referral::ActiveModel {
            workspace_id: Set(updated.workspace_id),
            id: Set(updated.id),
            status: Set(updated.status),
            order_id: Set(updated.order_id.clone()),
            order_currency: Set(updated.order_currency.clone()),
            order_amount: Set(updated.order_amount),
            referrer_issued: Set(updated.referrer_issued.clone()),
            referee_issued: Set(updated.referee_issued.clone()),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await?;
    metrics::add(
        txn,
        workspace_id,
        row.referrer_id,
        metrics::REFERRAL_CONVERSIONS,
        1,
        now,
    )
    .await?;
    events::emit(
        txn,
        workspace_id,
        events::REFERRAL_REWARDED,
        format!("referrals/{}", row.id),
        json!({
            "referral_id": row.id.to_string(),
            "program_id": row.program_id.to_string(),
            "referrer_id": row.referrer_id.to_string(),
            "referee_id": row.referee_id.to_string(),
            "order_id": order_id,
            "referrer_reward": sides[0],
            "referee_reward": sides[1],
        }),
        now,
    )
    .await?;
    Ok(Some(updated))
}

/// RecordReferralConversion: each open referral of the referee is rewarded by this order, or
/// told why not.
pub(crate) async fn record_conversion(
    core: &Growth,
    principal: &Principal,
    body: &pb::RecordReferralConversionRequest,
) -> Result<pb::RecordReferralConversionResponse, ServiceError> {
    let key = IdempotencyKey::new(
        DOMAIN,
        principal,
        &body.request_id,
        "RecordReferralConversion",
        body,
    )?;
    let mut violations = Violations::new(DOMAIN);
    let referee_id = violations.uuid("referee_id", &body.referee_id);
    violations.take(
        "order_id",
        check_text(DOMAIN, "order_id", &body.order_id, 128, false),
    );
    let amount = violations.take("amount", money("amount", body.amount.as_ref(), false));
    violations.finish()?;
    let (Some(referee_id), Some(amount)) = (referee_id, amount) else {
        return Err(ServiceError::internal("validated fields missing"));
    };
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let coupons = IssuedCoupons::default();
    let (coupons_ref, amount) = (&coupons, &amount);
    let order_id = body.order_id.as_str();
    let response = core
        .context
        .idempotent(&key, |txn| async move {
            coupons_ref.clear();
            let rows = referral::Entity::find()
                .filter(referral::Column::WorkspaceId.eq(workspace_id))
                .filter(referral::Column::RefereeId.eq(referee_id))
                .filter(
                    Condition::any()
                        .add(
                            Condition::all()
                                .add(
                                    referral::Column::Status.eq(pb::ReferralStatus::Pending as i32),
                                )
                                .add(referral::Column::ExpireAt.gt(now)),
                        )
                        .add(referral::Column::OrderId.eq(order_id)),
                )
                .order_by_asc(referral::Column::Id)
                .all(&*txn)
                .await?;
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows {
                let program = get_program(&*txn, workspace_id, row.program_id).await?;
                let reason = if row.status != pb::ReferralStatus::Pending as i32 {
                    "ALREADY_REWARDED"
                } else if !program.min_currency.is_empty()
                    && program.min_currency != amount.asset.code
                {
                    "CURRENCY_MISMATCH"
                } else if amount.amount < program.min_amount {
                    "MINIMUM_NOT_MET"
                } else {
                    ""
                };
                let (row, reason) = if reason.is_empty() {
                    match reward(
                        core,
                        &txn,
                        &row,
                        &program,
                        (order_id, amount),
                        coupons_ref,
                        now,
                    )
                    .await?
                    {
                        Some(updated) => (updated, ""),
                        None => (row, "ALREADY_REWARDED"),
                    }
                } else {
                    (row, reason)
                };
                outcomes.push(pb::ReferralOutcome {
                    referral: Some(referral_to_proto(&row)?),
                    reason: reason.to_owned(),
                });
            }
            Ok((txn, pb::RecordReferralConversionResponse { outcomes }))
        })
        .await?;
    coupons.committed(core, workspace_id).await;
    Ok(response)
}
