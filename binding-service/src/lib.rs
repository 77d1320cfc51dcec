//! binding-service: the insured-person registry and family bindings.
//!
//! `api` translates and validates gRPC calls, `domain` holds the rules (no I/O), `store`
//! persists (SQLite or PostgreSQL), `peer` asks payment-service for balances, and
//! `server` wires it all with health, reflection, limits and graceful shutdown.

pub mod api;
pub mod config;
pub mod domain;
pub mod peer;
pub mod server;
pub mod store;

/// The ErrorInfo domain of this service's errors.
pub const ERROR_DOMAIN: &str = "binding.gongji";
