//! Structured logs through `tracing`, and W3C trace context through OpenTelemetry.
//!
//! Spans always carry OpenTelemetry context, so an incoming `traceparent` continues into the
//! calls a service makes to its peer. Spans are exported over OTLP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
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
    let mut builder = SdkTracerProvider::builder();
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name)
                .build(),
        )
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    // A second init (tests start several servers in one process) keeps the first subscriber.
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
    Ok(TelemetryGuard(Some(provider)))
}

/// The span of one incoming call, child of the caller's `traceparent` if it sent one.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.request",
        rpc = %request.uri().path(),
        otel.kind = "server",
    );
    let parent =
        global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let _ = span.set_parent(parent);
    span
}

/// Writes the current span's trace context into outgoing call metadata.
pub fn inject_current_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
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

/// The trace ID of the current span, as 32 hex characters (for tests and logs).
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt as _;
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
