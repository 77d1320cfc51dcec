//! Server wiring both services share: explicit limits, health, reflection, and a graceful
//! shutdown that stops taking traffic, drains in-flight calls within a bound, then returns.

use std::{future::Future, time::Duration};

use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, server::Router as TonicRouter};
use tonic_health::{ServingStatus, server::HealthReporter};

use super::{
    auth::{Auth, AuthLayer},
    connection::FirstCallDeadline,
    metrics::{GrpcMetricsLayer, Side},
    telemetry,
    transport::TransportErrorsLayer,
};
use crate::metrics::Metrics;

/// Every limit the servers run with. Defaults suit a pod with one or two cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A call still running after this is cancelled and answered DEADLINE_EXCEEDED.
    pub request_timeout_ms: u64,
    /// Calls served at once on one connection; further calls wait.
    pub concurrency_per_connection: usize,
    /// HTTP/2 streams a client may open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Largest request or response message.
    pub max_message_bytes: usize,
    /// After SIGTERM, health says NOT_SERVING this long before the listener closes; calls are
    /// still taken meanwhile.
    pub shutdown_delay_ms: u64,
    /// Then in-flight calls get this long to finish.
    pub drain_timeout_ms: u64,
    /// Deadline of calls to the peer service.
    pub peer_timeout_ms: u64,
    /// Connection timeout to the peer service.
    pub peer_connect_timeout_ms: u64,
    /// A connection that has made no call by then is closed.
    pub first_call_timeout_ms: u64,
    /// Every connection is closed gracefully (GOAWAY) at this age; clients reconnect.
    pub max_connection_age_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            concurrency_per_connection: 64,
            max_concurrent_streams: 128,
            max_message_bytes: 256 * 1024,
            shutdown_delay_ms: 0,
            drain_timeout_ms: 15_000,
            peer_timeout_ms: 2_000,
            peer_connect_timeout_ms: 1_000,
            first_call_timeout_ms: 10_000,
            max_connection_age_ms: 30 * 60_000,
        }
    }
}

/// The layers every server runs its services in: transport errors outside, authentication
/// inside them, and the caller's trace context around the call itself.
pub type Layers = tower::layer::util::Stack<
    telemetry::TraceContextLayer,
    tower::layer::util::Stack<
        AuthLayer,
        tower::layer::util::Stack<
            TransportErrorsLayer,
            tower::layer::util::Stack<GrpcMetricsLayer, tower::layer::util::Identity>,
        >,
    >,
>;
/// A router of a server made by [`builder`].
pub type Router = TonicRouter<Layers>;

/// A server builder with the limits applied, TLS if configured, transport errors answered
/// as AIP-193 errors under `domain` (the call time limit included), every call but health
/// and reflection authenticated by `auth`, a tracing span per call that continues the
/// caller's W3C trace, and every call counted in `metrics` when there are any.
pub fn builder(
    limits: &Limits,
    domain: &'static str,
    auth: Auth,
    tls: Option<tonic::transport::ServerTlsConfig>,
    metrics: Option<Metrics>,
) -> Result<Server<Layers>, tonic::transport::Error> {
    let server = match tls {
        Some(tls) => Server::builder().tls_config(tls)?,
        None => Server::builder(),
    };
    Ok(server
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_connection_age(Duration::from_millis(limits.max_connection_age_ms))
        .trace_fn(telemetry::server_span)
        // Outermost: the refusals of the layers inside are counted too.
        .layer(GrpcMetricsLayer::new(metrics, Side::Server))
        .layer(TransportErrorsLayer::new(
            domain,
            limits.request_timeout_ms,
            limits.max_message_bytes,
        ))
        .layer(AuthLayer::new(auth, domain))
        .layer(telemetry::TraceContextLayer))
}

/// Reflection v1 and v1alpha (grpcurl speaks v1alpha only), advertising the services this
/// server hosts plus health and reflection. The descriptor set holds the whole contract
/// and google/rpc/error_details.proto, so clients can decode error details.
pub fn add_reflection(
    router: Router,
    hosted: &[&str],
) -> Result<Router, tonic_reflection::server::Error> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gongji_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let always = [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ];
        for name in hosted.iter().chain(&always) {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let v1 = builder().build_v1()?;
    let v1alpha = builder().build_v1alpha()?;
    Ok(router.add_service(v1).add_service(v1alpha))
}

/// Serves until `shutdown` resolves; then marks every named service and the server
/// NOT_SERVING, goes on taking calls for the shutdown delay (so that readiness probes see
/// NOT_SERVING while the listener is still open), then closes the listener, lets in-flight
/// calls finish for at most the drain timeout, and returns.
/// Each accepted connection gets TCP_NODELAY and must make its first call in time.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    health: HealthReporter,
    services: &[&str],
    shutdown: impl Future<Output = ()>,
    limits: &Limits,
) -> Result<(), tonic::transport::Error> {
    let drain_timeout_ms = limits.drain_timeout_ms;
    let shutdown_delay_ms = limits.shutdown_delay_ms;
    let first_call_timeout_ms = limits.first_call_timeout_ms;
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let incoming =
        tokio_stream::StreamExt::map(TcpListenerStream::new(listener), move |accepted| {
            accepted.map(|tcp| FirstCallDeadline::new(tcp, first_call_timeout_ms))
        });
    let server = router.serve_with_incoming_shutdown(incoming, async {
        let _ = drain_rx.await;
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    tracing::info!(
        shutdown_delay_ms,
        drain_timeout_ms,
        "shutting down: NOT_SERVING, then draining in-flight calls"
    );
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for service in services {
        health
            .set_service_status(*service, ServingStatus::NotServing)
            .await;
    }
    // Still serving, and still accepting: the server future keeps running meanwhile.
    if shutdown_delay_ms > 0 {
        let delay = tokio::time::sleep(Duration::from_millis(shutdown_delay_ms));
        tokio::select! {
            result = &mut server => return result,
            () = delay => {}
        }
    }
    let _ = drain_tx.send(());
    match tokio::time::timeout(Duration::from_millis(drain_timeout_ms), server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                drain_timeout_ms,
                "drain timed out; exiting with calls still in flight"
            );
            Ok(())
        }
    }
}

/// A health service whose every status starts NOT_SERVING (tonic-health starts SERVING):
/// nothing is ready until [`serve_when_ready`] says so.
pub async fn health_not_serving(
    services: &[&str],
) -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in services {
        reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    (reporter, service)
}

/// A start-up step (migrations) failed.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Serves at once (health says NOT_SERVING), runs `ready` (migrations), then marks the
/// server and `services` SERVING and serves until `shutdown`. A failed `ready` stops the
/// server with its error.
pub async fn serve_when_ready(
    router: Router,
    listener: TcpListener,
    health: HealthReporter,
    services: &[&str],
    ready: impl Future<Output = Result<(), StartError>>,
    shutdown: impl Future<Output = ()>,
    limits: &Limits,
) -> Result<(), StartError> {
    let serve = serve(router, listener, health.clone(), services, shutdown, limits);
    tokio::pin!(serve);
    let ready = async {
        ready.await?;
        health.set_service_status("", ServingStatus::Serving).await;
        for name in services {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        tracing::info!("ready: SERVING");
        Ok::<(), StartError>(())
    };
    tokio::select! {
        result = &mut serve => return Ok(result?),
        result = ready => result?,
    }
    Ok(serve.await?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                tracing::debug!("listening for SIGTERM");
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
