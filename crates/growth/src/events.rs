//! The domain events growth appends (kernel::events), each in the transaction of its cause.
//! Payloads are JSON objects; ids are strings, amounts JSON numbers of minor units.
//!
//! - `growth.referral.tracked` — `{referral_id, program_id, referrer_id, referee_id}`.
//! - `growth.referral.rewarded` — `{referral_id, program_id, referrer_id, referee_id, order_id,
//!   referrer_reward, referee_reward}` (each `{kind, credits, transfer_id, coupon_code}`).
//! - `growth.affiliate.status_changed` — `{affiliate_id, status}`.
//! - `growth.commission.recorded` — `{commission_id, affiliate_id, order_id, currency, amount,
//!   status, reason}`.
//! - `growth.commission.due` — `{commission_id, affiliate_id, currency, amount, credited,
//!   transfer_id}`: the holding period ended and the wallet was credited.
//! - `growth.commission.refunded` — `{commission_id, affiliate_id, order_id, currency, reduced,
//!   clawback}`.
//! - `growth.link.converted` — `{link_id, campaign_id, order_id, currency, amount}`.
//! - `growth.badge.awarded` — `{badge_id, badge_code, subject_id}`.

pub(crate) use kernel::events::emit;

pub const REFERRAL_TRACKED: &str = "growth.referral.tracked";
pub const REFERRAL_REWARDED: &str = "growth.referral.rewarded";
pub const AFFILIATE_STATUS_CHANGED: &str = "growth.affiliate.status_changed";
pub const COMMISSION_RECORDED: &str = "growth.commission.recorded";
pub const COMMISSION_DUE: &str = "growth.commission.due";
pub const COMMISSION_REFUNDED: &str = "growth.commission.refunded";
pub const LINK_CONVERTED: &str = "growth.link.converted";
pub const BADGE_AWARDED: &str = "growth.badge.awarded";
