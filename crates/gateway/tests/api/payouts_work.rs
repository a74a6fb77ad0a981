//! Consultant and seller campaigns: one accepted application, work paid at once from escrow,
//! never past the maximum budget nor what escrow holds; holding periods keep earnings pending.

use std::sync::Arc;

use credits_ledger::SystemAccount;
use kernel::Role;
use proto::admin::v1 as admin;
use proto::payouts::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{
    TestApp, authed, reason, request_id, spawn_app, spawn_app_with_clock, system_balance,
    verify_ledger,
};
use crate::payouts_support::{Market, Promoter, amount, this_month, usd};

async fn set_payouts_settings(app: &TestApp, settings: pb::PayoutsSettings, paths: &[&str]) {
    admin::workspace_service_client::WorkspaceServiceClient::new(app.channel.clone())
        .update_settings(authed(
            admin::UpdateSettingsRequest {
                request_id: request_id(),
                settings: Some(admin::Settings {
                    payouts: Some(settings),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| (*path).to_owned()).collect(),
                }),
                ..Default::default()
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("update settings");
}

async fn consultant(market: &mut Market, min: i64, max: i64) -> pb::Campaign {
    market
        .create(pb::Campaign {
            title: "Launch video".to_owned(),
            r#type: pb::CampaignType::Consultant as i32,
            currency: "USD".to_owned(),
            min_budget: usd(min),
            max_budget: usd(max),
            ..Default::default()
        })
        .await
        .expect("consultant campaign")
}

async fn apply(
    market: &mut Market,
    campaign_id: &str,
    promoter: &Promoter,
    proposed: i64,
) -> Result<pb::Application, tonic::Status> {
    Ok(market
        .participation
        .apply_to_campaign(authed(
            pb::ApplyToCampaignRequest {
                request_id: request_id(),
                campaign_id: campaign_id.to_owned(),
                proposed_amount: usd(proposed),
                pitch: "I make launch videos".to_owned(),
            },
            &promoter.token,
        ))
        .await?
        .into_inner())
}

async fn accept(
    market: &mut Market,
    application_id: &str,
    token: &str,
) -> Result<pb::Application, tonic::Status> {
    Ok(market
        .participation
        .accept_application(authed(
            pb::ApplicationActionRequest {
                request_id: request_id(),
                id: application_id.to_owned(),
            },
            token,
        ))
        .await?
        .into_inner())
}

async fn submit(
    market: &mut Market,
    campaign_id: &str,
    promoter: &Promoter,
) -> Result<pb::Work, tonic::Status> {
    Ok(market
        .participation
        .submit_work(authed(
            pb::SubmitWorkRequest {
                request_id: request_id(),
                campaign_id: campaign_id.to_owned(),
                deliverable: "storyboard".to_owned(),
                url: "https://example.com/storyboard".to_owned(),
            },
            &promoter.token,
        ))
        .await?
        .into_inner())
}

async fn approve(
    market: &mut Market,
    work_id: &str,
    paid: i64,
    token: &str,
) -> Result<pb::Work, tonic::Status> {
    Ok(market
        .participation
        .approve_work(authed(
            pb::ApproveWorkRequest {
                request_id: request_id(),
                work_id: work_id.to_owned(),
                amount: usd(paid),
            },
            token,
        ))
        .await?
        .into_inner())
}

#[tokio::test]
async fn a_consultant_is_accepted_once_and_paid_per_approval_within_budget_and_escrow() {
    let app = spawn_app().await;
    set_payouts_settings(
        &app,
        pb::PayoutsSettings {
            fee_payer: pb::FeePayer::Promoter as i32,
            ..Default::default()
        },
        &["payouts.fee_payer"],
    )
    .await;
    let mut market = Market::new(&app);
    let campaign = consultant(&mut market, 10_000, 50_000).await;
    assert_eq!(campaign.fee_payer, pb::FeePayer::Promoter as i32);
    assert_eq!(amount(&campaign.required_funding), 10_000);
    let campaign = market.fund_fully(&campaign).await;
    assert_eq!(campaign.status, pb::CampaignStatus::Active as i32);

    let (chosen, other) = (market.promoter(&app), market.promoter(&app));
    let outside = apply(&mut market, &campaign.id, &other, 60_000)
        .await
        .expect_err("above the maximum budget");
    assert_eq!(outside.code(), Code::InvalidArgument);
    let first = apply(&mut market, &campaign.id, &chosen, 30_000)
        .await
        .expect("application");
    let second = apply(&mut market, &campaign.id, &other, 20_000)
        .await
        .expect("application");
    let rival = app.token_for(Uuid::new_v4(), app.default_workspace, &[Role::Advertiser]);
    let foreign = accept(&mut market, &first.id, &rival)
        .await
        .expect_err("another advertiser");
    assert_eq!(foreign.code(), Code::NotFound);
    let token = market.advertiser_token.clone();
    let accepted = accept(&mut market, &first.id, &token)
        .await
        .expect("accept");
    assert_eq!(accepted.status, pb::ApplicationStatus::Accepted as i32);
    let twice = accept(&mut market, &second.id, &token)
        .await
        .expect_err("one accepted application");
    assert_eq!(reason(&twice), "APPLICATION_ALREADY_ACCEPTED");

    let not_accepted = submit(&mut market, &campaign.id, &other)
        .await
        .expect_err("only the accepted promoter works");
    assert_eq!(reason(&not_accepted), "PROMOTER_NOT_ACCEPTED");
    let work = submit(&mut market, &campaign.id, &chosen)
        .await
        .expect("work");
    let paid = approve(&mut market, &work.id, 8000, &token)
        .await
        .expect("approval pays at once");
    assert_eq!(paid.status, pb::WorkStatus::Approved as i32);
    assert_eq!((amount(&paid.amount), amount(&paid.fee)), (8000, 800));
    assert_eq!(amount(&market.wallet(&chosen).await.available), 7200);
    assert_eq!(
        system_balance(&app, SystemAccount::PlatformRevenue, "USD").await,
        800
    );

    // Escrow holds 2,000 more: a 5,000 approval is refused and nothing changes.
    let more = submit(&mut market, &campaign.id, &chosen)
        .await
        .expect("work");
    let short = approve(&mut market, &more.id, 5000, &token)
        .await
        .expect_err("escrow cannot pay it");
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert_eq!(reason(&short), "ESCROW_INSUFFICIENT");
    assert_eq!(amount(&market.wallet(&chosen).await.available), 7200);
    market
        .fund(&campaign.id, usd(40_000), "pi_topup")
        .await
        .expect("top-up");
    let over = approve(&mut market, &more.id, 42_001, &token)
        .await
        .expect_err("past the maximum budget");
    assert_eq!(reason(&over), "BUDGET_EXCEEDED");
    approve(&mut market, &more.id, 42_000, &token)
        .await
        .expect("the rest of the budget");
    let state = market.campaign(&campaign.id).await;
    assert_eq!(amount(&state.spent), 50_000);
    assert_eq!(amount(&state.escrow_available), 0);
    let again = approve(&mut market, &more.id, 1, &token)
        .await
        .expect_err("approved already");
    assert_eq!(reason(&again), "WORK_NOT_SUBMITTED");
    verify_ledger(&app).await;
}

#[tokio::test]
async fn concurrent_approvals_never_spend_more_than_escrow_holds() {
    let app = spawn_app().await;
    let mut market = Market::new(&app);
    let campaign = consultant(&mut market, 10_000, 100_000).await;
    market.fund_fully(&campaign).await;
    let promoter = market.promoter(&app);
    let application = apply(&mut market, &campaign.id, &promoter, 10_000)
        .await
        .expect("application");
    let token = market.advertiser_token.clone();
    accept(&mut market, &application.id, &token)
        .await
        .expect("accept");
    // 11,000 in escrow (the minimum and the 10 % fee the advertiser pays on top): 2,000 + 200
    // fits five times.
    let mut work = Vec::new();
    for _ in 0..8 {
        work.push(
            submit(&mut market, &campaign.id, &promoter)
                .await
                .expect("work"),
        );
    }
    let mut tasks = Vec::new();
    for item in work {
        let mut market = Market::new(&app);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            approve(&mut market, &item.id, 2000, &token).await
        }));
    }
    let mut approved = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => approved += 1,
            Err(status) => assert_eq!(reason(&status), "ESCROW_INSUFFICIENT"),
        }
    }
    assert_eq!(approved, 5);
    let state = market.campaign(&campaign.id).await;
    assert_eq!(amount(&state.spent), 10_000);
    assert_eq!(amount(&state.escrow_available), 0);
    verify_ledger(&app).await;
}

#[tokio::test]
async fn held_earnings_stay_pending_until_the_holding_period_ends() {
    let clock = Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    set_payouts_settings(
        &app,
        pb::PayoutsSettings {
            work_holding_days: 3,
            ..Default::default()
        },
        &["payouts.work_holding_days"],
    )
    .await;
    let mut market = Market::new(&app);
    let campaign = market.visibility(1000, 1000).await;
    market.fund_fully(&campaign).await;
    let promoter = market.promoter(&app);
    market.join(&campaign.id, &promoter).await;
    market.connect(&promoter).await;
    market
        .views(
            &campaign.id,
            promoter.id,
            crate::payouts_support::viewers("h", 0, 300),
        )
        .await
        .expect("views");
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.pending)),
        (0, 3000)
    );
    let run = market.run(&this_month()).await.expect("run");
    assert_eq!(run.payouts, 0, "pending earnings are not paid");
    // The campaign cannot hand the reserved part back.
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
    assert_eq!(amount(&closed.refunded), 11_000 - 3300);

    assert_eq!(app.payouts.sweep().await, 0, "not yet due");
    clock.advance(chrono::Duration::days(3));
    assert_eq!(app.payouts.sweep().await, 1);
    let released = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&released.available), amount(&released.pending)),
        (3000, 0)
    );
    assert_eq!(
        system_balance(&app, SystemAccount::PlatformRevenue, "USD").await,
        300
    );
    verify_ledger(&app).await;
}

#[tokio::test]
async fn payout_settings_are_validated() {
    let app = spawn_app().await;
    let refused = admin::workspace_service_client::WorkspaceServiceClient::new(app.channel.clone())
        .update_settings(authed(
            admin::UpdateSettingsRequest {
                request_id: request_id(),
                settings: Some(admin::Settings {
                    payouts: Some(pb::PayoutsSettings {
                        minimum_payout: 0,
                        platform_fee_bps: 9000,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![
                        "payouts.minimum_payout".to_owned(),
                        "payouts.platform_fee_bps".to_owned(),
                    ],
                }),
                ..Default::default()
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect_err("out of bounds");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<_> = refused
        .get_details_bad_request()
        .expect("violations")
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    assert_eq!(
        fields,
        [
            "settings.payouts.minimum_payout",
            "settings.payouts.platform_fee_bps"
        ]
    );
}
