//! Command-line flags and their environment variables.

use std::net::SocketAddr;

use gongji_shared::flags::CommonFlags;

/// The probe interval's bounds: often enough to notice an outage, rarely enough not to
/// load binding-service.
pub const PEER_PROBE_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// A hold's bounds: it must outlast a call to binding-service (2 s) and the write after it,
/// and must not keep money reserved for long after a crash.
pub const HOLD_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 5_000..=600_000;

/// payment-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payment-service",
    about = "gongji payment-service: accounts, ledger, premiums, settlement"
)]
pub struct Config {
    /// Serve Prometheus metrics at `http://ADDR/metrics` (a port of their own); off when
    /// unset.
    #[arg(long, env = "PAYMENT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
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
    /// A file holding the database URL instead (a mounted secret: the password then never
    /// sits in the environment). Takes the place of `--database-url`.
    #[arg(long, env = "PAYMENT_DATABASE_URL_FILE")]
    pub database_url_file: Option<std::path::PathBuf>,
    /// Most PostgreSQL connections (1 to 200).
    #[arg(
        long,
        env = "PAYMENT_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(gongji_shared::db::MAX_DB_CONNECTIONS))
    )]
    pub db_max_connections: u32,
    /// binding-service, asked before money moves for someone else.
    #[arg(
        long,
        env = "PAYMENT_BINDING_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub binding_addr: String,
    /// How often binding-service's health is probed, in milliseconds (10 to 60000).
    #[arg(
        long,
        env = "PAYMENT_PEER_PROBE_INTERVAL_MS",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(u64).range(PEER_PROBE_INTERVAL_MS)
    )]
    pub peer_probe_interval_ms: u64,
    /// How long a family debit's hold reserves its amount unless posted or voided, in
    /// milliseconds (5000 to 600000): longer than a call to binding-service and a write.
    #[arg(
        long,
        env = "PAYMENT_HOLD_TIMEOUT_MS",
        default_value_t = crate::app::DEFAULT_HOLD_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(HOLD_TIMEOUT_MS)
    )]
    pub hold_timeout_ms: u64,
    /// Policy, log format and clock, the same for both services.
    #[command(flatten)]
    pub common: CommonFlags,
}
