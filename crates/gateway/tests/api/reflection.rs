use std::collections::BTreeSet;

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_every_service_serving_without_a_token() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "promo.admin.v1.WorkspaceService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|status| panic!("{service}: {status:?}"));
        assert_eq!(
            response.get_ref().status(),
            ServingStatus::Serving,
            "{service}"
        );
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_services_and_describes_error_details() {
    let app = spawn_app().await;
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let requests = tokio_stream::iter([
        v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        },
        v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "google.rpc.ErrorInfo".to_owned(),
                ),
            ),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("stream")
        .into_inner();
    let mut services = BTreeSet::new();
    let mut described_error_info = false;
    while let Some(response) = responses.next().await {
        match response.expect("response").message_response {
            Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(
                list,
            )) => {
                services.extend(list.service.into_iter().map(|service| service.name));
            }
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
                files,
            )) => {
                described_error_info = !files.file_descriptor_proto.is_empty();
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    for expected in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "promo.admin.v1.WorkspaceService",
    ] {
        assert!(
            services.contains(expected),
            "{expected} missing from {services:?}"
        );
    }
    assert!(
        described_error_info,
        "google.rpc.ErrorInfo must be resolvable for grpcurl"
    );
}

#[tokio::test]
async fn reflection_v1_lists_the_same_services() {
    let app = spawn_app().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let requests = tokio_stream::iter([v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    }]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("stream")
        .into_inner();
    let Some(Ok(v1::ServerReflectionResponse {
        message_response:
            Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)),
        ..
    })) = responses.next().await
    else {
        panic!("no list answer");
    };
    assert!(
        list.service
            .iter()
            .any(|service| service.name == "promo.admin.v1.WorkspaceService")
    );
}
