use kernel::Role;
use proto::admin::v1 as pb;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{authed, reason, request_id, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_principal_over_its_rate_gets_resource_exhausted_with_quota_and_retry_info() {
    let app = spawn_app_with(|config| {
        config.limits.rate_limit_per_second = 1;
        config.limits.rate_limit_burst = 3;
    })
    .await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::Admin]);
    let mut refused = None;
    for _ in 0..10 {
        if let Err(status) = client
            .get_workspace(authed(pb::GetWorkspaceRequest::default(), &token))
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the burst of 3 is exceeded within 10 calls");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    assert_eq!(
        status
            .get_details_quota_failure()
            .expect("quota failure")
            .violations
            .len(),
        1
    );
    let delay = status
        .get_details_retry_info()
        .expect("retry info")
        .retry_delay
        .expect("delay");
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(1),
        "{delay:?}"
    );
    // Another principal has its own bucket.
    client
        .get_workspace(authed(
            pb::GetWorkspaceRequest::default(),
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("other principal");
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|config| config.limits.max_message_bytes = 1024).await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let request = pb::CreateWorkspaceRequest {
        request_id: request_id(),
        name: "big".to_owned(),
        display_name: "x".repeat(4096),
        modules: vec![],
    };
    let status = client
        .create_workspace(authed(request, &token))
        .await
        .expect_err("too big");
    assert_eq!(status.code(), Code::OutOfRange);
    let listed = client
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.workspaces.iter().all(|w| w.name != "big"));
}

#[tokio::test]
async fn rpc_latency_is_recorded_by_method_and_status() {
    let handle = gateway::telemetry::prometheus_builder()
        .expect("builder")
        .install_recorder()
        .expect("the only recorder in this test binary");
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    client
        .get_workspace(authed(
            pb::GetWorkspaceRequest::default(),
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("ok");
    let _ = client
        .get_workspace(tonic::Request::new(pb::GetWorkspaceRequest::default()))
        .await;
    let text = handle.render();
    let bucket = "promo_rpc_duration_seconds_bucket{method=\"/promo.admin.v1.WorkspaceService/GetWorkspace\",code=\"ok\"";
    assert!(text.contains(bucket), "{text}");
    assert!(text.contains("code=\"unauthenticated\""), "{text}");
}
