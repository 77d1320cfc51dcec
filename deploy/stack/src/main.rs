//! `gongji-local`: both services on the embedded SQLite default, with demo data.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use gongji_shared::{
    Clock,
    rpc::{peer::PeerInterceptor, server::termination_signal, telemetry},
};
use gongji_stack::{READY_TIMEOUT_MS, Stack, StackConfig, demo, identity::LocalIdentity};

/// Runs binding-service and payment-service locally, each with its own SQLite file.
#[derive(Debug, Parser)]
#[command(name = "gongji-local")]
struct Args {
    /// Folder of the database files, created on first start.
    #[arg(long, env = "GONGJI_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// binding-service's address, in the form the services take their peer's
    /// (`http://host:port`; a bare `host:port` is taken too). It listens there.
    #[arg(long, default_value = "http://127.0.0.1:50051", value_parser = local_addr)]
    binding_addr: SocketAddr,
    /// payment-service's address, in the same form.
    #[arg(long, default_value = "http://127.0.0.1:50052", value_parser = local_addr)]
    payment_addr: SocketAddr,
    /// binding-service's database, as its `--database-url`: `sqlite://PATH` or
    /// `postgres://...`; `DATA_DIR/binding.db` when absent.
    #[arg(long, env = "BINDING_DATABASE_URL")]
    binding_database_url: Option<String>,
    /// payment-service's database, the same way; `DATA_DIR/payment.db` when absent.
    #[arg(long, env = "PAYMENT_DATABASE_URL")]
    payment_database_url: Option<String>,
    /// Log format, as the services take it.
    #[arg(long, env = "GONGJI_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::LogFormat,
    /// Policy file; the compiled-in Anhui default when absent.
    #[arg(long, env = "GONGJI_POLICY")]
    policy: Option<PathBuf>,
    /// "system", or a fixed RFC 3339 time (e.g. 2024-11-15T10:00:00+08:00, inside the 2025 window).
    #[arg(long, env = "GONGJI_CLOCK", default_value = "system")]
    clock: String,
    /// Do not load the demo family.
    #[arg(long)]
    no_demo: bool,
}

/// An address of the local stack: `http://host:port` as the services take their peer's, or
/// a bare `host:port`. The local stack serves plaintext: `https://` is refused.
fn local_addr(raw: &str) -> Result<SocketAddr, String> {
    if raw.starts_with("https://") {
        return Err("the local stack serves plaintext: use http://host:port".to_owned());
    }
    let bare = raw.strip_prefix("http://").unwrap_or(raw);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    bare.parse()
        .map_err(|_| format!("{raw:?} is not http://host:port with a numeric host"))
}

// Allocation is a measurable share of each call's CPU; mimalloc spends less of it than the
// system allocator (gongji-bench, README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("gongji-local", args.log_format)?;
    let clock = Clock::parse(&args.clock)?;
    let database = |url: &Option<String>, name: &str| {
        url.clone()
            .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join(name).display()))
    };
    let identity = LocalIdentity::create(&args.data_dir.join("identity"), "")?;
    let stack = Stack::start(StackConfig::local(
        (args.binding_addr, args.payment_addr),
        (
            database(&args.binding_database_url, "binding.db"),
            database(&args.payment_database_url, "payment.db"),
        ),
        args.policy,
        clock,
        &identity,
    ))
    .await?;
    stack.wait_serving(READY_TIMEOUT_MS).await?;
    if !args.no_demo {
        let token = |caller: &str| PeerInterceptor::new(identity.tokens.get(caller).cloned());
        demo::load(
            &stack.binding_url(),
            &stack.payment_url(),
            token("core-system"),
            token("gov-app"),
        )
        .await?;
        identity.write_login_token(demo::EMPLOYEE_ID)?;
    }
    println!();
    println!(
        "gongji is running (clock: {}, data: {})",
        args.clock,
        args.data_dir.display()
    );
    println!(
        "  binding-service  {}   (RegistryService, BindingService)",
        stack.config.binding_addr
    );
    println!(
        "  payment-service  {}   (AccountService, PremiumService, MedicalExpenseService, WalletService, SettlementService)",
        stack.config.payment_addr
    );
    if !args.no_demo {
        println!(
            "  demo family: employee {} with 1000.00 prior-years, child {} bound",
            demo::EMPLOYEE_ID,
            demo::CHILD_ID
        );
    }
    println!(
        "  callers' tokens (valid 30 days): {}/identity/tokens/<caller>.jwt, for {}",
        args.data_dir.display(),
        identity
            .tokens
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  try: grpcurl -plaintext -H \"authorization: Bearer $(cat {}/identity/tokens/auditor.jwt)\" \\\n         -d '{{\"holder_id_number\":\"{}\"}}' {} gongji.payment.v1.AccountService/GetAccount",
        args.data_dir.display(),
        demo::EMPLOYEE_ID,
        stack.config.payment_addr
    );
    if !args.no_demo {
        println!(
            "  as a citizen channel, acting for the logged-in employee:\n    grpcurl -plaintext -H \"authorization: Bearer $(cat {d}/identity/tokens/wechat-backend.jwt)\" \\\n      -H \"x-gongji-acting-person: $(cat {d}/identity/tokens/person-{id}.jwt)\" \\\n      -d '{{\"holder_id_number\":\"{id}\"}}' {addr} gongji.payment.v1.AccountService/GetAccount",
            d = args.data_dir.display(),
            id = demo::EMPLOYEE_ID,
            addr = stack.config.payment_addr
        );
    }
    println!("Ctrl-C stops both.");
    termination_signal().await;
    stack.stop().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_taken_as_the_services_take_their_peers_and_bare() {
        let want: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(local_addr("http://127.0.0.1:50051").unwrap(), want);
        assert_eq!(local_addr("http://127.0.0.1:50051/").unwrap(), want);
        assert_eq!(local_addr("127.0.0.1:50051").unwrap(), want);
        assert!(local_addr("https://127.0.0.1:50051").is_err());
        assert!(local_addr("http://localhost:50051").is_err());
        assert!(local_addr("http://127.0.0.1").is_err());
    }

    #[test]
    fn every_flag_parses_with_the_services_forms() {
        let args = Args::try_parse_from([
            "gongji-local",
            "--binding-addr",
            "http://127.0.0.1:6001",
            "--payment-addr",
            "127.0.0.1:6002",
            "--binding-database-url",
            "postgres://postgres@127.0.0.1:5432/b",
            "--payment-database-url",
            "postgres://postgres@127.0.0.1:5432/p",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(args.binding_addr.port(), 6001);
        assert_eq!(args.payment_addr.port(), 6002);
        assert_eq!(
            args.payment_database_url.as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/p")
        );
        assert_eq!(args.log_format, telemetry::LogFormat::Json);
    }
}
