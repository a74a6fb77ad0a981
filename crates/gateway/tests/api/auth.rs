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
async fn bad_tokens_are_unauthenticated_and_an_expired_one_says_so() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = |sub: String, exp: i64, aud: &str| Claims {
        sub,
        workspace: app.default_workspace.to_string(),
        roles: vec!["admin".to_owned()],
        exp,
        iat: now,
        nbf: None,
        iss: ISSUER.to_owned(),
        aud: aud.to_owned(),
    };
    let fresh = || Uuid::new_v4().to_string();
    let sign = |claims: &Claims| app.issuer.issue_claims(claims).expect("token");
    let expired = sign(&claims(fresh(), now - 3600, AUDIENCE));
    let wrong_audience = sign(&claims(fresh(), now + 3600, "billing-system"));
    let foreign_key = TokenIssuer::new(b"some-other-secret-some-other-secret")
        .issue_claims(&claims(fresh(), now + 3600, AUDIENCE))
        .expect("token");
    let nil_subject = sign(&claims(Uuid::nil().to_string(), now + 3600, AUDIENCE));
    let forever = sign(&claims(fresh(), i64::MAX, AUDIENCE));
    let mut later = claims(fresh(), now + 3600, AUDIENCE);
    later.nbf = Some(now + 600);
    let not_yet = sign(&later);
    let cases = [
        (expired, "TOKEN_EXPIRED"),
        (not_yet, "TOKEN_NOT_YET_VALID"),
        (wrong_audience, "INVALID_TOKEN"),
        (foreign_key, "INVALID_TOKEN"),
        (nil_subject, "INVALID_TOKEN"),
        (forever, "INVALID_TOKEN"),
        ("not-a-jwt".to_owned(), "INVALID_TOKEN"),
    ];
    for (token, expected) in cases {
        let status = client
            .get_workspace(authed(pb::GetWorkspaceRequest::default(), &token))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{token}");
        assert_eq!(reason(&status), expected, "{}", status.message());
    }
    let valid = sign(&claims(fresh(), now + 3600, AUDIENCE));
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
