//! gRPC plumbing both servers share: errors, the idempotent-command runner, request
//! parsing, server limits and lifecycle, telemetry, call metrics.

pub mod auth;
pub mod command;
pub mod connection;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod peer;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod validate;
pub mod watch;

pub use command::{
    CommandError, CommandHost, Lookup, command, command_or_refusal, execute, part_command,
};
pub use error::{ApiError, Violation};

/// Whether a peer's answer means it could not serve now (an outage a retry may outlast),
/// rather than a fault in what was asked or in the peer itself.
pub fn is_outage(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::ResourceExhausted
    )
}

/// A wire timestamp.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
