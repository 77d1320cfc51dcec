//! gRPC plumbing both servers share: errors, server limits and lifecycle, telemetry.

pub mod error;
pub mod server;
pub mod telemetry;
pub mod validate;

pub use error::{ApiError, Violation};

use sha2::{Digest, Sha256};

/// The fingerprint of a request for idempotency: SHA-256 of its canonical encoding, so a
/// retry with the same content matches and one with other content does not.
pub fn fingerprint(request: &impl prost::Message) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}
