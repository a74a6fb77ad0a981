//! The yardstick for the selection benchmark: a bare tonic server with one unary RPC that does
//! nothing (grpc.health.v1.Health/Check), no gateway layers. Prints its address and serves until
//! killed.

use tokio_stream::wrappers::TcpListenerStream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
