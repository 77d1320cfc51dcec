//! payment-service: personal accounts, the double-entry ledger, premium and medical-expense
//! payments, refunds and settlement between regions.
//!
//! `api` translates and validates gRPC calls, `domain` holds the rules (no I/O), `store`
//! persists (SQLite or PostgreSQL), `peer` asks binding-service before money moves for
//! someone else (failing closed), and `server` wires it all.

pub mod api;
pub mod config;
pub mod domain;
pub mod peer;
pub mod server;
pub mod store;

/// The ErrorInfo domain of this service's errors.
pub const ERROR_DOMAIN: &str = "payment.gongji";
