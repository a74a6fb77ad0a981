//! The domain events payouts appends (kernel::events), each in the transaction of its cause.
//! Payloads are JSON objects; ids are strings, amounts JSON numbers of minor units.
//!
//! - `payouts.campaign.funded` — `{campaign_id, advertiser_id, currency, amount, funded,
//!   payment_reference, status}`.
//! - `payouts.work.approved` — `{work_id, campaign_id, promoter_id, currency, amount, fee}`.
//! - `payouts.payout.paid` — `{payout_id, promoter_id, period, currency, amount, provider,
//!   provider_reference}`.
//! - `payouts.payout.failed` — `{payout_id, promoter_id, period, currency, amount, reason}`: the
//!   money went back to the wallet; the next run tries again.

pub(crate) use kernel::events::emit;

pub const CAMPAIGN_FUNDED: &str = "payouts.campaign.funded";
pub const WORK_APPROVED: &str = "payouts.work.approved";
pub const PAYOUT_PAID: &str = "payouts.payout.paid";
pub const PAYOUT_FAILED: &str = "payouts.payout.failed";
