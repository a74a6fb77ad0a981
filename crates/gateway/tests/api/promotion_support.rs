//! What the promotion tests share: factories with credits, materials, promotions, settings,
//! selections and reports, over real gRPC.

use kernel::Role;
use proto::admin::v1 as admin;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use proto::ledger::v1 as ledger;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use proto::promotion::v1 as pb;
use proto::promotion::v1::material_service_client::MaterialServiceClient;
use proto::promotion::v1::promotion_service_client::PromotionServiceClient;
use proto::promotion::v1::selection_service_client::SelectionServiceClient;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, request_id};

pub(crate) struct Factory {
    pub id: Uuid,
    pub token: String,
}

pub(crate) async fn factory_with_credits(app: &TestApp, credits: i64) -> Factory {
    let id = Uuid::new_v4();
    crate::helpers::purchase(
        app,
        app.default_workspace,
        id,
        credits,
        &format!("pay-{id}"),
    )
    .await
    .expect("purchase");
    Factory {
        id,
        token: app.token_for(id, app.default_workspace, &[Role::Factory]),
    }
}

pub(crate) async fn wallet_balance(app: &TestApp, factory: &Factory) -> i64 {
    let accounts = LedgerServiceClient::new(app.channel.clone())
        .list_accounts(authed(
            ledger::ListAccountsRequest {
                asset: "CREDITS".to_owned(),
                ..Default::default()
            },
            &factory.token,
        ))
        .await
        .expect("accounts")
        .into_inner()
        .accounts;
    accounts.first().map_or(0, |account| account.balance)
}

pub(crate) async fn material(
    app: &TestApp,
    factory: &Factory,
    name: &str,
    material_type: &str,
) -> pb::Material {
    crate::helpers::create_material(app, &factory.token, name, material_type).await
}

pub(crate) async fn platform_materials(app: &TestApp, material_type: &str, count: usize) {
    let materials = (0..count)
        .map(|index| pb::Material {
            name: format!("{material_type} {index}"),
            material_type: material_type.to_owned(),
            ..Default::default()
        })
        .collect();
    MaterialServiceClient::new(app.channel.clone())
        .import_materials(authed(
            pb::ImportMaterialsRequest {
                request_id: request_id(),
                materials,
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("import");
}

pub(crate) async fn promote(
    app: &TestApp,
    factory: &Factory,
    material: &pb::Material,
    credits: i64,
) -> Result<pb::Promotion, tonic::Status> {
    PromotionServiceClient::new(app.channel.clone())
        .create_promotion(authed(
            pb::CreatePromotionRequest {
                request_id: request_id(),
                material_id: material.id.clone(),
                credits,
                ..Default::default()
            },
            &factory.token,
        ))
        .await
        .map(|response| response.into_inner())
}

/// Updates the promotion settings named by `paths` (e.g. "promotion.cost_per_impression").
pub(crate) async fn update_promotion_settings(
    app: &TestApp,
    promotion: pb::PromotionSettings,
    paths: &[&str],
) {
    WorkspaceServiceClient::new(app.channel.clone())
        .update_settings(authed(
            admin::UpdateSettingsRequest {
                request_id: request_id(),
                workspace_id: String::new(),
                settings: Some(admin::Settings {
                    promotion: Some(promotion),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| path.to_string()).collect(),
                }),
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("settings");
}

pub(crate) async fn set_selection_probability(app: &TestApp, numerator: i64, denominator: i64) {
    let probability = pb::Fraction {
        numerator,
        denominator,
    };
    let settings = pb::PromotionSettings {
        selection_probability: Some(probability),
        ..Default::default()
    };
    update_promotion_settings(app, settings, &["promotion.selection_probability"]).await;
}

pub(crate) async fn get_promotion(app: &TestApp, factory: &Factory, id: &str) -> pb::Promotion {
    PromotionServiceClient::new(app.channel.clone())
        .get_promotion(authed(
            pb::GetPromotionRequest { id: id.to_owned() },
            &factory.token,
        ))
        .await
        .expect("get promotion")
        .into_inner()
}

pub(crate) async fn select(app: &TestApp, generator: &str, prompt: &str) -> Vec<pb::Selection> {
    SelectionServiceClient::new(app.channel.clone())
        .select_materials(authed(
            pb::SelectMaterialsRequest {
                request_id: request_id(),
                prompt: prompt.to_owned(),
                ..Default::default()
            },
            generator,
        ))
        .await
        .expect("select")
        .into_inner()
        .selections
}

pub(crate) async fn report(
    app: &TestApp,
    generator: &str,
    decisions: Vec<String>,
) -> pb::ReportUsageResponse {
    SelectionServiceClient::new(app.channel.clone())
        .report_usage(authed(
            pb::ReportUsageRequest {
                request_id: request_id(),
                decision_ids: decisions,
            },
            generator,
        ))
        .await
        .expect("report")
        .into_inner()
}

pub(crate) async fn ledger_charges(app: &TestApp, promotion_id: &str, code: &str) -> i64 {
    LedgerServiceClient::new(app.channel.clone())
        .list_transfers(authed(
            ledger::ListTransfersRequest {
                reference: promotion_id.to_owned(),
                code: code.to_owned(),
                page_size: 1000,
                ..Default::default()
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("transfers")
        .into_inner()
        .transfers
        .iter()
        .map(|transfer| transfer.amount)
        .sum()
}

/// `(decision id, reason)` of every rejection in a report.
pub(crate) fn rejections(report: &pb::ReportUsageResponse) -> Vec<(String, pb::UsageRejection)> {
    report
        .rejections
        .iter()
        .map(|rejection| (rejection.decision_id.clone(), rejection.reason()))
        .collect()
}
