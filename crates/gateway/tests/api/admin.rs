use kernel::Role;
use proto::admin::v1 as pb;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{authed, reason, request_id, spawn_app};

fn create_request(name: &str) -> pb::CreateWorkspaceRequest {
    pb::CreateWorkspaceRequest {
        request_id: request_id(),
        name: name.to_owned(),
        display_name: "Acme".to_owned(),
        modules: vec![],
    }
}

#[tokio::test]
async fn the_default_workspace_exists_with_every_module() {
    let mut app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let workspace = client
        .get_workspace(authed(
            pb::GetWorkspaceRequest::default(),
            &app.token(&[Role::Ops]),
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(workspace.name, "default");
    assert_eq!(
        workspace.modules,
        [
            "ledger",
            "material_promotion",
            "marketing",
            "growth",
            "revenue_split",
            "payouts"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retried_create_returns_the_first_response_and_creates_once() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let request = create_request("acme");
    let first = client
        .create_workspace(authed(request.clone(), &token))
        .await
        .expect("first")
        .into_inner();
    let second = client
        .create_workspace(authed(request.clone(), &token))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, second);
    let listed = client
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed
            .workspaces
            .iter()
            .filter(|w| w.name == "acme")
            .count(),
        1
    );
}

#[tokio::test]
async fn concurrent_retries_with_one_request_id_create_one_workspace() {
    let app = spawn_app().await;
    let token = app.token(&[Role::PlatformAdmin]);
    let request = create_request("racer");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = WorkspaceServiceClient::new(app.channel.clone());
        let (request, token) = (request.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .create_workspace(authed(request, &token))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        ids.insert(
            task.await
                .expect("task")
                .expect("every attempt answers with the one workspace")
                .id,
        );
    }
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn a_request_id_reused_for_another_request_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let request = create_request("first");
    client
        .create_workspace(authed(request.clone(), &token))
        .await
        .expect("first");
    let reused = pb::CreateWorkspaceRequest {
        name: "second".to_owned(),
        ..request
    };
    let status = client
        .create_workspace(authed(reused, &token))
        .await
        .expect_err("reuse");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert!(status.get_details_precondition_failure().is_some());
    let listed = client
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.workspaces.iter().all(|w| w.name != "second"));
}

#[tokio::test]
async fn bad_input_gets_field_violations_and_changes_nothing() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let cases = [
        (
            pb::CreateWorkspaceRequest {
                request_id: "not-a-uuid".to_owned(),
                ..create_request("ok")
            },
            "request_id",
        ),
        (create_request("Not A Slug"), "name"),
        (
            pb::CreateWorkspaceRequest {
                display_name: "x".repeat(201),
                ..create_request("long")
            },
            "display_name",
        ),
        (
            pb::CreateWorkspaceRequest {
                modules: vec!["casino".to_owned()],
                ..create_request("mods")
            },
            "modules[0]",
        ),
    ];
    for (request, field) in cases {
        let status = client
            .create_workspace(authed(request, &token))
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.domain, "promo.admin");
        let violations = status
            .get_details_bad_request()
            .expect("bad request")
            .field_violations;
        assert_eq!(violations[0].field, field);
    }
    let listed = client
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.workspaces.len(), 1, "only default exists");
    let duplicate = client
        .create_workspace(authed(create_request("default"), &token))
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert_eq!(reason(&duplicate), "WORKSPACE_ALREADY_EXISTS");
}

#[tokio::test]
async fn settings_update_through_a_mask_and_invalid_values_change_nothing() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::Admin]);
    let before = client
        .get_settings(authed(pb::GetSettingsRequest::default(), &token))
        .await
        .expect("get")
        .into_inner();
    let promotion = before.promotion.expect("promotion settings");
    assert_eq!(
        promotion.selection_probability,
        Some(proto::promotion::v1::Fraction {
            numerator: 1,
            denominator: 3
        })
    );
    assert_eq!(
        (promotion.cost_per_use, promotion.cost_per_impression),
        (1, 0)
    );

    let update = |settings: pb::Settings, paths: &[&str]| pb::UpdateSettingsRequest {
        request_id: request_id(),
        workspace_id: String::new(),
        settings: Some(settings),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let mut wanted = before.clone();
    wanted.time_zone = "Europe/Berlin".to_owned();
    if let Some(promotion) = wanted.promotion.as_mut() {
        promotion.cost_per_use = 3;
        promotion.cost_per_impression = 99;
    }
    let after = client
        .update_settings(authed(
            update(wanted.clone(), &["time_zone", "promotion.cost_per_use"]),
            &token,
        ))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(after.time_zone, "Europe/Berlin");
    let promotion = after.promotion.expect("promotion");
    assert_eq!(promotion.cost_per_use, 3);
    assert_eq!(
        promotion.cost_per_impression, 0,
        "not in the mask, so unchanged"
    );

    let mut invalid = after.clone();
    invalid.time_zone = "Nowhere/Special".to_owned();
    if let Some(promotion) = invalid.promotion.as_mut() {
        promotion.selection_probability = Some(proto::promotion::v1::Fraction {
            numerator: 2,
            denominator: 1,
        });
    }
    let status = client
        .update_settings(authed(
            update(invalid, &["time_zone", "promotion.selection_probability"]),
            &token,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<_> = status
        .get_details_bad_request()
        .expect("violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "settings.time_zone",
            "settings.promotion.selection_probability"
        ]
    );
    let status = client
        .update_settings(authed(update(after.clone(), &["promotion.colour"]), &token))
        .await
        .expect_err("unknown path");
    assert_eq!(
        status
            .get_details_bad_request()
            .expect("violations")
            .field_violations[0]
            .field,
        "update_mask.paths[0]"
    );
    let unchanged = client
        .get_settings(authed(pb::GetSettingsRequest::default(), &token))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(unchanged.time_zone, after.time_zone);
    assert_eq!(unchanged.promotion, after.promotion);
}

#[tokio::test]
async fn set_modules_changes_what_get_workspace_reports() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let workspace = client
        .set_modules(authed(
            pb::SetModulesRequest {
                request_id: request_id(),
                workspace_id: app.default_workspace.to_string(),
                modules: vec!["payouts".to_owned(), "ledger".to_owned()],
            },
            &token,
        ))
        .await
        .expect("set")
        .into_inner();
    assert_eq!(workspace.modules, ["ledger", "payouts"]);
    let status = client
        .set_modules(authed(
            pb::SetModulesRequest {
                request_id: request_id(),
                workspace_id: String::new(),
                modules: vec![],
            },
            &token,
        ))
        .await
        .expect_err("workspace_id required");
    assert_eq!(status.code(), Code::InvalidArgument);
}
