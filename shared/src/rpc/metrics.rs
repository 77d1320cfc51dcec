//! gRPC call metrics under the names existing dashboards expect (go-grpc-prometheus):
//! `grpc_{server,client}_started_total`, `grpc_{server,client}_handled_total` (by code) and
//! `grpc_{server,client}_handling_seconds`, labelled `grpc_service` and `grpc_method`; on the
//! server, every refusal's AIP-193 reason as `gongji_refusals_total`.
//!
//! One tower layer, for the server (outermost, so that it sees the refusals of the
//! authentication and transport layers too) and for the peer channel. A call is handled when
//! its response body ends: the code is the trailers' (or a trailers-only answer's) status; a
//! body dropped before its end (the client went away) counts as CANCELLED.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame};
use tonic::{Code, body::Body};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// Which side of a call is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Side {
    fn names(self) -> [&'static str; 3] {
        match self {
            Side::Server => [
                "grpc_server_started_total",
                "grpc_server_handled_total",
                "grpc_server_handling_seconds",
            ],
            Side::Client => [
                "grpc_client_started_total",
                "grpc_client_handled_total",
                "grpc_client_handling_seconds",
            ],
        }
    }
}

/// Measures every call; does nothing when there are no metrics (no `--metrics-addr`).
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Option<Metrics>,
    side: Side,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Option<Metrics>, side: Side) -> Self {
        Self { metrics, side }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for GrpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: HttpBody<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(metrics) = self.layer.metrics.clone() else {
            let call = self.inner.call(request);
            return Box::pin(async move { Ok(call.await?.map(Body::new)) });
        };
        let side = self.layer.side;
        let call = Call::start(metrics, side, request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                // No answer at all (the peer could not be reached): handled, as UNAVAILABLE.
                Err(error) => {
                    call.finish(Code::Unavailable);
                    return Err(error);
                }
            };
            let early = code_of(response.headers());
            if let (Some(code), Side::Server) = (early, side) {
                call.count_refusal(code, response.headers());
            }
            Ok(response.map(|body| {
                Body::new(MeasuredBody {
                    inner: body,
                    call: Some(call),
                    code: early,
                })
            }))
        })
    }
}

/// One call being measured: its labels and start.
struct Call {
    metrics: Metrics,
    side: Side,
    service: String,
    method: String,
    started: Instant,
}

impl Call {
    fn start(metrics: Metrics, side: Side, path: &str) -> Self {
        // `/package.Service/Method` of the contract, health or reflection; any other path a
        // caller sends is "unknown", so that no caller can add series at will.
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .filter(|_| known_paths().contains(path.trim_start_matches('/')))
            .unwrap_or(("unknown", "unknown"));
        let call = Self {
            metrics,
            side,
            service: service.to_owned(),
            method: method.to_owned(),
            started: Instant::now(),
        };
        call.metrics
            .counter(side.names()[0], &call.labels())
            .increment(1);
        call
    }

    fn labels(&self) -> [(&'static str, &str); 2] {
        [
            ("grpc_service", &self.service),
            ("grpc_method", &self.method),
        ]
    }

    fn finish(self, code: Code) {
        let [_, handled, seconds] = self.side.names();
        let code_name = format!("{code:?}");
        let [s, m] = self.labels();
        self.metrics
            .counter(handled, &[s, m, ("grpc_code", &code_name)])
            .increment(1);
        self.metrics
            .histogram(seconds, &[s, m])
            .record(self.started.elapsed().as_secs_f64());
    }

    /// An error status's AIP-193 reason, counted as a refusal.
    fn count_refusal(&self, code: Code, headers: &HeaderMap) {
        if code == Code::Ok {
            return;
        }
        let status = tonic::Status::from_header_map(headers);
        let reason = status
            .as_ref()
            .and_then(tonic_types::StatusExt::get_details_error_info)
            .map(|info| info.reason)
            .unwrap_or_default();
        let reason = if reason.is_empty() {
            "NONE".to_owned()
        } else {
            bounded(&reason)
        };
        let [s, m] = self.labels();
        self.metrics
            .counter("gongji_refusals_total", &[s, m, ("reason", &reason)])
            .increment(1);
    }
}

/// Every `package.Service/Method` served: the contract's, health's and reflection's.
fn known_paths() -> &'static std::collections::HashSet<String> {
    static PATHS: std::sync::LazyLock<std::collections::HashSet<String>> =
        std::sync::LazyLock::new(|| {
            let mut paths: std::collections::HashSet<String> = [
                "grpc.health.v1.Health/Check",
                "grpc.health.v1.Health/Watch",
                "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
            let set = <prost_types::FileDescriptorSet as prost::Message>::decode(
                gongji_proto::FILE_DESCRIPTOR_SET,
            )
            .unwrap_or_default();
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        paths.insert(format!(
                            "{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
            paths
        });
    &PATHS
}

/// A label value from the wire, bounded in length and to the characters RPC names and
/// reasons use: a caller cannot grow the registry with arbitrary text beyond its paths.
fn bounded(raw: &str) -> String {
    const MAX_LABEL_BYTES: usize = 64;
    raw.chars()
        .take(MAX_LABEL_BYTES)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn code_of(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

pin_project_lite::pin_project! {
    /// A response body that finishes its call's measure when it ends.
    struct MeasuredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        code: Option<Code>,
    }

    impl<B> PinnedDrop for MeasuredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.take() {
                call.finish(this.code.unwrap_or(Code::Cancelled));
            }
        }
    }
}

impl<B> HttpBody for MeasuredBody<B>
where
    B: HttpBody<Data = bytes::Bytes>,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(code) = code_of(trailers)
                {
                    *this.code = Some(code);
                    if let Some(call) = this.call.as_ref()
                        && call.side == Side::Server
                    {
                        call.count_refusal(code, trailers);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.code.get_or_insert(Code::Internal);
            }
            Poll::Ready(None) => {}
            Poll::Pending => return polled,
        }
        if (matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            || this.inner.is_end_stream())
            && let Some(call) = this.call.take()
        {
            // A body that ended without a status said nothing: an HTTP-level answer.
            call.finish(this.code.unwrap_or(Code::Unknown));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_paths_are_known_and_no_other() {
        let known = known_paths();
        assert!(known.contains("gongji.payment.v1.PremiumService/PayPremium"));
        assert!(known.contains("gongji.binding.v1.BindingService/CheckAuthorization"));
        assert!(known.contains("grpc.health.v1.Health/Check"));
        assert!(!known.contains("gongji.payment.v1.PremiumService/Nope"));
        let m = Metrics::new();
        Call::start(m.clone(), Side::Server, "/x.Y/Z").finish(Code::Unimplemented);
        Call::start(
            m.clone(),
            Side::Server,
            "/gongji.payment.v1.PremiumService/PayPremium",
        )
        .finish(Code::Ok);
        let text = m.render();
        assert!(
            text.contains("grpc_server_handled_total{grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_code=\"Unimplemented\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("grpc_server_started_total{grpc_service=\"gongji.payment.v1.PremiumService\",grpc_method=\"PayPremium\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_call_that_gets_no_answer_is_handled_as_unavailable() {
        let m = Metrics::new();
        let unreachable = tower::service_fn(|_: Request<Body>| async {
            Err::<Response<Body>, &'static str>("connection refused")
        });
        let service = GrpcMetricsLayer::new(Some(m.clone()), Side::Client).layer(unreachable);
        let request = Request::builder()
            .uri("http://peer/gongji.binding.v1.BindingService/AuthorizeUse")
            .body(Body::empty())
            .unwrap();
        assert!(tower::ServiceExt::oneshot(service, request).await.is_err());
        let text = m.render();
        assert!(
            text.contains("grpc_client_handled_total{grpc_service=\"gongji.binding.v1.BindingService\",grpc_method=\"AuthorizeUse\",grpc_code=\"Unavailable\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn label_values_from_the_wire_are_bounded() {
        assert_eq!(
            bounded("gongji.payment.v1.PremiumService"),
            "gongji.payment.v1.PremiumService"
        );
        assert_eq!(bounded("a b{c}\"d"), "a_b_c__d");
        assert_eq!(bounded(&"x".repeat(500)).len(), 64);
    }
}
