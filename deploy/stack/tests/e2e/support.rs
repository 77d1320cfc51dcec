//! The harness: both services on ephemeral ports with fresh databases, generated clients.
//!
//! SQLite tests use a temporary folder. PostgreSQL tests create two fresh databases on the
//! server at `GONGJI_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and drop them afterwards. When that server cannot be reached they are skipped with a
//! loud warning, unless `GONGJI_TEST_POSTGRES=require` (as in CI), where they fail.

use std::net::SocketAddr;

use gongji_proto::{
    binding::v1::{
        binding_service_client::BindingServiceClient,
        registry_service_client::RegistryServiceClient,
    },
    payment::v1::{
        account_service_client::AccountServiceClient,
        medical_expense_service_client::MedicalExpenseServiceClient,
        premium_service_client::PremiumServiceClient,
        settlement_service_client::SettlementServiceClient,
        wallet_service_client::WalletServiceClient,
    },
};
use gongji_shared::{
    Clock,
    rpc::{peer::PeerInterceptor, tls::TlsFlags},
    testing,
};
use gongji_stack::{READY_TIMEOUT_MS, Stack, StackConfig, identity::LocalIdentity};
use tonic::{
    Code, Status,
    codegen::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tonic_types::StatusExt;

/// Inside Ma'anshan's 2025 collection window (2024-09-05 to 2024-12-31).
pub const IN_WINDOW: &str = "2024-11-15T10:00:00+08:00";
/// A day on which the 2026 policy version (close relatives, 近亲属) is in force.
pub const IN_2026: &str = "2026-03-02T10:00:00+08:00";
/// A connection that makes no call this long after it opened is closed: short in tests.
pub const FIRST_CALL_TIMEOUT_MS: u64 = 1_000;
/// How often payment-service probes binding-service in tests: fast, to see outages quickly.
const PROBE_INTERVAL_MS: u64 = 100;

/// Which database both services use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The caller the contract tests call as: a test role granting every RPC, acting for
/// nobody unless a test names someone. The trust tests call as the shipped roles instead.
pub const CONTRACT_TESTS: &str = "contract-tests";
const CONTRACT_CALLER: &str = r#"
[roles.contract-tests]
rpcs = [
  "gongji.binding.v1.RegistryService/UpsertInsuredPerson",
  "gongji.binding.v1.RegistryService/BatchUpsertInsuredPersons",
  "gongji.binding.v1.RegistryService/GetInsuredPerson",
  "gongji.binding.v1.BindingService/CreateBinding",
  "gongji.binding.v1.BindingService/GetBinding",
  "gongji.binding.v1.BindingService/ListBindings",
  "gongji.binding.v1.BindingService/RevokeBinding",
  "gongji.binding.v1.BindingService/SetBindingLimits",
  "gongji.binding.v1.BindingService/AcceptBinding",
  "gongji.binding.v1.BindingService/DeclineBinding",
  "gongji.binding.v1.BindingService/ApproveBinding",
  "gongji.binding.v1.BindingService/RejectBinding",
  "gongji.binding.v1.BindingService/CheckAuthorization",
  "gongji.binding.v1.BindingService/AuthorizeUse",
  "gongji.binding.v1.BindingService/ListBindingUses",
  "gongji.binding.v1.BindingService/WatchBindingEvents",
  "gongji.payment.v1.AccountService/OpenAccount",
  "gongji.payment.v1.AccountService/GetAccount",
  "gongji.payment.v1.AccountService/CreditAccount",
  "gongji.payment.v1.AccountService/ListAccountEntries",
  "gongji.payment.v1.AccountService/ListFamilyUsage",
  "gongji.payment.v1.AccountService/GetAccountStatement",
  "gongji.payment.v1.AccountService/WatchAccountEvents",
  "gongji.payment.v1.AccountService/CloseYear",
  "gongji.payment.v1.AccountService/CloseYearForAllAccounts",
  "gongji.payment.v1.AccountService/ResealPersonalData",
  "gongji.binding.v1.RegistryService/ResealPersonalData",
  "gongji.payment.v1.PremiumService/QuotePremium",
  "gongji.payment.v1.PremiumService/PayPremium",
  "gongji.payment.v1.PremiumService/GetPremiumPayment",
  "gongji.payment.v1.PremiumService/ListPremiumPayments",
  "gongji.payment.v1.PremiumService/ListUnpaidPremiums",
  "gongji.payment.v1.PremiumService/RefundPremiumPayment",
  "gongji.payment.v1.MedicalExpenseService/PayMedicalExpense",
  "gongji.payment.v1.MedicalExpenseService/GetMedicalExpensePayment",
  "gongji.payment.v1.MedicalExpenseService/ListMedicalExpensePayments",
  "gongji.payment.v1.MedicalExpenseService/RefundMedicalExpensePayment",
  "gongji.payment.v1.MedicalExpenseService/BatchUpsertDesignatedInstitutions",
  "gongji.payment.v1.WalletService/TransferToFamilyWallet",
  "gongji.payment.v1.WalletService/GetWalletTransfer",
  "gongji.payment.v1.WalletService/ConfirmWalletTransfer",
  "gongji.payment.v1.WalletService/ReturnWalletTransfer",
  "gongji.payment.v1.WalletService/SettleWalletMonth",
  "gongji.payment.v1.WalletService/GetWalletStatement",
  "gongji.payment.v1.SettlementService/SettleBusinessDay",
  "gongji.payment.v1.SettlementService/GetSettlement",
  "gongji.payment.v1.SettlementService/VerifyLedger",
  "gongji.payment.v1.SettlementService/ReconcileBindingUses",
]
sees_names = true

[[callers]]
identity = "contract-tests"
roles = ["contract-tests"]
trusted_acting_person = true
requests_per_second = 100000

[[callers]]
identity = "slow-auditor"
roles = ["auditor"]
requests_per_second = 2

# Known by their client certificates (mutual TLS).
[[callers]]
identity = "spiffe://gongji.test/binding-service"
roles = ["peer-binding-service"]

[[callers]]
identity = "spiffe://gongji.test/payment-service"
roles = ["peer-payment-service"]

[[callers]]
identity = "spiffe://gongji.test/hospital"
roles = ["medical-settlement"]
"#;

/// A client as one caller.
pub type Authed = InterceptedService<Channel, PeerInterceptor>;

/// The generated clients of every service.
#[derive(Clone)]
pub struct Clients {
    pub registry: RegistryServiceClient<Authed>,
    pub bindings: BindingServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub premiums: PremiumServiceClient<Authed>,
    pub medical: MedicalExpenseServiceClient<Authed>,
    pub wallet: WalletServiceClient<Authed>,
    pub settlement: SettlementServiceClient<Authed>,
}

/// A service's database, as a test that takes it away or reads its bytes needs it.
pub enum ServiceDatabase {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

/// A running stack with its own databases.
pub struct TestEnv {
    pub stack: Stack,
    pub clients: Clients,
    /// The development identity providers and caller file this stack trusts.
    pub identity: LocalIdentity,
    _identity_dir: tempfile::TempDir,
    _dir: Option<tempfile::TempDir>,
    _policy: Option<tempfile::TempPath>,
    pg_databases: Vec<String>,
}

/// Two fresh databases (binding-service's, payment-service's), or `None` when PostgreSQL
/// is not required and not there.
async fn postgres_databases() -> Option<(String, String, Vec<String>)> {
    let names = testing::create_databases(&["binding", "payment"]).await?;
    let admin = testing::admin_url();
    Some((
        testing::database_url(&admin, &names[0]),
        testing::database_url(&admin, &names[1]),
        names,
    ))
}

impl TestEnv {
    /// Starts both services with the clock fixed at `clock`; `None` if the backend is skipped.
    pub async fn start(backend: Backend, clock: &str) -> Option<Self> {
        Self::start_with_policy(backend, clock, None).await
    }

    /// Like [`TestEnv::start`], with a policy file of the test's own.
    pub async fn start_with_policy(
        backend: Backend,
        clock: &str,
        policy: Option<&str>,
    ) -> Option<Self> {
        Self::start_with(backend, clock, policy, None).await
    }

    /// Both services serving TLS with `pki`'s server certificate, checking client
    /// certificates against its CA (optional: token callers need none), and calling each
    /// other over mutual TLS, known by their certificates (no peer tokens).
    pub async fn start_tls(backend: Backend, clock: &str, pki: &TestPki) -> Option<Self> {
        Self::start_with(backend, clock, None, Some(pki)).await
    }

    async fn start_with(
        backend: Backend,
        clock: &str,
        policy: Option<&str>,
        pki: Option<&TestPki>,
    ) -> Option<Self> {
        let (dir, binding_url, payment_url, pg_databases) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
                let (b, p) = (url("binding.db"), url("payment.db"));
                (Some(dir), b, p, Vec::new())
            }
            Backend::Postgres => {
                let (b, p, names) = postgres_databases().await?;
                (None, b, p, names)
            }
        };
        let policy = policy.map(|text| {
            let file = tempfile::NamedTempFile::new().expect("policy file");
            std::fs::write(file.path(), text).expect("write policy");
            file.into_temp_path()
        });
        let identity_dir = tempfile::tempdir().expect("identity dir");
        let identity =
            LocalIdentity::create(identity_dir.path(), CONTRACT_CALLER).expect("identities");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let stack = Stack::start(StackConfig {
            binding_addr: any,
            payment_addr: any,
            binding_database_url: binding_url,
            payment_database_url: payment_url,
            policy: policy.as_ref().map(|p| p.to_path_buf()),
            clock: Clock::parse(clock).expect("test clock"),
            peer_probe_interval_ms: PROBE_INTERVAL_MS,
            binding_auth: match pki {
                Some(_) => identity.auth.clone(),
                None => identity.service_auth("binding-service"),
            },
            payment_auth: match pki {
                Some(_) => identity.auth.clone(),
                None => identity.service_auth("payment-service"),
            },
            first_call_timeout_ms: FIRST_CALL_TIMEOUT_MS,
            shutdown_delay_ms: 0,
            metrics_addrs: (None, None),
            binding_tls: pki
                .map(|p| p.service_tls("binding-service"))
                .unwrap_or_default(),
            payment_tls: pki
                .map(|p| p.service_tls("payment-service"))
                .unwrap_or_default(),
            client_tls_ca: pki.map(|p| p.ca_file()),
            binding_keys: identity.service_keys("binding-service"),
            payment_keys: identity.service_keys("payment-service"),
            reseal: false,
        })
        .await
        .expect("start the stack");
        stack
            .wait_serving(READY_TIMEOUT_MS)
            .await
            .expect("both services SERVING");
        let token = identity.caller_token(CONTRACT_TESTS, 3_600);
        let mut clients = clients_with(
            &stack,
            PeerInterceptor::with_token(&token),
            pki.map(|p| p.client_tls(None)),
        )
        .await;
        // The hospital and the pharmacy the tests pay at are designated (M1).
        clients
            .medical
            .batch_upsert_designated_institutions(gongji_stack::demo::designated_institutions())
            .await
            .expect("designated institutions");
        Some(Self {
            stack,
            clients,
            identity,
            _identity_dir: identity_dir,
            _dir: dir,
            _policy: policy,
            pg_databases,
        })
    }

    /// Where payment-service keeps its data: the SQLite file, or the PostgreSQL database's
    /// name on the admin server (for tests that take the database away).
    pub fn payment_database(&self) -> ServiceDatabase {
        match (&self._dir, self.pg_databases.get(1)) {
            (Some(dir), _) => ServiceDatabase::Sqlite(dir.path().join("payment.db")),
            (None, Some(name)) => ServiceDatabase::Postgres {
                admin_url: testing::admin_url(),
                name: name.clone(),
            },
            (None, None) => unreachable!("a test env has one backend"),
        }
    }

    /// payment-service's data keys, as an auditor holding them would open its rows.
    pub fn payment_vault(&self) -> gongji_shared::vault::Vault {
        self.stack
            .config
            .payment_keys
            .load()
            .expect("payment-service's keys")
    }

    /// Where binding-service keeps its data: the SQLite file, or the PostgreSQL database.
    pub fn binding_database(&self) -> ServiceDatabase {
        match (&self._dir, self.pg_databases.first()) {
            (Some(dir), _) => ServiceDatabase::Sqlite(dir.path().join("binding.db")),
            (None, Some(name)) => ServiceDatabase::Postgres {
                admin_url: testing::admin_url(),
                name: name.clone(),
            },
            (None, None) => unreachable!("a test env has one backend"),
        }
    }

    /// A copy of the clients, independent of `self`'s borrow.
    pub fn clients_owned(&self) -> Clients {
        self.clients.clone()
    }

    /// Stops both services and drops the test's PostgreSQL databases.
    pub async fn finish(self) {
        self.stack.stop().await.expect("clean stop");
        if self.pg_databases.is_empty() {
            return;
        }
        testing::drop_databases(&self.pg_databases).await;
    }
}

/// Clients of `stack` calling with `credentials`.
pub async fn clients(stack: &Stack, credentials: PeerInterceptor) -> Clients {
    clients_with(stack, credentials, None).await
}

/// Clients of `stack` calling with `credentials`, over `tls` when the stack serves TLS.
pub async fn clients_with(
    stack: &Stack,
    credentials: PeerInterceptor,
    tls: Option<ClientTlsConfig>,
) -> Clients {
    let connect = |url: String| {
        let tls = tls.clone();
        async move {
            let endpoint = tonic::transport::Endpoint::from_shared(url).expect("url");
            let endpoint = match tls {
                Some(tls) => endpoint.tls_config(tls).expect("tls"),
                None => endpoint,
            };
            endpoint.connect().await.expect("connect")
        }
    };
    let binding = connect(stack.binding_url()).await;
    let payment = connect(stack.payment_url()).await;
    let c = credentials;
    Clients {
        registry: RegistryServiceClient::with_interceptor(binding.clone(), c.clone()),
        bindings: BindingServiceClient::with_interceptor(binding, c.clone()),
        accounts: AccountServiceClient::with_interceptor(payment.clone(), c.clone()),
        premiums: PremiumServiceClient::with_interceptor(payment.clone(), c.clone()),
        medical: MedicalExpenseServiceClient::with_interceptor(payment.clone(), c.clone()),
        wallet: WalletServiceClient::with_interceptor(payment.clone(), c.clone()),
        settlement: SettlementServiceClient::with_interceptor(payment, c),
    }
}

/// Asserts an AIP-193 error: the code, exactly one ErrorInfo with this reason and domain.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
    domain: &str,
) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "code of {status:?}");
    let details = status.get_error_details_vec();
    let infos: Vec<_> = details
        .iter()
        .filter_map(|d| match d {
            tonic_types::ErrorDetail::ErrorInfo(info) => Some(info),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 1, "exactly one ErrorInfo in {status:?}");
    assert_eq!(infos[0].reason, reason, "reason of {status:?}");
    assert_eq!(infos[0].domain, domain, "domain of {status:?}");
    status
}

/// Runs a test body once per backend: `both_backends!(name)` over `async fn name(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test($crate::support::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test($crate::support::Backend::Postgres).await
                }
            }
        )+
    };
}

/// A local address free now (bound, read and given back), for a process or port a test
/// starts by address.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `message` as a request acting for `person` (the harness's caller may name anyone).
pub fn acting_for<T>(person: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        gongji_shared::rpc::auth::ACTING_PERSON_HEADER,
        person.parse().expect("an ID number is valid metadata"),
    );
    request
}

/// A test PKI: a CA, a server certificate for 127.0.0.1 and localhost, and client
/// certificates whose URI SAN is `spiffe://gongji.test/<name>`.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

/// The SPIFFE ID of a test client certificate.
pub fn spiffe(name: &str) -> String {
    format!("spiffe://gongji.test/{name}")
}

impl TestPki {
    /// A fresh CA and server certificate.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("pki dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gongji test CA");
        let ca = params.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        let pki = Self {
            dir,
            ca_params: params,
            ca_key,
        };
        let server =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        pki.issue("server", server);
        pki
    }

    fn issue(&self, name: &str, params: rcgen::CertificateParams) {
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(self.dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(
            self.dir.path().join(format!("{name}.key")),
            key.serialize_pem(),
        )
        .expect("write");
    }

    /// A client certificate for `spiffe://gongji.test/<name>`.
    pub fn client(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names =
            vec![rcgen::SanType::URI(spiffe(name).try_into().expect("a URI"))];
        self.issue(name, params);
        (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        )
    }

    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// One service's TLS: the server certificate, client certificates checked (optional),
    /// and its own client certificate for the peer.
    pub fn service_tls(&self, name: &str) -> TlsFlags {
        let (cert, key) = self.client(name);
        TlsFlags {
            tls_cert: Some(self.dir.path().join("server.pem")),
            tls_key: Some(self.dir.path().join("server.key")),
            tls_client_ca: Some(self.ca_file()),
            tls_require_client_cert: false,
            peer_tls_ca: Some(self.ca_file()),
            peer_tls_domain: None,
            peer_tls_cert: Some(cert),
            peer_tls_key: Some(key),
        }
    }

    /// A client's TLS, presenting `name`'s certificate if given.
    pub fn client_tls(&self, name: Option<&str>) -> ClientTlsConfig {
        let ca = std::fs::read(self.ca_file()).expect("ca");
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some(name) = name {
            let (cert, key) = self.client(name);
            tls = tls.identity(Identity::from_pem(
                std::fs::read(cert).expect("cert"),
                std::fs::read(key).expect("key"),
            ));
        }
        tls
    }
}
