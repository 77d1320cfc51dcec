//! Start-up flags both services take, with the same environment variables.

use std::{path::PathBuf, sync::Arc};

use crate::{
    domain::Clock,
    rpc::{
        auth::{Auth, Authenticator, Callers, MeshHeader, TokenVerifier, contract_rpcs},
        telemetry::LogFormat,
    },
    vault::{
        KeyError, KeyProvider, Vault,
        keys::{EnvKeys, FileKeys},
    },
};

/// Policy file, log format and clock.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonFlags {
    /// Policy file (TOML); the compiled-in Anhui default when absent.
    #[arg(long, env = "GONGJI_POLICY")]
    pub policy: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "GONGJI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// "system", or a fixed RFC 3339 time for demos and tests (e.g. 2024-11-15T10:00:00+08:00).
    #[arg(long, env = "GONGJI_CLOCK", default_value = "system", value_parser = parse_clock)]
    pub clock: Clock,
    /// A connection that has made no call this long after it opened is closed (100 to
    /// 600000 ms).
    #[arg(
        long,
        env = "GONGJI_FIRST_CALL_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub first_call_timeout_ms: u64,
    /// After SIGTERM, health says NOT_SERVING this long while calls are still taken, so that
    /// readiness probes and load balancers see it before the listener closes (0 to 60000 ms;
    /// set it above the readiness probe's period).
    #[arg(
        long,
        env = "GONGJI_SHUTDOWN_DELAY_MS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub shutdown_delay_ms: u64,
    /// Who may call and what: the caller file (TOML: roles and callers).
    #[command(flatten)]
    pub auth: AuthFlags,
    /// TLS of the server and of calls to the peer.
    #[command(flatten)]
    pub tls: crate::rpc::tls::TlsFlags,
    /// The keys personal data is sealed under.
    #[command(flatten)]
    pub keys: KeyFlags,
    /// Days a state-changing call's first answer is kept for its retries (1 to 3650); after
    /// that its request ID stays taken and a retry is told REQUEST_ID_EXPIRED.
    #[arg(
        long,
        env = "GONGJI_IDEMPOTENCY_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=3_650)
    )]
    pub idempotency_retention_days: u32,
    /// Instead of serving: re-seal every stored value under the newest data key, in bounded
    /// batches (run again to resume), retire the older keys' check values, and exit.
    #[arg(long)]
    pub reseal: bool,
}

/// Where the data keys come from: a key file, or the same document in an environment
/// variable. A service without keys refuses to start.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyFlags {
    /// The key document (TOML: the index key, and data keys by version), readable by the
    /// service's user only.
    #[arg(long, env = "GONGJI_DATA_KEYS_FILE", conflicts_with = "data_keys_env")]
    pub data_keys_file: Option<PathBuf>,
    /// The name of an environment variable holding the key document instead (as a secret
    /// mounted by the platform).
    #[arg(long, env = "GONGJI_DATA_KEYS_ENV")]
    pub data_keys_env: Option<String>,
}

impl KeyFlags {
    /// The provider the flags name.
    pub fn provider(&self) -> Result<Box<dyn KeyProvider>, KeyError> {
        match (&self.data_keys_file, &self.data_keys_env) {
            (Some(path), None) => Ok(Box::new(FileKeys(path.clone()))),
            (None, Some(var)) => Ok(Box::new(EnvKeys(var.clone()))),
            (None, None) => Err(KeyError(
                "no data keys: pass --data-keys-file (or --data-keys-env); gongji-local generates development keys"
                    .to_owned(),
            )),
            (Some(_), Some(_)) => Err(KeyError(
                "--data-keys-file and --data-keys-env contradict each other".to_owned(),
            )),
        }
    }

    /// The vault of the keys the flags name.
    pub fn load(&self) -> Result<Vault, KeyError> {
        let material = self.provider()?.load()?;
        tracing::info!(
            versions = ?material.data_keys.keys().collect::<Vec<_>>(),
            active = material.active_version(),
            "data keys loaded"
        );
        Ok(Vault::new(&material))
    }
}

/// Where callers' identities come from. Without `--callers` a service refuses to start,
/// unless `--insecure-no-auth` says to let everyone do everything.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthFlags {
    /// The caller file: each identity's roles, each role's RPCs (TOML).
    #[arg(long, env = "GONGJI_CALLERS")]
    pub callers: Option<PathBuf>,
    /// Public keys (JWKS file) of the issuer of callers' bearer tokens.
    #[arg(long, env = "GONGJI_AUTH_JWKS", requires_all = ["auth_issuer", "auth_audience"])]
    pub auth_jwks: Option<PathBuf>,
    /// The issuer (`iss`) callers' tokens must name.
    #[arg(long, env = "GONGJI_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// The audience (`aud`) callers' tokens must name.
    #[arg(long, env = "GONGJI_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// Public keys (JWKS file) of the identity provider that logs citizens in.
    #[arg(long, env = "GONGJI_ACTING_PERSON_JWKS", requires_all = ["acting_person_issuer", "acting_person_audience"])]
    pub acting_person_jwks: Option<PathBuf>,
    /// The issuer acting-person tokens must name.
    #[arg(long, env = "GONGJI_ACTING_PERSON_ISSUER")]
    pub acting_person_issuer: Option<String>,
    /// The audience acting-person tokens must name.
    #[arg(long, env = "GONGJI_ACTING_PERSON_AUDIENCE")]
    pub acting_person_audience: Option<String>,
    /// Trust this sidecar's identity header. Only when the port is reachable through the
    /// sidecar alone: anyone who reaches the port directly could set the header.
    #[arg(long, env = "GONGJI_TRUST_MESH_IDENTITY", value_enum)]
    pub trust_mesh_identity: Option<MeshHeader>,
    /// The bearer token this service presents to its peer service, read again every 5 s
    /// (rotate it in place). Without it, the mesh or mTLS must vouch for this service.
    #[arg(long, env = "GONGJI_PEER_TOKEN_FILE")]
    pub peer_token_file: Option<PathBuf>,
    /// Serve without authentication: every caller may call every RPC. Development only;
    /// logged as a warning at every start.
    #[arg(long, env = "GONGJI_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
}

/// The authentication settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthFlagsError(String);

impl AuthFlags {
    /// Loads the caller file and keys the flags name.
    pub fn load(&self) -> Result<Auth, AuthFlagsError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map_err(|e| AuthFlagsError(format!("cannot read {}: {e}", path.display())))
        };
        let Some(callers) = &self.callers else {
            if self.insecure_no_auth {
                tracing::warn!(
                    "--insecure-no-auth: every caller may call every RPC, unauthenticated; never in production"
                );
                return Ok(Auth::Off);
            }
            return Err(AuthFlagsError(
                "no --callers file: every call must be authenticated (or, for development only, pass --insecure-no-auth)"
                    .to_owned(),
            ));
        };
        if self.insecure_no_auth {
            return Err(AuthFlagsError(
                "--insecure-no-auth and --callers contradict each other".to_owned(),
            ));
        }
        let callers = Callers::parse(&read(callers)?, &contract_rpcs())
            .map_err(|e| AuthFlagsError(e.to_string()))?;
        let verifier =
            |jwks: &Option<PathBuf>, issuer: &Option<String>, audience: &Option<String>| {
                jwks.as_ref()
                    .map(|path| {
                        TokenVerifier::from_jwks(
                            &read(path)?,
                            issuer.as_deref().unwrap_or_default(),
                            audience.as_deref().unwrap_or_default(),
                        )
                        .map_err(|e| AuthFlagsError(format!("{}: {e}", path.display())))
                    })
                    .transpose()
            };
        let tokens = verifier(&self.auth_jwks, &self.auth_issuer, &self.auth_audience)?;
        let acting_persons = verifier(
            &self.acting_person_jwks,
            &self.acting_person_issuer,
            &self.acting_person_audience,
        )?;
        if tokens.is_none() && self.trust_mesh_identity.is_none() {
            return Err(AuthFlagsError(
                "no source of caller identities: pass --auth-jwks or --trust-mesh-identity"
                    .to_owned(),
            ));
        }
        if let Some(mesh) = self.trust_mesh_identity {
            tracing::warn!(
                ?mesh,
                "trusting the sidecar's identity header: the port must be reachable through the sidecar alone"
            );
        }
        Ok(Auth::Enforced(Arc::new(Authenticator::new(
            callers,
            tokens,
            acting_persons,
            self.trust_mesh_identity,
        ))))
    }
}

fn parse_clock(value: &str) -> Result<Clock, String> {
    Clock::parse(value).map_err(|e| e.to_string())
}
