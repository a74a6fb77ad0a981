//! The payouts module's workspace settings: the `payouts` section of the settings registry
//! (kernel::settings), read in the transaction that uses them.

use kernel::Violations;
use kernel::settings::Section;
use proto::admin::v1 as admin;
use proto::payouts::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PayoutsSettings {
    pub minimum_payout: i64,
    pub sale_holding_days: i64,
    pub work_holding_days: i64,
    pub platform_fee_bps: u32,
    /// A `pb::FeePayer` value.
    pub fee_payer: i32,
}

impl Default for PayoutsSettings {
    fn default() -> PayoutsSettings {
        PayoutsSettings {
            minimum_payout: 2000,
            sale_holding_days: 30,
            work_holding_days: 0,
            platform_fee_bps: 1000,
            fee_payer: pb::FeePayer::Advertiser as i32,
        }
    }
}

/// The highest platform fee a workspace may set: half of every earning.
pub const MAX_FEE_BPS: u32 = 5000;

impl PayoutsSettings {
    pub fn fee_payer(&self) -> pb::FeePayer {
        match pb::FeePayer::try_from(self.fee_payer) {
            Ok(pb::FeePayer::Promoter) => pb::FeePayer::Promoter,
            _ => pb::FeePayer::Advertiser,
        }
    }
}

impl Section for PayoutsSettings {
    const NAME: &'static str = "payouts";
    const ABOUT: &'static str = "payout minimum, holding periods and platform fees";
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        (
            "minimum_payout",
            "a run pays a wallet only from this many minor units; less is carried forward (default 2000)",
        ),
        (
            "sale_holding_days",
            "days a verified sale's commission stays pending (default 30)",
        ),
        (
            "work_holding_days",
            "days earnings from views and approved work stay pending (default 0)",
        ),
        (
            "platform_fee_bps",
            "the platform's fee on each earning, for campaigns that set none (default 1000 = 10 %)",
        ),
        (
            "fee_payer",
            "who pays the fee on new campaigns: FEE_PAYER_ADVERTISER (default) or FEE_PAYER_PROMOTER",
        ),
    ];

    fn validate(&self, violations: &mut Violations) {
        violations.check(
            (1..=100_000_000).contains(&self.minimum_payout),
            "payouts.minimum_payout",
            "must be between 1 and 100000000 minor units",
        );
        for (name, value) in [
            ("sale_holding_days", self.sale_holding_days),
            ("work_holding_days", self.work_holding_days),
        ] {
            violations.check(
                (0..=365).contains(&value),
                &format!("payouts.{name}"),
                "must be between 0 and 365",
            );
        }
        violations.check(
            self.platform_fee_bps <= MAX_FEE_BPS,
            "payouts.platform_fee_bps",
            format!("must be at most {MAX_FEE_BPS} basis points"),
        );
        violations.check(
            matches!(
                pb::FeePayer::try_from(self.fee_payer),
                Ok(pb::FeePayer::Advertiser | pb::FeePayer::Promoter)
            ),
            "payouts.fee_payer",
            "must be FEE_PAYER_ADVERTISER or FEE_PAYER_PROMOTER",
        );
    }

    fn to_proto(&self, settings: &mut admin::Settings) {
        settings.payouts = Some(pb::PayoutsSettings {
            minimum_payout: self.minimum_payout,
            sale_holding_days: self.sale_holding_days,
            work_holding_days: self.work_holding_days,
            platform_fee_bps: self.platform_fee_bps,
            fee_payer: self.fee_payer,
        });
    }

    fn merge(&mut self, update: &admin::Settings, field: Option<&str>) -> Result<(), String> {
        let update = update
            .payouts
            .as_ref()
            .ok_or_else(|| "is required by update_mask".to_owned())?;
        let all = field.is_none();
        let mut known = all;
        if all || field == Some("minimum_payout") {
            self.minimum_payout = update.minimum_payout;
            known = true;
        }
        if all || field == Some("sale_holding_days") {
            self.sale_holding_days = update.sale_holding_days;
            known = true;
        }
        if all || field == Some("work_holding_days") {
            self.work_holding_days = update.work_holding_days;
            known = true;
        }
        if all || field == Some("platform_fee_bps") {
            self.platform_fee_bps = update.platform_fee_bps;
            known = true;
        }
        if all || field == Some("fee_payer") {
            self.fee_payer = update.fee_payer;
            known = true;
        }
        if known {
            Ok(())
        } else {
            Err(format!(
                "{} is not a payouts setting",
                field.unwrap_or_default()
            ))
        }
    }
}
