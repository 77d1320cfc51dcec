//! Command-line flags and their environment variables.

use std::net::SocketAddr;

use gongji_shared::flags::CommonFlags;

/// binding-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "binding-service",
    about = "gongji binding-service: registry and family bindings"
)]
pub struct Config {
    /// Serve Prometheus metrics at `http://ADDR/metrics` (a port of their own); off when
    /// unset.
    #[arg(long, env = "BINDING_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
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
    /// A file holding the database URL instead (a mounted secret: the password then never
    /// sits in the environment). Takes the place of `--database-url`.
    #[arg(long, env = "BINDING_DATABASE_URL_FILE")]
    pub database_url_file: Option<std::path::PathBuf>,
    /// Most PostgreSQL connections (1 to 200).
    #[arg(
        long,
        env = "BINDING_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(gongji_shared::db::MAX_DB_CONNECTIONS))
    )]
    pub db_max_connections: u32,
    /// payment-service, asked for authorizers' balances.
    #[arg(
        long,
        env = "BINDING_PAYMENT_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub payment_addr: String,
    /// Policy, log format and clock, the same for both services.
    #[command(flatten)]
    pub common: CommonFlags,
}
