//! Helpers for the payouts tests: an advertiser and billing with every payouts client, promoters
//! with their own tokens, and balances of system accounts read through the ledger's service.

use kernel::Role;
use proto::payouts::v1 as pb;
use proto::payouts::v1::campaign_service_client::CampaignServiceClient;
use proto::payouts::v1::participation_service_client::ParticipationServiceClient;
use proto::payouts::v1::payout_service_client::PayoutServiceClient;
use proto::payouts::v1::performance_service_client::PerformanceServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, request_id};

pub fn usd(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "USD".to_owned(),
        amount,
    })
}

pub fn amount(money: &Option<pb::Money>) -> i64 {
    money.as_ref().map_or(0, |money| money.amount)
}

/// The month the tests run in (the default workspace's time zone is UTC).
pub fn this_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

/// An advertiser, billing and admin of the default workspace with every payouts client.
pub struct Market {
    pub advertiser_token: String,
    pub billing: String,
    pub campaigns: CampaignServiceClient<Channel>,
    pub participation: ParticipationServiceClient<Channel>,
    pub performance: PerformanceServiceClient<Channel>,
    pub payouts: PayoutServiceClient<Channel>,
}

/// A promoter and its token.
pub struct Promoter {
    pub id: Uuid,
    pub token: String,
}

impl Market {
    pub fn new(app: &TestApp) -> Market {
        let advertiser = Uuid::new_v4();
        Market {
            advertiser_token: app.token_for(advertiser, app.default_workspace, &[Role::Advertiser]),
            billing: app.token(&[Role::Billing]),
            campaigns: CampaignServiceClient::new(app.channel.clone()),
            participation: ParticipationServiceClient::new(app.channel.clone()),
            performance: PerformanceServiceClient::new(app.channel.clone()),
            payouts: PayoutServiceClient::new(app.channel.clone()),
        }
    }

    pub fn promoter(&self, app: &TestApp) -> Promoter {
        let id = Uuid::new_v4();
        Promoter {
            id,
            token: app.token_for(id, app.default_workspace, &[Role::Promoter]),
        }
    }

    pub async fn create(&mut self, campaign: pb::Campaign) -> Result<pb::Campaign, tonic::Status> {
        Ok(self
            .campaigns
            .create_campaign(authed(
                pb::CreateCampaignRequest {
                    request_id: request_id(),
                    campaign: Some(campaign),
                },
                &self.advertiser_token,
            ))
            .await?
            .into_inner())
    }

    /// A visibility campaign paying `rate` cents per 100 views up to `max_views`.
    pub async fn visibility(&mut self, rate: i64, max_views: i64) -> pb::Campaign {
        self.create(pb::Campaign {
            title: "Spring launch".to_owned(),
            r#type: pb::CampaignType::Visibility as i32,
            currency: "USD".to_owned(),
            rate_per_100_views: usd(rate),
            max_views,
            ..Default::default()
        })
        .await
        .expect("visibility campaign")
    }

    pub async fn fund(
        &mut self,
        campaign_id: &str,
        money: Option<pb::Money>,
        reference: &str,
    ) -> Result<pb::Campaign, tonic::Status> {
        Ok(self
            .campaigns
            .fund_campaign(authed(
                pb::FundCampaignRequest {
                    request_id: request_id(),
                    campaign_id: campaign_id.to_owned(),
                    amount: money,
                    payment_reference: reference.to_owned(),
                    processing_fee: None,
                },
                &self.billing,
            ))
            .await?
            .into_inner())
    }

    /// Funds everything the campaign needs to start.
    pub async fn fund_fully(&mut self, campaign: &pb::Campaign) -> pb::Campaign {
        let needed = amount(&campaign.required_funding);
        self.fund(&campaign.id, usd(needed), &format!("pi_{}", Uuid::new_v4()))
            .await
            .expect("funding")
    }

    pub async fn join(&mut self, campaign_id: &str, promoter: &Promoter) -> pb::Membership {
        self.participation
            .join_campaign(authed(
                pb::JoinCampaignRequest {
                    request_id: request_id(),
                    campaign_id: campaign_id.to_owned(),
                },
                &promoter.token,
            ))
            .await
            .expect("join")
            .into_inner()
    }

    pub async fn views(
        &mut self,
        campaign_id: &str,
        promoter: Uuid,
        viewers: impl IntoIterator<Item = String>,
    ) -> Result<pb::RecordViewsResponse, tonic::Status> {
        Ok(self
            .performance
            .record_views(authed(
                pb::RecordViewsRequest {
                    request_id: request_id(),
                    campaign_id: campaign_id.to_owned(),
                    promoter_id: promoter.to_string(),
                    viewer_ids: viewers.into_iter().collect(),
                },
                &self.billing,
            ))
            .await?
            .into_inner())
    }

    pub async fn connect(&mut self, promoter: &Promoter) -> pb::PayoutAccount {
        self.payouts
            .connect_payout_account(authed(
                pb::ConnectPayoutAccountRequest {
                    request_id: request_id(),
                    promoter_id: String::new(),
                    provider_account_id: format!("acct_{}", promoter.id.simple()),
                },
                &promoter.token,
            ))
            .await
            .expect("connect")
            .into_inner()
    }

    pub async fn wallet(&mut self, promoter: &Promoter) -> pb::Wallet {
        self.payouts
            .get_wallet(authed(
                pb::GetWalletRequest {
                    promoter_id: String::new(),
                    currency: "USD".to_owned(),
                },
                &promoter.token,
            ))
            .await
            .expect("wallet")
            .into_inner()
    }

    pub async fn run(&mut self, period: &str) -> Result<pb::PayoutRun, tonic::Status> {
        Ok(self
            .payouts
            .run_payouts(authed(
                pb::RunPayoutsRequest {
                    request_id: request_id(),
                    period: period.to_owned(),
                    currency: "USD".to_owned(),
                },
                &self.billing,
            ))
            .await?
            .into_inner())
    }

    pub async fn campaign(&mut self, id: &str) -> pb::Campaign {
        self.campaigns
            .get_campaign(authed(
                pb::GetCampaignRequest { id: id.to_owned() },
                &self.advertiser_token,
            ))
            .await
            .expect("campaign")
            .into_inner()
    }
}

/// `count` distinct viewer ids starting at `from`.
pub fn viewers(prefix: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}
