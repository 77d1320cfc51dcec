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
    /// binding-service's address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    binding_addr: SocketAddr,
    /// payment-service's address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    payment_addr: SocketAddr,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = telemetry::init("gongji-local", telemetry::LogFormat::Text)?;
    let clock = Clock::parse(&args.clock)?;
    let sqlite = |name: &str| format!("sqlite://{}", args.data_dir.join(name).display());
    let identity = LocalIdentity::create(&args.data_dir.join("identity"), "")?;
    let stack = Stack::start(StackConfig::local(
        (args.binding_addr, args.payment_addr),
        (sqlite("binding.db"), sqlite("payment.db")),
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
