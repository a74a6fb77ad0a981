//! Bulk inserts: a coupon batch's codes, many rows per statement.

use kernel::ServiceError;
use sea_orm::ConnectionTrait;

use super::coupon;

/// Inserts coupons that share every term (as a batch's do) and differ only in id and code,
/// skipping codes already taken; returns how many went in. One statement per call: the shared
/// terms bound once, each row two values (a bulk run inserts a million rows this way).
pub async fn insert_new_coupons<C: ConnectionTrait>(
    connection: &C,
    rows: &[coupon::Model],
) -> Result<u64, ServiceError> {
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let shared: [sea_orm::Value; 14] = [
        first.workspace_id.into(),
        first.rule_id.into(),
        first.campaign_id.into(),
        first.customer_id.into(),
        first.participation_id.into(),
        first.batch_id.into(),
        first.valid_from.into(),
        first.valid_until.into(),
        first.usage_limit.into(),
        first.usage_limit_per_customer.into(),
        first.uses_held.into(),
        first.times_redeemed.into(),
        first.created_at.into(),
        first.updated_at.into(),
    ];
    let same_terms = |row: &coupon::Model| {
        (
            row.workspace_id,
            row.rule_id,
            row.campaign_id,
            row.customer_id,
            row.participation_id,
            row.batch_id,
        ) == (
            first.workspace_id,
            first.rule_id,
            first.campaign_id,
            first.customer_id,
            first.participation_id,
            first.batch_id,
        ) && (
            row.valid_from,
            row.valid_until,
            row.usage_limit,
            row.usage_limit_per_customer,
            row.uses_held,
            row.times_redeemed,
            row.created_at,
            row.updated_at,
        ) == (
            first.valid_from,
            first.valid_until,
            first.usage_limit,
            first.usage_limit_per_customer,
            first.uses_held,
            first.times_redeemed,
            first.created_at,
            first.updated_at,
        )
    };
    if !rows.iter().all(same_terms) {
        return Err(ServiceError::internal(
            "insert_new_coupons takes coupons with the same terms",
        ));
    }
    // VALUES columns are named column1, column2 on both databases; SQLite needs the WHERE to
    // read ON CONFLICT as the upsert clause.
    let mut sql = String::with_capacity(400 + rows.len() * 8);
    sql.push_str(
        "INSERT INTO mkt_coupon (workspace_id, rule_id, campaign_id, customer_id, participation_id, batch_id, valid_from, valid_until, usage_limit, usage_limit_per_customer, uses_held, times_redeemed, created_at, updated_at, id, code) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, column1, column2 FROM (VALUES ",
    );
    let mut values = Vec::with_capacity(shared.len() + rows.len() * 2);
    values.extend(shared);
    for (index, row) in rows.iter().enumerate() {
        sql.push_str(if index == 0 { "(?, ?)" } else { ", (?, ?)" });
        values.push(row.id.into());
        values.push(row.code.clone().into());
    }
    sql.push_str(") AS new_codes WHERE true ON CONFLICT (workspace_id, code) DO NOTHING");
    let backend = connection.get_database_backend();
    let statement = sea_orm::Statement::from_sql_and_values(
        backend,
        kernel::db::placeholders_for(backend, &sql),
        values,
    );
    Ok(connection.execute_raw(statement).await?.rows_affected())
}
