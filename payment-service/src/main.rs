//! payment-service binary.

use clap::Parser;

use gongji_shared::rpc::{server::termination_signal, telemetry};
use payment_service::{config::Config, server};

// Allocation is a measurable share of each call's CPU; mimalloc spends less of it than the
// system allocator (gongji-bench, README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init("payment-service", config.common.log_format)?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    server::run(config, listener, termination_signal()).await
}
