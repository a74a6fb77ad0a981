//! The one place where service errors become gRPC statuses (AIP-193).
//!
//! Every error a client can see carries a canonical code, an `ErrorInfo` with a stable
//! UPPER_SNAKE_CASE reason and a `promo.<domain>` domain, and where it helps `BadRequest`,
//! `PreconditionFailure`, `QuotaFailure` + `RetryInfo`. Internal failures never leak their
//! detail: the client gets "internal error" and an error id, the log gets the detail.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The canonical codes this platform answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    Unauthenticated,
    FailedPrecondition,
    ResourceExhausted,
    /// A concurrent transaction won; the whole operation may be retried.
    Aborted,
    Unavailable,
    DeadlineExceeded,
    Internal,
}

impl ErrorCode {
    /// The gRPC code; the only mapping from our codes to tonic's.
    pub fn grpc(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

/// A precondition that did not hold (`google.rpc.PreconditionFailure.Violation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreconditionViolation {
    pub kind: String,
    pub subject: String,
    pub description: String,
}

/// An error as a client will see it, plus the detail only the log may see. Boxed so that
/// `Result<T, ServiceError>` stays one pointer wide on the error side.
#[derive(Clone, Debug)]
pub struct ServiceError {
    body: Box<ErrorBody>,
}

#[derive(Clone, Debug)]
struct ErrorBody {
    code: ErrorCode,
    reason: String,
    domain: String,
    message: String,
    metadata: HashMap<String, String>,
    field_violations: Vec<(String, String)>,
    preconditions: Vec<PreconditionViolation>,
    quota: Option<(String, String)>,
    retry_after: Option<Duration>,
    /// Detail for the log only; never sent to a client.
    internal_detail: Option<String>,
    /// True when the database reported a serialization failure, deadlock or busy database:
    /// the whole transaction function may run again.
    retryable: bool,
}

/// The domain of errors raised by shared infrastructure rather than a business domain.
pub const KERNEL_DOMAIN: &str = "promo.kernel";

/// Longest status message a client gets.
const MAX_MESSAGE_CHARS: usize = 512;
/// Longest field name, subject or description in an error detail.
const MAX_DETAIL_CHARS: usize = 256;
/// Most field violations one error carries.
const MAX_VIOLATIONS: usize = 100;

fn cap(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl ServiceError {
    /// An error with a code, a stable reason and a message safe to show the caller.
    pub fn new(
        code: ErrorCode,
        domain: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> ServiceError {
        debug_assert!(
            reason
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "reason must be UPPER_SNAKE_CASE"
        );
        ServiceError {
            body: Box::new(ErrorBody {
                code,
                reason: reason.to_owned(),
                domain: domain.to_owned(),
                message: message.into(),
                metadata: HashMap::new(),
                field_violations: Vec::new(),
                preconditions: Vec::new(),
                quota: None,
                retry_after: None,
                internal_detail: None,
                retryable: false,
            }),
        }
    }

    /// INVALID_ARGUMENT with one field violation; add more with [`ServiceError::with_field`].
    pub fn invalid_field(
        domain: &str,
        field: &str,
        description: impl Into<String>,
    ) -> ServiceError {
        let description = description.into();
        ServiceError::new(
            ErrorCode::InvalidArgument,
            domain,
            "INVALID_ARGUMENT",
            format!("invalid {field}: {description}"),
        )
        .with_field(field, description)
    }

    /// NOT_FOUND; a missing and a foreign resource must look the same, so callers pass no detail.
    pub fn not_found(domain: &str, reason: &str, resource: &str) -> ServiceError {
        ServiceError::new(
            ErrorCode::NotFound,
            domain,
            reason,
            format!("{resource} not found"),
        )
    }

    pub fn permission_denied(
        domain: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> ServiceError {
        ServiceError::new(ErrorCode::PermissionDenied, domain, reason, message)
    }

    pub fn unauthenticated(reason: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorCode::Unauthenticated, KERNEL_DOMAIN, reason, message)
    }

    /// FAILED_PRECONDITION with one precondition violation.
    pub fn failed_precondition(
        domain: &str,
        reason: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> ServiceError {
        let message = message.into();
        let mut error = ServiceError::new(
            ErrorCode::FailedPrecondition,
            domain,
            reason,
            message.clone(),
        );
        error.body.preconditions.push(PreconditionViolation {
            kind: reason.to_owned(),
            subject: subject.into(),
            description: message,
        });
        error
    }

    /// RESOURCE_EXHAUSTED with `QuotaFailure` and `RetryInfo`.
    pub fn quota_exceeded(
        domain: &str,
        reason: &str,
        subject: impl Into<String>,
        description: impl Into<String>,
        retry_after: Duration,
    ) -> ServiceError {
        let description = description.into();
        let mut error = ServiceError::new(
            ErrorCode::ResourceExhausted,
            domain,
            reason,
            description.clone(),
        );
        error.body.quota = Some((subject.into(), description));
        error.body.retry_after = Some(retry_after);
        error
    }

    /// INTERNAL: the detail is logged when the error is turned into a status, never sent.
    pub fn internal(detail: impl fmt::Display) -> ServiceError {
        let mut error = ServiceError::new(
            ErrorCode::Internal,
            KERNEL_DOMAIN,
            "INTERNAL",
            "internal error",
        );
        error.body.internal_detail = Some(detail.to_string());
        error
    }

    /// UNAVAILABLE, e.g. the database could not be reached or the server is shedding load.
    pub fn unavailable(
        reason: &str,
        message: impl Into<String>,
        detail: impl fmt::Display,
    ) -> ServiceError {
        let mut error = ServiceError::new(ErrorCode::Unavailable, KERNEL_DOMAIN, reason, message);
        error.body.internal_detail = Some(detail.to_string());
        error.body.retry_after = Some(Duration::from_millis(200));
        error
    }

    /// A concurrent transaction won; running the whole transaction again may succeed.
    pub fn retryable_conflict(detail: impl fmt::Display) -> ServiceError {
        let mut error = ServiceError::new(
            ErrorCode::Aborted,
            KERNEL_DOMAIN,
            "CONCURRENT_MODIFICATION",
            "the operation conflicted with a concurrent one; retry it",
        );
        error.body.internal_detail = Some(detail.to_string());
        error.body.retryable = true;
        error
    }

    pub fn with_field(mut self, field: &str, description: impl Into<String>) -> ServiceError {
        self.body
            .field_violations
            .push((field.to_owned(), description.into()));
        self
    }

    pub fn with_metadata(mut self, key: &str, value: impl Into<String>) -> ServiceError {
        self.body.metadata.insert(key.to_owned(), value.into());
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.body.code
    }

    pub fn reason(&self) -> &str {
        &self.body.reason
    }

    pub fn domain(&self) -> &str {
        &self.body.domain
    }

    pub fn message(&self) -> &str {
        &self.body.message
    }

    pub fn field_violations(&self) -> &[(String, String)] {
        &self.body.field_violations
    }

    pub fn is_retryable(&self) -> bool {
        self.body.retryable
    }

    /// Converts to a status, logging what the client must not see. Every text is capped, so no
    /// answer grows with what a caller sent (callers echo input only through `ids::echo`; this is
    /// the backstop).
    pub fn into_status(self) -> tonic::Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            self.body.reason.clone(),
            self.body.domain.clone(),
            self.body.metadata.clone(),
        );
        // Enough violations to name every bad row of a large import, never an unbounded list.
        for (field, description) in self.body.field_violations.iter().take(MAX_VIOLATIONS) {
            details.add_bad_request_violation(
                cap(field, MAX_DETAIL_CHARS),
                cap(description, MAX_DETAIL_CHARS),
            );
        }
        for violation in &self.body.preconditions {
            details.add_precondition_failure_violation(
                violation.kind.clone(),
                cap(&violation.subject, MAX_DETAIL_CHARS),
                cap(&violation.description, MAX_DETAIL_CHARS),
            );
        }
        if let Some((subject, description)) = &self.body.quota {
            details.add_quota_failure_violation(subject.clone(), description.clone());
        }
        if let Some(retry_after) = self.body.retry_after {
            details.set_retry_info(Some(retry_after));
        }
        let mut message = cap(&self.body.message, MAX_MESSAGE_CHARS);
        if let Some(detail) = &self.body.internal_detail {
            let error_id = uuid::Uuid::new_v4().to_string();
            match self.body.code {
                ErrorCode::Internal => {
                    tracing::error!(error_id = %error_id, reason = %self.body.reason, detail = %detail, "internal error")
                }
                _ => {
                    tracing::warn!(error_id = %error_id, reason = %self.body.reason, detail = %detail, "request failed")
                }
            }
            message = format!("{message} (error id {error_id})");
            details.set_request_info(error_id, "");
        }
        tonic::Status::with_error_details(self.body.code.grpc(), message, details)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {}: {}",
            self.body.code, self.body.reason, self.body.message
        )?;
        if let Some(detail) = &self.body.internal_detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

impl From<ServiceError> for tonic::Status {
    fn from(error: ServiceError) -> tonic::Status {
        error.into_status()
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(error: sea_orm::DbErr) -> ServiceError {
        match crate::db::classify(&error) {
            crate::db::DbErrorKind::Retryable => ServiceError::retryable_conflict(error),
            crate::db::DbErrorKind::Unavailable => ServiceError::unavailable(
                "DATABASE_UNAVAILABLE",
                "the database is unavailable",
                error,
            ),
            crate::db::DbErrorKind::UniqueViolation | crate::db::DbErrorKind::Other => {
                ServiceError::internal(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail_from_the_client() {
        let status =
            ServiceError::internal("SELECT * FROM secret_table failed at /src/db.rs").into_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().starts_with("internal error (error id "));
        assert!(!status.message().contains("secret_table"));
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "INTERNAL");
        assert!(status.get_details_request_info().is_some());
    }

    #[test]
    fn field_violations_become_bad_request_details() {
        let status = ServiceError::invalid_field("promo.admin", "name", "must not be empty")
            .with_field("modules", "unknown module \"x\"")
            .into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad_request = status.get_details_bad_request().expect("bad request");
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "modules"]);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", "promo.admin")
        );
    }

    #[test]
    fn no_text_in_a_status_grows_with_the_input() {
        let huge = "x".repeat(100_000);
        let mut error = ServiceError::invalid_field("promo.test", &huge, huge.clone());
        for _ in 0..500 {
            error = error.with_field("f", huge.clone());
        }
        let status = error.into_status();
        assert!(status.message().len() < 1_000, "{}", status.message().len());
        let bad_request = status.get_details_bad_request().expect("bad request");
        assert_eq!(bad_request.field_violations.len(), MAX_VIOLATIONS);
        assert!(
            bad_request
                .field_violations
                .iter()
                .all(|v| v.field.len() < 1_000 && v.description.len() < 1_000)
        );
    }

    #[test]
    fn quota_errors_carry_quota_failure_and_retry_info() {
        let status = ServiceError::quota_exceeded(
            KERNEL_DOMAIN,
            "RATE_LIMITED",
            "principal:abc",
            "too many requests",
            Duration::from_millis(1500),
        )
        .into_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status
                .get_details_quota_failure()
                .expect("quota")
                .violations
                .len(),
            1
        );
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(1500)));
    }
}
