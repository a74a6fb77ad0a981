//! The marketing resources as pricing and redemption see them, read from their rows: campaigns
//! with their effective status, rules with their calculation, coupons with their limits.

use kernel::ServiceError;
use uuid::Uuid;

use crate::pricing::Rule;
use crate::store::{campaign, coupon, rule};

/// Stored campaign status (the proto enum's numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignStatus {
    Draft = 1,
    Scheduled = 2,
    Active = 3,
    Paused = 4,
    Completed = 5,
}

impl CampaignStatus {
    pub fn from_i32(value: i32) -> Option<CampaignStatus> {
        Some(match value {
            1 => CampaignStatus::Draft,
            2 => CampaignStatus::Scheduled,
            3 => CampaignStatus::Active,
            4 => CampaignStatus::Paused,
            5 => CampaignStatus::Completed,
            _ => return None,
        })
    }

    /// What a stored status means at `now`: a launched campaign is SCHEDULED before its start and
    /// ACTIVE from it; any campaign but a draft is COMPLETED from its end time.
    pub fn effective(self, start: Option<i64>, end: Option<i64>, now: i64) -> CampaignStatus {
        match self {
            CampaignStatus::Draft | CampaignStatus::Completed => self,
            _ if end.is_some_and(|end| end <= now) => CampaignStatus::Completed,
            CampaignStatus::Paused => CampaignStatus::Paused,
            _ if start.is_some_and(|start| start > now) => CampaignStatus::Scheduled,
            _ => CampaignStatus::Active,
        }
    }
}

/// Trigger types (the proto enum's numbers).
pub const TRIGGER_MANUAL_CODE: i32 = 0;
pub const TRIGGER_AUTOMATIC: i32 = 1;
pub const TRIGGER_ON_REGISTRATION: i32 = 2;
pub const TRIGGER_ON_FIRST_ORDER: i32 = 3;
pub const TRIGGER_ON_CART_ABANDONMENT: i32 = 4;
pub const TRIGGER_LAST: i32 = 4;
/// Campaign kinds.
pub const KIND_STANDARD: i32 = 0;
pub const KIND_PROMO_CODE: i32 = 1;

/// A campaign's terms and counters.
#[derive(Clone, Debug)]
pub struct CampaignDef {
    pub id: Uuid,
    pub status: CampaignStatus,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// Applies its rules to every cart, without a code.
    pub automatic: bool,
    pub rule_ids: Vec<Uuid>,
    pub currency: String,
    pub budget: Option<i64>,
    pub budget_used: i64,
    pub usage_limit_total: i64,
    pub usage_limit_per_customer: i64,
    pub uses_held: i64,
    pub is_public: bool,
}

impl CampaignDef {
    pub fn from_row(row: &campaign::Model) -> Result<CampaignDef, ServiceError> {
        let rule_ids = kernel::db::json_column(
            "mkt_campaign",
            format!("({}, {})", row.workspace_id, row.id),
            "rule_ids",
            &row.rule_ids,
        )?;
        Ok(CampaignDef {
            id: row.id,
            status: CampaignStatus::from_i32(row.status).unwrap_or(CampaignStatus::Completed),
            start_time: row.start_time,
            end_time: row.end_time,
            automatic: row.trigger_type == TRIGGER_AUTOMATIC && row.auto_apply,
            rule_ids,
            currency: row.currency.clone(),
            budget: row.budget,
            budget_used: row.budget_used,
            usage_limit_total: row.usage_limit_total,
            usage_limit_per_customer: row.usage_limit_per_customer,
            uses_held: row.uses_held,
            is_public: row.is_public,
        })
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.status.effective(self.start_time, self.end_time, now) == CampaignStatus::Active
    }

    /// What is left of the budget, `None` when unlimited.
    pub fn budget_left(&self) -> Option<i64> {
        self.budget.map(|budget| (budget - self.budget_used).max(0))
    }
}

/// A discount rule: its calculation and the currency of its amounts ("" for none).
#[derive(Clone, Debug)]
pub struct RuleDef {
    pub id: Uuid,
    pub currency: String,
    pub rule: Rule,
}

impl RuleDef {
    pub fn from_row(row: &rule::Model) -> Result<RuleDef, ServiceError> {
        Ok(RuleDef {
            id: row.id,
            currency: row.currency.clone(),
            rule: kernel::db::json_column(
                "mkt_discount_rule",
                format!("({}, {})", row.workspace_id, row.id),
                "definition",
                &row.definition,
            )?,
        })
    }
}

/// A coupon's terms and counters.
#[derive(Clone, Debug)]
pub struct CouponDef {
    pub id: Uuid,
    pub code: String,
    pub rule_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub usage_limit: i64,
    pub usage_limit_per_customer: i64,
    pub uses_held: i64,
}

impl CouponDef {
    pub fn from_row(row: &coupon::Model) -> CouponDef {
        CouponDef {
            id: row.id,
            code: row.code.clone(),
            rule_id: row.rule_id,
            campaign_id: row.campaign_id,
            customer_id: row.customer_id,
            valid_from: row.valid_from,
            valid_until: row.valid_until,
            usage_limit: row.usage_limit,
            usage_limit_per_customer: row.usage_limit_per_customer,
            uses_held: row.uses_held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launched_campaign_moves_with_its_window() {
        let (start, end) = (Some(100), Some(200));
        let scheduled = CampaignStatus::Scheduled;
        assert_eq!(
            scheduled.effective(start, end, 99),
            CampaignStatus::Scheduled
        );
        assert_eq!(scheduled.effective(start, end, 100), CampaignStatus::Active);
        assert_eq!(
            scheduled.effective(start, end, 200),
            CampaignStatus::Completed
        );
        assert_eq!(
            CampaignStatus::Paused.effective(start, end, 150),
            CampaignStatus::Paused
        );
        assert_eq!(
            CampaignStatus::Paused.effective(start, end, 250),
            CampaignStatus::Completed
        );
        assert_eq!(
            CampaignStatus::Draft.effective(start, end, 250),
            CampaignStatus::Draft
        );
    }
}
