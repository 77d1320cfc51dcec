//! Telemetry seen from outside: a caller's W3C `traceparent` continues through
//! payment-service into its call to binding-service, and the logs never carry an ID
//! number or a name whole.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

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

both_backends!(
    traceparent_continues_into_the_peer_call,
    logs_never_carry_id_numbers_or_names_whole
);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What the process-wide subscriber keeps: every finished span, every log line.
struct Captured {
    spans: InMemorySpanExporter,
    logs: Arc<Mutex<Vec<u8>>>,
}

/// Log lines go to memory.
#[derive(Clone)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One subscriber for the whole test process, installed by the first test that needs it.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        let writer = Memory(logs.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        Captured { spans, logs }
    })
}

fn spans() -> &'static InMemorySpanExporter {
    &captured().spans
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

async fn logs_never_carry_id_numbers_or_names_whole(backend: Backend) {
    let logs = captured().logs.clone();
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    // A refusal and a payment: the paths that log the most about people.
    let mut mismatch = fixtures::bind_request(&fixtures::opaque("mismatch"));
    mismatch.beneficiary_name = "王五".into();
    let _ = c.bindings.create_binding(mismatch).await;
    c.premiums
        .pay_premium(PayPremiumRequest {
            request_id: fixtures::opaque("logged"),
            payer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            coverage_year: 2025,
            expected_amount: "400.00".into(),
            other_means: None,
            back_payment: false,
        })
        .await
        .expect("pay");
    env.finish().await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        text.contains("3405**********0020"),
        "the masked form is logged"
    );
    for whole in [
        fixtures::EMPLOYEE,
        fixtures::CHILD,
        fixtures::EMPLOYEE_NAME,
        fixtures::CHILD_NAME,
        "王五",
    ] {
        assert!(!text.contains(whole), "{whole} appears whole in the logs");
    }
}
