//! The material promotion module's workspace settings: the `promotion` section of the settings
//! registry (kernel::settings), with its defaults, validation and documentation, and how a change
//! reaches selection (every replica's snapshot carries the settings it selects with).

use std::sync::Arc;

use kernel::settings::Section;
use kernel::{ServiceError, Violations, WriteTxn};
use proto::admin::v1 as admin;
use proto::promotion::v1 as pb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::snapshot::SnapshotCache;

/// An exact probability `numerator / denominator` in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    pub numerator: i64,
    pub denominator: i64,
}

/// Settings of the material promotion module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromotionSettings {
    pub selection_probability: Fraction,
    pub cost_per_use: i64,
    pub cost_per_impression: i64,
    pub usage_window_seconds: i64,
}

impl Default for PromotionSettings {
    fn default() -> PromotionSettings {
        PromotionSettings {
            selection_probability: Fraction {
                numerator: 1,
                denominator: 3,
            },
            cost_per_use: 1,
            cost_per_impression: 0,
            usage_window_seconds: 86_400,
        }
    }
}

/// Upper bounds that keep settings sane (a cost above this is surely a typo).
const MAX_COST_CREDITS: i64 = 1_000_000_000;
const MAX_USAGE_WINDOW_SECONDS: i64 = 30 * 86_400;

impl Section for PromotionSettings {
    const NAME: &'static str = "promotion";
    const ABOUT: &'static str = "how material promotions are selected and charged";
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        (
            "selection_probability",
            "probability that a material type with an eligible promotion gets a promoted pick (default 1/3)",
        ),
        (
            "cost_per_use",
            "credits charged to a promotion each time the generator reports a use (default 1)",
        ),
        (
            "cost_per_impression",
            "credits charged to a promotion for each impression (default 0)",
        ),
        (
            "usage_window_seconds",
            "how long after a selection ReportUsage accepts its decision id, in seconds (default 86400)",
        ),
    ];

    fn validate(&self, violations: &mut Violations) {
        let probability = self.selection_probability;
        violations.check(
            probability.denominator > 0
                && probability.numerator >= 0
                && probability.numerator <= probability.denominator,
            "promotion.selection_probability",
            "must be numerator/denominator with 0 <= numerator <= denominator and denominator > 0",
        );
        for (field, value) in [
            ("promotion.cost_per_use", self.cost_per_use),
            ("promotion.cost_per_impression", self.cost_per_impression),
        ] {
            violations.check(
                (0..=MAX_COST_CREDITS).contains(&value),
                field,
                format!("must be between 0 and {MAX_COST_CREDITS}"),
            );
        }
        violations.check(
            self.cost_per_use != 0 || self.cost_per_impression != 0,
            "promotion.cost_per_use",
            "cost_per_use and cost_per_impression must not both be 0",
        );
        violations.check(
            (60..=MAX_USAGE_WINDOW_SECONDS).contains(&self.usage_window_seconds),
            "promotion.usage_window_seconds",
            format!("must be between 60 and {MAX_USAGE_WINDOW_SECONDS}"),
        );
    }

    fn to_proto(&self, settings: &mut admin::Settings) {
        settings.promotion = Some(pb::PromotionSettings {
            selection_probability: Some(pb::Fraction {
                numerator: self.selection_probability.numerator,
                denominator: self.selection_probability.denominator,
            }),
            cost_per_use: self.cost_per_use,
            cost_per_impression: self.cost_per_impression,
            usage_window_seconds: self.usage_window_seconds,
        });
    }

    fn merge(&mut self, update: &admin::Settings, field: Option<&str>) -> Result<(), String> {
        let required = || "is required by update_mask".to_owned();
        let update = update.promotion.as_ref().ok_or_else(required)?;
        let probability = |update: &pb::PromotionSettings| {
            let probability = update.selection_probability.unwrap_or_default();
            Fraction {
                numerator: probability.numerator,
                denominator: probability.denominator,
            }
        };
        match field {
            None => {
                self.selection_probability = probability(update);
                self.cost_per_use = update.cost_per_use;
                self.cost_per_impression = update.cost_per_impression;
                self.usage_window_seconds = update.usage_window_seconds;
            }
            Some("selection_probability") => {
                if update.selection_probability.is_none() {
                    return Err(required());
                }
                self.selection_probability = probability(update);
            }
            Some("cost_per_use") => self.cost_per_use = update.cost_per_use,
            Some("cost_per_impression") => self.cost_per_impression = update.cost_per_impression,
            Some("usage_window_seconds") => self.usage_window_seconds = update.usage_window_seconds,
            Some(other) => return Err(format!("{other} is not a promotion setting")),
        }
        Ok(())
    }
}

/// Keeps selection in step with settings: the snapshot version every replica watches moves in
/// the transaction that stores a change, and this replica drops its snapshot once it commits.
pub struct SettingsObserver {
    pub(crate) snapshots: Arc<SnapshotCache>,
}

#[async_trait::async_trait]
impl kernel::settings::Observer for SettingsObserver {
    async fn changing(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        sections: &[&'static str],
    ) -> Result<(), ServiceError> {
        if sections.contains(&PromotionSettings::NAME) {
            crate::store::bump_version(&**txn, workspace_id).await?;
        }
        Ok(())
    }

    fn changed(&self, workspace_id: Uuid, sections: &[&'static str]) {
        if sections.contains(&PromotionSettings::NAME) {
            self.snapshots.invalidate(workspace_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused_field_by_field() {
        let mut violations = Violations::under(crate::DOMAIN, "settings.");
        PromotionSettings::default().validate(&mut violations);
        assert!(violations.is_empty());
        let settings = PromotionSettings {
            selection_probability: Fraction {
                numerator: 4,
                denominator: 3,
            },
            cost_per_use: -1,
            ..PromotionSettings::default()
        };
        let mut violations = Violations::under(crate::DOMAIN, "settings.");
        settings.validate(&mut violations);
        let fields: Vec<&str> = violations
            .as_slice()
            .iter()
            .map(|(field, _)| field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "settings.promotion.selection_probability",
                "settings.promotion.cost_per_use"
            ]
        );
    }

    #[test]
    fn rows_written_before_a_field_existed_read_its_default() {
        let stored: PromotionSettings =
            serde_json::from_str(r#"{"cost_per_use": 5}"#).expect("parses");
        assert_eq!(stored.cost_per_use, 5);
        assert_eq!(stored.usage_window_seconds, 86_400);
    }
}
