//! Background work isolates failures per item: one poisoned promotion never stops the others, in
//! its own tenant or any other, and is retried until it goes through.

use std::sync::Arc;
use std::time::Duration;

use kernel::Role;
use proto::ledger::v1 as ledger;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use proto::promotion::v1 as pb;
use proto::promotion::v1::promotion_service_client::PromotionServiceClient;
use uuid::Uuid;

use crate::helpers::{
    TestApp, authed, create_material, purchase, request_id, spawn_app, spawn_app_with_clock,
};

/// A factory with credits, a material and a promotion, in one workspace.
pub(crate) struct Promoted {
    pub workspace: Uuid,
    pub token: String,
    pub promotion: pb::Promotion,
}

pub(crate) async fn promoted(
    app: &TestApp,
    workspace: Uuid,
    material_type: &str,
    credits: i64,
    budget: i64,
    end_time: Option<prost_types::Timestamp>,
) -> Promoted {
    let factory = Uuid::new_v4();
    purchase(app, workspace, factory, credits, &format!("pay-{factory}"))
        .await
        .expect("purchase");
    let token = app.token_for(factory, workspace, &[Role::Factory]);
    let material = create_material(
        app,
        &token,
        &format!("{material_type} by {factory}"),
        material_type,
    )
    .await;
    let promotion = PromotionServiceClient::new(app.channel.clone())
        .create_promotion(authed(
            pb::CreatePromotionRequest {
                request_id: request_id(),
                material_id: material.id,
                credits: budget,
                end_time,
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("promotion")
        .into_inner();
    Promoted {
        workspace,
        token,
        promotion,
    }
}

impl Promoted {
    pub async fn current(&self, app: &TestApp) -> pb::Promotion {
        PromotionServiceClient::new(app.channel.clone())
            .get_promotion(authed(
                pb::GetPromotionRequest {
                    id: self.promotion.id.clone(),
                },
                &self.token,
            ))
            .await
            .expect("promotion")
            .into_inner()
    }

    pub async fn wallet(&self, app: &TestApp) -> i64 {
        LedgerServiceClient::new(app.channel.clone())
            .list_accounts(authed(
                ledger::ListAccountsRequest {
                    asset: "CREDITS".to_owned(),
                    ..Default::default()
                },
                &self.token,
            ))
            .await
            .expect("accounts")
            .into_inner()
            .accounts[0]
            .balance
    }

    fn budget_account(&self) -> Uuid {
        let id = Uuid::parse_str(&self.promotion.id).expect("id");
        promotion_core::lifecycle::budget_account(self.workspace, id).1
    }

    /// Makes every charge or refund of this promotion fail (its budget account changes asset), or
    /// heals it again.
    pub async fn poison(&self, app: &TestApp, poisoned: bool) {
        let asset = if poisoned { "USD" } else { "CREDITS" };
        let changed = app
            .execute(
                "UPDATE ledger_account SET asset = ? WHERE workspace_id = ? AND id = ?",
                vec![
                    asset.into(),
                    self.workspace.into(),
                    self.budget_account().into(),
                ],
            )
            .await;
        assert_eq!(changed, 1);
    }
}

async fn verify(app: &TestApp) {
    crate::helpers::verify_ledger(app).await;
}

#[tokio::test]
async fn one_poisoned_refund_never_stops_another_tenants_ended_promotion() {
    let clock = Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let other = app.other_workspace("other-tenant").await;
    let end = Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    });
    let poisoned = promoted(&app, app.default_workspace, "wood", 1000, 200, end).await;
    let healthy = promoted(&app, other, "wood", 1000, 200, end).await;
    poisoned.poison(&app, true).await;
    clock.advance(chrono::Duration::hours(2));

    let report = app.promotions.sweep().await;
    assert_eq!(report.failed, 1, "the poisoned refund fails, alone");
    let done = healthy.current(&app).await;
    assert_eq!(
        (done.status(), done.credits_remaining),
        (pb::PromotionStatus::Completed, 0)
    );
    assert_eq!(healthy.wallet(&app).await, 1000, "refunded in full");
    assert_eq!(
        poisoned.current(&app).await.credits_remaining,
        200,
        "not refunded, and nothing lost: the budget still holds it"
    );
    assert_eq!(poisoned.wallet(&app).await, 800);

    poisoned.poison(&app, false).await;
    let report = app.promotions.sweep().await;
    assert_eq!(report.failed, 0);
    assert_eq!(poisoned.current(&app).await.credits_remaining, 0);
    assert_eq!(poisoned.wallet(&app).await, 1000, "refunded once healed");
    verify(&app).await;
}

#[tokio::test]
async fn a_poisoned_promotions_impressions_wait_while_the_others_are_written() {
    let app = spawn_app().await;
    crate::promotion_support::update_promotion_settings(
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
    let workspace = app.default_workspace;
    let poisoned = promoted(&app, workspace, "wood", 100, 50, None).await;
    let healthy = promoted(&app, workspace, "metal", 100, 50, None).await;
    app.refresh_selection().await;
    poisoned.poison(&app, true).await;
    let generator = app.token(&[Role::Generator]);
    for _ in 0..5 {
        let picks = crate::promotion_support::select(&app, &generator, "wood and metal").await;
        assert!(picks.iter().all(|pick| pick.promoted), "{picks:?}");
    }
    let pending = app
        .promotions
        .flush_impressions(Duration::from_secs(3))
        .await
        .expect_err("the poisoned promotion's impressions cannot be written yet");
    assert_eq!(pending, 5);
    let written = healthy.current(&app).await;
    assert_eq!(
        (written.impression_count, written.credits_spent),
        (5, 5),
        "the other promotion's impressions went through"
    );
    assert_eq!(poisoned.current(&app).await.impression_count, 0);

    poisoned.poison(&app, false).await;
    app.flush_impressions().await;
    let recovered = poisoned.current(&app).await;
    assert_eq!(
        (recovered.impression_count, recovered.credits_spent),
        (5, 5),
        "retried, not dropped, and charged once"
    );
    verify(&app).await;
}
