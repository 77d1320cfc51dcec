//! What binding-service and payment-service share, in two halves a reader can tell apart:
//!
//! - [`domain`]: the domain types (`IdNumber`, `PersonName`, `RegionCode`, `Money`,
//!   `Relationship`, `CoverageYear`, `Policy`, `Clock`). No I/O, no tonic, no SQL.
//! - the plumbing: [`command`] (the idempotent-command record use cases and stores pass
//!   around; no tonic, no SQL), [`rpc`] (gRPC: AIP-193 errors, the idempotent-command
//!   runner, limits, health, reflection, shutdown, telemetry), [`db`] (connections and the
//!   idempotency SQL), [`vault`] (personal data sealed at rest, and its keys) and [`flags`]
//!   (the command-line flags both binaries take), and [`metrics`] (each service's Prometheus
//!   registry and its HTTP port).
//!
//! With the `testing` feature, [`testing`] makes fresh PostgreSQL databases for tests.
//!
//! The domain types are re-exported here because every crate names them.

pub mod command;
pub mod db;
pub mod domain;
pub mod flags;
pub mod metrics;
pub mod rpc;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;

pub use domain::{
    Clock, CoverageYear, IdNumber, Money, PersonName, Policy, RegionCode, Relationship, RequestId,
    policy,
};
