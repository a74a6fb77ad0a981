use gateway::token::{AUDIENCE, Claims, ISSUER, TokenIssuer};
use kernel::Role;
use proto::admin::v1 as pb;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{authed, reason, spawn_app};

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let status = client
        .get_workspace(Request::new(pb::GetWorkspaceRequest::default()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "UNAUTHENTICATED");
}

#[tokio::test]
async fn expired_wrong_audience_and_foreign_key_tokens_are_unauthenticated() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, aud: &str| Claims {
        sub: Uuid::new_v4().to_string(),
        workspace: app.default_workspace.to_string(),
        roles: vec!["admin".to_owned()],
        exp,
        iat: now,
        iss: ISSUER.to_owned(),
        aud: aud.to_owned(),
    };
    let expired = app
        .issuer
        .issue_claims(&claims(now - 3600, AUDIENCE))
        .expect("token");
    let wrong_audience = app
        .issuer
        .issue_claims(&claims(now + 3600, "billing-system"))
        .expect("token");
    let foreign_key = TokenIssuer::new(b"some-other-secret-some-other-secret")
        .issue_claims(&claims(now + 3600, AUDIENCE))
        .expect("token");
    for token in [expired, wrong_audience, foreign_key, "not-a-jwt".to_owned()] {
        let status = client
            .get_workspace(authed(pb::GetWorkspaceRequest::default(), &token))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{token}");
        assert_eq!(reason(&status), "INVALID_TOKEN");
    }
    let valid = app
        .issuer
        .issue_claims(&claims(now + 3600, AUDIENCE))
        .expect("token");
    let workspace = client
        .get_workspace(authed(pb::GetWorkspaceRequest::default(), &valid))
        .await
        .expect("accepted");
    assert_eq!(workspace.get_ref().name, "default");
}

#[tokio::test]
async fn a_role_the_method_does_not_admit_is_permission_denied() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let request = pb::CreateWorkspaceRequest {
        request_id: Uuid::new_v4().to_string(),
        name: "acme".to_owned(),
        ..Default::default()
    };
    let status = client
        .create_workspace(authed(request, &app.token(&[Role::Admin])))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_NOT_ADMITTED");
    let status = client
        .get_settings(authed(
            pb::GetSettingsRequest::default(),
            &app.token(&[Role::Factory]),
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn another_workspace_looks_exactly_like_a_missing_one() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let platform = app.token(&[Role::PlatformAdmin]);
    let other = client
        .create_workspace(authed(
            pb::CreateWorkspaceRequest {
                request_id: Uuid::new_v4().to_string(),
                name: "other".to_owned(),
                ..Default::default()
            },
            &platform,
        ))
        .await
        .expect("created")
        .into_inner();
    let admin = app.token(&[Role::Admin]);
    let foreign = client
        .get_settings(authed(
            pb::GetSettingsRequest {
                workspace_id: other.id.clone(),
            },
            &admin,
        ))
        .await
        .expect_err("foreign");
    let missing = client
        .get_settings(authed(
            pb::GetSettingsRequest {
                workspace_id: Uuid::new_v4().to_string(),
            },
            &admin,
        ))
        .await
        .expect_err("missing");
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(
        (foreign.code(), foreign.message(), reason(&foreign)),
        (missing.code(), missing.message(), reason(&missing))
    );
    let seen = client
        .get_workspace(authed(
            pb::GetWorkspaceRequest {
                id: other.id.clone(),
            },
            &platform,
        ))
        .await
        .expect("platform-admin sees every workspace");
    assert_eq!(seen.get_ref().name, "other");
}

#[tokio::test]
async fn a_token_for_a_workspace_that_does_not_exist_is_refused() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token_for(Uuid::new_v4(), Uuid::new_v4(), &[Role::Admin]);
    let status = client
        .get_workspace(authed(pb::GetWorkspaceRequest::default(), &token))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "UNKNOWN_WORKSPACE");
}
