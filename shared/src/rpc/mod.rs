//! gRPC plumbing both servers share: errors, server limits and lifecycle, telemetry.

pub mod error;
pub mod idempotency;
pub mod server;
pub mod telemetry;
pub mod validate;

pub use error::{ApiError, Violation};
pub use idempotency::{Idempotency, SavedResponse};

/// A wire timestamp.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
