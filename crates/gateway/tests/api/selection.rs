//! The generator's API under retries, replicas and concurrency, and the one exhaustion rule.

use kernel::Role;
use proto::promotion::v1 as pb;
use proto::promotion::v1::selection_service_client::SelectionServiceClient;

use crate::background::promoted;
use crate::helpers::{TestApp, authed, request_id, spawn_app, spawn_app_with};
use crate::promotion_support::{platform_materials, select, update_promotion_settings};

async fn select_with(
    app: &TestApp,
    generator: &str,
    request_id: &str,
    prompt: &str,
) -> pb::SelectMaterialsResponse {
    SelectionServiceClient::new(app.channel.clone())
        .select_materials(authed(
            pb::SelectMaterialsRequest {
                request_id: request_id.to_owned(),
                prompt: prompt.to_owned(),
                ..Default::default()
            },
            generator,
        ))
        .await
        .expect("select")
        .into_inner()
}

async fn set_probability(app: &TestApp, numerator: i64, denominator: i64) {
    update_promotion_settings(
        app,
        pb::PromotionSettings {
            selection_probability: Some(pb::Fraction {
                numerator,
                denominator,
            }),
            ..Default::default()
        },
        &["promotion.selection_probability"],
    )
    .await;
}

#[tokio::test]
async fn a_retried_selection_answers_the_same_on_any_replica_and_records_nothing_new() {
    let first = spawn_app().await;
    let url = first.database_url.clone();
    let second = spawn_app_with(move |config| config.database_url = url).await;
    let workspace = first.default_workspace;
    for material_type in ["wood", "metal", "glass"] {
        platform_materials(&first, material_type, 20).await;
    }
    let wood = promoted(&first, workspace, "wood", 1000, 500, None).await;
    let metal = promoted(&first, workspace, "metal", 1000, 500, None).await;
    set_probability(&first, 1, 2).await;
    first.refresh_selection().await;
    second.refresh_selection().await;
    let generator = first.token(&[Role::Generator]);
    let prompt = "oak table, steel legs, glass top";
    let mut promoted_picks = 0;
    for _ in 0..6 {
        let id = request_id();
        let answer = select_with(&first, &generator, &id, prompt).await;
        assert_eq!(answer.selections.len(), 3);
        assert_eq!(
            select_with(&first, &generator, &id, prompt).await,
            answer,
            "a retry on the same replica"
        );
        assert_eq!(
            select_with(&second, &generator, &id, prompt).await,
            answer,
            "a retry on another replica"
        );
        let other = select_with(&first, &generator, &request_id(), prompt).await;
        assert!(
            other
                .selections
                .iter()
                .zip(&answer.selections)
                .all(|(a, b)| a.decision_id != b.decision_id),
            "another request decides afresh"
        );
        promoted_picks += answer.selections.iter().filter(|s| s.promoted).count() as i64
            + other.selections.iter().filter(|s| s.promoted).count() as i64;
    }
    first.flush_impressions().await;
    second.flush_impressions().await;
    let recorded =
        wood.current(&first).await.impression_count + metal.current(&first).await.impression_count;
    assert_eq!(
        recorded, promoted_picks,
        "one impression per promoted decision, however often it was served"
    );
}

#[tokio::test]
async fn impressions_recorded_equal_promoted_picks_served_under_concurrency() {
    let app = spawn_app().await;
    update_promotion_settings(
        &app,
        pb::PromotionSettings {
            selection_probability: Some(pb::Fraction {
                numerator: 1,
                denominator: 3,
            }),
            cost_per_impression: 1,
            ..Default::default()
        },
        &[
            "promotion.selection_probability",
            "promotion.cost_per_impression",
        ],
    )
    .await;
    platform_materials(&app, "wood", 10).await;
    let promotion = promoted(&app, app.default_workspace, "wood", 10_000, 5_000, None).await;
    app.refresh_selection().await;
    let generator = app.token(&[Role::Generator]);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (channel, generator) = (app.channel.clone(), generator.clone());
            tokio::spawn(async move {
                let mut promoted = 0i64;
                for _ in 0..40 {
                    let answer = SelectionServiceClient::new(channel.clone())
                        .select_materials(authed(
                            pb::SelectMaterialsRequest {
                                request_id: request_id(),
                                prompt: "a wooden chair".to_owned(),
                                ..Default::default()
                            },
                            &generator,
                        ))
                        .await
                        .expect("select")
                        .into_inner();
                    promoted += answer.selections.iter().filter(|s| s.promoted).count() as i64;
                }
                promoted
            })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        served += task.await.expect("task");
    }
    assert!(served > 100, "about a third of 640 picks: {served}");
    app.flush_impressions().await;
    let current = promotion.current(&app).await;
    assert_eq!(
        current.impression_count, served,
        "none dropped, none doubled"
    );
    assert_eq!(current.credits_spent, served, "each charged once");
}

#[tokio::test]
async fn a_settings_change_that_exhausts_a_promotion_completes_and_refunds_it() {
    let app = spawn_app().await;
    platform_materials(&app, "stone", 3).await;
    let promotion = promoted(&app, app.default_workspace, "stone", 100, 3, None).await;
    set_probability(&app, 1, 1).await;
    app.refresh_selection().await;
    let generator = app.token(&[Role::Generator]);
    assert!(select(&app, &generator, "granite").await[0].promoted);
    // A use now costs more than the budget holds: the promotion can no longer be selected, and by
    // the same rule it completes and refunds, rather than lingering unselectable.
    update_promotion_settings(
        &app,
        pb::PromotionSettings {
            cost_per_use: 5,
            ..Default::default()
        },
        &["promotion.cost_per_use"],
    )
    .await;
    app.refresh_selection().await;
    assert!(!select(&app, &generator, "granite").await[0].promoted);
    let report = app.promotions.sweep().await;
    assert_eq!(report.failed, 0);
    let completed = promotion.current(&app).await;
    assert_eq!(
        (completed.status(), completed.credits_remaining),
        (pb::PromotionStatus::Completed, 0)
    );
    assert_eq!(promotion.wallet(&app).await, 100, "the 3 credits came back");
}

#[tokio::test]
async fn a_stopping_server_writes_every_impression_it_served() {
    let mut app = spawn_app().await;
    update_promotion_settings(
        &app,
        pb::PromotionSettings {
            selection_probability: Some(pb::Fraction {
                numerator: 1,
                denominator: 1,
            }),
            cost_per_impression: 1,
            ..Default::default()
        },
        &[
            "promotion.selection_probability",
            "promotion.cost_per_impression",
        ],
    )
    .await;
    platform_materials(&app, "glass", 5).await;
    let promotion = promoted(&app, app.default_workspace, "glass", 1000, 500, None).await;
    app.refresh_selection().await;
    // The writer's first attempt fails, so the impressions wait out a backoff of a second: a
    // server that stopped without flushing would leave them unwritten.
    promotion.poison(&app, true).await;
    let generator = app.token(&[Role::Generator]);
    for _ in 0..20 {
        assert!(select(&app, &generator, "a glass vase").await[0].promoted);
    }
    let pending = app
        .promotions
        .flush_impressions(std::time::Duration::from_millis(300))
        .await
        .expect_err("held back by the failed first attempt");
    assert_eq!(pending, 20);
    promotion.poison(&app, false).await;
    let database_url = app.database_url.clone();
    let promotion_id = uuid::Uuid::parse_str(&promotion.promotion.id).expect("id");
    let workspace = app.default_workspace;
    app.stop().await;
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(database_url.as_str())
        .await
        .expect("connect");
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            kernel::db::placeholders_for(
                backend,
                "SELECT COUNT(*) FROM promo_impression WHERE workspace_id = ? AND promotion_id = ?",
            ),
            [workspace.into(), promotion_id.into()],
        ))
        .await
        .expect("count")
        .expect("row");
    assert_eq!(
        row.try_get_by_index::<i64>(0).expect("count"),
        20,
        "written before the server finished stopping"
    );
}
