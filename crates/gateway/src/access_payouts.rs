//! Which roles each RPC of promo.payouts.v1 admits (the rest of the table is in `access`).

use kernel::Role::*;
use kernel::{Module, Role};

use crate::access::{MethodRule, rule};

const PAYOUTS: Option<Module> = Some(Module::Payouts);
/// Advertisers act on their own campaigns (the service checks ownership); operators on any.
const ADVERTISERS: &[Role] = &[Advertiser, Admin];
const CAMPAIGN_READERS: &[Role] = &[Advertiser, Promoter, Admin, Ops, Billing];
const CAMPAIGN_MANAGERS: &[Role] = &[Advertiser, Admin, Ops, Billing];
const PARTICIPANT_READERS: &[Role] = &[Advertiser, Promoter, Admin, Ops];
const PROMOTERS: &[Role] = &[Promoter];
/// Money in and payout runs: the billing service and admins.
const PAYOUT_BILLING: &[Role] = &[Billing, Admin];
/// A promoter reads its own wallet and payouts; operators any.
const WALLET_READERS: &[Role] = &[Promoter, Admin, Ops, Billing];
/// The tracking backend that reports views and sales.
const TRACKING_REPORTERS: &[Role] = &[Billing, Admin, Ops];
/// Sales are verified or rejected by the campaign's advertiser (or billing).
const SALE_DECIDERS: &[Role] = &[Advertiser, Billing, Admin];

pub const RULES: &[MethodRule] = &[
    rule(
        "/promo.payouts.v1.CampaignService/CreateCampaign",
        ADVERTISERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.CampaignService/GetCampaign",
        CAMPAIGN_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.CampaignService/ListCampaigns",
        CAMPAIGN_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.CampaignService/FundCampaign",
        PAYOUT_BILLING,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.CampaignService/CloseCampaign",
        &[Advertiser, Billing, Admin],
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.CampaignService/GetCampaignPerformance",
        CAMPAIGN_MANAGERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/ApplyToCampaign",
        PROMOTERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/AcceptApplication",
        ADVERTISERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/RejectApplication",
        ADVERTISERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/ListApplications",
        PARTICIPANT_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/JoinCampaign",
        PROMOTERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/SubmitWork",
        PROMOTERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/ApproveWork",
        ADVERTISERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/RejectWork",
        ADVERTISERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.ParticipationService/ListWork",
        PARTICIPANT_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/RecordViews",
        TRACKING_REPORTERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/RecordSale",
        TRACKING_REPORTERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/VerifySale",
        SALE_DECIDERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/RejectSale",
        SALE_DECIDERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/RefundSale",
        PAYOUT_BILLING,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PerformanceService/ListSales",
        CAMPAIGN_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/ConnectPayoutAccount",
        &[Promoter, Admin, Billing],
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/GetWallet",
        WALLET_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/RunPayouts",
        PAYOUT_BILLING,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/ListPayouts",
        WALLET_READERS,
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/GetBillingSummary",
        &[Advertiser, Promoter, Admin, Ops, Billing],
        PAYOUTS,
    ),
    rule(
        "/promo.payouts.v1.PayoutService/ListPlatformFees",
        &[Admin, Ops, Billing],
        PAYOUTS,
    ),
];
