//! Answers the transport gives before or around a handler, made AIP-193 errors like every
//! other: a message over the size limit (RESOURCE_EXHAUSTED, not tonic's OUT_OF_RANGE), a
//! body that does not decode (INVALID_ARGUMENT, not INTERNAL), and a call that runs past
//! its time limit (DEADLINE_EXCEEDED with an ErrorInfo, not tonic's bare CANCELLED "Timeout
//! expired", which leaves a client that does not retry unsure whether it paid).
//!
//! One tower layer around the router. Our own errors always carry details; an error status
//! without any came from tonic's codec, and only those are rewritten.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};

use super::ApiError;

/// Wraps a router: bounds each call by `timeout_ms` and rewrites the transport's own error
/// statuses under `domain`.
#[derive(Debug, Clone, Copy)]
pub struct TransportErrorsLayer {
    domain: &'static str,
    timeout_ms: u64,
    max_message_bytes: usize,
}

impl TransportErrorsLayer {
    pub fn new(domain: &'static str, timeout_ms: u64, max_message_bytes: usize) -> Self {
        Self {
            domain,
            timeout_ms,
            max_message_bytes,
        }
    }
}

impl<S> Layer<S> for TransportErrorsLayer {
    type Service = TransportErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TransportErrors {
            inner,
            config: *self,
        }
    }
}

/// The service [`TransportErrorsLayer`] makes.
#[derive(Debug, Clone)]
pub struct TransportErrors<S> {
    inner: S,
    config: TransportErrorsLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for TransportErrors<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        let config = self.config;
        Box::pin(async move {
            match tokio::time::timeout(Duration::from_millis(config.timeout_ms), call).await {
                Ok(Ok(response)) => Ok(rewrite(response, &config)),
                Ok(Err(error)) => Err(error),
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = config.timeout_ms,
                        "call ran past its time limit"
                    );
                    Ok(ApiError::deadline_exceeded(
                        "DEADLINE_EXCEEDED",
                        "the call ran past its time limit; it may or may not have taken effect: \
                         retry with the same request_id to get its answer",
                    )
                    .with_metadata("timeout_ms", config.timeout_ms)
                    .into_status(config.domain)
                    .into_http())
                }
            }
        })
    }
}

/// The response, or our error in place of a detail-less one the codec answered.
fn rewrite(response: Response<Body>, config: &TransportErrorsLayer) -> Response<Body> {
    let headers = response.headers();
    if headers.contains_key(Status::GRPC_STATUS_DETAILS)
        || !headers.contains_key(Status::GRPC_STATUS)
    {
        return response;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return response;
    };
    let replacement = match status.code() {
        Code::OutOfRange if status.message().contains("message length too large") => {
            ApiError::resource_exhausted(
                "MESSAGE_TOO_LARGE",
                "the request message is larger than this server accepts",
            )
            .with_metadata("max_message_bytes", config.max_message_bytes)
        }
        Code::Internal if status.message().contains("decode") => ApiError::invalid_request(
            "MALFORMED_REQUEST",
            "the request body is not a valid message of this RPC",
        ),
        _ => return response,
    };
    tracing::info!(code = ?status.code(), message = status.message(), "transport error answered as AIP-193");
    replacement.into_status(config.domain).into_http()
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    const DOMAIN: &str = "test.gongji";

    /// Runs one call through the layer over a service answering `answer` after `delay_ms`.
    async fn through(answer: Status, delay_ms: u64) -> Status {
        let inner = tower::service_fn(move |_: Request<Body>| {
            let answer = answer.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok::<_, std::convert::Infallible>(answer.into_http::<Body>())
            }
        });
        let mut service = TransportErrorsLayer::new(DOMAIN, 50, 1024).layer(inner);
        let response = service.call(Request::new(Body::empty())).await.unwrap();
        Status::from_header_map(response.headers()).expect("a status")
    }

    fn reason(status: &Status) -> String {
        let details = status.get_error_details();
        let info = details.error_info().expect("one ErrorInfo");
        assert_eq!(info.domain, DOMAIN);
        info.reason.clone()
    }

    #[tokio::test]
    async fn an_oversized_message_is_resource_exhausted() {
        let status = through(
            Status::out_of_range(
                "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
            ),
            0,
        )
        .await;
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
    }

    #[tokio::test]
    async fn an_undecodable_body_is_invalid_argument() {
        let status = through(
            Status::internal("failed to decode Protobuf message: invalid wire type"),
            0,
        )
        .await;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), "MALFORMED_REQUEST");
    }

    #[tokio::test]
    async fn a_call_past_its_limit_is_deadline_exceeded_with_a_reason() {
        let status = through(Status::ok(""), 500).await;
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    }

    #[tokio::test]
    async fn our_own_errors_pass_unchanged() {
        let ours = ApiError::internal().into_status("own.gongji");
        let status = through(ours, 0).await;
        assert_eq!(status.code(), Code::Internal);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().domain, "own.gongji");
    }
}
