//! Assets and amounts. Amounts are `i64` minor units of one asset, never floats.

/// The platform's own unit of account, with no fractional part.
pub const CREDITS: &str = "CREDITS";

/// Largest amount one operation may move, in minor units of any asset: 10^15 (ten trillion dollars
/// in cents, or 10^15 credits). Every amount a request carries is checked against it (or a smaller
/// bound of its own), so sums of amounts stay far from `i64` overflow; where a sum would overflow
/// all the same, the operation answers an error and changes nothing.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// ISO 4217 currencies the platform accepts, with their minor-unit exponents.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// A validated asset code and its exponent (digits after the decimal point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    pub code: &'static str,
    pub exponent: u8,
}

impl Asset {
    /// `CREDITS` or a known ISO 4217 code; anything else is `None`.
    pub fn parse(code: &str) -> Option<Asset> {
        if code == CREDITS {
            return Some(Asset {
                code: CREDITS,
                exponent: 0,
            });
        }
        CURRENCIES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(known, exponent)| Asset {
                code: known,
                exponent: *exponent,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_know_their_exponents() {
        assert_eq!(Asset::parse("CREDITS").map(|a| a.exponent), Some(0));
        assert_eq!(Asset::parse("USD").map(|a| a.exponent), Some(2));
        assert_eq!(Asset::parse("JPY").map(|a| a.exponent), Some(0));
        assert_eq!(Asset::parse("BHD").map(|a| a.exponent), Some(3));
        assert_eq!(Asset::parse("usd"), None);
        assert_eq!(Asset::parse("XXX"), None);
    }
}
