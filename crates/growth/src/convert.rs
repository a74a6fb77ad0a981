//! Wire-format helpers shared by growth's services: money, timestamps, not-found errors.

use kernel::ServiceError;
use kernel::clock::micros_to_timestamp;
use kernel::money::{Asset, MAX_AMOUNT};
use proto::growth::v1 as pb;

use crate::DOMAIN;

/// A validated amount: its asset and minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    pub asset: Asset,
    pub amount: i64,
}

/// Reads a required amount: a known currency (or CREDITS) and minor units above zero (or at
/// least zero when `zero_ok`).
pub fn money(field: &str, value: Option<&pb::Money>, zero_ok: bool) -> Result<Money, ServiceError> {
    let value = value.ok_or_else(|| ServiceError::invalid_field(DOMAIN, field, "is required"))?;
    let asset = Asset::parse(value.currency.trim()).ok_or_else(|| {
        ServiceError::invalid_field(
            DOMAIN,
            &format!("{field}.currency"),
            "must be CREDITS or an ISO 4217 code such as USD",
        )
    })?;
    let low = if zero_ok { 0 } else { 1 };
    if !(low..=MAX_AMOUNT).contains(&value.amount) {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            &format!("{field}.amount"),
            format!("must be between {low} and {MAX_AMOUNT} minor units"),
        ));
    }
    Ok(Money {
        asset,
        amount: value.amount,
    })
}

pub fn money_to_proto(currency: &str, amount: i64) -> Option<pb::Money> {
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
