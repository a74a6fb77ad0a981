//! Every credit to a promoter is an earning: where it came from (views, work, a sale), its
//! gross, the platform fee and who paid it, and whether it is held (pending ledger transfers
//! that reserve escrow) or available. Held earnings are released by the sweeper when their
//! holding period ends.

use kernel::ServiceError;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::domain::Split;
use crate::entity::{campaign, earning};
use crate::escrow::{self, Credited};
use crate::state::{Payouts, local_month};

/// Where an earning came from (`payout_earning.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Source {
    Views = 1,
    Work = 2,
    Sale = 3,
}

/// `payout_earning.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EarningStatus {
    /// Pending ledger transfers reserve it in escrow; the wallet shows it as pending.
    Held = 1,
    Available = 2,
    /// Voided before it was released (a rejected or refunded sale).
    Reversed = 3,
}

/// Until when an earning is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Available at once.
    None,
    /// Pending until this instant (microseconds); the sweeper releases it then.
    Until(i64),
    /// Pending until someone decides (an unverified sale): never due by itself.
    Undecided,
}

impl Hold {
    /// A holding period of `days` from `now` (0 days: not held).
    pub fn days(days: i64, now: i64) -> Hold {
        if days > 0 {
            Hold::Until(now + crate::convert::days(days))
        } else {
            Hold::None
        }
    }
}

/// Credits `split` of `campaign` to `promoter_id`, held as `hold` says, and records it under
/// `id`. Adds it to the campaign's spent and fees.
#[allow(clippy::too_many_arguments)]
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    campaign: &mut campaign::Model,
    promoter_id: Uuid,
    (source, source_id): (Source, String),
    split: Split,
    hold: Hold,
    now: i64,
) -> Result<Uuid, ServiceError> {
    let workspace_id = campaign.workspace_id;
    let held = hold != Hold::None;
    let id = Uuid::now_v7();
    let credited = escrow::credit(
        txn,
        workspace_id,
        campaign.id,
        promoter_id,
        &campaign.currency,
        split,
        held,
        id.to_string(),
        now,
    )
    .await?;
    let period = local_month(txn, workspace_id, now).await?;
    let status = if held {
        EarningStatus::Held
    } else {
        EarningStatus::Available
    };
    kernel::db::insert(
        txn,
        earning::ActiveModel::from(earning::Model {
            workspace_id,
            id,
            campaign_id: campaign.id,
            advertiser_id: campaign.advertiser_id,
            promoter_id,
            source: source as i32,
            source_id,
            currency: campaign.currency.clone(),
            gross: split.gross,
            fee: split.fee,
            promoter_amount: split.promoter,
            fee_payer: campaign.fee_payer,
            status: status as i32,
            release_at: match hold {
                Hold::None => now,
                Hold::Until(at) => at,
                Hold::Undecided => i64::MAX,
            },
            period,
            wallet_transfer_id: credited.wallet_transfer_id,
            fee_transfer_id: credited.fee_transfer_id,
            created_at: now,
            updated_at: now,
        }),
    )
    .await?;
    campaign.spent += split.gross;
    campaign.fees += split.fee;
    save_totals(txn, campaign, now).await?;
    Ok(id)
}

/// Stores a campaign's running totals (spent, fees, views).
pub async fn save_totals<C: ConnectionTrait>(
    txn: &C,
    campaign: &mut campaign::Model,
    now: i64,
) -> Result<(), ServiceError> {
    campaign.updated_at = now;
    kernel::db::update(
        txn,
        campaign::ActiveModel {
            workspace_id: Set(campaign.workspace_id),
            id: Set(campaign.id),
            spent: Set(campaign.spent),
            fees: Set(campaign.fees),
            total_views: Set(campaign.total_views),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await
}

/// Held earnings whose holding period has ended, oldest first.
pub async fn due<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<(Uuid, Uuid)>, ServiceError> {
    Ok(earning::Entity::find()
        .select_only()
        .columns([earning::Column::WorkspaceId, earning::Column::Id])
        .filter(earning::Column::Status.eq(EarningStatus::Held as i32))
        .filter(earning::Column::ReleaseAt.lte(now))
        .order_by_asc(earning::Column::ReleaseAt)
        .limit(limit)
        .into_tuple::<(Uuid, Uuid)>()
        .all(connection)
        .await?)
}

/// Makes one held earning available (posts its pending transfers), if it still is held and due.
pub async fn release(
    core: &Payouts,
    workspace_id: Uuid,
    id: Uuid,
    now: i64,
) -> Result<bool, ServiceError> {
    core.context
        .write(|txn| async move {
            let Some(row) = earning::Entity::find_by_id((workspace_id, id))
                .lock_exclusive()
                .one(&*txn)
                .await?
            else {
                return Ok((txn, false));
            };
            if row.status != EarningStatus::Held as i32 || row.release_at > now {
                return Ok((txn, false));
            }
            resolve(&*txn, &row, true, now).await?;
            Ok((txn, true))
        })
        .await
}

/// Posts (`post`) or voids a held earning's transfers and marks it AVAILABLE or REVERSED.
async fn resolve<C: ConnectionTrait>(
    txn: &C,
    row: &earning::Model,
    post: bool,
    now: i64,
) -> Result<(), ServiceError> {
    let credited = Credited {
        wallet_transfer_id: row.wallet_transfer_id,
        fee_transfer_id: row.fee_transfer_id,
    };
    escrow::resolve_held(txn, row.workspace_id, credited, post, now).await?;
    let status = if post {
        EarningStatus::Available
    } else {
        EarningStatus::Reversed
    };
    kernel::db::update(
        txn,
        earning::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            status: Set(status as i32),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await
}

/// A held earning of the workspace, locked; FAILED_PRECONDITION EARNING_RELEASED when it is
/// no longer held.
async fn held<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<earning::Model, ServiceError> {
    let row = earning::Entity::find_by_id((workspace_id, id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::internal("an earning vanished"))?;
    if row.status == EarningStatus::Held as i32 {
        Ok(row)
    } else {
        Err(ServiceError::failed_precondition(
            crate::DOMAIN,
            "EARNING_RELEASED",
            format!("earnings/{id}"),
            "the earning is no longer held: its holding period has ended",
        ))
    }
}

/// Voids a held earning and takes it off the campaign's spent and fees (the caller stores the
/// campaign).
pub async fn reverse<C: ConnectionTrait>(
    txn: &C,
    campaign: &mut campaign::Model,
    id: Uuid,
    now: i64,
) -> Result<earning::Model, ServiceError> {
    let row = held(txn, campaign.workspace_id, id).await?;
    resolve(txn, &row, false, now).await?;
    campaign.spent -= row.gross;
    campaign.fees -= row.fee;
    Ok(row)
}

/// Releases a held earning at `at`: now when `at` has come, otherwise by the sweeper then.
pub async fn release_at<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    id: Uuid,
    at: i64,
    now: i64,
) -> Result<(), ServiceError> {
    let row = held(txn, workspace_id, id).await?;
    if at <= now {
        return resolve(txn, &row, true, now).await;
    }
    kernel::db::update(
        txn,
        earning::ActiveModel {
            workspace_id: Set(workspace_id),
            id: Set(id),
            release_at: Set(at),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await
}
