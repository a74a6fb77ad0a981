//! Affiliate commissions: the arithmetic (pure), and the two moves the ledger sees — crediting
//! a commission whose holding period ended, net of clawbacks owed, and taking back commission a
//! refund removed.
//!
//! The declared rounding: the affiliate is the named party of the split, so a commission is
//! `floor(rate × (sale − refunded))` and the shop keeps the rest (kernel::money::split_named).
//! A refund recomputes the commission on what is left of the sale, so partial refunds never
//! leave the commission above the rate of the net sale. While PENDING the commission follows
//! refunds; once credited, what a refund removes becomes a clawback owed by the affiliate and is
//! deducted from the next commissions credited in that currency.

use kernel::money::{Amount, Asset, Rounding};
use kernel::{ServiceError, WriteTxn};
use proto::growth::v1 as pb;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::entity::{affiliate, affiliate_month, commission, debt};
use crate::state::Growth;
use crate::{DOMAIN, events, rewards};

/// The ledger code of a commission credited to an affiliate's wallet.
pub const COMMISSION_CODE: &str = "AFFILIATE_COMMISSION";

/// The affiliate's commission on `net` minor units of `asset` at `bps`: floored (see the
/// module's doc).
pub fn commission_on(asset: Asset, net: i64, bps: u32) -> Result<i64, ServiceError> {
    let money_error = |error: kernel::money::MoneyError| error.into_service(DOMAIN, "amount");
    let (named, _rest) = Amount::new(asset, net)
        .map_err(money_error)?
        .split_named(bps, Rounding::Floor)
        .map_err(money_error)?;
    Ok(named.minor())
}

/// What a refund does to a commission: its new amount, and how much of the change is taken from
/// the pending commission (`reduced`) or owed back (`clawback`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundEffect {
    pub refunded: i64,
    pub amount: i64,
    pub reduced: i64,
    pub clawback: i64,
    pub status: pb::CommissionStatus,
}

/// The effect of refunding `refund` more of a commission's sale (refunds together within the
/// sale, checked by the caller).
pub fn refund_effect(
    row: &commission::Model,
    asset: Asset,
    refund: i64,
) -> Result<RefundEffect, ServiceError> {
    let status =
        pb::CommissionStatus::try_from(row.status).unwrap_or(pb::CommissionStatus::NotEarned);
    let refunded = row.refunded_amount + refund;
    let amount = match status {
        pb::CommissionStatus::NotEarned => 0,
        _ => commission_on(
            asset,
            row.sale_amount - refunded,
            u32::try_from(row.commission_bps).unwrap_or(0),
        )?,
    };
    let change = row.amount - amount;
    Ok(match status {
        pb::CommissionStatus::Pending => RefundEffect {
            refunded,
            amount,
            reduced: change,
            clawback: 0,
            status: if amount == 0 {
                pb::CommissionStatus::Reversed
            } else {
                pb::CommissionStatus::Pending
            },
        },
        pb::CommissionStatus::Due | pb::CommissionStatus::Paid => RefundEffect {
            refunded,
            amount,
            reduced: 0,
            clawback: change,
            status,
        },
        other => RefundEffect {
            refunded,
            amount: std::cmp::min(row.amount, amount),
            reduced: 0,
            clawback: 0,
            status: other,
        },
    })
}

/// Commissions whose holding period has ended, oldest first.
pub(crate) async fn due<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<commission::Model>, ServiceError> {
    Ok(commission::Entity::find()
        .filter(commission::Column::Status.eq(pb::CommissionStatus::Pending as i32))
        .filter(commission::Column::DueAt.lte(now))
        .order_by_asc(commission::Column::DueAt)
        .limit(limit)
        .all(connection)
        .await?)
}

/// Adds to a clawback owed (negative `delta` pays it down).
pub(crate) async fn add_debt(
    txn: &WriteTxn,
    workspace_id: Uuid,
    affiliate_id: Uuid,
    currency: &str,
    delta: i64,
) -> Result<(), ServiceError> {
    debt::Entity::insert(debt::ActiveModel {
        workspace_id: Set(workspace_id),
        affiliate_id: Set(affiliate_id),
        currency: Set(currency.to_owned()),
        owed: Set(delta),
    })
    .on_conflict(
        OnConflict::columns([
            debt::Column::WorkspaceId,
            debt::Column::AffiliateId,
            debt::Column::Currency,
        ])
        .value(
            debt::Column::Owed,
            Expr::col((debt::Entity, debt::Column::Owed)).add(delta),
        )
        .to_owned(),
    )
    .exec_without_returning(&**txn)
    .await?;
    Ok(())
}

pub(crate) async fn owed<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    affiliate_id: Uuid,
    currency: &str,
) -> Result<i64, ServiceError> {
    Ok(
        debt::Entity::find_by_id((workspace_id, affiliate_id, currency.to_owned()))
            .one(connection)
            .await?
            .map_or(0, |row| row.owed),
    )
}

/// Adds to an affiliate's month on its dashboard.
pub(crate) async fn add_to_month<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    affiliate_id: Uuid,
    month: &str,
    counts: [i64; 4],
) -> Result<(), ServiceError> {
    use affiliate_month::Column as M;
    let [clicks, conversions, revenue, commission] = counts;
    let mut on_conflict = OnConflict::columns([M::WorkspaceId, M::AffiliateId, M::Month]);
    for (column, value) in [
        (M::Clicks, clicks),
        (M::Conversions, conversions),
        (M::Revenue, revenue),
        (M::Commission, commission),
    ] {
        on_conflict.value(
            column,
            Expr::col((affiliate_month::Entity, column)).add(value),
        );
    }
    affiliate_month::Entity::insert(affiliate_month::ActiveModel {
        workspace_id: Set(workspace_id),
        affiliate_id: Set(affiliate_id),
        month: Set(month.to_owned()),
        clicks: Set(clicks),
        conversions: Set(conversions),
        revenue: Set(revenue),
        commission: Set(commission),
    })
    .on_conflict(on_conflict.to_owned())
    .exec_without_returning(connection)
    .await?;
    Ok(())
}

/// Credits one commission whose holding period ended (net of clawbacks owed) and marks it DUE.
/// Returns whether it changed anything (another replica may have done it first).
pub(crate) async fn mature(
    core: &Growth,
    row: &commission::Model,
    now: i64,
) -> Result<bool, ServiceError> {
    let (workspace_id, id) = (row.workspace_id, row.id);
    core.context
        .write(|txn| async move {
            let Some(current) = commission::Entity::find_by_id((workspace_id, id))
                .one(&*txn)
                .await?
            else {
                return Ok((txn, false));
            };
            if current.status != pb::CommissionStatus::Pending as i32 || current.due_at > now {
                return Ok((txn, false));
            }
            let claimed = commission::Entity::update_many()
                .col_expr(
                    commission::Column::Status,
                    Expr::value(pb::CommissionStatus::Due as i32),
                )
                .col_expr(commission::Column::UpdatedAt, Expr::value(now))
                .filter(commission::Column::WorkspaceId.eq(workspace_id))
                .filter(commission::Column::Id.eq(id))
                .filter(commission::Column::Status.eq(pb::CommissionStatus::Pending as i32))
                .exec(&*txn)
                .await?;
            if claimed.rows_affected == 0 {
                return Ok((txn, false));
            }
            let owner = affiliate::Entity::find_by_id((workspace_id, current.affiliate_id))
                .one(&*txn)
                .await?
                .ok_or_else(|| ServiceError::internal("a commission's affiliate is missing"))?;
            let owed = owed(&*txn, workspace_id, owner.id, &current.currency).await?;
            let deducted = owed.clamp(0, current.amount);
            let credited = current.amount - deducted;
            if deducted > 0 {
                add_debt(&txn, workspace_id, owner.id, &current.currency, -deducted).await?;
            }
            let transfer_id = if credited > 0 {
                Some(
                    rewards::credit_wallet(
                        &txn,
                        workspace_id,
                        owner.customer_id,
                        &current.currency,
                        credited,
                        COMMISSION_CODE,
                        format!("commission:{id}"),
                        now,
                    )
                    .await?,
                )
            } else {
                None
            };
            kernel::db::update(
                &*txn,
                commission::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    credited_amount: Set(credited),
                    transfer_id: Set(transfer_id),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            events::emit(
                &txn,
                workspace_id,
                events::COMMISSION_DUE,
                format!("commissions/{id}"),
                json!({
                    "commission_id": id.to_string(),
                    "affiliate_id": owner.id.to_string(),
                    "currency": current.currency,
                    "amount": current.amount,
                    "credited": credited,
                    "transfer_id": transfer_id.map(|id| id.to_string()),
                }),
                now,
            )
            .await?;
            Ok((txn, true))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Asset {
        Asset::parse("USD").expect("USD")
    }

    fn row(sale: i64, bps: i32, status: pb::CommissionStatus) -> commission::Model {
        commission::Model {
            workspace_id: Uuid::nil(),
            id: Uuid::nil(),
            affiliate_id: Uuid::nil(),
            order_id: "o".to_owned(),
            customer_id: None,
            currency: "USD".to_owned(),
            sale_amount: sale,
            refunded_amount: 0,
            amount: commission_on(usd(), sale, bps as u32).expect("commission"),
            status: status as i32,
            due_at: 0,
            credited_amount: 0,
            transfer_id: None,
            reason: String::new(),
            commission_bps: bps,
            month: "2026-11".to_owned(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn commissions_are_floored_for_the_affiliate() {
        // 20 % of $99.99 is 1999.8 cents: the affiliate gets 1999.
        assert_eq!(commission_on(usd(), 9999, 2000).expect("c"), 1999);
        assert_eq!(commission_on(usd(), 10_000, 2000).expect("c"), 2000);
        assert_eq!(commission_on(usd(), 4, 2000).expect("c"), 0);
    }

    #[test]
    fn a_refund_reduces_a_pending_commission_and_claws_back_a_credited_one() {
        let pending = row(10_000, 2000, pb::CommissionStatus::Pending);
        let half = refund_effect(&pending, usd(), 5_000).expect("effect");
        assert_eq!((half.amount, half.reduced, half.clawback), (1000, 1000, 0));
        assert_eq!(half.status, pb::CommissionStatus::Pending);
        let all = refund_effect(&pending, usd(), 10_000).expect("effect");
        assert_eq!((all.amount, all.reduced), (0, 2000));
        assert_eq!(all.status, pb::CommissionStatus::Reversed);
        let due = row(10_000, 2000, pb::CommissionStatus::Due);
        let back = refund_effect(&due, usd(), 2_500).expect("effect");
        assert_eq!((back.amount, back.reduced, back.clawback), (1500, 0, 500));
        assert_eq!(back.status, pb::CommissionStatus::Due);
    }

    proptest! {
        /// However a sale is refunded in parts, the commission taken back plus what is left is
        /// exactly the first commission, and what is left is the floored rate of the net sale.
        #[test]
        fn refunds_in_parts_take_back_exactly(
            sale in 1i64..10_000_000,
            bps in 0i32..=10_000,
            cuts in proptest::collection::vec(1u32..100, 1..6),
        ) {
            let mut current = row(sale, bps, pb::CommissionStatus::Pending);
            let first = current.amount;
            let mut taken = 0;
            let total: u64 = cuts.iter().map(|c| u64::from(*c)).sum();
            let parts = kernel::money::split_weighted(sale, &cuts.iter().map(|c| u64::from(*c)).collect::<Vec<_>>()).expect("split");
            prop_assert_eq!(parts.iter().sum::<i64>(), sale);
            prop_assert!(total > 0);
            for part in parts {
                let effect = refund_effect(&current, usd(), part).expect("effect");
                taken += effect.reduced;
                current.refunded_amount = effect.refunded;
                current.amount = effect.amount;
                current.status = effect.status as i32;
                prop_assert_eq!(effect.amount, commission_on(usd(), sale - effect.refunded, bps as u32).expect("c"));
            }
            prop_assert_eq!(taken + current.amount, first);
            prop_assert_eq!(current.amount, 0);
        }
    }
}
