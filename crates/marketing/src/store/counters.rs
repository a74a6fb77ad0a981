//! The counters limits guard — coupon uses, campaign uses and budget, a customer's uses — and the
//! row locks redemption takes before it reads them. Counters move only through conditional
//! updates (`… WHERE held < limit`), never check-then-act; locks are taken coupons first, then
//! campaigns, each in id order.

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{campaign, coupon, usage};

/// Takes one use of a coupon if it has one left.
pub async fn take_coupon_use<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    now: i64,
) -> Result<bool, ServiceError> {
    use sea_orm::Condition;
    let result = coupon::Entity::update_many()
        .col_expr(
            coupon::Column::UsesHeld,
            Expr::col(coupon::Column::UsesHeld).add(1),
        )
        .col_expr(coupon::Column::UpdatedAt, Expr::value(now))
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(coupon::Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(coupon::Column::UsageLimit.eq(0))
                .add(Expr::col(coupon::Column::UsesHeld).lt(Expr::col(coupon::Column::UsageLimit))),
        )
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Moves a coupon's counters: `held` uses held (negative releases) and `redeemed` confirmed.
pub async fn move_coupon<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    held: i64,
    redeemed: i64,
    now: i64,
) -> Result<(), ServiceError> {
    coupon::Entity::update_many()
        .col_expr(
            coupon::Column::UsesHeld,
            Expr::col(coupon::Column::UsesHeld).add(held),
        )
        .col_expr(
            coupon::Column::TimesRedeemed,
            Expr::col(coupon::Column::TimesRedeemed).add(redeemed),
        )
        .col_expr(coupon::Column::UpdatedAt, Expr::value(now))
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(coupon::Column::Id.eq(id))
        .exec(connection)
        .await?;
    Ok(())
}

/// Takes one use and `amount` of budget of a campaign if both are left.
pub async fn take_campaign_use<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    amount: i64,
    now: i64,
) -> Result<bool, ServiceError> {
    use sea_orm::Condition;
    let result = campaign::Entity::update_many()
        .col_expr(
            campaign::Column::UsesHeld,
            Expr::col(campaign::Column::UsesHeld).add(1),
        )
        .col_expr(
            campaign::Column::BudgetUsed,
            Expr::col(campaign::Column::BudgetUsed).add(amount),
        )
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(campaign::Column::UsageLimitTotal.eq(0))
                .add(
                    Expr::col(campaign::Column::UsesHeld)
                        .lt(Expr::col(campaign::Column::UsageLimitTotal)),
                ),
        )
        .filter(
            Condition::any()
                .add(campaign::Column::Budget.is_null())
                .add(
                    Expr::col(campaign::Column::BudgetUsed)
                        .add(amount)
                        .lte(Expr::col(campaign::Column::Budget)),
                ),
        )
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Moves a campaign's counters: uses and budget held (negative releases), confirmed redemptions
/// and discount.
pub async fn move_campaign<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    held: (i64, i64),
    confirmed: (i64, i64),
    now: i64,
) -> Result<(), ServiceError> {
    campaign::Entity::update_many()
        .col_expr(
            campaign::Column::UsesHeld,
            Expr::col(campaign::Column::UsesHeld).add(held.0),
        )
        .col_expr(
            campaign::Column::BudgetUsed,
            Expr::col(campaign::Column::BudgetUsed).add(held.1),
        )
        .col_expr(
            campaign::Column::RedemptionCount,
            Expr::col(campaign::Column::RedemptionCount).add(confirmed.0),
        )
        .col_expr(
            campaign::Column::DiscountGiven,
            Expr::col(campaign::Column::DiscountGiven).add(confirmed.1),
        )
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Id.eq(id))
        .exec(connection)
        .await?;
    Ok(())
}

/// Uses of each scope (coupon or campaign) held by a customer.
pub async fn customer_uses<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    customer_id: Uuid,
    scopes: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, ServiceError> {
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(usage::Entity::find()
        .select_only()
        .columns([usage::Column::ScopeId, usage::Column::Held])
        .filter(usage::Column::WorkspaceId.eq(workspace_id))
        .filter(usage::Column::CustomerId.eq(customer_id))
        .filter(usage::Column::ScopeId.is_in(scopes.iter().copied()))
        .into_tuple()
        .all(connection)
        .await?)
}

/// Takes one of a customer's `limit` uses of a scope if one is left.
pub async fn take_customer_use<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    scope_id: Uuid,
    customer_id: Uuid,
    limit: i64,
) -> Result<bool, ServiceError> {
    let row = usage::ActiveModel {
        workspace_id: Set(workspace_id),
        scope_id: Set(scope_id),
        customer_id: Set(customer_id),
        held: Set(0),
    };
    usage::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                usage::Column::WorkspaceId,
                usage::Column::ScopeId,
                usage::Column::CustomerId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    let result = usage::Entity::update_many()
        .col_expr(usage::Column::Held, Expr::col(usage::Column::Held).add(1))
        .filter(usage::Column::WorkspaceId.eq(workspace_id))
        .filter(usage::Column::ScopeId.eq(scope_id))
        .filter(usage::Column::CustomerId.eq(customer_id))
        .filter(usage::Column::Held.lt(limit))
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives back one of a customer's uses of a scope.
pub async fn release_customer_use<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    scope_id: Uuid,
    customer_id: Uuid,
) -> Result<(), ServiceError> {
    usage::Entity::update_many()
        .col_expr(usage::Column::Held, Expr::col(usage::Column::Held).sub(1))
        .filter(usage::Column::WorkspaceId.eq(workspace_id))
        .filter(usage::Column::ScopeId.eq(scope_id))
        .filter(usage::Column::CustomerId.eq(customer_id))
        .filter(usage::Column::Held.gt(0))
        .exec(connection)
        .await?;
    Ok(())
}

/// Coupons by id, locked, in id order.
pub async fn lock_coupons_by_id<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<coupon::Model>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(coupon::Entity::find()
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(coupon::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(coupon::Column::Id)
        .lock_exclusive()
        .all(connection)
        .await?)
}
