//! A caller's W3C `traceparent` continues through payment-service into its call to
//! binding-service: both servers' spans carry the caller's trace ID.

use std::{sync::OnceLock, time::Duration};

use gongji_proto::payment::v1::PayPremiumRequest;
use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{
    both_backends, fixtures,
    support::{Backend, IN_WINDOW, TestEnv},
};

both_backends!(traceparent_continues_into_the_peer_call);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// One process-wide subscriber that keeps every finished span in memory.
fn spans() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        exporter
    })
}

fn server_spans_of_trace(rpc: &str) -> usize {
    spans()
        .get_finished_spans()
        .expect("spans")
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == TRACE_ID)
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "rpc" && kv.value.as_str() == rpc)
        })
        .count()
}

async fn traceparent_continues_into_the_peer_call(backend: Backend) {
    spans();
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let mut request = tonic::Request::new(PayPremiumRequest {
        request_id: fixtures::opaque("traced"),
        payer_id_number: fixtures::EMPLOYEE.into(),
        beneficiary_id_number: fixtures::CHILD.into(),
        coverage_year: 2025,
        expected_amount: "400.00".into(),
        other_means: None,
        back_payment: false,
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    c.premiums.pay_premium(request).await.expect("pay");

    let payment_rpc = "/gongji.payment.v1.PremiumService/PayPremium";
    let binding_rpc = "/gongji.binding.v1.BindingService/CheckAuthorization";
    let mut seen = (0, 0);
    for _ in 0..100 {
        seen = (
            server_spans_of_trace(payment_rpc),
            server_spans_of_trace(binding_rpc),
        );
        if seen.0 > 0 && seen.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.0 > 0,
        "payment-service's span continues the caller's trace"
    );
    assert!(seen.1 > 0, "binding-service's span continues it too");
    env.finish().await;
}
