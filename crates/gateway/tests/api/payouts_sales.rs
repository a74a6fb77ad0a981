//! Salesman campaigns: sales tracked by a promoter's code earn a commission that stays pending
//! until verified and held; rejections and refunds reverse it while it is pending.

use std::sync::Arc;

use credits_ledger::SystemAccount;
use kernel::Role;
use proto::payouts::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{
    authed, reason, request_id, spawn_app_with_clock, system_balance, verify_ledger,
};
use crate::payouts_support::{Market, amount, usd};

async fn sale(
    market: &mut Market,
    campaign_id: &str,
    code: &str,
    order: &str,
    money: Option<pb::Money>,
) -> Result<pb::Sale, tonic::Status> {
    Ok(market
        .performance
        .record_sale(authed(
            pb::RecordSaleRequest {
                request_id: request_id(),
                campaign_id: campaign_id.to_owned(),
                tracking_code: code.to_owned(),
                order_id: order.to_owned(),
                amount: money,
            },
            &market.billing,
        ))
        .await?
        .into_inner())
}

async fn decide(
    market: &mut Market,
    id: &str,
    verify: bool,
    token: &str,
) -> Result<pb::Sale, tonic::Status> {
    let request = authed(
        pb::SaleActionRequest {
            request_id: request_id(),
            id: id.to_owned(),
        },
        token,
    );
    Ok(if verify {
        market.performance.verify_sale(request).await?
    } else {
        market.performance.reject_sale(request).await?
    }
    .into_inner())
}

async fn refund(
    market: &mut Market,
    id: &str,
    money: Option<pb::Money>,
) -> Result<pb::Sale, tonic::Status> {
    Ok(market
        .performance
        .refund_sale(authed(
            pb::RefundSaleRequest {
                request_id: request_id(),
                id: id.to_owned(),
                amount: money,
            },
            &market.billing,
        ))
        .await?
        .into_inner())
}

#[tokio::test]
async fn sales_earn_pending_commissions_that_verification_and_holding_release() {
    let clock = Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut market = Market::new(&app);
    let campaign = market
        .create(pb::Campaign {
            title: "Sell the course".to_owned(),
            r#type: pb::CampaignType::Salesman as i32,
            currency: "USD".to_owned(),
            min_budget: usd(1000),
            max_budget: usd(10_000),
            commission_bps: 2000,
            tracking_method: pb::TrackingMethod::ReferralLink as i32,
            ..Default::default()
        })
        .await
        .expect("salesman campaign");
    let campaign = market
        .fund(&campaign.id, usd(11_000), "pi_sales")
        .await
        .expect("funding");
    assert_eq!(campaign.status, pb::CampaignStatus::Active as i32);
    let promoter = market.promoter(&app);
    let code = market.join(&campaign.id, &promoter).await.tracking_code;
    assert!(code.starts_with("PRM"));

    let negative = sale(&mut market, &campaign.id, &code, "o-1", usd(-5))
        .await
        .expect_err("a negative sale");
    assert_eq!(negative.code(), Code::InvalidArgument);
    let unknown = sale(&mut market, &campaign.id, "PRMNOBODY1", "o-1", usd(5000))
        .await
        .expect_err("an unknown code");
    assert_eq!(reason(&unknown), "TRACKING_CODE_NOT_FOUND");
    let first = sale(&mut market, &campaign.id, &code, "o-1", usd(5000))
        .await
        .expect("sale");
    assert_eq!(first.status, pb::SaleStatus::Recorded as i32);
    assert_eq!((amount(&first.commission), amount(&first.fee)), (1000, 100));
    let replay = sale(
        &mut market,
        &campaign.id,
        &code.to_lowercase(),
        "o-1",
        usd(5000),
    )
    .await
    .expect("the same order again");
    assert_eq!(replay.id, first.id);
    let conflict = sale(&mut market, &campaign.id, &code, "o-1", usd(4000))
        .await
        .expect_err("the same order with another amount");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.pending)),
        (0, 1000)
    );

    let rival = app.token_for(Uuid::new_v4(), app.default_workspace, &[Role::Advertiser]);
    let foreign = decide(&mut market, &first.id, true, &rival)
        .await
        .expect_err("another advertiser's sale");
    assert_eq!(foreign.code(), Code::NotFound);
    let token = market.advertiser_token.clone();
    let verified = decide(&mut market, &first.id, true, &token)
        .await
        .expect("verify");
    assert_eq!(verified.status, pb::SaleStatus::Verified as i32);
    let partial = refund(&mut market, &first.id, usd(2000))
        .await
        .expect("partial refund");
    assert_eq!(amount(&partial.commission), 600);
    assert_eq!(amount(&partial.refunded), 2000);
    assert_eq!(partial.status, pb::SaleStatus::Verified as i32);
    let too_much = refund(&mut market, &first.id, usd(3001))
        .await
        .expect_err("more than is left");
    assert_eq!(too_much.code(), Code::InvalidArgument);

    let second = sale(&mut market, &campaign.id, &code, "o-2", usd(1000))
        .await
        .expect("sale");
    let rejected = decide(&mut market, &second.id, false, &token)
        .await
        .expect("reject");
    assert_eq!(rejected.status, pb::SaleStatus::Rejected as i32);
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.pending)),
        (0, 600)
    );
    let state = market.campaign(&campaign.id).await;
    assert_eq!((amount(&state.spent), amount(&state.fees)), (600, 60));

    assert_eq!(app.payouts.sweep().await, 0, "held for 30 days");
    clock.advance(chrono::Duration::days(30));
    assert_eq!(app.payouts.sweep().await, 1);
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.pending)),
        (600, 0)
    );
    let late = refund(&mut market, &first.id, None)
        .await
        .expect_err("the refund window has passed");
    assert_eq!(reason(&late), "SALE_COMMISSION_RELEASED");
    assert_eq!(
        system_balance(&app, SystemAccount::PlatformRevenue, "USD").await,
        60
    );
    let listed = market
        .performance
        .list_sales(authed(
            pb::ListSalesRequest {
                campaign_id: campaign.id.clone(),
                ..Default::default()
            },
            &promoter.token,
        ))
        .await
        .expect("own sales")
        .into_inner();
    assert_eq!(listed.sales.len(), 2);
    verify_ledger(&app).await;
}

#[tokio::test]
async fn a_refund_after_close_goes_back_to_the_advertiser() {
    let clock = Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock).await;
    let mut market = Market::new(&app);
    let campaign = market
        .create(pb::Campaign {
            title: "Coupons".to_owned(),
            r#type: pb::CampaignType::Salesman as i32,
            currency: "USD".to_owned(),
            min_budget: usd(1000),
            max_budget: usd(1000),
            commission_bps: 1000,
            tracking_method: pb::TrackingMethod::CouponCode as i32,
            ..Default::default()
        })
        .await
        .expect("campaign");
    market.fund_fully(&campaign).await;
    let promoter = market.promoter(&app);
    let code = market.join(&campaign.id, &promoter).await.tracking_code;
    let recorded = sale(&mut market, &campaign.id, &code, "o-9", usd(5000))
        .await
        .expect("sale");
    let over = sale(&mut market, &campaign.id, &code, "o-10", usd(6000))
        .await
        .expect_err("past the budget");
    assert_eq!(reason(&over), "BUDGET_EXCEEDED");
    let closed = market
        .campaigns
        .close_campaign(authed(
            pb::CloseCampaignRequest {
                request_id: request_id(),
                id: campaign.id.clone(),
            },
            &market.advertiser_token,
        ))
        .await
        .expect("close")
        .into_inner();
    assert_eq!(amount(&closed.refunded), 1100 - 550);
    let refunded = refund(&mut market, &recorded.id, None)
        .await
        .expect("refund");
    assert_eq!(refunded.status, pb::SaleStatus::Refunded as i32);
    assert_eq!(amount(&refunded.commission), 0);
    let state = market.campaign(&campaign.id).await;
    assert_eq!(amount(&state.refunded), 1100);
    assert_eq!(amount(&state.escrow_available), 0);
    assert_eq!(
        system_balance(&app, SystemAccount::External, "USD").await,
        0,
        "all of the advertiser's money went back"
    );
    verify_ledger(&app).await;
}
