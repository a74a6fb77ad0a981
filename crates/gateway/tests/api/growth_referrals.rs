//! Referral programs over gRPC: both rewards exactly once, bad input refused with nothing
//! changed, limits, expiry driven by the test clock, and stats.

use std::sync::Arc;

use kernel::{ManualClock, Role};
use proto::growth::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::growth_support::{Growth, customer_token, usd, wallet_balance};
use crate::helpers::{authed, reason, request_id, spawn_app, spawn_app_with_clock};
use crate::marketing_support::Shop;

fn credits(amount: i64) -> Option<pb::Reward> {
    Some(pb::Reward {
        kind: pb::RewardKind::Credits as i32,
        credits: amount,
        ..pb::Reward::default()
    })
}

fn percentage_coupon(bps: u32) -> Option<pb::Reward> {
    Some(pb::Reward {
        kind: pb::RewardKind::PercentageCoupon as i32,
        percent_bps: bps,
        ..pb::Reward::default()
    })
}

#[tokio::test]
async fn a_referral_earns_both_rewards_exactly_once() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    let program = growth
        .program(pb::ReferralProgram {
            name: "Friends".to_owned(),
            referrer_reward: credits(50),
            referee_reward: percentage_coupon(1000),
            min_referee_purchase: usd(2500),
            ..pb::ReferralProgram::default()
        })
        .await
        .expect("program");
    let (referrer, referee) = (Uuid::new_v4(), Uuid::new_v4());
    let code = growth.code_of(&program.id, referrer).await;
    assert!(code.code.starts_with("REF"), "{}", code.code);
    // One stable code per customer and program.
    assert_eq!(growth.code_of(&program.id, referrer).await.code, code.code);

    // Self-referral and unknown codes are refused, and change nothing.
    let own = growth.track(&code.code, referrer).await.expect_err("self");
    assert_eq!(own.code(), Code::InvalidArgument);
    assert_eq!(reason(&own), "SELF_REFERRAL");
    let unknown = growth
        .track("REFNOTACODE", referee)
        .await
        .expect_err("unknown");
    assert_eq!(reason(&unknown), "REFERRAL_CODE_NOT_FOUND");

    // The referee tracks with its own customer token.
    let referral = growth
        .referrals
        .track_referral(authed(
            pb::TrackReferralRequest {
                request_id: request_id(),
                code: code.code.to_lowercase(),
                referee_id: String::new(),
            },
            &customer_token(&app, referee),
        ))
        .await
        .expect("track")
        .into_inner();
    assert_eq!(referral.status, pb::ReferralStatus::Pending as i32);
    assert_eq!(referral.referrer_id, referrer.to_string());
    let again = growth.track(&code.code, referee).await.expect_err("twice");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(reason(&again), "REFEREE_ALREADY_REFERRED");

    // Below the minimum: nothing happens, the referral waits.
    let small = growth
        .convert(&request_id(), referee, "order-1", 2499)
        .await
        .expect("small order");
    assert_eq!(small.outcomes[0].reason, "MINIMUM_NOT_MET");
    assert_eq!(wallet_balance(&app, referrer, "CREDITS").await, 0);

    let conversion_id = request_id();
    let done = growth
        .convert(&conversion_id, referee, "order-2", 2500)
        .await
        .expect("conversion");
    let rewarded = done.outcomes[0].referral.clone().expect("referral");
    assert_eq!(done.outcomes[0].reason, "");
    assert_eq!(rewarded.status, pb::ReferralStatus::Rewarded as i32);
    let referrer_reward = rewarded.referrer_reward.clone().expect("referrer reward");
    assert_eq!(referrer_reward.credits, 50);
    assert!(!referrer_reward.transfer_id.is_empty());
    let coupon_code = rewarded
        .referee_reward
        .clone()
        .expect("referee reward")
        .coupon_code;
    assert!(!coupon_code.is_empty());

    // A retry of the call, and the same order reported again, reward nothing more.
    let retried = growth
        .convert(&conversion_id, referee, "order-2", 2500)
        .await
        .expect("retry");
    assert_eq!(retried, done);
    let replayed = growth
        .convert(&request_id(), referee, "order-2", 2500)
        .await
        .expect("same order");
    assert_eq!(replayed.outcomes[0].reason, "ALREADY_REWARDED");
    let later = growth
        .convert(&request_id(), referee, "order-3", 9000)
        .await
        .expect("later order");
    assert!(later.outcomes.is_empty(), "{later:?}");
    assert_eq!(wallet_balance(&app, referrer, "CREDITS").await, 50);

    // The referee's coupon is a real single-use 10 % coupon bound to them.
    let mut shop = Shop::new(&app);
    let coupon = shop.get_coupon(&coupon_code).await;
    assert_eq!(coupon.customer_id, referee.to_string());
    assert_eq!(coupon.usage_limit, 1);

    let stats = growth
        .referrals
        .get_referral_stats(authed(
            pb::GetReferralStatsRequest {
                customer_id: String::new(),
            },
            &customer_token(&app, referrer),
        ))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(
        (
            stats.pending,
            stats.rewarded,
            stats.credits_earned,
            stats.credit_balance
        ),
        (0, 1, 50, 50)
    );
    let referee_stats = growth
        .referrals
        .get_referral_stats(authed(
            pb::GetReferralStatsRequest {
                customer_id: referee.to_string(),
            },
            &growth.storefront,
        ))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(
        (referee_stats.rewarded, referee_stats.coupons_earned),
        (0, 1)
    );
    // A customer reads only its own stats.
    let foreign = growth
        .referrals
        .get_referral_stats(authed(
            pb::GetReferralStatsRequest {
                customer_id: referee.to_string(),
            },
            &customer_token(&app, referrer),
        ))
        .await
        .expect_err("someone else's stats");
    assert_eq!(foreign.code(), Code::PermissionDenied);

    // The conversion fed the referrer's leaderboard metric.
    let board = growth
        .gamification
        .get_leaderboard(authed(
            pb::GetLeaderboardRequest {
                metric: "referral_conversions".to_owned(),
                period: pb::LeaderboardPeriod::AllTime as i32,
                ..Default::default()
            },
            &growth.admin,
        ))
        .await
        .expect("leaderboard")
        .into_inner();
    assert_eq!(board.entries.len(), 1);
    assert_eq!(board.entries[0].subject_id, referrer.to_string());
}

#[tokio::test]
async fn concurrent_conversions_of_one_referee_reward_once() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    let program = growth
        .program(pb::ReferralProgram {
            name: "Race".to_owned(),
            referrer_reward: credits(10),
            referee_reward: credits(5),
            ..pb::ReferralProgram::default()
        })
        .await
        .expect("program");
    let (referrer, referee) = (Uuid::new_v4(), Uuid::new_v4());
    let code = growth.code_of(&program.id, referrer).await;
    growth.track(&code.code, referee).await.expect("track");
    let calls = (0..8).map(|n| {
        let mut growth = Growth::new(&app);
        async move {
            growth
                .convert(&request_id(), referee, &format!("order-{n}"), 100)
                .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let rewarded = answers
        .iter()
        .filter(|answer| {
            answer.as_ref().is_ok_and(|answer| {
                answer
                    .outcomes
                    .iter()
                    .any(|outcome| outcome.reason.is_empty())
            })
        })
        .count();
    assert_eq!(rewarded, 1, "{answers:?}");
    assert_eq!(wallet_balance(&app, referrer, "CREDITS").await, 10);
    assert_eq!(wallet_balance(&app, referee, "CREDITS").await, 5);
}

#[tokio::test]
async fn limits_and_expiry_hold() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut growth = Growth::new(&app);

    // Bad programs are refused whole.
    let bad = growth
        .program(pb::ReferralProgram {
            name: "Bad".to_owned(),
            referrer_reward: credits(-5),
            referee_reward: Some(pb::Reward {
                kind: pb::RewardKind::Coupon as i32,
                discount_rule_id: Uuid::new_v4().to_string(),
                ..pb::Reward::default()
            }),
            ..pb::ReferralProgram::default()
        })
        .await
        .expect_err("negative credits");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let foreign_rule = growth
        .program(pb::ReferralProgram {
            name: "Foreign rule".to_owned(),
            referrer_reward: credits(5),
            referee_reward: Some(pb::Reward {
                kind: pb::RewardKind::Coupon as i32,
                discount_rule_id: Uuid::new_v4().to_string(),
                ..pb::Reward::default()
            }),
            ..pb::ReferralProgram::default()
        })
        .await
        .expect_err("unknown rule");
    assert_eq!(reason(&foreign_rule), "DISCOUNT_RULE_NOT_FOUND");

    let program = growth
        .program(pb::ReferralProgram {
            name: "One each".to_owned(),
            referrer_reward: credits(5),
            referee_reward: Some(pb::Reward {
                kind: pb::RewardKind::None as i32,
                ..pb::Reward::default()
            }),
            max_referrals_per_referrer: 1,
            link_ttl_days: 7,
            ..pb::ReferralProgram::default()
        })
        .await
        .expect("program");
    let referrer = Uuid::new_v4();
    let code = growth.code_of(&program.id, referrer).await;
    let first = Uuid::new_v4();
    growth.track(&code.code, first).await.expect("first");
    let second = growth
        .track(&code.code, Uuid::new_v4())
        .await
        .expect_err("over the maximum");
    assert_eq!(reason(&second), "REFERRAL_LIMIT_REACHED");

    // A week later the link has expired; asking for the code again renews it, same code.
    let other = Uuid::new_v4();
    let other_code = growth.code_of(&program.id, other).await;
    clock.advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    let expired = growth
        .track(&other_code.code, Uuid::new_v4())
        .await
        .expect_err("expired link");
    assert_eq!(reason(&expired), "REFERRAL_CODE_EXPIRED");
    // The pending referral waited past its time: the sweeper expires it.
    assert!(app.growth.sweep().await >= 1);
    let late = growth
        .convert(&request_id(), first, "late-order", 100)
        .await
        .expect("late");
    assert!(
        late.outcomes.is_empty(),
        "an expired referral earns nothing"
    );
    let renewed = growth.code_of(&program.id, other).await;
    assert_eq!(renewed.code, other_code.code);
    assert!(
        renewed.expire_time.expect("expiry").seconds
            > other_code.expire_time.expect("expiry").seconds
    );
    growth
        .track(&renewed.code, Uuid::new_v4())
        .await
        .expect("the renewed link works");
    let stats = growth
        .referrals
        .get_referral_stats(authed(
            pb::GetReferralStatsRequest {
                customer_id: referrer.to_string(),
            },
            &app.token(&[Role::Ops]),
        ))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((stats.pending, stats.expired), (0, 1));
}

#[tokio::test]
async fn another_workspaces_codes_look_unknown() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    let program = growth
        .program(pb::ReferralProgram {
            name: "Ours".to_owned(),
            referrer_reward: credits(5),
            referee_reward: credits(5),
            ..pb::ReferralProgram::default()
        })
        .await
        .expect("program");
    let code = growth.code_of(&program.id, Uuid::new_v4()).await;
    let other = app.other_workspace("elsewhere").await;
    let storefront = app.token_for(Uuid::new_v4(), other, &[Role::Storefront]);
    let tracked = growth
        .referrals
        .track_referral(authed(
            pb::TrackReferralRequest {
                request_id: request_id(),
                code: code.code.clone(),
                referee_id: Uuid::new_v4().to_string(),
            },
            &storefront,
        ))
        .await
        .expect_err("foreign code");
    assert_eq!(reason(&tracked), "REFERRAL_CODE_NOT_FOUND");
    let program_read = growth
        .referrals
        .get_referral_program(authed(
            pb::GetReferralProgramRequest { id: program.id },
            &storefront,
        ))
        .await
        .expect_err("foreign program");
    assert_eq!(program_read.code(), Code::NotFound);
}
