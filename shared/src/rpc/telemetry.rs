//! Structured logs through `tracing`, and W3C trace context through OpenTelemetry.
//!
//! An incoming `traceparent` always continues into the calls a service makes to its peer.
//! Spans are built as OpenTelemetry spans, and exported over OTLP, only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: without an exporter nobody would read them, and building
//! them costs several per cent of a service's throughput. Then [`TraceContextLayer`] carries the
//! caller's context through the call as it came, so the trace still joins up across the hop.

use std::task::{Context as TaskContext, Poll};

use opentelemetry::{
    Context,
    context::{FutureExt as _, WithContext},
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (local use).
    Text,
}

/// The OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP exporter: {0}")]
pub struct TelemetryError(String);

/// Keeps the tracer provider alive; flushes spans when dropped.
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber and propagator. Call once, inside the tokio runtime (the
/// OTLP exporter needs it). `RUST_LOG` filters; the default is `info`.
pub fn init(
    service_name: &'static str,
    format: LogFormat,
) -> Result<TelemetryGuard, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| TelemetryError(e.to_string()))?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service_name)
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(colours(
                std::io::IsTerminal::is_terminal(&std::io::stdout()),
                std::env::var_os("NO_COLOR").as_deref(),
            )))
            .try_init(),
    };
    // A second init (tests start several servers in one process) keeps the first subscriber.
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
    Ok(TelemetryGuard(provider))
}

/// Whether text logs are coloured: on a terminal only (a file or pipe gets no ANSI codes),
/// and never when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colours(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The span of one incoming call, child of the caller's `traceparent` if it sent one.
/// Named after OpenTelemetry's RPC conventions (`rpc.system`, `rpc.service`, `rpc.method`),
/// so that a trace shows which service each span ran in.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let span = tracing::info_span!(
        "grpc.request",
        rpc = %path,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        otel.kind = "server",
    );
    let parent =
        global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let _ = span.set_parent(parent);
    span
}

/// Writes the current trace context into outgoing call metadata: the current span's when spans
/// are OpenTelemetry spans, else the caller's as [`TraceContextLayer`] carries it.
pub fn inject_current_context(metadata: &mut tonic::metadata::MetadataMap) {
    let span = tracing::Span::current().context();
    let context = if span.span().span_context().is_valid() {
        span
    } else {
        Context::current()
    };
    global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataInjector(metadata))
    });
}

/// A client interceptor that adds the current trace context to every outgoing call, so a
/// caller's `traceparent` continues into the calls this service makes to its peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current_context(request.metadata_mut());
        Ok(request)
    }
}

/// Runs each call with the caller's W3C trace context as the current OpenTelemetry context,
/// so that [`inject_current_context`] passes it on when no OpenTelemetry layer is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

/// The service of [`TraceContextLayer`].
#[derive(Debug, Clone)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let caller =
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
        self.inner.call(request).with_context(caller)
    }
}

/// The trace ID of the current span, as 32 hex characters (for tests and logs).
pub fn current_trace_id() -> String {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_are_coloured_on_a_terminal_only_and_never_under_no_color() {
        use std::ffi::OsStr;
        assert!(super::colours(true, None));
        assert!(super::colours(true, Some(OsStr::new(""))));
        assert!(!super::colours(true, Some(OsStr::new("1"))));
        assert!(!super::colours(false, None));
        assert!(!super::colours(false, Some(OsStr::new("1"))));
    }

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn an_incoming_traceparent_continues_into_outgoing_calls() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let incoming = http::Request::builder()
                .uri("/gongji.payment.v1.PremiumService/PayPremium")
                .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
                .body(())
                .unwrap();
            let span = server_span(&incoming);
            let _entered = span.enter();
            assert_eq!(current_trace_id(), TRACE_ID);
            let mut outgoing = tonic::metadata::MetadataMap::new();
            inject_current_context(&mut outgoing);
            let traceparent = outgoing.get("traceparent").unwrap().to_str().unwrap();
            assert!(
                traceparent.starts_with(&format!("00-{TRACE_ID}-")),
                "{traceparent}"
            );
            assert!(
                !traceparent.contains("00f067aa0ba902b7"),
                "a new span id for the call: {traceparent}"
            );
        });
    }

    #[tokio::test]
    async fn without_an_exporter_the_callers_traceparent_still_reaches_the_peer() {
        use tower::{Layer as _, ServiceExt as _};
        global::set_text_map_propagator(TraceContextPropagator::new());
        // No OpenTelemetry layer, as when no exporter is configured.
        let subscriber = tracing_subscriber::registry();
        let _default = tracing::subscriber::set_default(subscriber);
        let service = TraceContextLayer.layer(tower::service_fn(|_: http::Request<()>| async {
            let mut outgoing = tonic::metadata::MetadataMap::new();
            inject_current_context(&mut outgoing);
            Ok::<_, std::convert::Infallible>(outgoing)
        }));
        let incoming = http::Request::builder()
            .uri("/gongji.payment.v1.PremiumService/PayPremium")
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
            .body(())
            .unwrap();
        let outgoing = service.oneshot(incoming).await.unwrap();
        let traceparent = outgoing.get("traceparent").unwrap().to_str().unwrap();
        assert_eq!(traceparent, format!("00-{TRACE_ID}-00f067aa0ba902b7-01"));
        // Outside the call, nothing is carried.
        let mut elsewhere = tonic::metadata::MetadataMap::new();
        inject_current_context(&mut elsewhere);
        assert!(elsewhere.get("traceparent").is_none());
    }

    #[test]
    fn without_a_traceparent_a_new_trace_starts() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let incoming = http::Request::builder().uri("/x").body(()).unwrap();
            let span = server_span(&incoming);
            let _entered = span.enter();
            let mut outgoing = tonic::metadata::MetadataMap::new();
            inject_current_context(&mut outgoing);
            assert!(outgoing.get("traceparent").is_some());
            assert_ne!(current_trace_id(), "00000000000000000000000000000000");
        });
    }
}
