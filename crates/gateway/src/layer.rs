//! The gateway's tower layer, in front of every service: request ids, load shedding, the access
//! table (authentication, roles, modules), per-principal rate limits by role, deadlines, spans and
//! metrics; and a backstop that gives every error leaving the server an `ErrorInfo`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use kernel::error::KERNEL_DOMAIN;
use kernel::{Principal, Role, ServiceError};
use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::access::{self, Access};
use crate::directory::WorkspaceDirectory;
use crate::ratelimit::{RateLimiter, applied_limit};
use crate::token::{TokenError, TokenVerifier};

/// Settings and shared state of the layer.
pub struct GatewayPolicy {
    pub verifier: TokenVerifier,
    pub directory: Arc<WorkspaceDirectory>,
    /// One permit per request in flight; none left means shed the request.
    pub in_flight: Arc<Semaphore>,
    pub rate_limiter: RateLimiter,
    /// The configured limits, per role.
    pub limits: crate::config::Limits,
    pub request_timeout: Duration,
}

/// What a refused token answers: expired and not-yet-valid tokens say so; the rest say only that
/// the token is invalid (the detail goes to the log).
fn token_refused(error: &TokenError) -> ServiceError {
    match error {
        TokenError::Expired => ServiceError::unauthenticated(
            "TOKEN_EXPIRED",
            "the bearer token has expired; mint a new one",
        ),
        TokenError::NotYetValid => ServiceError::unauthenticated(
            "TOKEN_NOT_YET_VALID",
            "the bearer token is not valid yet (its nbf claim is in the future)",
        ),
        TokenError::TooLong { maximum, .. } => ServiceError::unauthenticated(
            "INVALID_TOKEN",
            format!(
                "the bearer token lives longer than the {maximum}-second maximum (jwt_max_lifetime_seconds); mint one with a shorter ttl"
            ),
        ),
        TokenError::Rejected(_) | TokenError::BadClaim(_) => ServiceError::unauthenticated(
            "INVALID_TOKEN",
            "the bearer token is invalid: wrong signature, issuer or audience, or a malformed claim (sub and workspace must be UUIDs, roles known role names)",
        ),
    }
}

impl GatewayPolicy {
    pub fn new(
        verifier: TokenVerifier,
        directory: Arc<WorkspaceDirectory>,
        limits: &crate::config::Limits,
    ) -> GatewayPolicy {
        GatewayPolicy {
            verifier,
            directory,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            rate_limiter: RateLimiter::default(),
            limits: limits.clone(),
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
        }
    }

    /// Authenticates and authorizes one call to a protected method.
    async fn admit(
        &self,
        rule: &access::MethodRule,
        headers: &http::HeaderMap,
    ) -> Result<Principal, ServiceError> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ServiceError::unauthenticated("UNAUTHENTICATED", "missing bearer token")
            })?;
        let principal = self.verifier.verify(token.trim()).map_err(|error| {
            tracing::info!(%error, "token refused");
            token_refused(&error)
        })?;
        if !principal.has_any_role(rule.roles) {
            return Err(ServiceError::permission_denied(
                KERNEL_DOMAIN,
                "ROLE_NOT_ADMITTED",
                format!(
                    "this method admits the roles {}; the token has {}",
                    Role::names(rule.roles),
                    Role::names(&principal.roles)
                ),
            )
            .with_metadata("admitted_roles", Role::names(rule.roles)));
        }
        let Some(policy) = self.directory.policy(principal.workspace_id).await? else {
            return Err(ServiceError::unauthenticated(
                "UNKNOWN_WORKSPACE",
                "the token names no existing workspace",
            ));
        };
        if let Some(module) = rule.module
            && !policy.modules.contains(&module)
        {
            return Err(ServiceError::permission_denied(
                KERNEL_DOMAIN,
                "MODULE_DISABLED",
                format!("the {module} module is not enabled for this workspace"),
            )
            .with_metadata("module", module.as_str()));
        }
        if let Some(applied) = applied_limit(&principal, &policy.rate_limits, &self.limits)
            && let Err(wait) = self
                .rate_limiter
                .check((principal.workspace_id, principal.subject), applied.limit)
        {
            let (per_second, burst) = (applied.limit.per_second, applied.limit.burst);
            return Err(ServiceError::quota_exceeded(
                KERNEL_DOMAIN,
                "RATE_LIMITED",
                format!("rate_limit:{}", applied.role),
                format!(
                    "the {} rate limit of role {} ({per_second} calls per second per principal, burst {burst}) is used up",
                    applied.source, applied.role
                ),
                wait.max(Duration::from_millis(1)),
            )
            .with_metadata("role", applied.role.as_str())
            .with_metadata("per_second", per_second.to_string())
            .with_metadata("burst", burst.to_string())
            .with_metadata("source", applied.source));
        }
        Ok(principal)
    }
}

#[derive(Clone)]
pub struct GatewayLayer {
    policy: Arc<GatewayPolicy>,
}

impl GatewayLayer {
    pub fn new(policy: Arc<GatewayPolicy>) -> GatewayLayer {
        GatewayLayer { policy }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> GatewayService<S> {
        GatewayService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GatewayService<S> {
    inner: S,
    policy: Arc<GatewayPolicy>,
}

type Body = tonic::body::Body;

impl<S, ReqBody> Service<Request<ReqBody>> for GatewayService<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let started = Instant::now();
            let path = request.uri().path().to_owned();
            let request_id = request_id_of(request.headers());
            let span = tracing::info_span!(
                "rpc",
                otel.kind = "server",
                rpc.method = %path,
                request_id = %request_id,
                principal = tracing::field::Empty,
                rpc.grpc.status_code = tracing::field::Empty,
                latency_us = tracing::field::Empty,
            );
            let mut response = async {
                let access = access::lookup(&path);
                if let Access::Open = access {
                    return inner.call(request).await;
                }
                let Ok(_permit) = policy.in_flight.clone().try_acquire_owned() else {
                    return Ok(status_response(ServiceError::unavailable(
                        "OVERLOADED",
                        "the server is at its concurrency limit; retry shortly",
                        "load shed",
                    )));
                };
                let Access::Protected(rule) = access else {
                    return Ok(status_response(ServiceError::permission_denied(
                        KERNEL_DOMAIN,
                        "METHOD_NOT_ADMITTED",
                        "no caller may use this method",
                    )));
                };
                match policy.admit(rule, request.headers()).await {
                    Ok(principal) => {
                        tracing::Span::current()
                            .record("principal", tracing::field::display(principal.subject));
                        request.extensions_mut().insert(principal);
                    }
                    Err(error) => return Ok(status_response(error)),
                }
                let deadline = client_deadline(request.headers())
                    .map_or(policy.request_timeout, |client| {
                        client.min(policy.request_timeout)
                    });
                match tokio::time::timeout(deadline, inner.call(request)).await {
                    Ok(result) => result,
                    Err(_) => Ok(status_response(ServiceError::new(
                        kernel::ErrorCode::DeadlineExceeded,
                        KERNEL_DOMAIN,
                        "DEADLINE_EXCEEDED",
                        "the request did not finish before its deadline",
                    ))),
                }
            }
            .instrument(span.clone())
            .await;
            if let Ok(answer) = &mut response {
                give_error_info(answer);
            }
            let code = match &response {
                Ok(response) => grpc_code_of(response),
                Err(_) => "internal",
            };
            let elapsed = started.elapsed();
            span.record("rpc.grpc.status_code", code);
            span.record("latency_us", elapsed.as_micros() as u64);
            // Successful calls are counted by the metrics; logging each one would cost the hot
            // selection path more than the call itself.
            span.in_scope(|| {
                let latency_us = elapsed.as_micros() as u64;
                match code {
                    "ok" => tracing::debug!(code, latency_us, "rpc finished"),
                    "internal" | "unknown" | "data_loss" => {
                        tracing::warn!(code, latency_us, "rpc finished")
                    }
                    _ => tracing::info!(code, latency_us, "rpc finished"),
                }
            });
            metrics::histogram!("promo_rpc_duration_seconds", "method" => path.clone(), "code" => code)
                .record(elapsed.as_secs_f64());
            metrics::counter!("promo_rpc_total", "method" => path, "code" => code).increment(1);
            if let Ok(response) = &mut response
                && let Ok(value) = HeaderValue::from_str(&request_id)
            {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        })
    }
}

fn status_response(error: ServiceError) -> Response<Body> {
    error.into_status().into_http()
}

/// Every error leaving the server carries an `ErrorInfo`: an error that tonic raised itself
/// (a message over the size limit, an unsupported encoding) has none, so it is answered again
/// with a reason of its code and a message of ours. An INTERNAL one also hides its text.
fn give_error_info(response: &mut Response<Body>) {
    let headers = response.headers();
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .filter(|code| *code != 0)
    else {
        return;
    };
    if headers.contains_key("grpc-status-details-bin") {
        return;
    }
    let original = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let error = match tonic::Code::from_i32(code) {
        tonic::Code::Internal | tonic::Code::Unknown => ServiceError::internal(original),
        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => ServiceError::new(
            kernel::ErrorCode::ResourceExhausted,
            KERNEL_DOMAIN,
            "MESSAGE_TOO_LARGE",
            "the request is larger than this server accepts (limits.max_message_bytes)",
        ),
        tonic::Code::Unimplemented => ServiceError::new(
            kernel::ErrorCode::InvalidArgument,
            KERNEL_DOMAIN,
            "UNSUPPORTED_REQUEST",
            "this server does not support the request's method, encoding or compression",
        ),
        tonic::Code::Cancelled => ServiceError::new(
            kernel::ErrorCode::Aborted,
            KERNEL_DOMAIN,
            "CANCELLED",
            "the call was cancelled",
        ),
        other => {
            tracing::info!(code = ?other, message = %original, "answering an error without details");
            ServiceError::new(
                kernel::ErrorCode::InvalidArgument,
                KERNEL_DOMAIN,
                "MALFORMED_REQUEST",
                "the request could not be processed as sent",
            )
        }
    };
    *response = status_response(error);
}

/// The caller's `x-request-id` when it is short printable ASCII, else a fresh UUID.
fn request_id_of(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The `grpc-timeout` header (`<up to 8 digits><H|M|S|m|u|n>`), if valid.
fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The status of a unary response: errors come trailers-only (in the headers); a response without
/// `grpc-status` in its headers carries OK in its trailers.
fn grpc_code_of(response: &Response<Body>) -> &'static str {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(0);
    code_name(tonic::Code::from_i32(code))
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// Keeps the rate limiter's memory bounded: forget principals idle long enough to be full again.
pub async fn prune_rate_limiter(policy: Arc<GatewayPolicy>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        policy.rate_limiter.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_headers_parse() {
        let mut headers = http::HeaderMap::new();
        for (value, expected) in [
            ("5S", Some(Duration::from_secs(5))),
            ("250m", Some(Duration::from_millis(250))),
            ("2H", Some(Duration::from_secs(7200))),
            ("x", None),
            ("5X", None),
            ("123456789S", None),
        ] {
            headers.insert("grpc-timeout", HeaderValue::from_static(value));
            assert_eq!(client_deadline(&headers), expected, "{value}");
        }
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id_of(&headers), "abc-123");
        headers.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id_of(&headers), "has space");
    }
}
