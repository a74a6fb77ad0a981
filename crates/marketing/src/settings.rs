//! The marketing module's workspace settings: the `marketing` section of the settings registry
//! (kernel::settings). Pricing snapshots carry them, so a change bumps the snapshot version.

use std::sync::Arc;

use kernel::settings::Section;
use kernel::{ServiceError, Violations, WriteTxn};
use proto::admin::v1 as admin;
use proto::marketing::v1 as pb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::snapshot::SnapshotCache;

/// Bounds of the reservation time to live, in seconds.
pub const MIN_RESERVATION_TTL_SECONDS: i64 = 30;
pub const MAX_RESERVATION_TTL_SECONDS: i64 = 86_400;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarketingSettings {
    pub reservation_ttl_seconds: i64,
}

impl Default for MarketingSettings {
    fn default() -> MarketingSettings {
        MarketingSettings {
            reservation_ttl_seconds: 900,
        }
    }
}

impl Section for MarketingSettings {
    const NAME: &'static str = "marketing";
    const ABOUT: &'static str = "how shop promotions reserve what a redemption needs";
    const FIELDS: &'static [(&'static str, &'static str)] = &[(
        "reservation_ttl_seconds",
        "how long a reserved redemption holds coupon uses and budget before it expires, in seconds (default 900)",
    )];

    fn validate(&self, violations: &mut Violations) {
        violations.check(
            (MIN_RESERVATION_TTL_SECONDS..=MAX_RESERVATION_TTL_SECONDS)
                .contains(&self.reservation_ttl_seconds),
            "marketing.reservation_ttl_seconds",
            format!(
                "must be between {MIN_RESERVATION_TTL_SECONDS} and {MAX_RESERVATION_TTL_SECONDS}"
            ),
        );
    }

    fn to_proto(&self, settings: &mut admin::Settings) {
        settings.marketing = Some(pb::MarketingSettings {
            reservation_ttl_seconds: self.reservation_ttl_seconds,
        });
    }

    fn merge(&mut self, update: &admin::Settings, field: Option<&str>) -> Result<(), String> {
        let update = update
            .marketing
            .as_ref()
            .ok_or_else(|| "is required by update_mask".to_owned())?;
        match field {
            None | Some("reservation_ttl_seconds") => {
                self.reservation_ttl_seconds = update.reservation_ttl_seconds;
            }
            Some(other) => return Err(format!("{other} is not a marketing setting")),
        }
        Ok(())
    }
}

/// Moves the pricing snapshot version in the transaction that stores a change, and drops this
/// replica's snapshot once it commits.
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
        if sections.contains(&MarketingSettings::NAME)
            || sections.contains(&kernel::settings::TimeZone::NAME)
        {
            crate::store::bump_version(&**txn, workspace_id).await?;
        }
        Ok(())
    }

    fn changed(&self, workspace_id: Uuid, sections: &[&'static str]) {
        if sections.contains(&MarketingSettings::NAME)
            || sections.contains(&kernel::settings::TimeZone::NAME)
        {
            self.snapshots.invalidate(workspace_id);
        }
    }
}
