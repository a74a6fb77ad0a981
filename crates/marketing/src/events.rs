//! The domain events marketing appends (kernel::events), each in the transaction of its cause.
//! Payloads are JSON objects; ids are strings, amounts JSON numbers of minor units.
//!
//! - `marketing.campaign.launched` — `{campaign_id, status}` (SCHEDULED or ACTIVE). Subject
//!   `campaigns/{id}`.
//! - `marketing.campaign.started` — a scheduled campaign reached its start. `{campaign_id}`.
//! - `marketing.campaign.updated` — UpdateCampaign changed `{campaign_id, fields}` (the field
//!   names of its mask).
//! - `marketing.campaign.completed` — `{campaign_id, reason}`: `ENDED` (its end time passed) or
//!   `COMPLETED` (an operator).
//! - `marketing.coupon.issued` — a coupon bound to a customer was issued by a participation or a
//!   customer event. `{coupon_id, code, campaign_id, customer_id, participation_id}`. Subject
//!   `coupons/{id}`.
//! - `marketing.promo_code.redeemed` — `{redemption_id, campaign_id, customer_id, code, credits,
//!   trial_days, discount_rule_id}`. Subject `campaigns/{id}`.
//! - `marketing.redemption.confirmed` — `{redemption_id, order_id, customer_id, currency,
//!   order_amount, total_discount, campaign_ids, coupon_codes}`. Subject `redemptions/{id}`.

pub(crate) use kernel::events::emit;

pub const CAMPAIGN_LAUNCHED: &str = "marketing.campaign.launched";
pub const CAMPAIGN_STARTED: &str = "marketing.campaign.started";
pub const CAMPAIGN_UPDATED: &str = "marketing.campaign.updated";
pub const CAMPAIGN_COMPLETED: &str = "marketing.campaign.completed";
pub const COUPON_ISSUED: &str = "marketing.coupon.issued";
pub const REDEMPTION_CONFIRMED: &str = "marketing.redemption.confirmed";
pub const PROMO_CODE_REDEEMED: &str = "marketing.promo_code.redeemed";
