//! Campaign analytics: daily rows per campaign in the workspace time zone (impressions reported by
//! the storefront, clicks and conversions fed by growth's links, revenue and discount of confirmed
//! orders, coupons generated and redeemed), read back with every day present and exported as CSV
//! or JSON in chunks.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::marketing::v1 as pb;
use serde_json::{Value, json};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::DOMAIN;
use crate::campaigns::campaign_not_found;
use crate::state::Marketing;
use crate::store::{self, DayCounts, daily};

/// Longest range one call reads, in days.
const MAX_DAYS: u64 = 366;
/// Days a range without dates covers (ending today).
const DEFAULT_DAYS: u64 = 30;
/// Bytes per exported chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Most impressions one report adds.
const MAX_IMPRESSIONS: i64 = 1_000_000;

fn parse_date(field: &str, text: &str) -> Result<NaiveDate, ServiceError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ServiceError::invalid_field(DOMAIN, field, "must be a date YYYY-MM-DD"))
}

/// The inclusive range a request names, in the workspace's calendar.
fn range(
    zone: chrono_tz::Tz,
    now: i64,
    start: &str,
    end: &str,
) -> Result<(NaiveDate, NaiveDate), ServiceError> {
    let today = kernel::clock::from_micros(now)
        .with_timezone(&zone)
        .date_naive();
    let (start, end) = match (start.is_empty(), end.is_empty()) {
        (true, true) => (today - Days::new(DEFAULT_DAYS - 1), today),
        (false, false) => (
            parse_date("start_date", start)?,
            parse_date("end_date", end)?,
        ),
        _ => {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "end_date",
                "start_date and end_date go together (both empty: the last 30 days)",
            ));
        }
    };
    if end < start {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "end_date",
            "must not be before start_date",
        ));
    }
    if (end - start).num_days() >= MAX_DAYS as i64 {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "end_date",
            format!("a range covers at most {MAX_DAYS} days"),
        ));
    }
    Ok((start, end))
}

fn add_money(list: &mut Vec<pb::Money>, currency: &str, amount: i64) {
    if amount == 0 {
        return;
    }
    match list.iter_mut().find(|money| money.currency == currency) {
        Some(money) => money.amount += amount,
        None => list.push(pb::Money {
            currency: currency.to_owned(),
            amount,
        }),
    }
}

fn add_row(day: &mut pb::CampaignDay, row: &daily::Model) {
    day.impressions += row.impressions;
    day.clicks += row.clicks;
    day.conversions += row.conversions;
    day.coupons_generated += row.coupons_generated;
    day.coupons_redeemed += row.coupons_redeemed;
    add_money(&mut day.revenue, &row.currency, row.revenue);
    add_money(&mut day.discount_given, &row.currency, row.discount_given);
}

/// A campaign's rows in the request's range (the campaign must exist in the workspace).
async fn rows(
    core: &Marketing,
    principal: &Principal,
    campaign_id: &str,
    start: &str,
    end: &str,
) -> Result<(Uuid, NaiveDate, NaiveDate, Vec<daily::Model>), ServiceError> {
    let campaign_id = kernel::ids::parse_uuid(DOMAIN, "campaign_id", campaign_id)?;
    let connection = core.context.db.connection();
    let workspace_id = principal.workspace_id;
    store::get_campaign(connection, workspace_id, campaign_id)
        .await?
        .ok_or_else(campaign_not_found)?;
    let zone =
        kernel::settings::of_workspace::<kernel::settings::TimeZone, _>(connection, workspace_id)
            .await?
            .zone();
    let (start, end) = range(zone, core.now(), start, end)?;
    let format = |date: NaiveDate| date.format("%Y-%m-%d").to_string();
    let rows = store::campaign_days(
        connection,
        workspace_id,
        campaign_id,
        &format(start),
        &format(end),
    )
    .await?;
    Ok((campaign_id, start, end, rows))
}

/// GetCampaignAnalytics.
pub(crate) async fn analytics(
    core: &Marketing,
    principal: &Principal,
    body: &pb::GetCampaignAnalyticsRequest,
) -> Result<pb::CampaignAnalytics, ServiceError> {
    let (campaign_id, start, end, rows) = rows(
        core,
        principal,
        &body.campaign_id,
        &body.start_date,
        &body.end_date,
    )
    .await?;
    let mut days: BTreeMap<String, pb::CampaignDay> = BTreeMap::new();
    let mut date = start;
    while date <= end {
        let text = date.format("%Y-%m-%d").to_string();
        days.insert(
            text.clone(),
            pb::CampaignDay {
                date: text,
                ..pb::CampaignDay::default()
            },
        );
        date = date + Days::new(1);
    }
    let mut totals = pb::CampaignDay::default();
    for row in &rows {
        if let Some(day) = days.get_mut(&row.day) {
            add_row(day, row);
        }
        add_row(&mut totals, row);
    }
    Ok(pb::CampaignAnalytics {
        campaign_id: campaign_id.to_string(),
        days: days.into_values().collect(),
        totals: Some(totals),
    })
}

fn money_json(list: &[pb::Money]) -> Value {
    Value::Array(
        list.iter()
            .map(|money| json!({"currency": money.currency, "amount": money.amount.to_string()}))
            .collect(),
    )
}

fn day_json(day: &pb::CampaignDay) -> Value {
    json!({
        "date": day.date,
        "impressions": day.impressions.to_string(),
        "clicks": day.clicks.to_string(),
        "conversions": day.conversions.to_string(),
        "revenue": money_json(&day.revenue),
        "couponsGenerated": day.coupons_generated.to_string(),
        "couponsRedeemed": day.coupons_redeemed.to_string(),
        "discountGiven": money_json(&day.discount_given),
    })
}

/// The columns of the CSV and XLSX exports: one row per day and currency.
const COLUMNS: [&str; 9] = [
    "date",
    "currency",
    "impressions",
    "clicks",
    "conversions",
    "revenue",
    "coupons_generated",
    "coupons_redeemed",
    "discount_given",
];

fn counts_of(row: &daily::Model) -> [i64; 7] {
    [
        row.impressions,
        row.clicks,
        row.conversions,
        row.revenue,
        row.coupons_generated,
        row.coupons_redeemed,
        row.discount_given,
    ]
}

/// The rows as CSV: a header, then one line per row.
fn csv(rows: &[daily::Model]) -> String {
    let mut text = COLUMNS.join(",");
    text.push('\n');
    // Dates, currency codes and numbers hold no comma, quote or line break.
    for row in rows {
        text.push_str(&format!("{},{}", row.day, row.currency));
        for value in counts_of(row) {
            text.push_str(&format!(",{value}"));
        }
        text.push('\n');
    }
    text
}

/// Largest integer a spreadsheet number (an f64) holds exactly.
const EXACT_IN_F64: i64 = 1 << 53;

/// The rows as one worksheet: a header, then the rows; counts are numbers (written as text in
/// the rare case they are too large for a spreadsheet number to hold exactly).
fn workbook(rows: &[daily::Model]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Campaign analytics")?;
    for (column, name) in (0u16..).zip(COLUMNS) {
        sheet.write_string(0, column, name)?;
    }
    for (line, row) in (1u32..).zip(rows) {
        sheet.write_string(line, 0, &row.day)?;
        sheet.write_string(line, 1, &row.currency)?;
        for (column, value) in (2u16..).zip(counts_of(row)) {
            if value.abs() <= EXACT_IN_F64 {
                #[allow(clippy::cast_precision_loss)]
                sheet.write_number(line, column, value as f64)?;
            } else {
                sheet.write_string(line, column, value.to_string())?;
            }
        }
    }
    workbook.save_to_buffer()
}

/// ExportCampaignAnalytics: the whole export is small (at most 366 days per currency), so it is
/// rendered at once and sent in chunks.
pub(crate) async fn export(
    core: &Marketing,
    principal: &Principal,
    body: &pb::ExportCampaignAnalyticsRequest,
) -> Result<ReceiverStream<Result<pb::ExportChunk, tonic::Status>>, ServiceError> {
    let format = pb::ExportFormat::try_from(body.format).unwrap_or(pb::ExportFormat::Unspecified);
    let bytes = if format == pb::ExportFormat::Json {
        let request = pb::GetCampaignAnalyticsRequest {
            campaign_id: body.campaign_id.clone(),
            start_date: body.start_date.clone(),
            end_date: body.end_date.clone(),
        };
        let analytics = analytics(core, principal, &request).await?;
        let value = json!({
            "campaignId": analytics.campaign_id,
            "days": analytics.days.iter().map(day_json).collect::<Vec<_>>(),
            "totals": analytics.totals.as_ref().map(day_json),
        });
        value.to_string().into_bytes()
    } else {
        let (_, _, _, rows) = rows(
            core,
            principal,
            &body.campaign_id,
            &body.start_date,
            &body.end_date,
        )
        .await?;
        if format == pb::ExportFormat::Xlsx {
            workbook(&rows).map_err(|error| {
                ServiceError::internal(format!("analytics workbook failed: {error}"))
            })?
        } else {
            csv(&rows).into_bytes()
        }
    };
    let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(Ok(pb::ExportChunk { chunk })).await.is_err() {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(receiver))
}

/// ReportImpressions: adds to today's impressions of a campaign, once per request id.
pub(crate) async fn report_impressions(
    core: &Marketing,
    principal: &Principal,
    body: &pb::ReportImpressionsRequest,
) -> Result<pb::ReportImpressionsResponse, ServiceError> {
    let key = IdempotencyKey::new(
        DOMAIN,
        principal,
        &body.request_id,
        "ReportImpressions",
        body,
    )?;
    let campaign_id = kernel::ids::parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
    if !(1..=MAX_IMPRESSIONS).contains(&body.impressions) {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "impressions",
            format!("must be between 1 and {MAX_IMPRESSIONS}"),
        ));
    }
    let workspace_id = principal.workspace_id;
    let now = core.now();
    core.context
        .idempotent(&key, |txn| async move {
            store::get_campaign(&*txn, workspace_id, campaign_id)
                .await?
                .ok_or_else(campaign_not_found)?;
            let day = crate::redemptions::local_day(&*txn, workspace_id, now).await?;
            let counts = DayCounts {
                impressions: body.impressions,
                ..DayCounts::default()
            };
            store::add_to_day(&*txn, workspace_id, campaign_id, &day, "", counts).await?;
            let today = store::campaign_days(&*txn, workspace_id, campaign_id, &day, &day).await?;
            let impressions_today = today.iter().map(|row| row.impressions).sum();
            Ok((txn, pb::ReportImpressionsResponse { impressions_today }))
        })
        .await
}
