//! binding-service: the insured-person registry and family bindings.
//!
//! `api` translates gRPC calls into use cases and their results back; `app` holds the use
//! cases, one method each; `domain` holds the rules (no I/O); `store` persists (SQLite or
//! PostgreSQL, one trait per aggregate); `peer` asks payment-service for balances; and
//! `server` wires it all with health, reflection, limits and graceful shutdown.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod peer;
pub mod server;
pub mod store;

/// The ErrorInfo domain of this service's errors.
pub const ERROR_DOMAIN: &str = "binding.gongji";
