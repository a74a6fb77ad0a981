//! Wire-format helpers shared by payouts' services: money, timestamps, not-found errors.

use kernel::ServiceError;
use kernel::clock::micros_to_timestamp;
use kernel::money::{Asset, MAX_AMOUNT};
use proto::payouts::v1 as pb;

use crate::DOMAIN;

/// A currency code payouts accepts: ISO 4217, never CREDITS (credits are not paid out).
pub fn currency(field: &str, code: &str) -> Result<Asset, ServiceError> {
    match Asset::parse(code.trim()) {
        Some(asset) if asset.code != kernel::money::CREDITS => Ok(asset),
        _ => Err(ServiceError::invalid_field(
            DOMAIN,
            field,
            "must be an ISO 4217 currency such as USD (credits are not paid out)",
        )),
    }
}

/// Reads an amount that must be in `expected` (the campaign's currency): minor units above zero
/// (or at least zero when `zero_ok`). Another currency is CURRENCY_MISMATCH.
pub fn money_in(
    field: &str,
    value: Option<&pb::Money>,
    expected: &str,
    zero_ok: bool,
) -> Result<i64, ServiceError> {
    let value = value.ok_or_else(|| ServiceError::invalid_field(DOMAIN, field, "is required"))?;
    let asset = currency(&format!("{field}.currency"), &value.currency)?;
    if asset.code != expected {
        return Err(mismatch(field, asset.code, expected));
    }
    amount(field, value.amount, zero_ok)
}

/// Checks minor units: above zero (or at least zero when `zero_ok`) and within range.
pub fn amount(field: &str, amount: i64, zero_ok: bool) -> Result<i64, ServiceError> {
    let low = i64::from(!zero_ok);
    if (low..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(ServiceError::invalid_field(
            DOMAIN,
            &format!("{field}.amount"),
            format!("must be between {low} and {MAX_AMOUNT} minor units"),
        ))
    }
}

/// INVALID_ARGUMENT CURRENCY_MISMATCH naming `field`.
pub fn mismatch(field: &str, given: &str, expected: &str) -> ServiceError {
    kernel::money::MoneyError::AssetMismatch {
        left: leak_code(given),
        right: leak_code(expected),
    }
    .into_service(DOMAIN, field)
}

/// The static code of a known asset (MoneyError names assets by their static codes).
fn leak_code(code: &str) -> &'static str {
    Asset::parse(code).map_or("another currency", |asset| asset.code)
}

pub fn money(currency: &str, amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: currency.to_owned(),
        amount,
    })
}

pub fn time(micros: i64) -> Option<prost_types::Timestamp> {
    Some(micros_to_timestamp(micros))
}

pub fn not_found(reason: &'static str, what: &str) -> ServiceError {
    ServiceError::not_found(DOMAIN, reason, what)
}

/// Microseconds in `days` days.
pub fn days(days: i64) -> i64 {
    days.saturating_mul(86_400_000_000)
}
