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
async fn service_roles_are_not_held_to_human_limits_and_a_workspace_can_set_a_roles_limit() {
    let app = spawn_app_with(|config| {
        config.limits.rate_limit_per_second = 5;
        config.limits.rate_limit_burst = 5;
    })
    .await;
    // The generator's one token, from eight clients at once: far past the human limit of 5.
    let generator = app.token(&[Role::Generator]);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (channel, token) = (app.channel.clone(), generator.clone());
            tokio::spawn(async move {
                let mut client = WorkspaceServiceClient::new(channel);
                for _ in 0..40 {
                    client
                        .get_workspace(authed(pb::GetWorkspaceRequest::default(), &token))
                        .await?;
                }
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    for call in calls {
        call.await
            .expect("task")
            .expect("a service principal is not throttled");
    }

    // A platform-admin narrows this workspace's admin limit; a workspace admin may not.
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let limits = |paths: Vec<&str>| pb::UpdateSettingsRequest {
        request_id: request_id(),
        workspace_id: String::new(),
        settings: Some(pb::Settings {
            rate_limits: [(
                "admin".to_owned(),
                pb::RateLimit {
                    per_second: 1,
                    burst: 2,
                },
            )]
            .into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.into_iter().map(str::to_owned).collect(),
        }),
    };
    let refused = client
        .update_settings(authed(
            limits(vec!["rate_limits"]),
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect_err("not for a workspace admin");
    assert_eq!(reason(&refused), "RATE_LIMITS_NEED_PLATFORM_ADMIN");
    client
        .update_settings(authed(
            limits(vec!["rate_limits"]),
            &app.token(&[Role::PlatformAdmin]),
        ))
        .await
        .expect("a platform-admin sets it");
    let admin = app.token(&[Role::Admin]);
    let mut refused = None;
    for _ in 0..4 {
        if let Err(status) = client
            .get_workspace(authed(pb::GetWorkspaceRequest::default(), &admin))
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the workspace's burst of 2 is used up");
    assert_eq!(reason(&status), "RATE_LIMITED");
    let violation = status
        .get_details_quota_failure()
        .expect("quota failure")
        .violations
        .remove(0);
    assert_eq!(violation.subject, "rate_limit:admin");
    assert!(
        violation
            .description
            .contains("workspace rate limit of role admin (1 calls per second"),
        "{}",
        violation.description
    );
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(
        info.metadata.get("source").map(String::as_str),
        Some("workspace")
    );
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
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
    let listed = client
        .list_workspaces(authed(pb::ListWorkspacesRequest::default(), &token))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.workspaces.iter().all(|w| w.name != "big"));
}

#[tokio::test]
async fn rpc_latency_by_method_and_status_and_background_failures_by_job_are_recorded() {
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

    // A promotion the sweeper must complete (a use now costs more than it holds), whose refund
    // cannot go through: the failure is counted under its job.
    let stuck =
        crate::background::promoted(&app, app.default_workspace, "stone", 100, 3, None).await;
    crate::promotion_support::update_promotion_settings(
        &app,
        proto::promotion::v1::PromotionSettings {
            cost_per_use: 5,
            ..Default::default()
        },
        &["promotion.cost_per_use"],
    )
    .await;
    stuck.poison(&app, true).await;
    assert_eq!(app.promotions.sweep().await.failed, 1);
    let text = handle.render();
    assert!(
        text.contains("promo_background_failures_total{job=\"promotion_sweeper\"}"),
        "{text}"
    );
}

fn big_batch(
    source: uuid::Uuid,
    target: uuid::Uuid,
    size: usize,
) -> proto::ledger::v1::CreateTransfersRequest {
    proto::ledger::v1::CreateTransfersRequest {
        transfers: (0..size)
            .map(|_| proto::ledger::v1::Transfer {
                id: uuid::Uuid::new_v4().to_string(),
                debit_account_id: source.to_string(),
                credit_account_id: target.to_string(),
                amount: 1,
                code: "LOAD".to_owned(),
                ..Default::default()
            })
            .collect(),
    }
}

async fn two_accounts(app: &crate::helpers::TestApp, token: &str) -> (uuid::Uuid, uuid::Uuid) {
    use proto::ledger::v1 as ledger;
    let (source, target) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let accounts = [source, target]
        .iter()
        .map(|id| ledger::Account {
            id: id.to_string(),
            asset: "CREDITS".to_owned(),
            code: "LOAD".to_owned(),
            ..Default::default()
        })
        .collect();
    ledger::ledger_service_client::LedgerServiceClient::new(app.channel.clone())
        .create_accounts(authed(ledger::CreateAccountsRequest { accounts }, token))
        .await
        .expect("accounts");
    (source, target)
}

#[tokio::test]
async fn a_call_past_its_deadline_answers_deadline_exceeded() {
    // The accounts come from a gateway with the default timeout (a first write on a fresh pool
    // may itself take 10 ms); the slow call goes to one that allows 10 ms, on the same database.
    let setup = spawn_app().await;
    let token = setup.token(&[Role::Admin]);
    let (source, target) = two_accounts(&setup, &token).await;
    let url = setup.database_url.clone();
    let app = spawn_app_with(move |config| {
        config.database_url = url;
        config.limits.request_timeout_ms = 10;
    })
    .await;
    let mut client =
        proto::ledger::v1::ledger_service_client::LedgerServiceClient::new(app.channel.clone());
    // 8,000 transfers cannot be decoded, applied and committed in 10 ms.
    let status = client
        .create_transfers(authed(big_batch(source, target, 8000), &token))
        .await
        .expect_err("too slow");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed() {
    let app = spawn_app_with(|config| config.limits.max_concurrent_requests = 1).await;
    let token = app.token(&[Role::Admin]);
    let (source, target) = two_accounts(&app, &token).await;
    let mut calls = Vec::new();
    for _ in 0..12 {
        let mut client =
            proto::ledger::v1::ledger_service_client::LedgerServiceClient::new(app.channel.clone());
        let request = authed(big_batch(source, target, 2000), &token);
        calls.push(tokio::spawn(async move {
            client.create_transfers(request).await
        }));
    }
    let mut shed = 0;
    let mut served = 0;
    for call in calls {
        match call.await.expect("task") {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable);
                assert_eq!(reason(&status), "OVERLOADED");
                assert!(status.get_details_retry_info().is_some());
                shed += 1;
            }
        }
    }
    assert!(served >= 1, "the first call is served");
    assert!(
        shed >= 1,
        "twelve overlapping calls with one slot shed some"
    );
}

#[tokio::test]
async fn the_idempotency_sweeper_forgets_old_request_ids() {
    let app = spawn_app().await;
    let mut client = WorkspaceServiceClient::new(app.channel.clone());
    let token = app.token(&[Role::PlatformAdmin]);
    let request = pb::CreateWorkspaceRequest {
        request_id: request_id(),
        name: "swept".to_owned(),
        ..Default::default()
    };
    client
        .create_workspace(authed(request.clone(), &token))
        .await
        .expect("created");
    let database = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("connect");
    let kept =
        kernel::idempotency::sweep(&database, chrono::Utc::now() - chrono::Duration::hours(1))
            .await
            .expect("sweep");
    assert_eq!(kept, 0, "a fresh record is within retention");
    let swept =
        kernel::idempotency::sweep(&database, chrono::Utc::now() + chrono::Duration::hours(1))
            .await
            .expect("sweep");
    assert!(swept >= 1);
    let status = client
        .create_workspace(authed(request, &token))
        .await
        .expect_err("replayed as new");
    assert_eq!(
        reason(&status),
        "WORKSPACE_ALREADY_EXISTS",
        "once forgotten, a retry runs again and meets the result"
    );
}
