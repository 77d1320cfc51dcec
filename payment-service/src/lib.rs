//! payment-service: personal accounts, the double-entry ledger, premium and medical-expense
//! payments, refunds and settlement between regions.
//!
//! `api` translates gRPC calls into use cases and their results back; `app` holds the use
//! cases, one method each; `domain` holds the rules (no I/O); `store` persists (SQLite or
//! PostgreSQL, one trait per aggregate); `peer` asks binding-service before money moves for
//! someone else (failing closed); `server` wires it all.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod peer;
pub mod server;
pub mod store;

/// The ErrorInfo domain of this service's errors.
pub const ERROR_DOMAIN: &str = "payment.gongji";
