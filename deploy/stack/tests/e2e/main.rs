//! Black-box tests: both services on ephemeral ports with fresh databases, called through
//! the generated clients. Every test runs on SQLite and on PostgreSQL.

mod fixtures;
mod support;

mod admin;
mod binding;
mod concurrency;
mod consent;
mod contract;
mod corrections;
mod edges;
mod family;
mod limits;
mod metrics;
mod otlp;
mod payment;
mod personal_data;
mod premium;
mod registry;
mod serving;
mod tracing;
mod trust;
mod wallet;
