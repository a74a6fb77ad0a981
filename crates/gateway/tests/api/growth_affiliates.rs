//! Affiliates over gRPC: a sale's commission waits out the holding period (driven by the test
//! clock), lands in the affiliate's wallet, and refunds reduce or claw it back.

use std::sync::Arc;

use kernel::ManualClock;
use proto::growth::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::growth_support::{Growth, customer_token, usd, wallet_balance};
use crate::helpers::{authed, reason, request_id, spawn_app_with_clock};

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

#[tokio::test]
async fn a_sale_becomes_a_due_commission_after_the_holding_period_and_a_refund_claws_it_back() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut growth = Growth::new(&app);
    let partner = Uuid::new_v4();
    let affiliate = growth.affiliate(&app, partner).await;
    assert!(affiliate.code.starts_with("AFF"));
    assert_eq!(affiliate.status, pb::AffiliateStatus::Active as i32);
    assert_eq!(
        (affiliate.commission_bps, affiliate.commission_months),
        (2000, 3)
    );

    // 20 % of $99.99, floored for the affiliate: $19.99.
    let buyer = Uuid::new_v4();
    let first = growth
        .sale(&affiliate.code, buyer, "order-1", 9999)
        .await
        .expect("sale");
    assert_eq!(first.status, pb::CommissionStatus::Pending as i32);
    assert_eq!(first.amount, usd(1999));
    let due_in = first.due_time.expect("due").seconds - first.create_time.expect("created").seconds;
    assert_eq!(due_in, 30 * 86_400);

    // Bad refunds are refused and change nothing.
    let too_much = growth
        .refund("order-1", 10_000)
        .await
        .expect_err("too much");
    assert_eq!(too_much.code(), Code::InvalidArgument);
    assert_eq!(reason(&too_much), "REFUND_EXCEEDS_SALE");
    let negative = growth.refund("order-1", -1).await.expect_err("negative");
    assert_eq!(negative.code(), Code::InvalidArgument);
    let unknown = growth
        .refund("no-such-order", 1)
        .await
        .expect_err("unknown");
    assert_eq!(reason(&unknown), "ORDER_NOT_FOUND");

    // A pending commission follows a refund: half refunded, 20 % of $49.99 left.
    let reduced = growth.refund("order-1", 5000).await.expect("refund");
    assert_eq!(reduced.reduced, usd(1000));
    assert_eq!(reduced.commission.clone().expect("c").amount, usd(999));

    // Nothing is due before the holding period ends.
    clock.advance(days(29));
    assert_eq!(app.growth.sweep().await, 0);
    assert_eq!(wallet_balance(&app, partner, "USD").await, 0);
    clock.advance(days(1) + chrono::Duration::seconds(1));
    assert_eq!(app.growth.sweep().await, 1);
    assert_eq!(wallet_balance(&app, partner, "USD").await, 999);

    // Once credited, a refund becomes a clawback against future commissions.
    let clawed = growth
        .refund("order-1", 4999)
        .await
        .expect("refund the rest");
    assert_eq!(clawed.reduced, usd(0));
    assert_eq!(clawed.clawback, usd(999));
    let second = growth
        .sale("", buyer, "order-2", 10_000)
        .await
        .expect("the buyer's attribution carries the sale");
    assert_eq!(second.affiliate_id, affiliate.id);
    assert_eq!(second.amount, usd(2000));
    clock.advance(days(31));
    assert_eq!(app.growth.sweep().await, 1);
    // 2000 due, 999 owed: 1001 reaches the wallet.
    assert_eq!(wallet_balance(&app, partner, "USD").await, 999 + 1001);

    // The affiliate reads its own dashboard with its customer token.
    let dashboard = growth
        .affiliates
        .get_affiliate_dashboard(authed(
            pb::GetAffiliateDashboardRequest {
                affiliate_id: String::new(),
            },
            &customer_token(&app, partner),
        ))
        .await
        .expect("dashboard")
        .into_inner();
    assert_eq!(dashboard.currency, "USD");
    assert_eq!(dashboard.conversions, 2);
    assert_eq!(dashboard.revenue, 9999 + 10_000 - 9999);
    assert_eq!(dashboard.commission_pending, 0);
    assert_eq!(dashboard.commission_due, 999 + 1001);
    assert_eq!(dashboard.clawback_owed, 0);
    // Another customer cannot read it.
    let foreign = growth
        .affiliates
        .get_affiliate_dashboard(authed(
            pb::GetAffiliateDashboardRequest {
                affiliate_id: affiliate.id.clone(),
            },
            &customer_token(&app, Uuid::new_v4()),
        ))
        .await
        .expect_err("someone else's dashboard");
    assert_eq!(foreign.code(), Code::NotFound);

    // The same order cannot be recorded twice.
    let twice = growth
        .sale(&affiliate.code, buyer, "order-2", 10_000)
        .await
        .expect_err("same order");
    assert_eq!(reason(&twice), "ORDER_ALREADY_RECORDED");
}

#[tokio::test]
async fn sales_outside_the_window_or_for_a_suspended_affiliate_earn_nothing_and_say_why() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut growth = Growth::new(&app);
    let partner = Uuid::new_v4();
    let affiliate = growth.affiliate(&app, partner).await;
    let buyer = Uuid::new_v4();
    growth
        .sale(&affiliate.code, buyer, "o-1", 1000)
        .await
        .expect("attributes the buyer");

    let suspended = growth
        .affiliates
        .suspend_affiliate(authed(
            pb::AffiliateActionRequest {
                request_id: request_id(),
                id: affiliate.id.clone(),
            },
            &growth.admin,
        ))
        .await
        .expect("suspend")
        .into_inner();
    assert_eq!(suspended.status, pb::AffiliateStatus::Suspended as i32);
    let while_suspended = growth.sale("", buyer, "o-2", 1000).await.expect("sale");
    assert_eq!(
        while_suspended.status,
        pb::CommissionStatus::NotEarned as i32
    );
    assert_eq!(while_suspended.reason, "AFFILIATE_NOT_ACTIVE");
    assert_eq!(while_suspended.amount, usd(0));
    // Suspending twice is a state conflict.
    let again = growth
        .affiliates
        .suspend_affiliate(authed(
            pb::AffiliateActionRequest {
                request_id: request_id(),
                id: affiliate.id.clone(),
            },
            &growth.admin,
        ))
        .await
        .expect_err("already suspended");
    assert_eq!(again.code(), Code::FailedPrecondition);
    growth
        .affiliates
        .reactivate_affiliate(authed(
            pb::AffiliateActionRequest {
                request_id: request_id(),
                id: affiliate.id.clone(),
            },
            &growth.admin,
        ))
        .await
        .expect("reactivate");

    // Three months after the buyer's attribution, their purchases earn nothing.
    clock.advance(days(93));
    let late = growth.sale("", buyer, "o-3", 1000).await.expect("sale");
    assert_eq!(late.reason, "COMMISSION_PERIOD_ENDED");
    assert_eq!(late.status, pb::CommissionStatus::NotEarned as i32);
    // A new buyer through the code starts a new window.
    let fresh = growth
        .sale(&affiliate.code, Uuid::new_v4(), "o-4", 1000)
        .await
        .expect("sale");
    assert_eq!(fresh.status, pb::CommissionStatus::Pending as i32);
    assert_eq!(fresh.amount, usd(200));

    // A buyer with no affiliate and no code is refused.
    let nobody = growth
        .sale("", Uuid::new_v4(), "o-5", 1000)
        .await
        .expect_err("not attributed");
    assert_eq!(reason(&nobody), "CUSTOMER_NOT_ATTRIBUTED");
    let bad_amount = growth
        .sale(&affiliate.code, Uuid::new_v4(), "o-6", 0)
        .await
        .expect_err("zero sale");
    assert_eq!(bad_amount.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_holding_period_follows_the_workspace_setting() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut growth = Growth::new(&app);
    let mut admin = proto::admin::v1::workspace_service_client::WorkspaceServiceClient::new(
        app.channel.clone(),
    );
    let update = |holding: i64, window: i64| proto::admin::v1::UpdateSettingsRequest {
        request_id: request_id(),
        workspace_id: String::new(),
        settings: Some(proto::admin::v1::Settings {
            growth: Some(pb::GrowthSettings {
                commission_holding_days: holding,
                referral_link_ttl_days: 30,
                click_dedup_window_seconds: window,
                link_attribution_days: 30,
            }),
            ..proto::admin::v1::Settings::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["growth".to_owned()],
        }),
    };
    let refused = admin
        .update_settings(authed(update(7, 0), &growth.admin))
        .await
        .expect_err("a dedup window of zero");
    assert_eq!(refused.code(), Code::InvalidArgument);
    admin
        .update_settings(authed(update(7, 60), &growth.admin))
        .await
        .expect("settings");
    let partner = Uuid::new_v4();
    let affiliate = growth.affiliate(&app, partner).await;
    let sale = growth
        .sale(&affiliate.code, Uuid::new_v4(), "o-1", 5000)
        .await
        .expect("sale");
    let held = sale.due_time.expect("due").seconds - sale.create_time.expect("created").seconds;
    assert_eq!(held, 7 * 86_400);
    clock.advance(days(7));
    assert_eq!(app.growth.sweep().await, 1);
    assert_eq!(wallet_balance(&app, partner, "USD").await, 1000);
}
