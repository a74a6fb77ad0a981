//! The small HTTP listener beside gRPC (SYSTEM.md §8½): `GET /l/{code}` follows a short link —
//! the click is counted exactly as RecordClick counts it, then the browser is sent on with a 302
//! to the link's tracking URL. `POST /webhooks/payouts` takes the payout provider's events,
//! authenticated by their `Stripe-Signature` alone (payouts::webhooks). Nothing else is served.
//!
//! The visitor's address is the TCP peer's (put the listener behind a proxy that preserves it,
//! or terminate there): it is hashed with the user agent into the visitor id and not stored. Each
//! address is held to `limits.http_rate_limit_per_second` (burst `limits.http_rate_limit_burst`);
//! past it the answer is 429 with Retry-After, and nothing is counted.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kernel::Module;
use tokio::net::TcpListener;

use crate::directory::WorkspaceDirectory;
use crate::ratelimit::RateLimiter;

/// The domains whose routes the listener serves.
#[derive(Clone)]
pub struct Domains {
    pub growth: Arc<growth::Growth>,
    pub payouts: Arc<payouts::Payouts>,
    /// `payouts.webhook_secret`, split; empty turns the webhook route off (404).
    pub payout_webhook_secrets: Arc<Vec<String>>,
}

#[derive(Clone)]
struct Routes {
    growth: Arc<growth::Growth>,
    payouts: Arc<payouts::Payouts>,
    payout_webhook_secrets: Arc<Vec<String>>,
    directory: Arc<WorkspaceDirectory>,
    limiter: Arc<RateLimiter>,
    limit: kernel::settings::RateLimit,
}

/// The rate limiter's key of a client address (every address fits 128 bits).
fn address_key(peer: &SocketAddr) -> (uuid::Uuid, uuid::Uuid) {
    let bits = match peer.ip() {
        std::net::IpAddr::V4(ip) => u128::from(ip.to_ipv6_mapped()),
        std::net::IpAddr::V6(ip) => u128::from(ip),
    };
    (uuid::Uuid::nil(), uuid::Uuid::from_u128(bits))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// 429 with Retry-After when `peer` is past its rate.
fn rate_limited(routes: &Routes, peer: &SocketAddr) -> Option<Response> {
    let wait = routes
        .limiter
        .check(address_key(peer), routes.limit)
        .err()?;
    metrics::counter!("promo_http_rate_limited_total").increment(1);
    let seconds = wait.as_secs() + 1;
    Some(
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            "too many requests\n",
        )
            .into_response(),
    )
}

async fn payout_webhook(
    State(routes): State<Routes>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = rate_limited(&routes, &peer) {
        return refused;
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let answer = payouts::webhooks::handle(
        &routes.payouts,
        &routes.payout_webhook_secrets,
        signature,
        &body,
    )
    .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, answer.message).into_response()
}

async fn follow_link(
    State(routes): State<Routes>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = rate_limited(&routes, &peer) {
        return refused;
    }
    let not_found = || (StatusCode::NOT_FOUND, "no such link\n").into_response();
    let failed = |error: kernel::ServiceError| {
        tracing::error!(%error, "following a short link failed");
        (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response()
    };
    let link = match growth::links::find_public(&routes.growth, &code).await {
        Ok(Some(link)) => link,
        Ok(None) => return not_found(),
        Err(error) => return failed(error),
    };
    match routes.directory.policy(link.workspace_id).await {
        Ok(Some(policy)) if policy.modules.contains(&Module::Growth) => {}
        Ok(_) => return not_found(),
        Err(error) => return failed(error),
    }
    let ip = peer.ip().to_string();
    let input = growth::links::ClickInput {
        ip: &ip,
        user_agent: header_text(&headers, header::USER_AGENT),
        referrer: header_text(&headers, header::REFERER),
        country: "",
    };
    if let Err(error) = growth::links::count_click(&routes.growth, &link, &input).await {
        // The visitor still gets where they were going; the click is lost and logged.
        tracing::warn!(%error, "a short-link click was not recorded");
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, link.tracking_url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response()
}

/// Serves the HTTP routes on `listener` until `shutdown` resolves, each client address held to
/// `limit`.
pub async fn serve(
    listener: TcpListener,
    domains: Domains,
    directory: Arc<WorkspaceDirectory>,
    limit: kernel::settings::RateLimit,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limiter = Arc::new(RateLimiter::default());
    let pruner = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                interval.tick().await;
                limiter.prune();
            }
        })
    };
    let router = axum::Router::new()
        .route("/l/{code}", get(follow_link))
        .route("/webhooks/payouts", post(payout_webhook))
        .with_state(Routes {
            growth: domains.growth,
            payouts: domains.payouts,
            payout_webhook_secrets: domains.payout_webhook_secrets,
            directory,
            limiter,
            limit,
        });
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not turn Nagle's algorithm off");
        }
    });
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    pruner.abort();
    served
}
