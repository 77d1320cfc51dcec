//! OTLP span export, switched on by `OTEL_EXPORTER_OTLP_ENDPOINT`, against a real OTLP/gRPC
//! receiver the test starts: the local stack (`gongji-local`, both services, as a process of
//! its own) exports, and one PayPremium gives one trace whose spans ran in both services.

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use gongji_proto::payment::v1::premium_service_client::PremiumServiceClient;
use gongji_shared::rpc::auth::ACTING_PERSON_HEADER;
use gongji_stack::demo;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use tokio_stream::wrappers::TcpListenerStream;

use crate::{
    payment::pay,
    support::{IN_WINDOW, free_addr},
};

/// How long the spans get to arrive (the batch exporter sends every 200 ms here).
const EXPORTED_WITHIN_MS: u64 = 30_000;

/// Every span received.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().expect("spans").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A span's string attribute.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

/// The local stack as a process, killed when dropped.
struct LocalStack(Child);

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_payment_is_one_trace_across_both_services_at_a_real_receiver() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver_addr = listener.local_addr().expect("addr");
    let receiver = Receiver::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let data = tempfile::tempdir().expect("dir");
    let (binding_addr, payment_addr) = (free_addr(), free_addr());
    let _stack = LocalStack(
        Command::new(env!("CARGO_BIN_EXE_gongji-local"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--binding-addr", &format!("http://{binding_addr}")])
            .args(["--payment-addr", &format!("http://{payment_addr}")])
            .args(["--clock", IN_WINDOW])
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{receiver_addr}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("RUST_LOG", "info")
            .env_remove("BINDING_DATABASE_URL")
            .env_remove("PAYMENT_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gongji-local starts"),
    );
    // Serving with the demo family loaded once its callers' tokens are written.
    let token_file = data.path().join("identity/tokens/gov-app.jwt");
    let url = format!("http://{payment_addr}");
    let mut client = None;
    for _ in 0..200 {
        if token_file.exists()
            && let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
                .expect("url")
                .connect()
                .await
        {
            client = Some(channel);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = client.expect("gongji-local serves");
    let token = std::fs::read_to_string(&token_file).expect("token");
    let mut premiums = PremiumServiceClient::with_interceptor(
        channel,
        gongji_shared::rpc::peer::PeerInterceptor::with_token(&token),
    );
    let mut paid = None;
    for _ in 0..100 {
        let mut request =
            tonic::Request::new(pay("otlp-pay", demo::EMPLOYEE_ID, demo::CHILD_ID, 2025));
        request.metadata_mut().insert(
            ACTING_PERSON_HEADER,
            demo::EMPLOYEE_ID.parse().expect("metadata"),
        );
        // The demo family may still be loading: retried with the same request ID.
        match premiums.pay_premium(request).await {
            Ok(response) => {
                paid = Some(response.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    paid.expect("the demo employee pays the child's premium");

    let deadline = tokio::time::Instant::now() + Duration::from_millis(EXPORTED_WITHIN_MS);
    loop {
        let spans = receiver.0.lock().expect("spans").clone();
        let payments: Vec<&Span> = spans
            .iter()
            .filter(|s| attribute(s, "rpc.method") == Some("PayPremium"))
            .collect();
        let traces: std::collections::BTreeSet<&[u8]> =
            payments.iter().map(|s| s.trace_id.as_slice()).collect();
        let services: std::collections::BTreeSet<&str> = spans
            .iter()
            .filter(|s| traces.iter().any(|t| *t == s.trace_id.as_slice()))
            .filter_map(|s| attribute(s, "rpc.service"))
            .collect();
        // Every try of the payment (retries while the demo loaded included) is its own
        // trace; the one that paid reached binding-service's AuthorizeUse in the same trace.
        let spanning = traces.iter().any(|trace| {
            let of = |service: &str, method: &str| {
                spans.iter().any(|s| {
                    s.trace_id.as_slice() == *trace
                        && attribute(s, "rpc.service") == Some(service)
                        && attribute(s, "rpc.method") == Some(method)
                })
            };
            of("gongji.payment.v1.PremiumService", "PayPremium")
                && of("gongji.binding.v1.BindingService", "AuthorizeUse")
                && of("gongji.binding.v1.BindingService", "CheckAuthorization")
        });
        if spanning {
            assert!(services.contains("gongji.binding.v1.BindingService"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trace spans both services: {} spans, payment traces {}, services {services:?}",
            spans.len(),
            traces.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.abort();
}
