//! gRPC handlers: each parses the wire into domain types, calls one use case of `app`, and
//! maps the result back. State-changing RPCs go through `gongji_shared::rpc::command`, the
//! idempotent-command runner, with `App` as its host; use-case failures become statuses in
//! `error::app_status` alone.

mod account;
mod convert;
mod error;
mod medical;
mod premium;
mod settlement;
mod watch;

use gongji_shared::rpc::ApiError;
use tonic::Status;

use crate::{ERROR_DOMAIN, app::AppError};

pub use account::AccountApi;
pub use medical::MedicalExpenseApi;
pub use premium::PremiumApi;
pub use settlement::SettlementApi;

/// A wire error under this service's domain.
fn status(error: ApiError) -> Status {
    error.into_status(ERROR_DOMAIN)
}

/// A use case's failure.
fn failure(error: AppError) -> Status {
    error::app_status(error)
}

/// A page token is the position the next page starts below (newest-first listings).
fn page_token(token: &str) -> Result<Option<i64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            status(ApiError::invalid_argument(
                "INVALID_PAGE_TOKEN",
                "page_token",
                "page_token must come from a previous response",
            ))
        })
}
