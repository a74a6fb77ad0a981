//! The growth module's workspace settings: the `growth` section of the settings registry
//! (kernel::settings). Read in the transaction that uses them, so a change applies to the next
//! call on every replica.

use kernel::Violations;
use kernel::settings::Section;
use proto::admin::v1 as admin;
use proto::growth::v1 as pb;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrowthSettings {
    pub commission_holding_days: i64,
    pub referral_link_ttl_days: i64,
    pub click_dedup_window_seconds: i64,
    pub link_attribution_days: i64,
}

impl Default for GrowthSettings {
    fn default() -> GrowthSettings {
        GrowthSettings {
            commission_holding_days: 30,
            referral_link_ttl_days: 30,
            click_dedup_window_seconds: 3600,
            link_attribution_days: 30,
        }
    }
}

/// Each field's bounds, as `(name, min, max)`.
const BOUNDS: [(&str, i64, i64); 4] = [
    ("commission_holding_days", 0, 365),
    ("referral_link_ttl_days", 1, 365),
    ("click_dedup_window_seconds", 1, 86_400),
    ("link_attribution_days", 1, 365),
];

impl GrowthSettings {
    fn values(&self) -> [i64; 4] {
        [
            self.commission_holding_days,
            self.referral_link_ttl_days,
            self.click_dedup_window_seconds,
            self.link_attribution_days,
        ]
    }
}

impl Section for GrowthSettings {
    const NAME: &'static str = "growth";
    const ABOUT: &'static str =
        "commission holding, referral links, click counting and attribution";
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        (
            "commission_holding_days",
            "days an affiliate commission stays pending (refundable) before it is credited (default 30)",
        ),
        (
            "referral_link_ttl_days",
            "days a referral link stays valid and a referral waits for its order (default 30)",
        ),
        (
            "click_dedup_window_seconds",
            "one click per link and visitor is counted within this many seconds (default 3600)",
        ),
        (
            "link_attribution_days",
            "an order is attributed to the visitor's last counted click within this many days (default 30)",
        ),
    ];

    fn validate(&self, violations: &mut Violations) {
        for ((name, min, max), value) in BOUNDS.iter().zip(self.values()) {
            violations.check(
                (*min..=*max).contains(&value),
                &format!("growth.{name}"),
                format!("must be between {min} and {max}"),
            );
        }
    }

    fn to_proto(&self, settings: &mut admin::Settings) {
        settings.growth = Some(pb::GrowthSettings {
            commission_holding_days: self.commission_holding_days,
            referral_link_ttl_days: self.referral_link_ttl_days,
            click_dedup_window_seconds: self.click_dedup_window_seconds,
            link_attribution_days: self.link_attribution_days,
        });
    }

    fn merge(&mut self, update: &admin::Settings, field: Option<&str>) -> Result<(), String> {
        let update = update
            .growth
            .as_ref()
            .ok_or_else(|| "is required by update_mask".to_owned())?;
        let all = field.is_none();
        let mut known = all;
        if all || field == Some("commission_holding_days") {
            self.commission_holding_days = update.commission_holding_days;
            known = true;
        }
        if all || field == Some("referral_link_ttl_days") {
            self.referral_link_ttl_days = update.referral_link_ttl_days;
            known = true;
        }
        if all || field == Some("click_dedup_window_seconds") {
            self.click_dedup_window_seconds = update.click_dedup_window_seconds;
            known = true;
        }
        if all || field == Some("link_attribution_days") {
            self.link_attribution_days = update.link_attribution_days;
            known = true;
        }
        if known {
            Ok(())
        } else {
            Err(format!(
                "{} is not a growth setting",
                field.unwrap_or_default()
            ))
        }
    }
}
