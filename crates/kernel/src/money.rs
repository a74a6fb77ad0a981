//! Money: assets, amounts in integer minor units, basis points with a named rounding mode, and the
//! exact splitter every domain uses (fees, commissions, 70/30 shares, discounts spread over lines).
//!
//! Nothing here uses floats. Products are computed in `i128`/`u128`, so no intermediate overflows
//! for any `i64` amount and any `u64` weight.

use std::fmt;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Asset {
    pub code: &'static str,
    pub exponent: u8,
}

impl Asset {
    /// The platform's credits.
    pub const CREDITS: Asset = Asset {
        code: CREDITS,
        exponent: 0,
    };

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

/// One whole in basis points: 10,000 bps = 100 %.
pub const BPS_WHOLE: u32 = 10_000;

/// How a quotient that is not whole becomes a whole number of minor units. Every place that
/// rounds names its mode; there is no default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Toward negative infinity.
    Floor,
    /// Toward positive infinity.
    Ceiling,
    /// To the nearest; halves away from zero (commercial rounding).
    HalfUp,
    /// To the nearest; halves to the even neighbour (banker's rounding).
    HalfEven,
}

/// Why a money operation was refused. Domains turn it into their own error with
/// [`MoneyError::into_service`], naming the request field it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// Two amounts of different assets met.
    AssetMismatch {
        left: &'static str,
        right: &'static str,
    },
    /// A result beyond ±[`MAX_AMOUNT`].
    OutOfRange,
    /// A rate above 100 % where only a share makes sense.
    RateAboveWhole(u32),
    /// A split into no parts.
    NoParts,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoneyError::AssetMismatch { left, right } => {
                write!(f, "amounts in {left} and {right} cannot be combined")
            }
            MoneyError::OutOfRange => {
                write!(f, "the amount would be beyond ±{MAX_AMOUNT} minor units")
            }
            MoneyError::RateAboveWhole(bps) => {
                write!(f, "{bps} basis points is more than the whole ({BPS_WHOLE})")
            }
            MoneyError::NoParts => write!(f, "an amount cannot be split into no parts"),
        }
    }
}

impl std::error::Error for MoneyError {}

impl MoneyError {
    /// The stable ErrorInfo reason of this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            MoneyError::AssetMismatch { .. } => "CURRENCY_MISMATCH",
            MoneyError::OutOfRange => "AMOUNT_OUT_OF_RANGE",
            MoneyError::RateAboveWhole(_) => "RATE_ABOVE_WHOLE",
            MoneyError::NoParts => "NO_PARTS",
        }
    }

    /// INVALID_ARGUMENT in `domain` with this refusal's reason and `field` named as the culprit.
    pub fn into_service(self, domain: &str, field: &str) -> crate::ServiceError {
        crate::ServiceError::new(
            crate::ErrorCode::InvalidArgument,
            domain,
            self.reason(),
            format!("{field}: {self}"),
        )
        .with_field(field, self.to_string())
    }
}

/// An amount of one asset in its minor units (cents for USD, whole credits for CREDITS), always
/// within ±[`MAX_AMOUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Amount {
    asset: Asset,
    minor: i64,
}

impl Amount {
    pub fn new(asset: Asset, minor: i64) -> Result<Amount, MoneyError> {
        if minor.unsigned_abs() > MAX_AMOUNT as u64 {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Amount { asset, minor })
    }

    pub fn zero(asset: Asset) -> Amount {
        Amount { asset, minor: 0 }
    }

    pub fn asset(&self) -> Asset {
        self.asset
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    fn same_asset(&self, other: &Amount) -> Result<(), MoneyError> {
        if self.asset == other.asset {
            Ok(())
        } else {
            Err(MoneyError::AssetMismatch {
                left: self.asset.code,
                right: other.asset.code,
            })
        }
    }

    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        self.same_asset(&other)?;
        Amount::new(self.asset, self.minor + other.minor)
    }

    pub fn checked_sub(self, other: Amount) -> Result<Amount, MoneyError> {
        self.same_asset(&other)?;
        Amount::new(self.asset, self.minor - other.minor)
    }

    /// `count` times this amount (a unit price times a quantity).
    pub fn checked_mul(self, count: i64) -> Result<Amount, MoneyError> {
        let product = i128::from(self.minor) * i128::from(count);
        let minor = i64::try_from(product).map_err(|_| MoneyError::OutOfRange)?;
        Amount::new(self.asset, minor)
    }

    /// `bps` basis points of this amount, rounded by `rounding` (rates above 100 % allowed:
    /// a markup of 12,000 bps is 120 %).
    pub fn apply_bps(self, bps: u32, rounding: Rounding) -> Result<Amount, MoneyError> {
        let minor = divide(
            i128::from(self.minor) * i128::from(bps),
            i128::from(BPS_WHOLE),
            rounding,
        );
        Amount::new(
            self.asset,
            i64::try_from(minor).map_err(|_| MoneyError::OutOfRange)?,
        )
    }

    /// Splits this amount between a named party, who gets `bps` of it rounded by `rounding`, and
    /// the other party, who gets exactly the rest: `(named, rest)`, `named + rest == self`. Each
    /// domain documents which party it names (a creator's 70 %, an affiliate's 20 %, a platform
    /// fee) so the same split is computed the same way on every path.
    pub fn split_named(self, bps: u32, rounding: Rounding) -> Result<(Amount, Amount), MoneyError> {
        if bps > BPS_WHOLE {
            return Err(MoneyError::RateAboveWhole(bps));
        }
        let named = self.apply_bps(bps, rounding)?;
        Ok((named, self.checked_sub(named)?))
    }

    /// Splits this amount into parts proportional to `weights` that sum exactly to it: see
    /// [`split_weighted`].
    pub fn split(self, weights: &[u64]) -> Result<Vec<Amount>, MoneyError> {
        Ok(split_weighted(self.minor, weights)?
            .into_iter()
            .map(|minor| Amount {
                asset: self.asset,
                minor,
            })
            .collect())
    }
}

impl fmt::Display for Amount {
    /// `12.34 USD`, `-0.005 BHD`, `70 CREDITS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = u32::from(self.asset.exponent);
        if exponent == 0 {
            return write!(f, "{} {}", self.minor, self.asset.code);
        }
        let scale = 10u64.pow(exponent);
        let magnitude = self.minor.unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.asset.code,
            width = exponent as usize
        )
    }
}

/// `numerator / denominator` (denominator > 0) as a whole number, rounded by `rounding`.
pub fn divide(numerator: i128, denominator: i128, rounding: Rounding) -> i128 {
    debug_assert!(denominator > 0);
    let floor = numerator.div_euclid(denominator);
    let remainder = numerator.rem_euclid(denominator); // 0 <= remainder < denominator
    if remainder == 0 {
        return floor;
    }
    match rounding {
        Rounding::Floor => floor,
        Rounding::Ceiling => floor + 1,
        Rounding::HalfUp | Rounding::HalfEven => {
            let twice = remainder * 2;
            if twice > denominator {
                floor + 1
            } else if twice < denominator {
                floor
            } else if rounding == Rounding::HalfEven {
                floor + (floor & 1)
            } else if numerator >= 0 {
                floor + 1
            } else {
                floor
            }
        }
    }
}

/// Splits `total` into `weights.len()` parts proportional to the weights that always sum exactly
/// to `total` (SYSTEM.md §3, the largest-remainder method):
///
/// 1. each part is first `floor(|total| × weight ÷ Σweights)`;
/// 2. the units still missing (fewer than the number of parts) go one each to the parts with the
///    largest remainder of that division, ties to the earlier part;
/// 3. a negative total is split as its magnitude and every part negated.
///
/// Every part is within one unit of its exact proportional share and has the sign of `total`
/// (or is zero). A part whose weight is zero gets zero, unless every weight is zero: then the
/// parts are equal (ties to the earlier part). No parts is an error.
pub fn split_weighted(total: i64, weights: &[u64]) -> Result<Vec<i64>, MoneyError> {
    if weights.is_empty() {
        return Err(MoneyError::NoParts);
    }
    let equal = vec![1u64; weights.len()];
    let weights = if weights.iter().all(|weight| *weight == 0) {
        &equal[..]
    } else {
        weights
    };
    let magnitude = u128::from(total.unsigned_abs());
    let sum: u128 = weights.iter().map(|weight| u128::from(*weight)).sum();
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        // magnitude < 2^64 and weight < 2^64: the product fits in u128.
        let product = magnitude * u128::from(*weight);
        let part = product / sum;
        given += part;
        parts.push(part);
        remainders.push((product % sum, index));
    }
    // Largest remainder first, ties to the earlier part.
    remainders.sort_by(|(a, a_index), (b, b_index)| b.cmp(a).then(a_index.cmp(b_index)));
    let leftover = magnitude - given; // < weights.len()
    for (_, index) in remainders.iter().take(leftover as usize) {
        parts[*index] += 1;
    }
    Ok(parts
        .into_iter()
        .map(|part| {
            // part <= magnitude <= 2^63, so it fits once the sign is applied.
            let part = part as i128;
            (if total < 0 { -part } else { part }) as i64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(minor: i64) -> Amount {
        Amount::new(Asset::parse("USD").expect("USD"), minor).expect("in range")
    }

    /// Vendure's `prorate()` cases (weights, total, expected parts).
    #[test]
    fn vendure_prorate_cases() {
        let cases: &[(&[u64], i64, &[i64])] = &[
            (&[123], 300, &[300]),
            (&[4000, 2000, 2000], 300, &[150, 75, 75]),
            (&[4000, 2000, 2000], -300, &[-150, -75, -75]),
            (&[4300, 1400, 2300], 299, &[161, 52, 86]),
            (&[1000, 1000, 1000], 299, &[100, 100, 99]),
            (
                &[10, 20, 10, 30, 50, 20, 10, 40],
                95,
                &[5, 10, 5, 15, 25, 10, 5, 20],
            ),
            (
                &[10, 20, 10, 30, 50, 20, 10, 40],
                93,
                &[5, 10, 5, 15, 24, 10, 5, 19],
            ),
            (&[10, 0], 40, &[40, 0]),
            (&[0, 0], 10, &[5, 5]),
            (&[0, 0], 0, &[0, 0]),
            (&[100, 100], -20, &[-10, -10]),
        ];
        for (weights, total, expected) in cases {
            assert_eq!(
                split_weighted(*total, weights).expect("split"),
                *expected,
                "{weights:?} {total}"
            );
        }
    }

    /// Solidus' DistributedAmountsHandler cases, in cents: $15 over one $100 line, over three
    /// equal lines, $10 over three equal lines (one line gets the extra cent; ours is the
    /// first), and $15 over lines of $150, $50 and $100.
    #[test]
    fn solidus_distributed_amount_cases() {
        let split = |total: i64, weights: &[u64]| -> Vec<i64> {
            usd(total)
                .split(weights)
                .expect("split")
                .iter()
                .map(Amount::minor)
                .collect()
        };
        assert_eq!(split(1500, &[10_000]), [1500]);
        assert_eq!(split(1500, &[5000, 5000, 5000]), [500, 500, 500]);
        assert_eq!(split(1000, &[5000, 5000, 5000]), [334, 333, 333]);
        assert_eq!(split(1500, &[15_000, 5000, 10_000]), [750, 250, 500]);
    }

    #[test]
    fn splitting_into_nothing_is_refused() {
        assert_eq!(split_weighted(10, &[]), Err(MoneyError::NoParts));
    }

    #[test]
    fn extreme_amounts_and_weights_do_not_overflow() {
        let parts = split_weighted(i64::MIN, &[u64::MAX, u64::MAX, 1]).expect("split");
        assert_eq!(
            parts.iter().map(|p| i128::from(*p)).sum::<i128>(),
            i128::from(i64::MIN)
        );
        let parts = split_weighted(i64::MAX, &[u64::MAX, 3]).expect("split");
        assert_eq!(
            parts.iter().map(|p| i128::from(*p)).sum::<i128>(),
            i128::from(i64::MAX)
        );
    }

    #[test]
    fn rounding_modes_are_exact_at_the_halves() {
        let cases = [
            // (numerator, denominator, floor, ceiling, half up, half even)
            (25, 10, 2, 3, 3, 2),
            (35, 10, 3, 4, 4, 4),
            (-25, 10, -3, -2, -3, -2),
            (24, 10, 2, 3, 2, 2),
            (26, 10, 2, 3, 3, 3),
            (-26, 10, -3, -2, -3, -3),
            (30, 10, 3, 3, 3, 3),
        ];
        for (n, d, floor, ceiling, half_up, half_even) in cases {
            assert_eq!(divide(n, d, Rounding::Floor), floor, "{n}/{d}");
            assert_eq!(divide(n, d, Rounding::Ceiling), ceiling, "{n}/{d}");
            assert_eq!(divide(n, d, Rounding::HalfUp), half_up, "{n}/{d}");
            assert_eq!(divide(n, d, Rounding::HalfEven), half_even, "{n}/{d}");
        }
    }

    #[test]
    fn basis_points_and_named_shares() {
        // A creator's 70 % of $0.99, floored; the platform gets the rest.
        let (creator, platform) = usd(99).split_named(7000, Rounding::Floor).expect("split");
        assert_eq!((creator.minor(), platform.minor()), (69, 30));
        // 15 % fee on $10.01, half up: 150.15 → 150.
        assert_eq!(
            usd(1001)
                .apply_bps(1500, Rounding::HalfUp)
                .map(|a| a.minor()),
            Ok(150)
        );
        // A 120 % markup is allowed as a rate, not as a share.
        assert_eq!(
            usd(1000)
                .apply_bps(12_000, Rounding::Floor)
                .map(|a| a.minor()),
            Ok(1200)
        );
        assert_eq!(
            usd(1000).split_named(12_000, Rounding::Floor),
            Err(MoneyError::RateAboveWhole(12_000))
        );
    }

    #[test]
    fn arithmetic_is_checked_and_assets_do_not_mix() {
        let credits = Amount::new(Asset::CREDITS, 5).expect("in range");
        assert_eq!(
            usd(1).checked_add(credits),
            Err(MoneyError::AssetMismatch {
                left: "USD",
                right: "CREDITS"
            })
        );
        assert_eq!(
            usd(MAX_AMOUNT).checked_add(usd(1)),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(usd(1).checked_mul(i64::MAX), Err(MoneyError::OutOfRange));
        assert_eq!(
            Amount::new(Asset::CREDITS, -MAX_AMOUNT - 1),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(usd(250).checked_mul(3).map(|a| a.minor()), Ok(750));
        let error = MoneyError::OutOfRange.into_service("promo.test", "amount");
        assert_eq!(error.reason(), "AMOUNT_OUT_OF_RANGE");
        assert_eq!(error.field_violations()[0].0, "amount");
    }

    #[test]
    fn amounts_display_with_their_exponent() {
        assert_eq!(usd(1234).to_string(), "12.34 USD");
        assert_eq!(usd(-5).to_string(), "-0.05 USD");
        let bhd = Amount::new(Asset::parse("BHD").expect("BHD"), 5).expect("in range");
        assert_eq!(bhd.to_string(), "0.005 BHD");
        assert_eq!(
            Amount::new(Asset::CREDITS, 70).expect("ok").to_string(),
            "70 CREDITS"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Parts always sum to the whole, none has the wrong sign, and each is within one unit of
        /// its exact proportional share.
        #[test]
        fn split_parts_sum_to_the_whole(
            total in -MAX_AMOUNT..=MAX_AMOUNT,
            weights in proptest::collection::vec(0u64..=1_000_000_000_000, 1..20),
        ) {
            let parts = split_weighted(total, &weights).expect("split");
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(total));
            let all_zero = weights.iter().all(|w| *w == 0);
            let weights: Vec<u64> = if all_zero { vec![1; weights.len()] } else { weights };
            let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            for (part, weight) in parts.iter().zip(&weights) {
                prop_assert!(total >= 0 || *part <= 0);
                prop_assert!(total <= 0 || *part >= 0);
                // |part × Σw − total × w| < Σw  ⇔  |part − exact share| < 1
                let error = i128::from(*part) * sum - i128::from(total) * i128::from(*weight);
                prop_assert!(error.abs() < sum, "part {} weight {}", part, weight);
                if *weight == 0 {
                    prop_assert_eq!(*part, 0);
                }
            }
        }

        /// The named party's share plus the rest is the whole, and the share is the rounded rate.
        #[test]
        fn named_share_and_rest_make_the_whole(
            total in -MAX_AMOUNT..=MAX_AMOUNT,
            bps in 0u32..=BPS_WHOLE,
        ) {
            let amount = usd(total);
            for rounding in [Rounding::Floor, Rounding::Ceiling, Rounding::HalfUp, Rounding::HalfEven] {
                let (named, rest) = amount.split_named(bps, rounding).expect("split");
                prop_assert_eq!(named.minor() + rest.minor(), total);
                let exact = i128::from(total) * i128::from(bps);
                let error = i128::from(named.minor()) * i128::from(BPS_WHOLE) - exact;
                prop_assert!(error.abs() < i128::from(BPS_WHOLE));
                if rounding == Rounding::Floor {
                    prop_assert!(error <= 0);
                }
            }
        }

        /// Rounding never moves further than the one unit its mode allows.
        #[test]
        fn division_rounds_within_one(n in any::<i64>(), d in 1i64..=1_000_000) {
            let (n, d) = (i128::from(n), i128::from(d));
            let floor = divide(n, d, Rounding::Floor);
            prop_assert!(floor * d <= n && n < (floor + 1) * d);
            let ceiling = divide(n, d, Rounding::Ceiling);
            prop_assert!(ceiling == floor || ceiling == floor + 1);
            for rounding in [Rounding::HalfUp, Rounding::HalfEven] {
                let nearest = divide(n, d, rounding);
                prop_assert!((nearest * d - n).abs() * 2 <= d);
            }
        }
    }

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
