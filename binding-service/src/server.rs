//! Wiring: policy, store, peer, health, reflection, limits, graceful shutdown.

use std::{future::Future, sync::Arc};

use anyhow::Context as _;
use gongji_proto::binding::v1::{
    binding_service_server::BindingServiceServer, registry_service_server::RegistryServiceServer,
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

use crate::{
    api::{BindingApi, RegistryApi},
    app::App,
    config::Config,
    peer::PaymentPeer,
    store::{AnyStore, Store},
};

/// Most event streams open at once.
const MAX_WATCHERS: usize = 256;
/// How often requests for consent past their time are looked for (they expire by the day: a
/// few minutes late is on time).
const CONSENT_EXPIRY_INTERVAL_MS: u64 = 5 * 60 * 1_000;

/// The services this server reports health for.
pub const SERVICES: [&str; 2] = [
    "gongji.binding.v1.RegistryService",
    "gongji.binding.v1.BindingService",
];

/// Serves on `listener` until `shutdown` resolves, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let policy = Policy::load_or_default(config.common.policy.as_deref())?;
    let auth = config.common.auth.load()?;
    let limits = Limits {
        first_call_timeout_ms: config.common.first_call_timeout_ms,
        shutdown_delay_ms: config.common.shutdown_delay_ms,
        ..Limits::default()
    };
    let vault = config.common.keys.load()?;
    let database_url =
        gongji_shared::db::database_url(&config.database_url, config.database_url_file.as_deref())?;
    match AnyStore::connect(&database_url, config.db_max_connections, vault)
        .await
        .context("cannot open the database")?
    {
        AnyStore::Sqlite(store) => {
            run_with(store, config, policy, auth, limits, listener, shutdown).await
        }
        AnyStore::Postgres(store) => {
            run_with(store, config, policy, auth, limits, listener, shutdown).await
        }
    }
}

async fn run_with<S: Store>(
    store: S,
    config: Config,
    policy: Policy,
    auth: Auth,
    limits: Limits,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.common.reseal {
        gongji_shared::db::reseal::reseal_all(&store)
            .await
            .context("re-sealing stopped; run again to resume")?;
        return Ok(());
    }
    let (metrics, _metrics_port) =
        gongji_shared::metrics::http::start(config.metrics_addr, "binding-service")
            .await
            .context("cannot serve metrics")?;
    let payment = PaymentPeer::new(
        &config.payment_addr,
        limits.peer_timeout_ms,
        limits.peer_connect_timeout_ms,
        PeerInterceptor::new(config.common.auth.peer_token_file.clone()),
        config.common.tls.peer()?,
        metrics.clone(),
    )
    .context("bad payment-service address")?;
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let ctx = App::new(
        store.clone(),
        payment,
        Arc::new(policy),
        config.common.clock,
    );
    let watchers =
        gongji_shared::rpc::watch::Watchers::new(crate::ERROR_DOMAIN, stopping, MAX_WATCHERS);
    if let Some(metrics) = &metrics {
        gongji_shared::metrics::probe_service(metrics, store.clone(), watchers.clone());
    }
    // Event streams never end by themselves: tell them to, or draining would wait for them.
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let (health, health_service) = server::health_not_serving(&SERVICES).await;
    let router = server::builder(
        &limits,
        crate::ERROR_DOMAIN,
        auth,
        config.common.tls.server()?,
        metrics.clone(),
    )
    .context("bad TLS settings")?
    .add_service(health_service)
    .add_service(
        RegistryServiceServer::new(RegistryApi::new(ctx.clone()))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes),
    )
    .add_service(
        BindingServiceServer::new(BindingApi::new(ctx.clone(), watchers, metrics))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes),
    );
    let router = server::add_reflection(router, &SERVICES)?;
    tracing::info!(addr = %listener.local_addr()?, "binding-service listening");

    // Once migrated: answers past their retention are dropped now, then every hour.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (clock, retention_days) = (
        config.common.clock,
        config.common.idempotency_retention_days,
    );
    let expiry = tokio::spawn({
        let store = store.clone();
        async move {
            if ready_rx.await.is_ok() {
                gongji_shared::db::expire_answers_forever(store, clock, retention_days).await;
            }
        }
    });
    // Requests for consent past their time expire now, then every few minutes (B5).
    let (consent_ready_tx, consent_ready_rx) = tokio::sync::oneshot::channel::<()>();
    let consents = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if consent_ready_rx.await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(CONSENT_EXPIRY_INTERVAL_MS))
                    .await;
                if let Err(error) = ctx.expire_consents().await {
                    tracing::warn!(%error, "requests for consent not expired; trying again later");
                }
            }
        }
    });
    let ready = async move {
        store.migrate().await?;
        gongji_shared::db::expire_answers(&store, clock.now(), retention_days).await?;
        ctx.expire_consents().await?;
        let _ = ready_tx.send(());
        let _ = consent_ready_tx.send(());
        Ok(())
    };
    let result = server::serve_when_ready(
        router, listener, health, &SERVICES, ready, shutdown, &limits,
    )
    .await;
    expiry.abort();
    consents.abort();
    result.map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!("binding-service stopped");
    Ok(())
}
