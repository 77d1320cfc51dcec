//! Command-line flags and their environment variables.

use std::{net::SocketAddr, path::PathBuf};

use gongji_shared::{Clock, rpc::telemetry::LogFormat};

/// binding-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "binding-service",
    about = "gongji binding-service: registry and family bindings"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BINDING_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    /// `sqlite://PATH` (embedded default, created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "BINDING_DATABASE_URL",
        default_value = "sqlite://data/binding.db"
    )]
    pub database_url: String,
    /// Most PostgreSQL connections.
    #[arg(long, env = "BINDING_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Policy file (TOML); the compiled-in Anhui default when absent.
    #[arg(long, env = "GONGJI_POLICY")]
    pub policy: Option<PathBuf>,
    /// payment-service, asked for authorizers' balances.
    #[arg(
        long,
        env = "BINDING_PAYMENT_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub payment_addr: String,
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
