//! What every call to the peer service carries: the current trace context (W3C) and, when
//! configured, this service's own bearer token, read again from its file every
//! [`TOKEN_REREAD_MS`] so it can be rotated without a restart.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::metadata::AsciiMetadataValue;

use super::{
    auth::tokens::MAX_TOKEN_BYTES,
    metrics::{GrpcMetrics, GrpcMetricsLayer, Side},
    telemetry,
};
use crate::metrics::Metrics;

/// The channel peer calls go through: measured as `grpc_client_*` when there are metrics.
pub type PeerChannel = GrpcMetrics<tonic::transport::Channel>;

/// `channel`, its calls measured in `metrics` (when there are any).
pub fn measured(channel: tonic::transport::Channel, metrics: Option<Metrics>) -> PeerChannel {
    tower::Layer::layer(&GrpcMetricsLayer::new(metrics, Side::Client), channel)
}

/// How long a token read from its file is presented before the file is read again. A
/// rotated token is in use within this time; the issuer rotates well before expiry (the
/// kubelet at 80% of a projected token's life), so the one presented meanwhile is still
/// valid. Reading at every call cost an open, a read and a close per peer call.
pub const TOKEN_REREAD_MS: u64 = 5_000;

/// A token file and what was last read from it.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    /// [`TOKEN_REREAD_MS`], but for tests.
    reread: Duration,
    /// The header value last read, and when; a failed read is never kept.
    read: Mutex<Option<(Instant, AsciiMetadataValue)>>,
}

impl TokenFile {
    /// The header value: the one read less than [`TOKEN_REREAD_MS`] ago, or the file's now.
    fn header(&self) -> Result<AsciiMetadataValue, tonic::Status> {
        let fresh = self.reread;
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, value)) = read.as_ref().filter(|(at, _)| at.elapsed() < fresh) {
            debug_assert!(at.elapsed() < fresh);
            return Ok(value.clone());
        }
        let token = std::fs::read_to_string(&self.path)
            .map_err(|e| tonic::Status::unauthenticated(format!("peer token: {e}")))?;
        let value = bearer(&token)?;
        *read = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
enum Token {
    File(Arc<TokenFile>),
    Fixed(Arc<str>),
}

/// The `authorization` header of a token (surrounding whitespace ignored).
fn bearer(token: &str) -> Result<AsciiMetadataValue, tonic::Status> {
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(tonic::Status::unauthenticated(
            "peer token file is empty or too long",
        ));
    }
    format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::unauthenticated("peer token is not valid metadata"))
}

/// The interceptor of peer calls (and of any client that calls as one caller).
#[derive(Debug, Clone, Default)]
pub struct PeerInterceptor {
    token: Option<Token>,
}

impl PeerInterceptor {
    /// Calls present the token in `token_file`, if any (the mesh or mTLS may vouch instead).
    pub fn new(token_file: Option<PathBuf>) -> Self {
        Self::reading(token_file, Duration::from_millis(TOKEN_REREAD_MS))
    }

    fn reading(token_file: Option<PathBuf>, reread: Duration) -> Self {
        Self {
            token: token_file.map(|path| {
                Token::File(Arc::new(TokenFile {
                    path,
                    reread,
                    read: Mutex::new(None),
                }))
            }),
        }
    }

    /// Calls present `token`.
    pub fn with_token(token: &str) -> Self {
        Self {
            token: Some(Token::Fixed(Arc::from(token))),
        }
    }
}

impl tonic::service::Interceptor for PeerInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        telemetry::inject_current_context(request.metadata_mut());
        let header = match &self.token {
            None => None,
            Some(Token::Fixed(token)) => Some(bearer(token)?),
            Some(Token::File(file)) => Some(file.header()?),
        };
        if let Some(header) = header {
            request.metadata_mut().insert("authorization", header);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn presented(interceptor: &mut PeerInterceptor) -> Result<String, tonic::Code> {
        let request = interceptor
            .call(tonic::Request::new(()))
            .map_err(|s| s.code())?;
        Ok(request
            .metadata()
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned())
    }

    #[test]
    fn a_token_file_is_read_again_once_its_reading_is_old_and_a_bad_one_is_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let reread = Duration::from_millis(200);
        let mut interceptor = PeerInterceptor::reading(Some(path.clone()), reread);
        assert_eq!(presented(&mut interceptor).unwrap(), "Bearer first");
        // Rotated: the reading in hand is presented until it is old.
        std::fs::write(&path, "second").unwrap();
        assert_eq!(presented(&mut interceptor).unwrap(), "Bearer first");
        std::thread::sleep(reread);
        assert_eq!(presented(&mut interceptor).unwrap(), "Bearer second");
        // A file gone or empty fails the call each time, until it is good again.
        let mut fresh = PeerInterceptor::reading(Some(path.clone()), reread);
        std::fs::write(&path, "  ").unwrap();
        assert_eq!(presented(&mut fresh), Err(tonic::Code::Unauthenticated));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(presented(&mut fresh), Err(tonic::Code::Unauthenticated));
        std::fs::write(&path, "third").unwrap();
        assert_eq!(presented(&mut fresh).unwrap(), "Bearer third");
        // A fixed token, and none.
        assert_eq!(
            presented(&mut PeerInterceptor::with_token("fixed")).unwrap(),
            "Bearer fixed"
        );
        let none = PeerInterceptor::default()
            .call(tonic::Request::new(()))
            .unwrap();
        assert!(none.metadata().get("authorization").is_none());
    }
}
