//! The arithmetic of payouts, without I/O: what a campaign may spend and must be funded with,
//! how an earning splits between promoter, platform and escrow, and how views become money
//! without drift.
//!
//! Rounding, declared once: the platform's fee is the named party and is floored
//! (`Amount::split_named` with `Rounding::Floor`); the promoter gets the rest of an earning when
//! it pays the fee. View earnings are floored on the promoter's cumulative views, so however the
//! views are batched the money is the same.

use kernel::money::{BPS_WHOLE, MAX_AMOUNT, MoneyError, Rounding, divide};
use proto::payouts::v1 as pb;

/// The platform's fee on `amount`: `bps` of it, floored.
pub fn fee_on(amount: i64, bps: u32) -> i64 {
    i64::try_from(divide(
        i128::from(amount) * i128::from(bps),
        i128::from(BPS_WHOLE),
        Rounding::Floor,
    ))
    .unwrap_or(i64::MAX)
}

/// A salesman's commission on a sale's net amount: `bps` of it, floored (the promoter is the
/// named party; the advertiser keeps the rest).
pub fn commission_on(net: i64, bps: u32) -> i64 {
    fee_on(net, bps)
}

/// What `views` unique views earn at `rate_per_100_views`: floor(views × rate / 100).
pub fn view_earnings(views: i64, rate_per_100_views: i64) -> Result<i64, MoneyError> {
    let total = divide(
        i128::from(views) * i128::from(rate_per_100_views),
        100,
        Rounding::Floor,
    );
    i64::try_from(total)
        .ok()
        .filter(|total| *total <= MAX_AMOUNT)
        .ok_or(MoneyError::OutOfRange)
}

/// A campaign's money terms, as created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub kind: pb::CampaignType,
    pub rate_per_100_views: i64,
    pub max_views: i64,
    pub min_budget: i64,
    pub max_budget: i64,
    pub fee_bps: u32,
    pub fee_payer: pb::FeePayer,
}

/// What a campaign's terms come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most promoters can earn (gross).
    pub budget: i64,
    /// Funded at least this, the campaign starts.
    pub required_funding: i64,
    /// Escrow never takes more than this.
    pub funding_limit: i64,
}

impl Terms {
    fn with_fee(&self, amount: i64) -> Result<i64, MoneyError> {
        let total = match self.fee_payer {
            pb::FeePayer::Advertiser => amount.checked_add(fee_on(amount, self.fee_bps)),
            _ => Some(amount),
        };
        total
            .filter(|total| *total <= MAX_AMOUNT)
            .ok_or(MoneyError::OutOfRange)
    }

    pub fn limits(&self) -> Result<Limits, MoneyError> {
        let budget = match self.kind {
            pb::CampaignType::Visibility => view_earnings(self.max_views, self.rate_per_100_views)?,
            _ => self.max_budget,
        };
        let funding_limit = self.with_fee(budget)?;
        let required_funding = match self.kind {
            pb::CampaignType::Visibility => funding_limit,
            _ => self.with_fee(self.min_budget)?,
        };
        Ok(Limits {
            budget,
            required_funding,
            funding_limit,
        })
    }

    /// How a one-off earning of `gross` (approved work, a sale's commission) splits.
    pub fn split(&self, gross: i64) -> Split {
        Split::of(gross, fee_on(gross, self.fee_bps), self.fee_payer)
    }
}

/// How one earning moves: out of escrow `gross` (+ `fee` when the advertiser pays it), into the
/// promoter's wallet `promoter`, into platform revenue `fee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub gross: i64,
    pub fee: i64,
    pub promoter: i64,
}

impl Split {
    fn of(gross: i64, fee: i64, payer: pb::FeePayer) -> Split {
        let promoter = match payer {
            pb::FeePayer::Promoter => gross - fee,
            _ => gross,
        };
        Split {
            gross,
            fee,
            promoter,
        }
    }

    /// What leaves escrow: the promoter's part and the fee.
    pub fn from_escrow(&self) -> i64 {
        self.promoter + self.fee
    }
}

/// What a promoter's views have earned and what a report adds: computed from cumulative totals
/// (earned = floor(views × rate / 100), fee = floor(earned × bps)), minus what was credited.
pub fn view_increment(
    terms: &Terms,
    total_views: i64,
    earned_before: i64,
    fee_before: i64,
) -> Result<Split, MoneyError> {
    let earned = view_earnings(total_views, terms.rate_per_100_views)?;
    let fee = fee_on(earned, terms.fee_bps);
    Ok(Split::of(
        earned - earned_before,
        fee - fee_before,
        terms.fee_payer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn visibility(rate: i64, max_views: i64, fee_bps: u32, payer: pb::FeePayer) -> Terms {
        Terms {
            kind: pb::CampaignType::Visibility,
            rate_per_100_views: rate,
            max_views,
            min_budget: 0,
            max_budget: 0,
            fee_bps,
            fee_payer: payer,
        }
    }

    #[test]
    fn three_dollars_per_hundred_views_times_two_thousand_views_is_sixty_dollars() {
        assert_eq!(view_earnings(2000, 300), Ok(6000));
        let terms = visibility(300, 2000, 1000, pb::FeePayer::Advertiser);
        let limits = terms.limits().expect("limits");
        assert_eq!(limits.budget, 6000);
        assert_eq!(limits.funding_limit, 6600);
        assert_eq!(limits.required_funding, 6600);
    }

    #[test]
    fn a_promoter_paid_fee_comes_out_of_the_earning() {
        let terms = visibility(300, 2000, 1000, pb::FeePayer::Promoter);
        assert_eq!(terms.limits().expect("limits").funding_limit, 6000);
        let split = terms.split(1999);
        assert_eq!(
            split,
            Split {
                gross: 1999,
                fee: 199,
                promoter: 1800
            }
        );
        assert_eq!(split.from_escrow(), 1999);
    }

    proptest! {
        /// However views arrive in batches, the promoter ends with floor(views × rate / 100) and
        /// the platform with the fee on that, and escrow never pays more than the funding limit.
        #[test]
        fn any_batching_of_views_pays_the_same(
            rate in 1i64..100_000,
            batches in proptest::collection::vec(0i64..5_000, 1..40),
            fee_bps in 0u32..=5000,
            promoter_pays in any::<bool>(),
        ) {
            let payer = if promoter_pays { pb::FeePayer::Promoter } else { pb::FeePayer::Advertiser };
            let max_views: i64 = batches.iter().sum();
            let terms = visibility(rate, max_views, fee_bps, payer);
            let (mut views, mut earned, mut fee, mut promoter, mut escrow) = (0, 0, 0, 0, 0);
            for batch in &batches {
                views += batch;
                let step = view_increment(&terms, views, earned, fee).expect("in range");
                prop_assert!(step.gross >= 0 && step.fee >= 0 && step.promoter >= 0);
                earned += step.gross;
                fee += step.fee;
                promoter += step.promoter;
                escrow += step.from_escrow();
            }
            let total = view_earnings(max_views, rate).expect("in range");
            prop_assert_eq!(earned, total);
            prop_assert_eq!(fee, fee_on(total, fee_bps));
            prop_assert_eq!(promoter + fee, escrow);
            prop_assert!(escrow <= terms.limits().expect("limits").funding_limit);
        }
    }
}
