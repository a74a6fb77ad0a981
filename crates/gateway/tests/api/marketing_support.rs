//! Helpers for the marketing tests: clients, rules, campaigns, coupons and carts.

use kernel::Role;
use proto::marketing::v1 as pb;
use proto::marketing::v1::campaign_service_client::CampaignServiceClient;
use proto::marketing::v1::coupon_service_client::CouponServiceClient;
use proto::marketing::v1::discount_rule_service_client::DiscountRuleServiceClient;
use proto::marketing::v1::pricing_service_client::PricingServiceClient;
use tonic::transport::Channel;

use crate::helpers::{TestApp, authed, request_id};

/// An operator of the default workspace with clients for every marketing service.
pub struct Shop {
    pub admin: String,
    pub storefront: String,
    pub campaigns: CampaignServiceClient<Channel>,
    pub rules: DiscountRuleServiceClient<Channel>,
    pub coupons: CouponServiceClient<Channel>,
    pub pricing: PricingServiceClient<Channel>,
}

impl Shop {
    pub fn new(app: &TestApp) -> Shop {
        Shop::with_tokens(
            app,
            app.token(&[Role::Admin]),
            app.token(&[Role::Storefront]),
        )
    }

    pub fn with_tokens(app: &TestApp, admin: String, storefront: String) -> Shop {
        Shop {
            admin,
            storefront,
            campaigns: CampaignServiceClient::new(app.channel.clone()),
            rules: DiscountRuleServiceClient::new(app.channel.clone()),
            coupons: CouponServiceClient::new(app.channel.clone()),
            pricing: PricingServiceClient::new(app.channel.clone()),
        }
    }

    pub async fn rule(
        &mut self,
        rule: pb::DiscountRule,
    ) -> Result<pb::DiscountRule, tonic::Status> {
        let request = pb::CreateDiscountRuleRequest {
            request_id: request_id(),
            rule: Some(rule),
        };
        Ok(self
            .rules
            .create_discount_rule(authed(request, &self.admin))
            .await?
            .into_inner())
    }

    pub async fn campaign(
        &mut self,
        campaign: pb::Campaign,
    ) -> Result<pb::Campaign, tonic::Status> {
        let request = pb::CreateCampaignRequest {
            request_id: request_id(),
            campaign: Some(campaign),
        };
        Ok(self
            .campaigns
            .create_campaign(authed(request, &self.admin))
            .await?
            .into_inner())
    }

    pub async fn launch(&mut self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        let request = pb::CampaignActionRequest {
            request_id: request_id(),
            id: id.to_owned(),
        };
        Ok(self
            .campaigns
            .launch_campaign(authed(request, &self.admin))
            .await?
            .into_inner())
    }

    /// A launched campaign granting `rule_ids` (automatic when `automatic`).
    pub async fn live_campaign(
        &mut self,
        title: &str,
        rule_ids: &[&str],
        automatic: bool,
    ) -> pb::Campaign {
        let campaign = self
            .campaign(pb::Campaign {
                title: title.to_owned(),
                discount_rule_ids: rule_ids.iter().map(|id| (*id).to_owned()).collect(),
                trigger_type: if automatic {
                    pb::TriggerType::Automatic as i32
                } else {
                    0
                },
                auto_apply: automatic,
                is_public: true,
                ..pb::Campaign::default()
            })
            .await
            .expect("campaign");
        self.launch(&campaign.id).await.expect("launch")
    }

    pub async fn coupon(&mut self, coupon: pb::Coupon) -> Result<pb::Coupon, tonic::Status> {
        let request = pb::CreateCouponRequest {
            request_id: request_id(),
            coupon: Some(coupon),
        };
        Ok(self
            .coupons
            .create_coupon(authed(request, &self.admin))
            .await?
            .into_inner())
    }

    pub async fn evaluate(&mut self, cart: pb::Cart, codes: &[&str]) -> pb::EvaluateCartResponse {
        let request = pb::EvaluateCartRequest {
            cart: Some(cart),
            coupon_codes: codes.iter().map(|code| (*code).to_owned()).collect(),
        };
        self.pricing
            .evaluate_cart(authed(request, &self.storefront))
            .await
            .expect("evaluate")
            .into_inner()
    }

    pub async fn reserve(
        &mut self,
        order_id: &str,
        cart: pb::Cart,
        codes: &[&str],
    ) -> pb::Redemption {
        let request = pb::CreateRedemptionRequest {
            request_id: request_id(),
            order_id: order_id.to_owned(),
            cart: Some(cart),
            coupon_codes: codes.iter().map(|code| (*code).to_owned()).collect(),
        };
        self.pricing
            .create_redemption(authed(request, &self.storefront))
            .await
            .expect("reserve")
            .into_inner()
    }

    pub async fn confirm(&mut self, id: &str) -> Result<pb::Redemption, tonic::Status> {
        let request = pb::ConfirmRedemptionRequest {
            request_id: request_id(),
            id: id.to_owned(),
        };
        Ok(self
            .pricing
            .confirm_redemption(authed(request, &self.storefront))
            .await?
            .into_inner())
    }

    pub async fn rollback(&mut self, id: &str) -> Result<pb::Redemption, tonic::Status> {
        let request = pb::RollbackRedemptionRequest {
            request_id: request_id(),
            id: id.to_owned(),
            reason: "payment failed".to_owned(),
        };
        Ok(self
            .pricing
            .rollback_redemption(authed(request, &self.storefront))
            .await?
            .into_inner())
    }

    pub async fn get_coupon(&mut self, code: &str) -> pb::Coupon {
        let request = pb::GetCouponRequest {
            id: String::new(),
            code: code.to_owned(),
        };
        self.coupons
            .get_coupon(authed(request, &self.admin))
            .await
            .expect("coupon")
            .into_inner()
    }
}

pub fn usd(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "USD".to_owned(),
        amount,
    })
}

pub fn percentage(name: &str, bps: i32) -> pb::DiscountRule {
    pb::DiscountRule {
        name: name.to_owned(),
        kind: pb::DiscountKind::Percentage as i32,
        percent_bps: bps,
        ..pb::DiscountRule::default()
    }
}

pub fn fixed(name: &str, amount: i64) -> pb::DiscountRule {
    pb::DiscountRule {
        name: name.to_owned(),
        kind: pb::DiscountKind::FixedAmount as i32,
        amount: usd(amount),
        ..pb::DiscountRule::default()
    }
}

pub fn line(id: &str, product: &str, quantity: i64, unit_price: i64) -> pb::CartLine {
    pb::CartLine {
        line_id: id.to_owned(),
        product_id: product.to_owned(),
        category_ids: Vec::new(),
        quantity,
        unit_price,
        on_sale: false,
    }
}

pub fn cart(customer_id: &str, lines: Vec<pb::CartLine>) -> pb::Cart {
    pb::Cart {
        currency: "USD".to_owned(),
        customer_id: customer_id.to_owned(),
        customer_tier: String::new(),
        lines,
        shipping: 0,
    }
}

/// The coupon codes whose effects a redemption holds.
pub fn codes_of(redemption: &pb::Redemption) -> Vec<String> {
    redemption
        .effects
        .iter()
        .map(|effect| effect.coupon_code.clone())
        .filter(|code| !code.is_empty())
        .collect()
}
