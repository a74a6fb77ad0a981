//! Visibility campaigns end to end: funding into escrow, unique views credited without drift,
//! a payout run that pays once and carries small balances forward, closing with a refund.

use credits_ledger::SystemAccount;
use kernel::Role;
use proto::payouts::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{authed, reason, request_id, spawn_app, system_balance, verify_ledger};
use crate::payouts_support::{Market, amount, this_month, usd, viewers};

#[tokio::test]
async fn a_funded_visibility_campaign_pays_views_and_a_run_pays_each_promoter_once() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    // $3 per 100 views, 3,000 views: a $90 budget plus the 10 % fee the advertiser pays.
    let campaign = market.visibility(300, 3000).await;
    assert_eq!(campaign.status, pb::CampaignStatus::Draft as i32);
    assert_eq!(amount(&campaign.budget), 9000);
    assert_eq!(amount(&campaign.required_funding), 9900);
    let partial = market
        .fund(&campaign.id, usd(4000), "pi_first")
        .await
        .expect("first payment");
    assert_eq!(partial.status, pb::CampaignStatus::Draft as i32);
    let funded = market
        .fund(&campaign.id, usd(5900), "pi_second")
        .await
        .expect("second payment");
    assert_eq!(funded.status, pb::CampaignStatus::Active as i32);
    assert_eq!(amount(&funded.escrow_available), 9900);

    let (above, below) = (market.promoter(&app), market.promoter(&app));
    market.join(&campaign.id, &above).await;
    market.join(&campaign.id, &below).await;
    // 2,000 unique views in overlapping batches: $3 × 20 = $60, however they are batched.
    let mut counted = 0;
    for (from, count) in [(0, 700), (500, 900), (1300, 700)] {
        let report = market
            .views(&campaign.id, above.id, viewers("v", from, count))
            .await
            .expect("views");
        counted += report.counted;
    }
    assert_eq!(counted, 2000);
    let report = market
        .views(&campaign.id, above.id, viewers("v", 0, 10))
        .await
        .expect("repeated viewers");
    assert_eq!(report.counted, 0);
    assert_eq!(report.total_views, 2000);
    assert_eq!(amount(&report.earned), 6000);
    // The same viewers count again for another promoter: 499 views pay floor(14.97) = $14.97.
    let small = market
        .views(&campaign.id, below.id, viewers("v", 0, 499))
        .await
        .expect("views");
    assert_eq!(amount(&small.earned), 1497);

    assert_eq!(amount(&market.wallet(&above).await.available), 6000);
    assert_eq!(amount(&market.wallet(&below).await.available), 1497);
    let revenue = system_balance(&app, SystemAccount::PlatformRevenue, "USD").await;
    assert_eq!(revenue, 600 + 149);
    let campaign_now = market.campaign(&campaign.id).await;
    assert_eq!(amount(&campaign_now.spent), 7497);
    assert_eq!(amount(&campaign_now.escrow_available), 9900 - 7497 - 749);
    assert_eq!(campaign_now.total_views, 2499);

    market.connect(&above).await;
    market.connect(&below).await;
    let run = market.run(&this_month()).await.expect("run");
    assert_eq!(run.status, pb::PayoutRunStatus::Completed as i32);
    assert_eq!(run.payouts, 1);
    assert_eq!(amount(&run.total), 6000);
    assert_eq!(run.skipped_below_minimum, 1);
    let again = market.run(&this_month()).await.expect("second run");
    assert_ne!(again.id, run.id);
    assert_eq!(again.payouts, 0, "the second run pays nobody twice");
    assert_eq!(again.skipped_below_minimum, 1);

    let paid = market.wallet(&above).await;
    assert_eq!(
        (
            amount(&paid.available),
            amount(&paid.paid),
            amount(&paid.in_flight)
        ),
        (0, 6000, 0)
    );
    let carried = market.wallet(&below).await;
    assert_eq!(amount(&carried.available), 1497);
    assert_eq!(amount(&carried.carried_forward), 1497);
    let payouts = market
        .payouts
        .list_payouts(authed(
            pb::ListPayoutsRequest {
                period: this_month(),
                ..Default::default()
            },
            &market.billing,
        ))
        .await
        .expect("payouts")
        .into_inner()
        .payouts;
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].status, pb::PayoutStatus::Paid as i32);
    assert_eq!(payouts[0].promoter_id, above.id.to_string());
    assert_eq!(payouts[0].provider, "builtin");
    let own = market
        .payouts
        .list_payouts(authed(pb::ListPayoutsRequest::default(), &below.token))
        .await
        .expect("own payouts")
        .into_inner()
        .payouts;
    assert!(own.is_empty());

    let summary = |token: String, principal: String| {
        let mut client = market.payouts.clone();
        async move {
            client
                .get_billing_summary(authed(
                    pb::GetBillingSummaryRequest {
                        principal_id: principal,
                        period: this_month(),
                        currency: "USD".to_owned(),
                    },
                    &token,
                ))
                .await
                .expect("summary")
                .into_inner()
        }
    };
    let advertiser = summary(market.advertiser_token.clone(), String::new()).await;
    assert_eq!(
        (
            amount(&advertiser.funded),
            amount(&advertiser.spent),
            amount(&advertiser.platform_fees)
        ),
        (9900, 7497, 749)
    );
    let earner = summary(market.billing.clone(), above.id.to_string()).await;
    assert_eq!((amount(&earner.earned), amount(&earner.paid)), (6000, 6000));
    let small = summary(below.token.clone(), String::new()).await;
    assert_eq!(
        (
            amount(&small.earned),
            amount(&small.carried_forward),
            amount(&small.paid)
        ),
        (1497, 1497, 0)
    );
    let fees = market
        .payouts
        .list_platform_fees(authed(
            pb::ListPlatformFeesRequest {
                period: this_month(),
                ..Default::default()
            },
            &market.billing,
        ))
        .await
        .expect("fees")
        .into_inner()
        .fees;
    assert_eq!(fees.len(), 4, "one per crediting report");
    assert_eq!(fees.iter().map(|fee| amount(&fee.fee)).sum::<i64>(), 749);

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
    assert_eq!(closed.status, pb::CampaignStatus::Closed as i32);
    assert_eq!(amount(&closed.refunded), 9900 - 7497 - 749);
    assert_eq!(amount(&closed.escrow_available), 0);
    let late = market
        .views(&campaign.id, below.id, viewers("late", 0, 5))
        .await
        .expect_err("a closed campaign pays no views");
    assert_eq!(reason(&late), "CAMPAIGN_NOT_ACTIVE");
    verify_ledger(&app).await;
}

#[tokio::test]
async fn views_stop_counting_at_the_campaigns_max_views() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    let campaign = market.visibility(300, 1000).await;
    market.fund_fully(&campaign).await;
    let promoters: Vec<_> = (0..4).map(|_| market.promoter(&app)).collect();
    for promoter in &promoters {
        market.join(&campaign.id, promoter).await;
    }
    // Four promoters report 400 views each at the same time; only 1,000 are paid for.
    let mut tasks = Vec::new();
    for promoter in &promoters {
        let mut market_clone = Market::new(&app);
        let campaign_id = campaign.id.clone();
        let promoter_id = promoter.id;
        tasks.push(tokio::spawn(async move {
            let mut counted = 0;
            for batch in 0..4 {
                counted += market_clone
                    .views(&campaign_id, promoter_id, viewers("c", batch * 100, 100))
                    .await
                    .expect("views")
                    .counted;
            }
            counted
        }));
    }
    let mut counted = 0;
    for task in tasks {
        counted += task.await.expect("task");
    }
    assert_eq!(counted, 1000);
    let state = market.campaign(&campaign.id).await;
    assert_eq!(state.total_views, 1000);
    assert_eq!(amount(&state.spent), 3000);
    assert!(amount(&state.escrow_available) >= 0);
    let mut earned = 0;
    for promoter in &promoters {
        earned += amount(&market.wallet(promoter).await.available);
    }
    assert_eq!(earned, 3000);
    let capped = market
        .views(&campaign.id, promoters[0].id, viewers("after", 0, 3))
        .await
        .expect("views past the cap");
    assert_eq!((capped.counted, capped.capped), (0, true));
    verify_ledger(&app).await;
}

#[tokio::test]
async fn bad_funding_and_views_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    let campaign = market.visibility(300, 2000).await;
    let euros = market
        .fund(
            &campaign.id,
            Some(pb::Money {
                currency: "EUR".to_owned(),
                amount: 100,
            }),
            "pi_eur",
        )
        .await
        .expect_err("another currency");
    assert_eq!(euros.code(), Code::InvalidArgument);
    assert_eq!(reason(&euros), "CURRENCY_MISMATCH");
    let too_much = market
        .fund(&campaign.id, usd(6601), "pi_big")
        .await
        .expect_err("more than budget and fee");
    assert_eq!(reason(&too_much), "FUNDING_EXCEEDS_LIMIT");
    let promoter = market.promoter(&app);
    let draft = market
        .views(&campaign.id, promoter.id, viewers("d", 0, 3))
        .await
        .expect_err("a draft pays nothing");
    assert_eq!(reason(&draft), "CAMPAIGN_NOT_ACTIVE");

    market
        .fund(&campaign.id, usd(6600), "pi_once")
        .await
        .expect("funding");
    let replay = market
        .fund(&campaign.id, usd(6600), "pi_once")
        .await
        .expect("the same payment again answers the campaign");
    assert_eq!(amount(&replay.funded), 6600);
    let other = market.visibility(100, 100).await;
    let reused = market
        .fund(&other.id, usd(110), "pi_once")
        .await
        .expect_err("a payment funds one campaign");
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(reason(&reused), "PAYMENT_REFERENCE_USED");

    let stranger = market
        .views(&campaign.id, promoter.id, viewers("s", 0, 3))
        .await
        .expect_err("a promoter who did not join");
    assert_eq!(reason(&stranger), "PROMOTER_NOT_IN_CAMPAIGN");
    let empty = market
        .views(&campaign.id, promoter.id, vec![String::new()])
        .await
        .expect_err("an empty viewer id");
    assert_eq!(empty.code(), Code::InvalidArgument);

    for (bad, field) in [
        (
            pb::Campaign {
                title: "Credits".to_owned(),
                r#type: pb::CampaignType::Visibility as i32,
                currency: "CREDITS".to_owned(),
                rate_per_100_views: usd(1),
                max_views: 10,
                ..Default::default()
            },
            "campaign.currency",
        ),
        (
            pb::Campaign {
                title: "Backwards".to_owned(),
                r#type: pb::CampaignType::Consultant as i32,
                currency: "USD".to_owned(),
                min_budget: usd(5000),
                max_budget: usd(4000),
                ..Default::default()
            },
            "campaign.max_budget",
        ),
    ] {
        let refused = market.create(bad).await.expect_err("invalid campaign");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(field), "{field}: {refused:?}");
    }
    let state = market.campaign(&campaign.id).await;
    assert_eq!(amount(&state.funded), 6600);
    assert_eq!(
        system_balance(&app, SystemAccount::External, "USD").await,
        -6600
    );
    verify_ledger(&app).await;
}

#[tokio::test]
async fn another_advertisers_or_workspaces_campaign_looks_unknown() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    let campaign = market.visibility(300, 2000).await;
    let rival = Uuid::new_v4();
    let rival_token = app.token_for(rival, app.default_workspace, &[Role::Advertiser]);
    let other = app.other_workspace("elsewhere").await;
    let outsider = app.token_for(Uuid::new_v4(), other, &[Role::Admin]);
    for token in [&rival_token, &outsider] {
        let status = market
            .campaigns
            .get_campaign(authed(
                pb::GetCampaignRequest {
                    id: campaign.id.clone(),
                },
                token,
            ))
            .await
            .expect_err("not theirs");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(reason(&status), "CAMPAIGN_NOT_FOUND");
        let close = market
            .campaigns
            .close_campaign(authed(
                pb::CloseCampaignRequest {
                    request_id: request_id(),
                    id: campaign.id.clone(),
                },
                token,
            ))
            .await
            .expect_err("not theirs to close");
        assert_eq!(close.code(), Code::NotFound);
    }
    let listed = market
        .campaigns
        .list_campaigns(authed(pb::ListCampaignsRequest::default(), &rival_token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.campaigns.is_empty());
    // A promoter does not see drafts.
    let promoter = market.promoter(&app);
    let hidden = market
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: campaign.id.clone(),
            },
            &promoter.token,
        ))
        .await
        .expect_err("a draft is the advertiser's");
    assert_eq!(hidden.code(), Code::NotFound);
}

#[tokio::test]
async fn a_held_promoter_is_paid_by_a_later_run_and_overlapping_runs_pay_once() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    let campaign = market.visibility(1000, 1000).await;
    market.fund_fully(&campaign).await;
    let promoter = market.promoter(&app);
    market.join(&campaign.id, &promoter).await;
    market
        .views(&campaign.id, promoter.id, viewers("h", 0, 250))
        .await
        .expect("views");
    let held = market.run(&this_month()).await.expect("run");
    assert_eq!((held.payouts, held.held), (0, 1));
    market.connect(&promoter).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut market = Market::new(&app);
        runs.push(tokio::spawn(async move { market.run(&this_month()).await }));
    }
    let mut paid = 0;
    for run in runs {
        paid += run.await.expect("task").expect("run").payouts;
    }
    assert_eq!(paid, 1, "overlapping runs pay the promoter once");
    let wallet = market.wallet(&promoter).await;
    assert_eq!((amount(&wallet.paid), amount(&wallet.available)), (2500, 0));
    verify_ledger(&app).await;
}
