//! Billing reads: one principal's month as advertiser and as promoter, and the platform's fee on
//! every earning of a month. Everything is summed from the records that say why money moved
//! (earnings, fundings, payouts, carried balances); the money itself is in the ledger.

use kernel::pagination::{PageToken, decode_uuid_cursor, finish_page, page_size};
use kernel::{Principal, ServiceError};
use proto::payouts::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::campaigns::is_operator;
use crate::convert::{self, money, time};
use crate::earnings::EarningStatus;
use crate::entity::{carry, earning, funding, payout};
use crate::{DOMAIN, runs};

/// `CAST(COALESCE(SUM(<expression>), 0) AS BIGINT)`: a sum that is 0 over no rows and an i64
/// on both databases.
pub(crate) fn sum(expression: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(format!("CAST(COALESCE(SUM({expression}), 0) AS BIGINT)"))
}

/// The principal a summary is about: operators name anyone; others read their own.
fn subject(principal: &Principal, requested: &str) -> Result<Uuid, ServiceError> {
    let requested = kernel::ids::parse_optional_uuid(DOMAIN, "principal_id", requested)?;
    if is_operator(principal) {
        return requested
            .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "principal_id", "is required"));
    }
    match requested {
        None => Ok(principal.subject),
        Some(id) if id == principal.subject => Ok(id),
        Some(_) => Err(ServiceError::permission_denied(
            DOMAIN,
            "PRINCIPAL_MISMATCH",
            "an advertiser or promoter reads its own summary only (principal_id)",
        )),
    }
}

pub(crate) async fn summary(
    core: &crate::Payouts,
    principal: &Principal,
    body: &pb::GetBillingSummaryRequest,
) -> Result<pb::BillingSummary, ServiceError> {
    let subject = subject(principal, &body.principal_id)?;
    runs::check_period(&body.period)?;
    let currency = convert::currency("currency", &body.currency)?.code;
    let workspace_id = principal.workspace_id;
    let period = body.period.as_str();
    let connection = core.context.db.connection();
    let live = earning::Column::Status.ne(EarningStatus::Reversed as i32);
    let in_month = |query: sea_orm::Select<earning::Entity>| {
        query
            .filter(earning::Column::WorkspaceId.eq(workspace_id))
            .filter(earning::Column::Period.eq(period))
            .filter(earning::Column::Currency.eq(currency))
            .filter(live.clone())
    };
    let (spent, platform_fees): (i64, i64) = in_month(earning::Entity::find())
        .select_only()
        .column_as(sum("gross"), "spent")
        .column_as(sum("fee"), "fees")
        .filter(earning::Column::AdvertiserId.eq(subject))
        .into_tuple()
        .one(connection)
        .await?
        .unwrap_or_default();
    let (funded, processing_fees): (i64, i64) = funding::Entity::find()
        .select_only()
        .column_as(sum("amount"), "funded")
        .column_as(sum("processing_fee"), "processing")
        .filter(funding::Column::WorkspaceId.eq(workspace_id))
        .filter(funding::Column::AdvertiserId.eq(subject))
        .filter(funding::Column::Period.eq(period))
        .filter(funding::Column::Currency.eq(currency))
        .into_tuple()
        .one(connection)
        .await?
        .unwrap_or_default();
    let held = EarningStatus::Held as i32;
    let promoter_pays = pb::FeePayer::Promoter as i32;
    let (earned, pending, fees_paid): (i64, i64, i64) = in_month(earning::Entity::find())
        .select_only()
        .column_as(sum("promoter_amount"), "earned")
        .column_as(
            sum(&format!(
                "CASE WHEN status = {held} THEN promoter_amount ELSE 0 END"
            )),
            "pending",
        )
        .column_as(
            sum(&format!(
                "CASE WHEN fee_payer = {promoter_pays} THEN fee ELSE 0 END"
            )),
            "fees_paid",
        )
        .filter(earning::Column::PromoterId.eq(subject))
        .into_tuple()
        .one(connection)
        .await?
        .unwrap_or_default();
    let paid: i64 = payout::Entity::find()
        .select_only()
        .column_as(sum("amount"), "paid")
        .filter(payout::Column::WorkspaceId.eq(workspace_id))
        .filter(payout::Column::PromoterId.eq(subject))
        .filter(payout::Column::Period.eq(period))
        .filter(payout::Column::Currency.eq(currency))
        .filter(payout::Column::Status.eq(pb::PayoutStatus::Paid as i32))
        .into_tuple()
        .one(connection)
        .await?
        .unwrap_or_default();
    let carried_forward = carry::Entity::find_by_id((workspace_id, currency.to_owned(), subject))
        .one(connection)
        .await?
        .filter(|row| row.period == period)
        .map_or(0, |row| row.amount);
    Ok(pb::BillingSummary {
        principal_id: subject.to_string(),
        period: period.to_owned(),
        currency: currency.to_owned(),
        funded: money(currency, funded),
        spent: money(currency, spent),
        platform_fees: money(currency, platform_fees),
        processing_fees: money(currency, processing_fees),
        earned: money(currency, earned),
        pending: money(currency, pending),
        fees_paid: money(currency, fees_paid),
        paid: money(currency, paid),
        carried_forward: money(currency, carried_forward),
    })
}

pub(crate) async fn platform_fees(
    core: &crate::Payouts,
    principal: &Principal,
    body: &pb::ListPlatformFeesRequest,
) -> Result<pb::ListPlatformFeesResponse, ServiceError> {
    runs::check_period(&body.period)?;
    let limit = page_size(DOMAIN, body.page_size)?;
    let digest = PageToken::query_digest(&[&body.period]);
    let after = decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
    let mut query = earning::Entity::find()
        .filter(earning::Column::WorkspaceId.eq(principal.workspace_id))
        .filter(earning::Column::Period.eq(body.period.as_str()))
        .filter(earning::Column::Fee.gt(0))
        .filter(earning::Column::Status.ne(EarningStatus::Reversed as i32))
        .order_by_asc(earning::Column::Id)
        .limit(limit + 1);
    if let Some(after) = after {
        query = query.filter(earning::Column::Id.gt(after));
    }
    let mut rows = query.all(core.context.db.connection()).await?;
    let next_page_token = finish_page(&mut rows, limit, &digest, |row| row.id.to_string());
    Ok(pb::ListPlatformFeesResponse {
        fees: rows
            .iter()
            .map(|row| pb::PlatformFee {
                earning_id: row.id.to_string(),
                campaign_id: row.campaign_id.to_string(),
                advertiser_id: row.advertiser_id.to_string(),
                promoter_id: row.promoter_id.to_string(),
                source: row.source,
                gross: money(&row.currency, row.gross),
                fee: money(&row.currency, row.fee),
                fee_payer: row.fee_payer,
                pending: row.status == EarningStatus::Held as i32,
                create_time: time(row.created_at),
            })
            .collect(),
        next_page_token,
    })
}
