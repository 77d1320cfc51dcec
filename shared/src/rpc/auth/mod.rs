//! Who is calling, and what they may do (issue "Trust").
//!
//! Every call but health and reflection is authenticated, from whichever sources the
//! configuration switches on: a bearer token (JWT, checked against a JWKS), or the identity
//! header a service-mesh sidecar sets (only when the port is reachable through the sidecar
//! alone). The caller file maps the identity to roles and the roles to RPCs; anything not
//! granted is denied. A citizen channel names the person it acts for in
//! `x-gongji-acting-person`: the identity provider's token, or, from a caller trusted to do
//! so, a plain ID number. The [`Caller`] found is put in the request's extensions, where
//! the handlers read it; nothing of who is asking is taken from the request body.

pub mod callers;
#[cfg(any(test, feature = "dev-identity"))]
pub mod dev;
mod layer;
mod mesh;
mod rate;
pub mod tokens;

use std::sync::Arc;

use http::HeaderMap;

use crate::{IdNumber, rpc::ApiError};

pub use callers::{Callers, contract_rpcs};
pub use layer::{AuthLayer, AuthService};
pub use mesh::MeshHeader;
pub use tokens::{TokenRefusal, TokenVerifier};

tokio::task_local! {
    /// The caller whose call is being served.
    static SCOPE: Option<Caller>;
}

/// Who the call being served comes from: its caller's identity (whose request IDs it
/// uses) and the person it acts for; empty outside a call, as in unit tests.
pub fn request_actor() -> (String, Option<IdNumber>) {
    SCOPE
        .try_with(|caller| {
            caller
                .as_ref()
                .map(|c| (c.identity.clone(), c.acting_person.clone()))
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Runs `call` as the call of `caller` (none for health and reflection).
pub(crate) fn in_scope<F: std::future::Future>(
    caller: Option<Caller>,
    call: F,
) -> tokio::task::futures::TaskLocalFuture<Option<Caller>, F> {
    SCOPE.scope(caller, call)
}

/// The metadata key naming the person a citizen channel acts for.
pub const ACTING_PERSON_HEADER: &str = "x-gongji-acting-person";

/// Who is calling, as authenticated: in each request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's identity (token subject, SPIFFE ID or mesh identity).
    pub identity: String,
    /// The logged-in person the caller acts for, if it names one.
    pub acting_person: Option<IdNumber>,
    /// Whether the caller may see full names.
    pub sees_names: bool,
    /// The institutions the caller settles for, if its entry lists them.
    pub institutions: Vec<String>,
}

impl Caller {
    /// The caller when authentication is off (`--insecure-no-auth`): anonymous, allowed
    /// everything, acting for nobody.
    pub fn insecure() -> Self {
        Self {
            identity: "insecure-no-auth".to_owned(),
            acting_person: None,
            sees_names: true,
            institutions: Vec::new(),
        }
    }

    /// The caller of a request, as the auth layer put it there; the insecure caller when
    /// the layer is off.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::insecure)
    }
}

impl Caller {
    /// When the caller acts for a person, that person must be one of `parties` (the
    /// account holder, the binding's sides, the payer or beneficiary). A caller acting for
    /// itself was let through by its role alone.
    pub fn require_party(&self, parties: &[&IdNumber]) -> Result<(), ApiError> {
        match &self.acting_person {
            Some(person) if !parties.contains(&person) => Err(ApiError::permission_denied(
                "ACTING_PERSON_NOT_PARTY",
                "the person the caller acts for is no party to this",
            )
            .with_metadata("caller", &self.identity)
            .with_metadata("acting_person", person.masked())),
            _ => Ok(()),
        }
    }

    /// A hospital or pharmacy caller whose entry lists its institutions pays at those only.
    pub fn require_institution(&self, code: &str) -> Result<(), ApiError> {
        if self.institutions.is_empty() || self.institutions.iter().any(|i| i == code) {
            return Ok(());
        }
        Err(ApiError::permission_denied(
            "INSTITUTION_NOT_CALLERS",
            "the caller settles for other institutions than this one",
        )
        .with_metadata("caller", &self.identity)
        .with_metadata("institution_code", code))
    }

    /// The person the caller acts for, where only a person can ask (a revocation).
    pub fn acting_person(&self) -> Result<&IdNumber, ApiError> {
        self.acting_person.as_ref().ok_or_else(|| {
            ApiError::permission_denied(
                "ACTING_PERSON_REQUIRED",
                "only a party can ask this: name them in x-gongji-acting-person",
            )
            .with_metadata("caller", &self.identity)
        })
    }

    /// A name as this caller may see it: whole for roles that need it, masked otherwise.
    pub fn name(&self, name: &crate::PersonName) -> String {
        if self.sees_names {
            name.as_str().to_owned()
        } else {
            name.masked()
        }
    }
}

/// Where identities come from and what they may do.
#[derive(Debug)]
pub struct Authenticator {
    pub callers: Callers,
    /// Bearer tokens of callers.
    pub tokens: Option<TokenVerifier>,
    /// Tokens of the identity provider that logs citizens in.
    pub acting_persons: Option<TokenVerifier>,
    /// The sidecar's identity header, trusted only when so configured.
    pub mesh: Option<MeshHeader>,
    rates: rate::Rates,
}

/// Whether calls are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    Enforced(Arc<Authenticator>),
    /// `--insecure-no-auth`: every caller may do everything. Development only.
    Off,
}

impl Authenticator {
    pub fn new(
        callers: Callers,
        tokens: Option<TokenVerifier>,
        acting_persons: Option<TokenVerifier>,
        mesh: Option<MeshHeader>,
    ) -> Self {
        Self {
            callers,
            tokens,
            acting_persons,
            mesh,
            rates: rate::Rates::default(),
        }
    }

    /// Authenticates a call to `rpc` (`package.Service/Method`) and checks it is granted;
    /// the error is the AIP-193 answer.
    pub fn check(
        &self,
        rpc: &str,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, ApiError> {
        let identity = self.identity(headers, extensions)?;
        let denied = || {
            ApiError::permission_denied(
                "CALLER_NOT_PERMITTED",
                "the caller's roles do not allow this RPC",
            )
            .with_metadata("caller", &identity)
            .with_metadata("rpc", rpc)
        };
        let profile = self.callers.profile(&identity).ok_or_else(denied)?;
        let grant = self.callers.grant(profile, rpc).ok_or_else(denied)?;
        if let Some(retry_ms) = self.rates.take(&identity, profile.requests_per_second) {
            return Err(ApiError::resource_exhausted(
                "RATE_LIMITED",
                "the caller's request rate is used up; retry after the delay given",
            )
            .with_metadata("caller", &identity)
            .with_metadata("requests_per_second", profile.requests_per_second)
            .with_retry_delay_ms(retry_ms));
        }
        let acting_person = self.acting_person(headers, profile.trusted_acting_person)?;
        if grant.acting_person_required && acting_person.is_none() {
            return Err(ApiError::permission_denied(
                "ACTING_PERSON_REQUIRED",
                "this caller acts for a logged-in person: name them in x-gongji-acting-person",
            )
            .with_metadata("caller", &identity)
            .with_metadata("rpc", rpc));
        }
        Ok(Caller {
            identity,
            acting_person,
            sees_names: grant.sees_names,
            institutions: profile.institutions.clone(),
        })
    }

    /// The caller's identity, from the sources configured: the mesh's header, a client
    /// certificate the server checked (mTLS), a bearer token, in that order.
    fn identity(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<String, ApiError> {
        if let Some(mesh) = &self.mesh
            && let Some(identity) = mesh.identity(headers)
        {
            return Ok(identity);
        }
        if let Some(identity) = client_certificate_identity(extensions) {
            return Ok(identity);
        }
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthenticated(
                "CREDENTIALS_MISSING",
                "this RPC needs credentials: authorization: Bearer <token>",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| invalid("the authorization metadata is not Bearer <token>"))?;
        let verifier = self
            .tokens
            .as_ref()
            .ok_or_else(|| invalid("this server accepts no bearer tokens"))?;
        verifier.subject(token.trim()).map_err(refused)
    }

    /// The acting person the call names, if any.
    fn acting_person(
        &self,
        headers: &HeaderMap,
        trusted: bool,
    ) -> Result<Option<IdNumber>, ApiError> {
        let Some(value) = headers.get(ACTING_PERSON_HEADER) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| invalid("x-gongji-acting-person is not text"))?
            .trim();
        if trusted && let Ok(id) = IdNumber::parse(value) {
            return Ok(Some(id));
        }
        let verifier = self.acting_persons.as_ref().ok_or_else(|| {
            invalid(
                "this server accepts no acting-person tokens, and the caller may not assert one",
            )
        })?;
        let subject = verifier.subject(value).map_err(refused)?;
        IdNumber::parse(&subject)
            .map(Some)
            .map_err(|_| invalid("the acting-person token's subject is no ID number"))
    }
}

/// The identity of the verified client certificate of the connection, if any.
fn client_certificate_identity(extensions: &http::Extensions) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    crate::rpc::tls::certificate_identity(certs.first()?.as_ref())
}

fn invalid(message: &str) -> ApiError {
    ApiError::unauthenticated("CREDENTIALS_INVALID", message)
}

fn refused(refusal: TokenRefusal) -> ApiError {
    match refusal {
        TokenRefusal::Expired => {
            ApiError::unauthenticated("CREDENTIALS_EXPIRED", "the token has expired")
        }
        TokenRefusal::Invalid => invalid("the token's signature, issuer or audience does not hold"),
    }
}

/// Calls that stay open to everyone: health probes and reflection (grpcurl list/describe).
pub fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}
