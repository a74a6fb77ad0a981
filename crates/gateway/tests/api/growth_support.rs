//! Helpers for the growth tests: clients, a customer with its own token, wallet balances read
//! through the ledger's gRPC service, and a minimal HTTP/1.1 client for short links.

use kernel::Role;
use proto::growth::v1 as pb;
use proto::growth::v1::affiliate_service_client::AffiliateServiceClient;
use proto::growth::v1::gamification_service_client::GamificationServiceClient;
use proto::growth::v1::link_service_client::LinkServiceClient;
use proto::growth::v1::referral_service_client::ReferralServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, request_id};

/// Operator and storefront tokens of the default workspace with every growth client.
pub struct Growth {
    pub admin: String,
    pub storefront: String,
    pub referrals: ReferralServiceClient<Channel>,
    pub affiliates: AffiliateServiceClient<Channel>,
    pub links: LinkServiceClient<Channel>,
    pub gamification: GamificationServiceClient<Channel>,
}

impl Growth {
    pub fn new(app: &TestApp) -> Growth {
        Growth {
            admin: app.token(&[Role::Admin]),
            storefront: app.token(&[Role::Storefront]),
            referrals: ReferralServiceClient::new(app.channel.clone()),
            affiliates: AffiliateServiceClient::new(app.channel.clone()),
            links: LinkServiceClient::new(app.channel.clone()),
            gamification: GamificationServiceClient::new(app.channel.clone()),
        }
    }

    pub async fn program(
        &mut self,
        program: pb::ReferralProgram,
    ) -> Result<pb::ReferralProgram, tonic::Status> {
        Ok(self
            .referrals
            .create_referral_program(authed(
                pb::CreateReferralProgramRequest {
                    request_id: request_id(),
                    program: Some(program),
                },
                &self.admin,
            ))
            .await?
            .into_inner())
    }

    pub async fn code_of(&mut self, program_id: &str, customer: Uuid) -> pb::ReferralCode {
        self.referrals
            .get_referral_code(authed(
                pb::GetReferralCodeRequest {
                    program_id: program_id.to_owned(),
                    customer_id: customer.to_string(),
                },
                &self.storefront,
            ))
            .await
            .expect("referral code")
            .into_inner()
    }

    pub async fn track(
        &mut self,
        code: &str,
        referee: Uuid,
    ) -> Result<pb::Referral, tonic::Status> {
        Ok(self
            .referrals
            .track_referral(authed(
                pb::TrackReferralRequest {
                    request_id: request_id(),
                    code: code.to_owned(),
                    referee_id: referee.to_string(),
                },
                &self.storefront,
            ))
            .await?
            .into_inner())
    }

    pub async fn convert(
        &mut self,
        request_id: &str,
        referee: Uuid,
        order_id: &str,
        amount: i64,
    ) -> Result<pb::RecordReferralConversionResponse, tonic::Status> {
        Ok(self
            .referrals
            .record_referral_conversion(authed(
                pb::RecordReferralConversionRequest {
                    request_id: request_id.to_owned(),
                    referee_id: referee.to_string(),
                    order_id: order_id.to_owned(),
                    amount: usd(amount),
                },
                &self.storefront,
            ))
            .await?
            .into_inner())
    }

    pub async fn sale(
        &mut self,
        code: &str,
        customer: Uuid,
        order_id: &str,
        amount: i64,
    ) -> Result<pb::Commission, tonic::Status> {
        Ok(self
            .affiliates
            .record_affiliate_sale(authed(
                pb::RecordAffiliateSaleRequest {
                    request_id: request_id(),
                    affiliate_code: code.to_owned(),
                    customer_id: customer.to_string(),
                    order_id: order_id.to_owned(),
                    amount: usd(amount),
                },
                &self.storefront,
            ))
            .await?
            .into_inner())
    }

    pub async fn refund(
        &mut self,
        order_id: &str,
        amount: i64,
    ) -> Result<pb::RecordRefundResponse, tonic::Status> {
        Ok(self
            .affiliates
            .record_refund(authed(
                pb::RecordRefundRequest {
                    request_id: request_id(),
                    order_id: order_id.to_owned(),
                    amount: usd(amount),
                },
                &self.storefront,
            ))
            .await?
            .into_inner())
    }

    /// An approved affiliate for `customer`.
    pub async fn affiliate(&mut self, app: &TestApp, customer: Uuid) -> pb::Affiliate {
        let applied = self
            .affiliates
            .apply_affiliate(authed(
                pb::ApplyAffiliateRequest {
                    request_id: request_id(),
                    customer_id: String::new(),
                    company_name: "Sound Partners".to_owned(),
                    website: "https://partners.example/".to_owned(),
                },
                &customer_token(app, customer),
            ))
            .await
            .expect("apply")
            .into_inner();
        self.affiliates
            .approve_affiliate(authed(
                pb::ApproveAffiliateRequest {
                    request_id: request_id(),
                    id: applied.id,
                    commission_bps: 0,
                    commission_months: 0,
                },
                &self.admin,
            ))
            .await
            .expect("approve")
            .into_inner()
    }

    pub async fn click(
        &mut self,
        short_code: &str,
        ip: &str,
        user_agent: &str,
    ) -> pb::RecordClickResponse {
        self.links
            .record_click(authed(
                pb::RecordClickRequest {
                    short_code: short_code.to_owned(),
                    ip: ip.to_owned(),
                    user_agent: user_agent.to_owned(),
                    referrer: "https://social.example/post/1".to_owned(),
                    country: "de".to_owned(),
                },
                &self.storefront,
            ))
            .await
            .expect("click")
            .into_inner()
    }

    pub async fn activity(
        &mut self,
        subject: Uuid,
        metric: &str,
        delta: i64,
    ) -> Result<pb::RecordActivityResponse, tonic::Status> {
        Ok(self
            .gamification
            .record_activity(authed(
                pb::RecordActivityRequest {
                    request_id: request_id(),
                    subject_id: subject.to_string(),
                    metric: metric.to_owned(),
                    delta,
                },
                &self.storefront,
            ))
            .await?
            .into_inner())
    }
}

pub fn usd(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "USD".to_owned(),
        amount,
    })
}

pub fn customer_token(app: &TestApp, customer: Uuid) -> String {
    app.token_for(customer, app.default_workspace, &[Role::Customer])
}

/// The posted balance of `owner`'s wallet in `asset`, read through LedgerService (0 before the
/// wallet exists).
pub async fn wallet_balance(app: &TestApp, owner: Uuid, asset: &str) -> i64 {
    crate::helpers::system_balance(app, credits_ledger::SystemAccount::Wallet(owner), asset).await
}

/// What an HTTP/1.1 server answered: the status code and the Location header.
pub struct HttpAnswer {
    pub status: u16,
    pub location: Option<String>,
}

/// `GET path` on the gateway's HTTP listener with a user agent, as a browser would send it.
pub async fn http_get(app: &TestApp, path: &str, user_agent: &str) -> HttpAnswer {
    let mut stream = tokio::net::TcpStream::connect(app.http_address)
        .await
        .expect("connect to the HTTP listener");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nReferer: https://social.example/\r\nConnection: close\r\n\r\n",
        app.http_address
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read answer");
    let text = String::from_utf8_lossy(&answer);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let location = lines.take_while(|line| !line.is_empty()).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_owned())
    });
    HttpAnswer { status, location }
}
