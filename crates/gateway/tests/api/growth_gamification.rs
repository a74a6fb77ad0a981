//! Badges and leaderboards over gRPC: a badge is awarded once at its threshold, activity is
//! idempotent, and leaderboards rank ties by standard competition ranking across pages.

use kernel::Role;
use proto::growth::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::growth_support::{Growth, customer_token};
use crate::helpers::{authed, reason, request_id, spawn_app};

fn badge(code: &str, threshold: i64) -> pb::CreateBadgeRequest {
    pb::CreateBadgeRequest {
        request_id: request_id(),
        badge: Some(pb::Badge {
            code: code.to_owned(),
            name: format!("{code} badge"),
            category: "api".to_owned(),
            tier: pb::BadgeTier::Gold as i32,
            metric: "api_calls".to_owned(),
            threshold,
            ..pb::Badge::default()
        }),
    }
}

#[tokio::test]
async fn a_badge_is_awarded_once_at_its_threshold() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    let zero = growth
        .gamification
        .create_badge(authed(badge("none", 0), &growth.admin))
        .await
        .expect_err("threshold zero");
    assert_eq!(zero.code(), Code::InvalidArgument);
    growth
        .gamification
        .create_badge(authed(badge("hundred", 100), &growth.admin))
        .await
        .expect("badge");
    let taken = growth
        .gamification
        .create_badge(authed(badge("hundred", 5), &growth.admin))
        .await
        .expect_err("same code");
    assert_eq!(reason(&taken), "BADGE_CODE_TAKEN");

    let subject = Uuid::new_v4();
    let below = growth.activity(subject, "api_calls", 99).await.expect("99");
    assert!(below.awarded.is_empty());
    // A retried call adds nothing.
    let crossing = pb::RecordActivityRequest {
        request_id: request_id(),
        subject_id: subject.to_string(),
        metric: "api_calls".to_owned(),
        delta: 1,
    };
    let crossed = growth
        .gamification
        .record_activity(authed(crossing.clone(), &growth.storefront))
        .await
        .expect("crossing")
        .into_inner();
    assert_eq!(crossed.value, 100);
    assert_eq!(crossed.awarded.len(), 1);
    assert_eq!(crossed.awarded[0].badge_code, "hundred");
    let retried = growth
        .gamification
        .record_activity(authed(crossing, &growth.storefront))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retried, crossed);
    let beyond = growth
        .activity(subject, "api_calls", 500)
        .await
        .expect("more");
    assert_eq!(beyond.value, 600);
    assert!(beyond.awarded.is_empty(), "awarded once");

    let mine = growth
        .gamification
        .list_badges(authed(
            pb::ListBadgesRequest {
                subject_id: String::new(),
            },
            &customer_token(&app, subject),
        ))
        .await
        .expect("badges")
        .into_inner();
    assert_eq!(mine.awards.len(), 1);
    assert_eq!(mine.awards[0].tier, pb::BadgeTier::Gold as i32);
    let negative = growth
        .activity(subject, "api_calls", -5)
        .await
        .expect_err("negative delta");
    assert_eq!(negative.code(), Code::InvalidArgument);
    let bad_metric = growth
        .activity(subject, "API Calls", 1)
        .await
        .expect_err("metric name");
    assert_eq!(bad_metric.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn concurrent_activity_awards_a_badge_once() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    growth
        .gamification
        .create_badge(authed(badge("ten", 10), &growth.admin))
        .await
        .expect("badge");
    let subject = Uuid::new_v4();
    let calls = (0..10).map(|_| {
        let mut growth = Growth::new(&app);
        async move { growth.activity(subject, "api_calls", 1).await }
    });
    let answers = futures::future::join_all(calls).await;
    let awards: usize = answers
        .iter()
        .map(|answer| answer.as_ref().expect("activity").awarded.len())
        .sum();
    assert_eq!(awards, 1);
    let values: std::collections::BTreeSet<i64> = answers
        .iter()
        .map(|answer| answer.as_ref().expect("activity").value)
        .collect();
    assert_eq!(values, (1..=10).collect());
}

#[tokio::test]
async fn leaderboards_rank_ties_by_standard_competition_across_pages() {
    let app = spawn_app().await;
    let mut growth = Growth::new(&app);
    let subjects: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for (subject, value) in subjects.iter().zip([50, 30, 30, 10, 30]) {
        growth
            .activity(*subject, "sales", value)
            .await
            .expect("activity");
    }
    let reader = app.token(&[Role::Customer]);
    let mut entries = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = growth
            .gamification
            .get_leaderboard(authed(
                pb::GetLeaderboardRequest {
                    metric: "sales".to_owned(),
                    period: pb::LeaderboardPeriod::Weekly as i32,
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &reader,
            ))
            .await
            .expect("page")
            .into_inner();
        assert!(page.period_key.contains("-W"), "{}", page.period_key);
        entries.extend(page.entries);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let ranked: Vec<(i64, i64)> = entries.iter().map(|e| (e.rank, e.value)).collect();
    assert_eq!(ranked, [(1, 50), (2, 30), (2, 30), (2, 30), (5, 10)]);
    assert_eq!(entries[0].subject_id, subjects[0].to_string());

    for period in [
        pb::LeaderboardPeriod::Daily,
        pb::LeaderboardPeriod::Monthly,
        pb::LeaderboardPeriod::AllTime,
    ] {
        let board = growth
            .gamification
            .get_leaderboard(authed(
                pb::GetLeaderboardRequest {
                    metric: "sales".to_owned(),
                    period: period as i32,
                    ..Default::default()
                },
                &reader,
            ))
            .await
            .expect("board")
            .into_inner();
        assert_eq!(board.entries.len(), 5, "{period:?}");
    }
    // Another day's board is empty; a day that does not exist and no period are refused.
    let yesterday = growth
        .gamification
        .get_leaderboard(authed(
            pb::GetLeaderboardRequest {
                metric: "sales".to_owned(),
                period: pb::LeaderboardPeriod::Daily as i32,
                date: "2020-02-29".to_owned(),
                ..Default::default()
            },
            &reader,
        ))
        .await
        .expect("a past day")
        .into_inner();
    assert!(yesterday.entries.is_empty());
    assert_eq!(yesterday.period_key, "2020-02-29");
    for (period, date) in [
        (pb::LeaderboardPeriod::Daily as i32, "2026-02-30"),
        (pb::LeaderboardPeriod::Unspecified as i32, ""),
        (42, ""),
    ] {
        let refused = growth
            .gamification
            .get_leaderboard(authed(
                pb::GetLeaderboardRequest {
                    metric: "sales".to_owned(),
                    period,
                    date: date.to_owned(),
                    ..Default::default()
                },
                &reader,
            ))
            .await
            .expect_err("bad period");
        assert_eq!(refused.code(), Code::InvalidArgument, "{period} {date}");
    }
}
