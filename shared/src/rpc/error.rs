//! AIP-193 errors: a status code, exactly one `ErrorInfo` (UPPER_SNAKE reason, domain,
//! values in metadata), and `BadRequest` / `PreconditionFailure` details where they fit.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Most violations one error carries; a bound, since they are built from input.
const MAX_VIOLATIONS: usize = 32;

/// One failed rule, reported as a `PreconditionFailure` violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The reason code of the rule, e.g. `NAME_MISMATCH`.
    pub kind: String,
    /// What it is about, e.g. `beneficiary`.
    pub subject: String,
    /// A sentence for operators, without personal data.
    pub description: String,
}

/// An error on its way to the wire. Build it with a constructor per status code, add
/// metadata, and convert with [`ApiError::into_status`]. Boxed: errors are the rare path,
/// and a small `Result` keeps the common one cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    code: Code,
    reason: String,
    message: String,
    metadata: Vec<(String, String)>,
    field: Option<String>,
    violations: Vec<Violation>,
    retry_delay_ms: Option<u64>,
}

impl ApiError {
    fn new(code: Code, reason: &str, message: impl Into<String>) -> Self {
        debug_assert!(
            !reason.is_empty() && reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
            "reasons are UPPER_SNAKE: {reason}"
        );
        Self(Box::new(Inner {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            metadata: Vec::new(),
            field: None,
            violations: Vec::new(),
            retry_delay_ms: None,
        }))
    }

    /// INVALID_ARGUMENT about one request field (adds a `BadRequest` field violation).
    pub fn invalid_argument(reason: &str, field: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(Code::InvalidArgument, reason, message);
        error.0.field = Some(field.to_owned());
        error
    }

    /// INVALID_ARGUMENT about the request as a whole (no single field is to blame).
    pub fn invalid_request(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, reason, message)
    }

    /// DEADLINE_EXCEEDED: the call ran out of time; whether it took effect is unknown until
    /// it is retried with the same request_id.
    pub fn deadline_exceeded(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::DeadlineExceeded, reason, message)
    }

    /// NOT_FOUND.
    pub fn not_found(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, reason, message)
    }

    /// ALREADY_EXISTS.
    pub fn already_exists(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, reason, message)
    }

    /// FAILED_PRECONDITION: a rule refused the request.
    pub fn failed_precondition(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    /// UNAUTHENTICATED: no credentials, or none that hold.
    pub fn unauthenticated(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, reason, message)
    }

    /// PERMISSION_DENIED.
    pub fn permission_denied(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, reason, message)
    }

    /// RESOURCE_EXHAUSTED: a limit of ours is reached; retry later.
    pub fn resource_exhausted(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, reason, message)
    }

    /// UNAVAILABLE: a dependency could not answer; nothing changed; retry later.
    pub fn unavailable(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, reason, message)
    }

    /// ABORTED: a conflict that a retry with the same request_id resolves.
    pub fn aborted(reason: &str, message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, reason, message)
    }

    /// INTERNAL: a fault of ours; the message never carries details.
    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "INTERNAL",
            "internal error; nothing was changed, the request may be retried",
        )
    }

    /// Adds one metadata value (masked where it is personal data).
    pub fn with_metadata(mut self, key: &str, value: impl ToString) -> Self {
        self.0.metadata.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds a `PreconditionFailure` violation.
    pub fn with_violation(mut self, violation: Violation) -> Self {
        if self.0.violations.len() < MAX_VIOLATIONS {
            self.0.violations.push(violation);
        }
        self
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The ErrorInfo reason.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    /// Adds a `RetryInfo`: when the client may try again.
    pub fn with_retry_delay_ms(mut self, delay_ms: u64) -> Self {
        self.0.retry_delay_ms = Some(delay_ms);
        self
    }

    /// Builds the status with its details under `domain` (e.g. `binding.gongji`).
    pub fn into_status(self, domain: &str) -> Status {
        let inner = *self.0;
        let mut details = ErrorDetails::new();
        let metadata: HashMap<String, String> = inner.metadata.into_iter().collect();
        details.set_error_info(inner.reason, domain, metadata);
        if let Some(field) = inner.field {
            details.add_bad_request_violation(field, inner.message.clone());
        }
        for v in inner.violations {
            details.add_precondition_failure_violation(v.kind, v.subject, v.description);
        }
        if let Some(delay_ms) = inner.retry_delay_ms {
            details.set_retry_info(Some(std::time::Duration::from_millis(delay_ms)));
        }
        Status::with_error_details(inner.code, inner.message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_carries_one_error_info_with_reason_domain_and_metadata() {
        let status = ApiError::invalid_argument("INVALID_AMOUNT", "amount", "bad amount")
            .with_metadata("amount", "-1")
            .into_status("payment.gongji");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "INVALID_AMOUNT");
        assert_eq!(info.domain, "payment.gongji");
        assert_eq!(info.metadata.get("amount").map(String::as_str), Some("-1"));
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "amount"
        );
    }

    #[test]
    fn violations_become_a_precondition_failure() {
        let v = |kind: &str| Violation {
            kind: kind.to_owned(),
            subject: "beneficiary".to_owned(),
            description: "d".to_owned(),
        };
        let status = ApiError::failed_precondition("NAME_MISMATCH", "refused")
            .with_violation(v("NAME_MISMATCH"))
            .with_violation(v("SELF_BINDING"))
            .into_status("binding.gongji");
        let details = status.get_error_details();
        let kinds: Vec<_> = details
            .precondition_failure()
            .unwrap()
            .violations
            .iter()
            .map(|v| v.r#type.as_str())
            .collect();
        assert_eq!(kinds, ["NAME_MISMATCH", "SELF_BINDING"]);
    }
}
