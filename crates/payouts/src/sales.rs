//! Sales on salesman campaigns: tracked by a promoter's code, each earning a floored commission
//! that stays pending (reserved in escrow) until the advertiser verifies the sale and the
//! holding period ends. A rejection or a refund while the commission is pending gives it back to
//! escrow (a partial refund recomputes it on what is left); once the commission is available a
//! refund is refused: the holding period is the refund window.

use kernel::ids::{check_text, normalize_code, parse_uuid};
use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::settings::of_workspace;
use kernel::{ErrorCode, IdempotencyKey, Principal, Role, ServiceError};
use proto::payouts::v1 as pb;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tonic::Request;
use uuid::Uuid;

use crate::DOMAIN;
use crate::campaigns::{self, is_operator};
use crate::convert::{self, money, not_found, time};
use crate::domain::commission_on;
use crate::earnings::{self, Hold, Source};
use crate::entity::{campaign, earning, member, sale};
use crate::participation::require_type;
use crate::settings::PayoutsSettings;

fn to_proto(row: &sale::Model) -> pb::Sale {
    let currency = row.currency.as_str();
    pb::Sale {
        id: row.id.to_string(),
        campaign_id: row.campaign_id.to_string(),
        promoter_id: row.promoter_id.to_string(),
        order_id: row.order_id.clone(),
        amount: money(currency, row.amount),
        refunded: money(currency, row.refunded),
        commission: money(currency, row.commission),
        fee: money(currency, row.fee),
        status: row.status,
        release_time: row.release_at.and_then(time),
        create_time: time(row.created_at),
        update_time: time(row.updated_at),
    }
}

fn sale_not_found() -> ServiceError {
    not_found("SALE_NOT_FOUND", "sale")
}

/// Credits the commission on `net` of a sale, held as `hold`; returns the earning (none when the
/// commission rounds to nothing) and the commission's split.
async fn hold_commission<C: ConnectionTrait>(
    txn: &C,
    campaign: &mut campaign::Model,
    promoter_id: Uuid,
    (sale_id, net): (Uuid, i64),
    hold: Hold,
    now: i64,
) -> Result<(Option<Uuid>, crate::domain::Split), ServiceError> {
    let commission = commission_on(net, u32::try_from(campaign.commission_bps).unwrap_or(0));
    let remaining = campaign.budget - campaign.spent;
    if commission > remaining {
        return Err(ServiceError::failed_precondition(
            DOMAIN,
            "BUDGET_EXCEEDED",
            format!("campaigns/{}", campaign.id),
            format!("the campaign can pay at most {remaining} more minor units"),
        ));
    }
    let split = campaigns::terms(campaign).split(commission);
    if commission == 0 {
        return Ok((None, split));
    }
    let earning = earnings::record(
        txn,
        campaign,
        promoter_id,
        (Source::Sale, sale_id.to_string()),
        split,
        hold,
        now,
    )
    .await?;
    Ok((Some(earning), split))
}

pub(crate) async fn record(
    core: &crate::Payouts,
    request: Request<pb::RecordSaleRequest>,
) -> Result<pb::Sale, ServiceError> {
    let principal = Principal::of(&request)?.clone();
    let body = request.get_ref();
    let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "RecordSale", body)?;
    let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
    let code = normalize_code(&body.tracking_code).ok_or_else(|| {
        ServiceError::invalid_field(DOMAIN, "tracking_code", "must be 3 to 32 letters or digits")
    })?;
    let order_id = body.order_id.trim().to_owned();
    check_text(DOMAIN, "order_id", &order_id, 128, false)?;
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let (code, order_id) = (&code, &order_id);
    core.context
        .idempotent(&key, |txn| async move {
            let mut campaign = campaigns::find(&*txn, workspace_id, campaign_id, true).await?;
            require_type(&campaign, &[pb::CampaignType::Salesman], "sales earn commissions")?;
            campaigns::check_earning_window(&campaign, now)?;
            let amount = convert::money_in("amount", body.amount.as_ref(), &campaign.currency, false)?;
            let membership = member::Entity::find()
                .filter(member::Column::WorkspaceId.eq(workspace_id))
                .filter(member::Column::TrackingCode.eq(code.as_str()))
                .one(&*txn)
                .await?
                .filter(|membership| membership.campaign_id == campaign_id)
                .ok_or_else(|| not_found("TRACKING_CODE_NOT_FOUND", "tracking code"))?;
            let existing = sale::Entity::find()
                .filter(sale::Column::WorkspaceId.eq(workspace_id))
                .filter(sale::Column::CampaignId.eq(campaign_id))
                .filter(sale::Column::OrderId.eq(order_id.as_str()))
                .one(&*txn)
                .await?;
            if let Some(existing) = existing {
                if existing.amount == amount && existing.promoter_id == membership.promoter_id {
                    return Ok((txn, to_proto(&existing)));
                }
                return Err(ServiceError::new(
                    ErrorCode::AlreadyExists,
                    DOMAIN,
                    "SALE_EXISTS",
                    "this order was recorded for this campaign already, with another amount or promoter",
                ));
            }
            let id = Uuid::now_v7();
            let (earning_id, split) = hold_commission(
                &*txn,
                &mut campaign,
                membership.promoter_id,
                (id, amount),
                Hold::Undecided,
                now,
            )
            .await?;
            let row = sale::Model {
                workspace_id,
                id,
                campaign_id,
                promoter_id: membership.promoter_id,
                order_id: order_id.clone(),
                currency: campaign.currency.clone(),
                amount,
                refunded: 0,
                commission: split.gross,
                fee: split.fee,
                status: pb::SaleStatus::Recorded as i32,
                earning_id,
                release_at: None,
                created_at: now,
                updated_at: now,
            };
            kernel::db::insert(&*txn, sale::ActiveModel::from(row.clone())).await?;
            Ok((txn, to_proto(&row)))
        })
        .await
}

/// The sale and its campaign (locked first), for a caller who manages the campaign.
async fn managed_sale<C: ConnectionTrait>(
    txn: &C,
    principal: &Principal,
    id: Uuid,
) -> Result<(sale::Model, campaign::Model), ServiceError> {
    let campaign_id = sale::Entity::find_by_id((principal.workspace_id, id))
        .one(txn)
        .await?
        .ok_or_else(sale_not_found)?
        .campaign_id;
    let campaign = campaigns::managed(txn, principal, campaign_id, true)
        .await
        .map_err(|_| sale_not_found())?;
    let row = sale::Entity::find_by_id((principal.workspace_id, id))
        .one(txn)
        .await?
        .ok_or_else(sale_not_found)?;
    Ok((row, campaign))
}

fn require_status(row: &sale::Model, allowed: &[pb::SaleStatus]) -> Result<(), ServiceError> {
    if allowed.iter().any(|status| *status as i32 == row.status) {
        return Ok(());
    }
    Err(ServiceError::failed_precondition(
        DOMAIN,
        "SALE_STATUS_CONFLICT",
        format!("sales/{}", row.id),
        format!(
            "this sale is {}",
            pb::SaleStatus::try_from(row.status)
                .map(|status| status.as_str_name())
                .unwrap_or("in another state")
        ),
    ))
}

async fn save<C: ConnectionTrait>(txn: &C, row: &sale::Model) -> Result<(), ServiceError> {
    kernel::db::update(
        txn,
        sale::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            refunded: Set(row.refunded),
            commission: Set(row.commission),
            fee: Set(row.fee),
            status: Set(row.status),
            earning_id: Set(row.earning_id),
            release_at: Set(row.release_at),
            updated_at: Set(row.updated_at),
            ..Default::default()
        },
    )
    .await
}

/// Verifies (`verify`) or rejects a recorded sale.
pub(crate) async fn decide(
    core: &crate::Payouts,
    principal: &Principal,
    body: &pb::SaleActionRequest,
    verify: bool,
) -> Result<pb::Sale, ServiceError> {
    let method = if verify { "VerifySale" } else { "RejectSale" };
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, method, body)?;
    let id = parse_uuid(DOMAIN, "id", &body.id)?;
    let now = core.now();
    core.context
        .idempotent(&key, |txn| async move {
            let (mut row, mut campaign) = managed_sale(&*txn, principal, id).await?;
            require_status(&row, &[pb::SaleStatus::Recorded])?;
            if verify {
                let days = of_workspace::<PayoutsSettings, _>(&*txn, principal.workspace_id)
                    .await?
                    .sale_holding_days;
                let at = now + convert::days(days);
                if let Some(earning_id) = row.earning_id {
                    earnings::release_at(&*txn, principal.workspace_id, earning_id, at, now)
                        .await?;
                }
                row.status = pb::SaleStatus::Verified as i32;
                row.release_at = Some(at);
            } else {
                if let Some(earning_id) = row.earning_id {
                    earnings::reverse(&*txn, &mut campaign, earning_id, now).await?;
                    give_back(&*txn, &mut campaign, now).await?;
                }
                row.status = pb::SaleStatus::Rejected as i32;
            }
            row.updated_at = now;
            save(&*txn, &row).await?;
            Ok((txn, to_proto(&row)))
        })
        .await
}

/// After a commission went back to escrow: the campaign's totals, and for a closed campaign the
/// money straight back to the advertiser.
async fn give_back<C: ConnectionTrait>(
    txn: &C,
    campaign: &mut campaign::Model,
    now: i64,
) -> Result<(), ServiceError> {
    earnings::save_totals(txn, campaign, now).await?;
    if campaign.status == pb::CampaignStatus::Closed as i32 {
        crate::funding::refund_unused(txn, campaign, now).await?;
    }
    Ok(())
}

pub(crate) async fn refund(
    core: &crate::Payouts,
    request: Request<pb::RefundSaleRequest>,
) -> Result<pb::Sale, ServiceError> {
    let principal = Principal::of(&request)?.clone();
    let body = request.get_ref();
    let key = IdempotencyKey::new(DOMAIN, &principal, &body.request_id, "RefundSale", body)?;
    let id = parse_uuid(DOMAIN, "id", &body.id)?;
    let now = core.now();
    let principal = &principal;
    core.context
        .idempotent(&key, |txn| async move {
            let (mut row, mut campaign) = managed_sale(&*txn, principal, id).await?;
            require_status(&row, &[pb::SaleStatus::Recorded, pb::SaleStatus::Verified])?;
            let left = row.amount - row.refunded;
            let refunded = match body.amount.as_ref() {
                None => left,
                Some(_) => convert::money_in("amount", body.amount.as_ref(), &row.currency, false)?,
            };
            if refunded > left {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "amount.amount",
                    format!("must be at most the {left} minor units not refunded yet"),
                ));
            }
            if let Some(earning_id) = row.earning_id {
                let held = earning::Entity::find_by_id((principal.workspace_id, earning_id))
                    .one(&*txn)
                    .await?
                    .is_some_and(|earning| earning.status == earnings::EarningStatus::Held as i32);
                if !held {
                    return Err(ServiceError::failed_precondition(
                        DOMAIN,
                        "SALE_COMMISSION_RELEASED",
                        format!("sales/{id}"),
                        "the commission is available already (payouts.sale_holding_days has passed); refunds reverse commissions only while they are pending",
                    ));
                }
                earnings::reverse(&*txn, &mut campaign, earning_id, now).await?;
            }
            row.refunded += refunded;
            let hold = match row.release_at {
                Some(at) => Hold::Until(at),
                None => Hold::Undecided,
            };
            let (earning_id, split) = hold_commission(
                &*txn,
                &mut campaign,
                row.promoter_id,
                (id, row.amount - row.refunded),
                hold,
                now,
            )
            .await?;
            if earning_id.is_none() {
                give_back(&*txn, &mut campaign, now).await?;
            } else if campaign.status == pb::CampaignStatus::Closed as i32 {
                crate::funding::refund_unused(&*txn, &mut campaign, now).await?;
            }
            row.earning_id = earning_id;
            row.commission = split.gross;
            row.fee = split.fee;
            if row.refunded == row.amount {
                row.status = pb::SaleStatus::Refunded as i32;
            }
            row.updated_at = now;
            save(&*txn, &row).await?;
            Ok((txn, to_proto(&row)))
        })
        .await
}

pub(crate) async fn list(
    core: &crate::Payouts,
    request: Request<pb::ListSalesRequest>,
) -> Result<pb::ListSalesResponse, ServiceError> {
    let principal = Principal::of(&request)?;
    let body = request.get_ref();
    let limit = page_size(DOMAIN, body.page_size)?;
    let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
    let digest = PageToken::query_digest(&[&body.campaign_id, &body.status.to_string()]);
    let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
    let connection = core.context.db.connection();
    let promoter_view = !is_operator(principal) && !principal.has_role(Role::Advertiser);
    if !promoter_view {
        campaigns::managed(connection, principal, campaign_id, false).await?;
    }
    let mut query = sale::Entity::find()
        .filter(sale::Column::WorkspaceId.eq(principal.workspace_id))
        .filter(sale::Column::CampaignId.eq(campaign_id))
        .order_by_asc(sale::Column::Id)
        .limit(limit + 1);
    if promoter_view {
        query = query.filter(sale::Column::PromoterId.eq(principal.subject));
    }
    if body.status != 0 {
        query = query.filter(sale::Column::Status.eq(body.status));
    }
    if let Some(after) = after {
        query = query.filter(sale::Column::Id.gt(after));
    }
    let mut rows = query.all(connection).await?;
    let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
    Ok(pb::ListSalesResponse {
        sales: rows.iter().map(to_proto).collect(),
        next_page_token,
    })
}
