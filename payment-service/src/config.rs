//! Command-line flags and their environment variables.

use std::{net::SocketAddr, path::PathBuf};

use gongji_shared::{Clock, rpc::telemetry::LogFormat};

/// payment-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payment-service",
    about = "gongji payment-service: accounts, ledger, premiums, settlement"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PAYMENT_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,
    /// `sqlite://PATH` (embedded default, created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "PAYMENT_DATABASE_URL",
        default_value = "sqlite://data/payment.db"
    )]
    pub database_url: String,
    /// Most PostgreSQL connections.
    #[arg(long, env = "PAYMENT_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Policy file (TOML); the compiled-in Anhui default when absent.
    #[arg(long, env = "GONGJI_POLICY")]
    pub policy: Option<PathBuf>,
    /// binding-service, asked before money moves for someone else.
    #[arg(
        long,
        env = "PAYMENT_BINDING_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub binding_addr: String,
    /// How often binding-service's health is probed, in milliseconds.
    #[arg(long, env = "PAYMENT_PEER_PROBE_INTERVAL_MS", default_value_t = 2_000)]
    pub peer_probe_interval_ms: u64,
    /// Log format.
    #[arg(long, env = "GONGJI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// "system", or a fixed RFC 3339 time for demos and tests (e.g. 2024-11-15T10:00:00+08:00).
    #[arg(long, env = "GONGJI_CLOCK", default_value = "system", value_parser = parse_clock)]
    pub clock: Clock,
}

fn parse_clock(value: &str) -> Result<Clock, String> {
    Clock::parse(value).map_err(|e| e.to_string())
}
