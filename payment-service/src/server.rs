//! Wiring: policy, store, peer, health, reflection, limits, graceful shutdown.

use std::{future::Future, sync::Arc};

use anyhow::Context as _;
use gongji_proto::payment::v1::{
    account_service_server::AccountServiceServer,
    medical_expense_service_server::MedicalExpenseServiceServer,
    premium_service_server::PremiumServiceServer,
    settlement_service_server::SettlementServiceServer, wallet_service_server::WalletServiceServer,
};
use gongji_shared::{
    Policy,
    rpc::{
        auth::Auth,
        peer::PeerInterceptor,
        server::{self, Limits},
    },
};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use crate::{
    api::{AccountApi, MedicalExpenseApi, PremiumApi, SettlementApi, WalletApi},
    app::App,
    config::{Config, HOLD_TIMEOUT_MS, PEER_PROBE_INTERVAL_MS},
    peer::{BindingPeer, DEPENDENT_SERVICES},
    store::{AnyStore, Store},
};

/// Services that need only the database.
pub const INDEPENDENT_SERVICES: [&str; 2] = [
    "gongji.payment.v1.AccountService",
    "gongji.payment.v1.SettlementService",
];

/// Account event streams open at once.
const MAX_WATCHERS: usize = 256;
/// How often family wallet transfers past their confirmation time are looked for.
const WALLET_RETURN_INTERVAL_MS: u64 = 5 * 60 * 1_000;

/// Serves on `listener` until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        PEER_PROBE_INTERVAL_MS.contains(&config.peer_probe_interval_ms),
        "--peer-probe-interval-ms must be from {} to {}, not {}",
        PEER_PROBE_INTERVAL_MS.start(),
        PEER_PROBE_INTERVAL_MS.end(),
        config.peer_probe_interval_ms
    );
    anyhow::ensure!(
        HOLD_TIMEOUT_MS.contains(&config.hold_timeout_ms),
        "--hold-timeout-ms must be from {} to {}, not {}",
        HOLD_TIMEOUT_MS.start(),
        HOLD_TIMEOUT_MS.end(),
        config.hold_timeout_ms
    );
    let policy = Policy::load_or_default(config.common.policy.as_deref())?;
    let auth = config.common.auth.load()?;
    let vault = config.common.keys.load()?;
    let database_url =
        gongji_shared::db::database_url(&config.database_url, config.database_url_file.as_deref())?;
    match AnyStore::connect(&database_url, config.db_max_connections, vault)
        .await
        .context("cannot open the database")?
    {
        AnyStore::Sqlite(store) => run_with(store, config, policy, auth, listener, shutdown).await,
        AnyStore::Postgres(store) => {
            run_with(store, config, policy, auth, listener, shutdown).await
        }
    }
}

async fn run_with<S: Store>(
    store: S,
    config: Config,
    policy: Policy,
    auth: Auth,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.common.reseal {
        gongji_shared::db::reseal::reseal_all(&store)
            .await
            .context("re-sealing stopped; run again to resume")?;
        return Ok(());
    }
    let limits = Limits {
        first_call_timeout_ms: config.common.first_call_timeout_ms,
        shutdown_delay_ms: config.common.shutdown_delay_ms,
        ..Limits::default()
    };
    let (metrics, _metrics_port) =
        gongji_shared::metrics::http::start(config.metrics_addr, "payment-service")
            .await
            .context("cannot serve metrics")?;
    let binding = BindingPeer::new(
        &config.binding_addr,
        limits.peer_timeout_ms,
        limits.peer_connect_timeout_ms,
        PeerInterceptor::new(config.common.auth.peer_token_file.clone()),
        config.common.tls.peer()?,
        metrics.clone(),
    )
    .context("bad binding-service address")?;
    let ctx = App::new(
        store.clone(),
        binding.clone(),
        Arc::new(policy),
        config.common.clock,
    )
    .with_hold_timeout_ms(config.hold_timeout_ms)
    .with_metrics(metrics.clone());
    let all: Vec<&str> = INDEPENDENT_SERVICES
        .iter()
        .chain(&DEPENDENT_SERVICES)
        .copied()
        .collect();
    let (health, health_service) = server::health_not_serving(&all).await;
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let watchers =
        gongji_shared::rpc::watch::Watchers::new(crate::ERROR_DOMAIN, stopping, MAX_WATCHERS);
    if let Some(metrics) = &metrics {
        gongji_shared::metrics::probe_service(metrics, store.clone(), watchers.clone());
    }
    let max = limits.max_message_bytes;
    let router = server::builder(
        &limits,
        crate::ERROR_DOMAIN,
        auth,
        config.common.tls.server()?,
        metrics,
    )
    .context("bad TLS settings")?
    .add_service(health_service)
    .add_service(
        AccountServiceServer::new(AccountApi::new(ctx.clone(), watchers))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        PremiumServiceServer::new(PremiumApi::new(ctx.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        MedicalExpenseServiceServer::new(MedicalExpenseApi::new(ctx.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        WalletServiceServer::new(WalletApi::new(ctx.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(
        SettlementServiceServer::new(SettlementApi::new(ctx.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    let router = server::add_reflection(router, &all)?;
    tracing::info!(addr = %listener.local_addr()?, "payment-service listening");

    // The paying services follow binding-service's reachability, once the database is ready.
    let (mirror_tx, mirror_rx) = tokio::sync::oneshot::channel::<()>();
    let mirror = {
        let health = health.clone();
        tokio::spawn(async move {
            if mirror_rx.await.is_ok() {
                binding
                    .mirror_health(health, config.peer_probe_interval_ms)
                    .await;
            }
        })
    };
    // Answers past their retention are dropped once migrated, then every hour.
    let (clock, retention_days) = (
        config.common.clock,
        config.common.idempotency_retention_days,
    );
    let (expiry_tx, expiry_rx) = tokio::sync::oneshot::channel::<()>();
    let expiry = tokio::spawn({
        let store = store.clone();
        async move {
            if expiry_rx.await.is_ok() {
                gongji_shared::db::expire_answers_forever(store, clock, retention_days).await;
            }
        }
    });
    // The account event feed's movements are numbered once migrated, then continually.
    let (sequencer_tx, sequencer_rx) = tokio::sync::oneshot::channel::<()>();
    let sequencer = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if sequencer_rx.await.is_ok() {
                ctx.sequence_feed_forever().await;
            }
        }
    });
    // Family wallet transfers not confirmed in time go back once migrated, then every few
    // minutes (U4).
    let (returns_tx, returns_rx) = tokio::sync::oneshot::channel::<()>();
    let returns = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if returns_rx.await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(WALLET_RETURN_INTERVAL_MS))
                    .await;
                if let Err(error) = ctx.return_overdue_transfers().await {
                    tracing::warn!(%error, "overdue wallet transfers not returned; trying again later");
                }
            }
        }
    });
    let ready = async move {
        store.migrate().await?;
        gongji_shared::db::expire_answers(&store, clock.now(), retention_days).await?;
        ctx.return_overdue_transfers().await?;
        let _ = returns_tx.send(());
        let _ = mirror_tx.send(());
        let _ = expiry_tx.send(());
        let _ = sequencer_tx.send(());
        Ok(())
    };
    let shutdown = {
        let health = health.clone();
        let mirror = mirror.abort_handle();
        async move {
            shutdown.await;
            // Event streams never end by themselves: tell them to, or draining would wait.
            let _ = stopping_tx.send(true);
            mirror.abort();
            for service in DEPENDENT_SERVICES {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
        }
    };
    let result = server::serve_when_ready(
        router,
        listener,
        health,
        &INDEPENDENT_SERVICES,
        ready,
        shutdown,
        &limits,
    )
    .await;
    mirror.abort();
    expiry.abort();
    sequencer.abort();
    returns.abort();
    result.map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!("payment-service stopped");
    Ok(())
}
