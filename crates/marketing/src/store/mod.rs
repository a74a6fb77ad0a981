//! sea-orm entities and every query of marketing's tables (`mkt_*`). Counters that limits guard
//! move only through conditional updates (`… WHERE held + n <= limit`), never check-then-act.

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

mod bulk;
mod counters;
mod entity;
pub use bulk::insert_new_coupons;
pub use counters::*;
pub use entity::{
    batch, campaign, coupon, daily, display, group, participation, promo_redemption, redemption,
    rule, usage,
};

/// Tells every replica's pricing snapshot that this workspace's campaigns, rules, coupons or
/// displays changed.
pub async fn bump_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<(), ServiceError> {
    kernel::db::bump_workspace_version(connection, "mkt_version", workspace_id).await
}

pub async fn current_version<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<i64, ServiceError> {
    kernel::db::workspace_version(connection, "mkt_version", workspace_id).await
}

/// Generates `get_*` (by key) for the tables keyed by `(workspace_id, id)`.
macro_rules! getters {
    ($($name:ident => $table:ident),* $(,)?) => {$(
        pub async fn $name<C: ConnectionTrait>(
            connection: &C,
            workspace_id: Uuid,
            id: Uuid,
        ) -> Result<Option<$table::Model>, ServiceError> {
            Ok($table::Entity::find_by_id((workspace_id, id)).one(connection).await?)
        }
    )*};
}

getters! {
    get_group => group,
    get_campaign => campaign,
    get_rule => rule,
    get_coupon => coupon,
    get_batch => batch,
    get_redemption => redemption,
    get_participation => participation,
}

pub use kernel::db::{insert, update};

pub async fn group_by_name<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    name: &str,
) -> Result<Option<group::Model>, ServiceError> {
    Ok(group::Entity::find()
        .filter(group::Column::WorkspaceId.eq(workspace_id))
        .filter(group::Column::Name.eq(name))
        .one(connection)
        .await?)
}

/// Groups by name after `after`.
pub async fn list_groups<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<group::Model>, ServiceError> {
    let mut query = group::Entity::find()
        .filter(group::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(group::Column::Name)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(group::Column::Name.gt(after));
    }
    Ok(query.all(connection).await?)
}

pub async fn campaign_by_code<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    code: &str,
) -> Result<Option<campaign::Model>, ServiceError> {
    Ok(campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Code.eq(code))
        .one(connection)
        .await?)
}

/// Campaigns by id after `after`, filtered by stored statuses and group.
pub async fn list_campaigns<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    statuses: Option<&[i32]>,
    group_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<campaign::Model>, ServiceError> {
    let mut query = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(campaign::Column::Id)
        .limit(limit);
    if let Some(statuses) = statuses {
        query = query.filter(campaign::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(group_id) = group_id {
        query = query.filter(campaign::Column::GroupId.eq(group_id));
    }
    if let Some(after) = after {
        query = query.filter(campaign::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// Every campaign of a workspace that is not a draft nor completed.
pub async fn live_campaigns<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<Vec<campaign::Model>, ServiceError> {
    use crate::model::CampaignStatus as S;
    Ok(campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Status.is_in([
            S::Scheduled as i32,
            S::Active as i32,
            S::Paused as i32,
        ]))
        .order_by_asc(campaign::Column::Id)
        .all(connection)
        .await?)
}

/// Launched campaigns (of every workspace) whose stored status their window has overtaken: due to
/// start (SCHEDULED with start ≤ now) or to end (end ≤ now), up to `limit`.
pub async fn campaigns_due<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<campaign::Model>, ServiceError> {
    use crate::model::CampaignStatus as S;
    use sea_orm::Condition;
    Ok(campaign::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(campaign::Column::Status.eq(S::Scheduled as i32))
                        .add(campaign::Column::StartTime.lte(now)),
                )
                .add(
                    Condition::all()
                        .add(campaign::Column::Status.is_in([
                            S::Scheduled as i32,
                            S::Active as i32,
                            S::Paused as i32,
                        ]))
                        .add(campaign::Column::EndTime.lte(now)),
                ),
        )
        .limit(limit)
        .all(connection)
        .await?)
}

pub async fn rules_by_ids<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<rule::Model>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(rule::Entity::find()
        .filter(rule::Column::WorkspaceId.eq(workspace_id))
        .filter(rule::Column::Id.is_in(ids.iter().copied()))
        .all(connection)
        .await?)
}

pub async fn all_rules<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<Vec<rule::Model>, ServiceError> {
    Ok(rule::Entity::find()
        .filter(rule::Column::WorkspaceId.eq(workspace_id))
        .all(connection)
        .await?)
}

pub async fn list_rules<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<rule::Model>, ServiceError> {
    let mut query = rule::Entity::find()
        .filter(rule::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(rule::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(rule::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

pub async fn coupon_by_code<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    code: &str,
) -> Result<Option<coupon::Model>, ServiceError> {
    Ok(coupon::Entity::find()
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(coupon::Column::Code.eq(code))
        .one(connection)
        .await?)
}

/// The coupons with these codes, in id order; with `lock`, locked for the transaction
/// (PostgreSQL; SQLite write transactions are serialized) — coupons are locked before campaigns,
/// each in id order, on every path that moves their counters.
pub async fn coupons_by_codes<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    codes: &[String],
    lock: bool,
) -> Result<Vec<coupon::Model>, ServiceError> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = coupon::Entity::find()
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(coupon::Column::Code.is_in(codes.iter().cloned()))
        .order_by_asc(coupon::Column::Id);
    if lock {
        query = query.lock_exclusive();
    }
    Ok(query.all(connection).await?)
}

/// A workspace's coupons that can still be used at `now`, by id after `after` (snapshot pages).
pub async fn usable_coupons<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    now: i64,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<coupon::Model>, ServiceError> {
    use sea_orm::Condition;
    let mut query = coupon::Entity::find()
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .filter(
            Condition::any()
                .add(coupon::Column::ValidUntil.is_null())
                .add(coupon::Column::ValidUntil.gt(now)),
        )
        .order_by_asc(coupon::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(coupon::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// What ListCoupons and ExportCoupons filter on.
#[derive(Clone, Copy, Debug, Default)]
pub struct CouponFilter {
    pub campaign_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub batch_id: Option<Uuid>,
}

pub async fn list_coupons<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    filter: CouponFilter,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<coupon::Model>, ServiceError> {
    let mut query = coupon::Entity::find()
        .filter(coupon::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(coupon::Column::Id)
        .limit(limit);
    if let Some(campaign_id) = filter.campaign_id {
        query = query.filter(coupon::Column::CampaignId.eq(campaign_id));
    }
    if let Some(customer_id) = filter.customer_id {
        query = query.filter(coupon::Column::CustomerId.eq(customer_id));
    }
    if let Some(batch_id) = filter.batch_id {
        query = query.filter(coupon::Column::BatchId.eq(batch_id));
    }
    if let Some(after) = after {
        query = query.filter(coupon::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// Batches still running whose last progress is older than `stale_before` (left by a stopped
/// server), up to `limit`.
pub async fn stalled_batches<C: ConnectionTrait>(
    connection: &C,
    stale_before: i64,
    limit: u64,
) -> Result<Vec<batch::Model>, ServiceError> {
    Ok(batch::Entity::find()
        .filter(batch::Column::Status.eq(crate::batches::BATCH_RUNNING))
        .filter(batch::Column::UpdatedAt.lt(stale_before))
        .limit(limit)
        .all(connection)
        .await?)
}

/// Records that `n` more codes of a batch exist, if its progress is still `expected` (a batch is
/// advanced by one worker at a time); returns whether it was.
pub async fn advance_batch<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    expected: i64,
    n: i64,
    now: i64,
) -> Result<bool, ServiceError> {
    let result = batch::Entity::update_many()
        .col_expr(
            batch::Column::Generated,
            Expr::col(batch::Column::Generated).add(n),
        )
        .col_expr(batch::Column::UpdatedAt, Expr::value(now))
        .filter(batch::Column::WorkspaceId.eq(workspace_id))
        .filter(batch::Column::Id.eq(id))
        .filter(batch::Column::Generated.eq(expected))
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Moves a redemption from `from` to the status `changes` sets, if it is still in `from`
/// (exactly one caller wins a race between confirm, rollback and expiry).
pub async fn transition_redemption<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    from: i32,
    to: i32,
    reason: &str,
    now: i64,
) -> Result<bool, ServiceError> {
    let result = redemption::Entity::update_many()
        .col_expr(redemption::Column::Status, Expr::value(to))
        .col_expr(redemption::Column::RollbackReason, Expr::value(reason))
        .col_expr(redemption::Column::UpdatedAt, Expr::value(now))
        .filter(redemption::Column::WorkspaceId.eq(workspace_id))
        .filter(redemption::Column::Id.eq(id))
        .filter(redemption::Column::Status.eq(from))
        .exec(connection)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Reserved redemptions (of every workspace) past their expiry, up to `limit`.
pub async fn expired_redemptions<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<redemption::Model>, ServiceError> {
    Ok(redemption::Entity::find()
        .filter(redemption::Column::Status.eq(crate::redemptions::RESERVED))
        .filter(redemption::Column::ExpireAt.lte(now))
        .order_by_asc(redemption::Column::ExpireAt)
        .limit(limit)
        .all(connection)
        .await?)
}

pub async fn participation_of<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    campaign_id: Uuid,
    customer_id: Uuid,
) -> Result<Option<participation::Model>, ServiceError> {
    Ok(participation::Entity::find()
        .filter(participation::Column::WorkspaceId.eq(workspace_id))
        .filter(participation::Column::CampaignId.eq(campaign_id))
        .filter(participation::Column::CustomerId.eq(customer_id))
        .one(connection)
        .await?)
}

pub async fn list_participations<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    campaign_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<participation::Model>, ServiceError> {
    let mut query = participation::Entity::find()
        .filter(participation::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(participation::Column::Id)
        .limit(limit);
    if let Some(campaign_id) = campaign_id {
        query = query.filter(participation::Column::CampaignId.eq(campaign_id));
    }
    if let Some(customer_id) = customer_id {
        query = query.filter(participation::Column::CustomerId.eq(customer_id));
    }
    if let Some(after) = after {
        query = query.filter(participation::Column::Id.gt(after));
    }
    Ok(query.all(connection).await?)
}

/// Moves a participation to `status` if it is in `from`.
pub async fn set_participation_status<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
    from: i32,
    status: i32,
    now: i64,
) -> Result<(), ServiceError> {
    participation::Entity::update_many()
        .col_expr(participation::Column::Status, Expr::value(status))
        .col_expr(participation::Column::UpdatedAt, Expr::value(now))
        .filter(participation::Column::WorkspaceId.eq(workspace_id))
        .filter(participation::Column::Id.eq(id))
        .filter(participation::Column::Status.eq(from))
        .exec(connection)
        .await?;
    Ok(())
}

pub async fn all_displays<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<Vec<display::Model>, ServiceError> {
    Ok(display::Entity::find()
        .filter(display::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(display::Column::Position)
        .order_by_asc(display::Column::Id)
        .all(connection)
        .await?)
}

/// What one event adds to a campaign's day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub impressions: i64,
    pub clicks: i64,
    pub conversions: i64,
    pub revenue: i64,
    pub coupons_generated: i64,
    pub coupons_redeemed: i64,
    pub discount_given: i64,
}

/// Adds `counts` to a campaign's row for `day` (YYYY-MM-DD, workspace time zone) and `currency`
/// (of the revenue and discount in `counts`; "" for counts only).
pub async fn add_to_day<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    campaign_id: Uuid,
    day: &str,
    currency: &str,
    counts: DayCounts,
) -> Result<(), ServiceError> {
    use daily::Column as D;
    let row = daily::ActiveModel {
        workspace_id: Set(workspace_id),
        campaign_id: Set(campaign_id),
        day: Set(day.to_owned()),
        currency: Set(currency.to_owned()),
        impressions: Set(counts.impressions),
        clicks: Set(counts.clicks),
        conversions: Set(counts.conversions),
        revenue: Set(counts.revenue),
        coupons_generated: Set(counts.coupons_generated),
        coupons_redeemed: Set(counts.coupons_redeemed),
        discount_given: Set(counts.discount_given),
    };
    let mut on_conflict = OnConflict::columns([D::WorkspaceId, D::CampaignId, D::Day, D::Currency]);
    for (column, value) in [
        (D::Impressions, counts.impressions),
        (D::Clicks, counts.clicks),
        (D::Conversions, counts.conversions),
        (D::Revenue, counts.revenue),
        (D::CouponsGenerated, counts.coupons_generated),
        (D::CouponsRedeemed, counts.coupons_redeemed),
        (D::DiscountGiven, counts.discount_given),
    ] {
        on_conflict.value(column, Expr::col((daily::Entity, column)).add(value));
    }
    daily::Entity::insert(row)
        .on_conflict(on_conflict.to_owned())
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

/// A campaign's days from `start` to `end` inclusive (YYYY-MM-DD), in order.
pub async fn campaign_days<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    campaign_id: Uuid,
    start: &str,
    end: &str,
) -> Result<Vec<daily::Model>, ServiceError> {
    Ok(daily::Entity::find()
        .filter(daily::Column::WorkspaceId.eq(workspace_id))
        .filter(daily::Column::CampaignId.eq(campaign_id))
        .filter(daily::Column::Day.gte(start))
        .filter(daily::Column::Day.lte(end))
        .order_by_asc(daily::Column::Day)
        .order_by_asc(daily::Column::Currency)
        .all(connection)
        .await?)
}

/// Campaigns by id, in id order; with `lock`, locked for the transaction (after any coupons).
pub async fn campaigns_by_ids<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    ids: &[Uuid],
    lock: bool,
) -> Result<Vec<campaign::Model>, ServiceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(campaign::Column::Id);
    if lock {
        query = query.lock_exclusive();
    }
    Ok(query.all(connection).await?)
}
