//! The payouts part of `promo demo`, driven through the services themselves (in process, with
//! the principals the gateway would attach): an advertiser's visibility campaign ($3 per 100
//! views, 3,000 views) funded by billing, two promoters with 2,000 and 500 unique views ($60 and
//! $15), connected payout accounts, and this month's payout run — one paid, one carried forward.
//! Request ids are derived from fixed names, so running it again changes nothing.

use std::sync::Arc;

use kernel::{Principal, Role, ServiceError};
use proto::payouts::v1 as pb;
use proto::payouts::v1::campaign_service_server::CampaignService;
use proto::payouts::v1::participation_service_server::ParticipationService;
use proto::payouts::v1::payout_service_server::PayoutService;
use proto::payouts::v1::performance_service_server::PerformanceService;
use uuid::Uuid;

use crate::Payouts;
use crate::campaigns::CampaignGrpc;
use crate::participation::ParticipationGrpc;
use crate::performance::PerformanceGrpc;
use crate::wallets::PayoutGrpc;

/// The demo advertiser and promoters (tokens with these subjects read their own records).
pub const DEMO_ADVERTISER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_00de_0000_ad01);
pub const DEMO_PROMOTER_ABOVE: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_00de_0000_f001);
pub const DEMO_PROMOTER_BELOW: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_00de_0000_f002);

/// What the printed commands use.
pub struct DemoPayouts {
    pub campaign_id: String,
    pub run: pb::PayoutRun,
}

fn request<T>(message: T, principal: &Principal) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(principal.clone());
    request
}

/// Loads the payouts demo into `workspace_id` (once) and returns its campaign and run.
pub async fn load(
    core: &Arc<Payouts>,
    workspace_id: Uuid,
    period: &str,
) -> Result<DemoPayouts, tonic::Status> {
    let principal = |subject, role| Principal {
        subject,
        workspace_id,
        roles: vec![role],
    };
    let request_id = |name: &str| {
        kernel::ids::derived(&workspace_id, &format!("demo-payouts:{name}")).to_string()
    };
    let advertiser = principal(DEMO_ADVERTISER, Role::Advertiser);
    let billing = principal(Uuid::nil(), Role::Billing);
    let campaigns = CampaignGrpc { core: core.clone() };
    let participation = ParticipationGrpc { core: core.clone() };
    let performance = PerformanceGrpc { core: core.clone() };
    let wallets = PayoutGrpc { core: core.clone() };
    let campaign = campaigns
        .create_campaign(request(
            pb::CreateCampaignRequest {
                request_id: request_id("campaign"),
                campaign: Some(pb::Campaign {
                    title: "Autumn reel".to_owned(),
                    r#type: pb::CampaignType::Visibility as i32,
                    currency: "USD".to_owned(),
                    rate_per_100_views: Some(pb::Money {
                        currency: "USD".to_owned(),
                        amount: 300,
                    }),
                    max_views: 3000,
                    ..Default::default()
                }),
            },
            &advertiser,
        ))
        .await?
        .into_inner();
    campaigns
        .fund_campaign(request(
            pb::FundCampaignRequest {
                request_id: request_id("funding"),
                campaign_id: campaign.id.clone(),
                amount: campaign.required_funding.clone(),
                payment_reference: format!("demo-payment-{}", campaign.id),
                processing_fee: None,
            },
            &billing,
        ))
        .await?;
    for (promoter, views) in [(DEMO_PROMOTER_ABOVE, 2000), (DEMO_PROMOTER_BELOW, 500)] {
        let promoter_principal = principal(promoter, Role::Promoter);
        participation
            .join_campaign(request(
                pb::JoinCampaignRequest {
                    request_id: request_id(&format!("join:{promoter}")),
                    campaign_id: campaign.id.clone(),
                },
                &promoter_principal,
            ))
            .await?;
        wallets
            .connect_payout_account(request(
                pb::ConnectPayoutAccountRequest {
                    request_id: request_id(&format!("connect:{promoter}")),
                    promoter_id: String::new(),
                    provider_account_id: format!("acct_demo_{}", promoter.simple()),
                },
                &promoter_principal,
            ))
            .await?;
        performance
            .record_views(request(
                pb::RecordViewsRequest {
                    request_id: request_id(&format!("views:{promoter}")),
                    campaign_id: campaign.id.clone(),
                    promoter_id: promoter.to_string(),
                    viewer_ids: (0..views)
                        .map(|index| format!("demo-viewer-{index}"))
                        .collect(),
                },
                &billing,
            ))
            .await?;
    }
    let run = wallets
        .run_payouts(request(
            pb::RunPayoutsRequest {
                request_id: request_id(&format!("run:{period}")),
                period: period.to_owned(),
                currency: "USD".to_owned(),
            },
            &billing,
        ))
        .await?
        .into_inner();
    Ok(DemoPayouts {
        campaign_id: campaign.id,
        run,
    })
}

/// The current month in the workspace's time zone, for the demo's run.
pub async fn this_month(core: &Payouts, workspace_id: Uuid) -> Result<String, ServiceError> {
    crate::state::local_month(core.context.db.connection(), workspace_id, core.now()).await
}
