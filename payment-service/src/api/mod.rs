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
mod wallet;
mod watch;

use gongji_shared::rpc::{ApiError, validate};
use tonic::Status;

use crate::{ERROR_DOMAIN, app::AppError};

pub use account::AccountApi;
pub use medical::MedicalExpenseApi;
pub use premium::PremiumApi;
pub use settlement::SettlementApi;
pub use wallet::WalletApi;

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

/// An optional ID number field: empty is none.
pub(super) fn optional_id(
    value: &str,
    field: &str,
    today: chrono::NaiveDate,
) -> Result<Option<gongji_shared::IdNumber>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    validate::id_number(value, field, today)
        .map(Some)
        .map_err(status)
}

/// An optional date field: empty is none.
fn optional_date(value: &str, field: &str) -> Result<Option<chrono::NaiveDate>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    validate::date(value, field, "INVALID_DATE")
        .map(Some)
        .map_err(status)
}

/// A listing's range of business days from its `start_date` and `end_date` fields (either
/// may be empty).
pub(super) fn date_range(
    start: &str,
    end: &str,
    today: chrono::NaiveDate,
) -> Result<crate::domain::usage::DateRange, Status> {
    use crate::domain::usage::{DateRange, MAX_RANGE_DAYS, RangeError};
    let (from, to) = (
        optional_date(start, "start_date")?,
        optional_date(end, "end_date")?,
    );
    DateRange::parse(from, to, today).map_err(|e| {
        let message = match e {
            RangeError::Reversed => "end_date must not be before start_date".to_owned(),
            RangeError::TooLong => format!("the range covers at most {MAX_RANGE_DAYS} days"),
        };
        status(
            ApiError::invalid_argument("INVALID_DATE_RANGE", "start_date", message)
                .with_metadata("start_date", start)
                .with_metadata("end_date", end),
        )
    })
}
