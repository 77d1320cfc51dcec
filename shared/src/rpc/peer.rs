//! What every call to the peer service carries: the current trace context (W3C) and, when
//! configured, this service's own bearer token, re-read from its file at every call so it
//! can be rotated without a restart.

use std::{path::PathBuf, sync::Arc};

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

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
enum Token {
    /// Re-read at every call.
    File(Arc<PathBuf>),
    Fixed(Arc<str>),
}

/// The interceptor of peer calls (and of any client that calls as one caller).
#[derive(Debug, Clone, Default)]
pub struct PeerInterceptor {
    token: Option<Token>,
}

impl PeerInterceptor {
    /// Calls present the token in `token_file`, if any (the mesh or mTLS may vouch instead).
    pub fn new(token_file: Option<PathBuf>) -> Self {
        Self {
            token: token_file.map(|path| Token::File(Arc::new(path))),
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
        let read;
        let token = match &self.token {
            None => None,
            Some(Token::Fixed(token)) => Some(token.as_ref()),
            Some(Token::File(path)) => {
                read = std::fs::read_to_string(path.as_ref())
                    .map_err(|e| tonic::Status::unauthenticated(format!("peer token: {e}")))?;
                Some(read.as_str())
            }
        };
        if let Some(token) = token {
            let token = token.trim();
            if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
                return Err(tonic::Status::unauthenticated(
                    "peer token file is empty or too long",
                ));
            }
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::unauthenticated("peer token is not valid metadata"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}
