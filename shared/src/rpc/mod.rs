//! gRPC plumbing both servers share: errors, server limits and lifecycle, telemetry.

pub mod error;
pub mod server;
pub mod telemetry;

pub use error::{ApiError, Violation};
