//! Runs binding-service and payment-service in one process, each on its own port with its
//! own database: the one-command local stack, and the harness of the black-box tests.

pub mod demo;
pub mod identity;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use gongji_shared::{
    Clock,
    flags::{AuthFlags, CommonFlags, KeyFlags},
    rpc::{telemetry::LogFormat, tls::TlsFlags},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long [`Stack::wait_serving`] waits for both services by default.
pub const READY_TIMEOUT_MS: u64 = 30_000;
/// How often readiness is polled.
const READY_POLL_MS: u64 = 50;

/// What to run.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// binding-service's address; port 0 picks a free one.
    pub binding_addr: SocketAddr,
    /// payment-service's address; port 0 picks a free one.
    pub payment_addr: SocketAddr,
    pub binding_database_url: String,
    pub payment_database_url: String,
    pub policy: Option<PathBuf>,
    pub clock: Clock,
    /// How often payment-service probes binding-service.
    pub peer_probe_interval_ms: u64,
    /// binding-service's authentication settings, its peer token included.
    pub binding_auth: AuthFlags,
    /// payment-service's.
    pub payment_auth: AuthFlags,
    /// A connection that makes no call this long after it opened is closed.
    pub first_call_timeout_ms: u64,
    /// After a stop, how long health says NOT_SERVING before the listener closes.
    pub shutdown_delay_ms: u64,
    /// Where each service serves its Prometheus metrics, if anywhere.
    pub metrics_addrs: (Option<SocketAddr>, Option<SocketAddr>),
    /// binding-service's TLS (server certificate, client CA, its calls to the peer).
    pub binding_tls: TlsFlags,
    /// payment-service's.
    pub payment_tls: TlsFlags,
    /// The CA the stack's own health checks trust, when the services serve TLS.
    pub client_tls_ca: Option<PathBuf>,
    /// binding-service's data keys.
    pub binding_keys: KeyFlags,
    /// payment-service's.
    pub payment_keys: KeyFlags,
    /// Run in `--reseal` mode instead of serving ([`Stack::reseal`] sets it).
    pub reseal: bool,
}

impl StackConfig {
    /// Both services on these addresses and databases, with `identity`'s callers, plain
    /// TCP, and the usual probe and first-call timings.
    pub fn local(
        (binding_addr, payment_addr): (SocketAddr, SocketAddr),
        (binding_database_url, payment_database_url): (String, String),
        policy: Option<PathBuf>,
        clock: Clock,
        identity: &identity::LocalIdentity,
    ) -> Self {
        Self {
            binding_addr,
            payment_addr,
            binding_database_url,
            payment_database_url,
            policy,
            clock,
            peer_probe_interval_ms: 1_000,
            binding_auth: identity.service_auth("binding-service"),
            payment_auth: identity.service_auth("payment-service"),
            first_call_timeout_ms: 10_000,
            shutdown_delay_ms: 0,
            metrics_addrs: (None, None),
            binding_tls: TlsFlags::default(),
            payment_tls: TlsFlags::default(),
            client_tls_ca: None,
            binding_keys: identity.service_keys("binding-service"),
            payment_keys: identity.service_keys("payment-service"),
            reseal: false,
        }
    }
}

/// One running service.
pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Asks it to stop (NOT_SERVING, drain) and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("service task panicked")?
    }
}

/// Both services.
pub struct Stack {
    pub config: StackConfig,
    pub binding: Option<Running>,
    pub payment: Option<Running>,
}

impl Stack {
    /// Binds both ports first (so each service knows the other's address), then starts both.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        let binding_listener = TcpListener::bind(config.binding_addr)
            .await
            .context("cannot bind binding-service's port")?;
        let payment_listener = TcpListener::bind(config.payment_addr)
            .await
            .context("cannot bind payment-service's port")?;
        let mut config = config;
        config.binding_addr = binding_listener.local_addr()?;
        config.payment_addr = payment_listener.local_addr()?;
        let binding = start_binding(&config, binding_listener);
        let payment = start_payment(&config, payment_listener);
        Ok(Self {
            config,
            binding: Some(binding),
            payment: Some(payment),
        })
    }

    /// binding-service's URL.
    pub fn binding_url(&self) -> String {
        url(&self.config.binding_tls, self.config.binding_addr)
    }

    /// payment-service's URL.
    pub fn payment_url(&self) -> String {
        url(&self.config.payment_tls, self.config.payment_addr)
    }

    /// Waits until both servers and all their services say SERVING.
    pub async fn wait_serving(&self, timeout_ms: u64) -> anyhow::Result<()> {
        let binding = [
            "",
            "gongji.binding.v1.RegistryService",
            "gongji.binding.v1.BindingService",
        ];
        let payment = [
            "",
            "gongji.payment.v1.AccountService",
            "gongji.payment.v1.SettlementService",
            "gongji.payment.v1.PremiumService",
            "gongji.payment.v1.MedicalExpenseService",
            "gongji.payment.v1.WalletService",
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        for (url, services) in [
            (self.binding_url(), &binding[..]),
            (self.payment_url(), &payment[..]),
        ] {
            for service in services {
                loop {
                    let status =
                        health_with(&url, service, self.config.client_tls_ca.as_deref()).await;
                    if status == Some(ServingStatus::Serving) {
                        break;
                    }
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "{url} {service:?} is not SERVING in time"
                    );
                    tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
                }
            }
        }
        Ok(())
    }

    /// Stops binding-service (payment-service keeps running).
    pub async fn stop_binding(&mut self) -> anyhow::Result<()> {
        match self.binding.take() {
            Some(running) => running.stop().await,
            None => Ok(()),
        }
    }

    /// Starts binding-service again on its former address.
    pub async fn restart_binding(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.binding.is_none(), "binding-service is running");
        let listener = TcpListener::bind(self.config.binding_addr).await?;
        self.binding = Some(start_binding(&self.config, listener));
        Ok(())
    }

    /// Stops payment-service (binding-service keeps running).
    pub async fn stop_payment(&mut self) -> anyhow::Result<()> {
        match self.payment.take() {
            Some(running) => running.stop().await,
            None => Ok(()),
        }
    }

    /// Starts payment-service again on its former address.
    pub async fn restart_payment(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.payment.is_none(), "payment-service is running");
        let listener = TcpListener::bind(self.config.payment_addr).await?;
        self.payment = Some(start_payment(&self.config, listener));
        Ok(())
    }

    /// Restarts both services with their clock fixed at another time, on the same addresses
    /// and databases: time passing, for tests and demos.
    pub async fn restart_with_clock(&mut self, clock: Clock) -> anyhow::Result<()> {
        self.stop_payment().await?;
        self.stop_binding().await?;
        self.config.clock = clock;
        self.restart_binding().await?;
        self.restart_payment().await?;
        self.wait_serving(READY_TIMEOUT_MS).await
    }

    /// Runs each service once in `--reseal` mode on its database (both may be running or
    /// not): every stored value under its newest key, older keys retired.
    pub async fn reseal(&self) -> anyhow::Result<()> {
        let mut config = self.config.clone();
        config.reseal = true;
        let idle = || TcpListener::bind("127.0.0.1:0");
        binding_service::server::run(
            binding_config(&config),
            idle().await?,
            std::future::pending(),
        )
        .await
        .context("binding-service --reseal")?;
        payment_service::server::run(
            payment_config(&config),
            idle().await?,
            std::future::pending(),
        )
        .await
        .context("payment-service --reseal")
    }

    /// Stops both, payment-service first.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_payment().await?;
        self.stop_binding().await
    }
}

/// A service's URL: https when it serves TLS.
fn url(tls: &TlsFlags, addr: SocketAddr) -> String {
    let scheme = if tls.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// One health answer, `None` if the server cannot be reached.
pub async fn health(url: &str, service: &str) -> Option<ServingStatus> {
    health_with(url, service, None).await
}

/// One health answer, `None` if the server cannot be reached; over TLS trusting `ca`.
pub async fn health_with(url: &str, service: &str, ca: Option<&Path>) -> Option<ServingStatus> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).ok()?;
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).ok()?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint.tls_config(tls).ok()?;
    }
    let channel = endpoint.connect().await.ok()?;
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.get_ref().status).ok()
}

fn common(config: &StackConfig, auth: &AuthFlags, tls: &TlsFlags, keys: &KeyFlags) -> CommonFlags {
    CommonFlags {
        keys: keys.clone(),
        idempotency_retention_days: 30,
        reseal: config.reseal,
        policy: config.policy.clone(),
        log_format: LogFormat::Text,
        clock: config.clock,
        first_call_timeout_ms: config.first_call_timeout_ms,
        shutdown_delay_ms: config.shutdown_delay_ms,
        auth: auth.clone(),
        tls: tls.clone(),
    }
}

fn start_binding(config: &StackConfig, listener: TcpListener) -> Running {
    let service_config = binding_config(config);
    spawn(config.binding_addr, |stop| {
        binding_service::server::run(service_config, listener, stop)
    })
}

fn binding_config(config: &StackConfig) -> binding_service::config::Config {
    binding_service::config::Config {
        listen_addr: config.binding_addr,
        database_url: config.binding_database_url.clone(),
        database_url_file: None,
        metrics_addr: config.metrics_addrs.0,
        db_max_connections: 10,
        payment_addr: url(&config.payment_tls, config.payment_addr),
        common: common(
            config,
            &config.binding_auth,
            &config.binding_tls,
            &config.binding_keys,
        ),
    }
}

fn start_payment(config: &StackConfig, listener: TcpListener) -> Running {
    let service_config = payment_config(config);
    spawn(config.payment_addr, |stop| {
        payment_service::server::run(service_config, listener, stop)
    })
}

fn payment_config(config: &StackConfig) -> payment_service::config::Config {
    payment_service::config::Config {
        listen_addr: config.payment_addr,
        database_url: config.payment_database_url.clone(),
        database_url_file: None,
        metrics_addr: config.metrics_addrs.1,
        db_max_connections: 10,
        binding_addr: url(&config.binding_tls, config.binding_addr),
        peer_probe_interval_ms: config.peer_probe_interval_ms,
        hold_timeout_ms: payment_service::app::DEFAULT_HOLD_TIMEOUT_MS,
        common: common(
            config,
            &config.payment_auth,
            &config.payment_tls,
            &config.payment_keys,
        ),
    }
}

fn spawn<F, Fut>(addr: SocketAddr, run: F) -> Running
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(Box::pin(async move {
        let _ = stopped.await;
    })));
    Running { addr, stop, task }
}
