//! Prometheus metrics: each service serves them on a port of its own; the text passes
//! `promtool check metrics`, and a real Prometheus scraping both services answers a PromQL
//! query with the payments the test made. Debian's `prometheus` package provides both tools;
//! without them the test says SKIPPED, unless `GONGJI_TEST_PROMETHEUS=require` (as CI sets).

use std::{
    io::Write as _,
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::{
    both_backends, fixtures,
    payment::pay,
    support::{Backend, IN_WINDOW, TestEnv, assert_error, free_addr},
};

both_backends!(payments_show_in_metrics_that_prometheus_scrapes);

const DOMAIN: &str = "payment.gongji";

/// How long Prometheus gets to scrape what the test made.
const SCRAPED_WITHIN_MS: u64 = 30_000;

/// Whether Prometheus and promtool are installed; a test without them is skipped, loudly,
/// or fails when they are required.
fn prometheus_installed() -> bool {
    let found = ["prometheus", "promtool"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        assert!(
            std::env::var("GONGJI_TEST_PROMETHEUS").as_deref() != Ok("require"),
            "GONGJI_TEST_PROMETHEUS=require but prometheus or promtool is missing (apt-get install prometheus)"
        );
        eprintln!("!!! SKIPPED a Prometheus test: install Debian's prometheus package");
    }
    found
}

/// One plain HTTP/1.1 GET: the status line and the body.
async fn try_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

async fn get(addr: SocketAddr, path_and_query: &str) -> (String, String) {
    try_get(addr, path_and_query).await.expect("GET")
}

/// `text` percent-encoded for a query string.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `promtool check metrics` on `text`: its findings, empty when it has none.
fn promtool_findings(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ends");
    if out.status.success() {
        String::new()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// A Prometheus scraping `targets` every 200 ms, on a free port, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("prometheus.yml");
        let targets = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 200ms, scrape_timeout: 150ms}}\n\
                 scrape_configs:\n  - job_name: gongji\n    static_configs: [{{targets: [{targets}]}}]\n"
            ),
        )
        .expect("config");
        let addr = free_addr();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The value of the one-series answer to `query`, once it is `want`; panics after the
    /// time limit with the last answer.
    async fn wait_for(&self, query: &str, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SCRAPED_WITHIN_MS);
        let path = format!("/api/v1/query?query={}", encoded(query));
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            // Refused until Prometheus listens.
            if let Ok(Ok((status, body))) =
                tokio::time::timeout(Duration::from_secs(2), try_get(self.addr, &path)).await
            {
                // `"value":[<time>,"<value>"]` of the single series.
                if status.contains("200") && body.contains(&format!(",\"{want}\"]")) {
                    return;
                }
                last = format!("{status} {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{query} never answered {want}: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn payments_show_in_metrics_that_prometheus_scrapes(backend: Backend) {
    if !prometheus_installed() {
        return;
    }
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    // Both services again, now serving metrics.
    let (binding_metrics, payment_metrics) = (free_addr(), free_addr());
    env.stack.stop_payment().await.expect("stop");
    env.stack.stop_binding().await.expect("stop");
    env.stack.config.metrics_addrs = (Some(binding_metrics), Some(payment_metrics));
    env.stack.restart_binding().await.expect("restart");
    env.stack.restart_payment().await.expect("restart");
    env.stack
        .wait_serving(gongji_stack::READY_TIMEOUT_MS)
        .await
        .expect("serving");
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let paid = c
        .premiums
        .pay_premium(pay(
            "metrics-pay",
            fixtures::EMPLOYEE,
            fixtures::CHILD,
            2025,
        ))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    // A retry is answered from the first answer: not a second debit.
    c.premiums
        .pay_premium(pay(
            "metrics-pay",
            fixtures::EMPLOYEE,
            fixtures::CHILD,
            2025,
        ))
        .await
        .expect("retry");
    let refused = c
        .premiums
        .pay_premium(pay(
            "metrics-again",
            fixtures::EMPLOYEE,
            fixtures::CHILD,
            2025,
        ))
        .await;
    assert_error(refused, Code::AlreadyExists, "PREMIUM_ALREADY_PAID", DOMAIN);
    let fen = fixtures::fen(&paid.quote.expect("quote").account_part);
    assert!(fen > 0, "the account paid a part");

    let (status, payment_text) = get(payment_metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let (_, binding_text) = get(binding_metrics, "/metrics").await;
    for (service, text) in [("payment", &payment_text), ("binding", &binding_text)] {
        assert_eq!(
            promtool_findings(text),
            "",
            "{service}-service's metrics:\n{text}"
        );
        // Labels name RPCs, codes and reasons, never a person.
        for id in [fixtures::EMPLOYEE, fixtures::CHILD] {
            assert!(!text.contains(id), "{service}-service's metrics name {id}");
        }
        assert!(!text.contains("metrics-pay"), "a request ID in a label");
    }
    for expected in [
        "gongji_family_debits_total{purpose=\"PREMIUM\"} 1".to_owned(),
        format!("gongji_family_debit_fen_total{{purpose=\"PREMIUM\"}} {fen}"),
        "grpc_server_handled_total{grpc_service=\"gongji.payment.v1.PremiumService\",grpc_method=\"PayPremium\",grpc_code=\"Ok\"} 2".to_owned(),
        "grpc_server_handled_total{grpc_service=\"gongji.payment.v1.PremiumService\",grpc_method=\"PayPremium\",grpc_code=\"AlreadyExists\"} 1".to_owned(),
        "gongji_refusals_total{grpc_service=\"gongji.payment.v1.PremiumService\",grpc_method=\"PayPremium\",reason=\"PREMIUM_ALREADY_PAID\"} 1".to_owned(),
        // The peer calls of the first payment: the check, then the use.
        "grpc_client_handled_total{grpc_service=\"gongji.binding.v1.BindingService\",grpc_method=\"AuthorizeUse\",grpc_code=\"Ok\"} 1".to_owned(),
        "gongji_holds_open 0".to_owned(),
        "gongji_event_watchers 0".to_owned(),
        "gongji_db_pool_connections{state=\"idle\"}".to_owned(),
        "grpc_server_handling_seconds_bucket{grpc_service=\"gongji.payment.v1.PremiumService\",grpc_method=\"PayPremium\",le=\"10\"} 3".to_owned(),
    ] {
        assert!(payment_text.contains(&expected), "{expected} not in\n{payment_text}");
    }
    for expected in [
        "gongji_authorization_checks_total{rpc=\"AuthorizeUse\",outcome=\"authorized\"} 1",
        "grpc_server_started_total{grpc_service=\"gongji.binding.v1.BindingService\",grpc_method=\"AuthorizeUse\"} 1",
    ] {
        assert!(
            binding_text.contains(expected),
            "{expected} not in\n{binding_text}"
        );
    }

    let prometheus = Prometheus::start(&[binding_metrics, payment_metrics]);
    prometheus
        .wait_for("sum(gongji_family_debits_total{purpose=\"PREMIUM\"})", "1")
        .await;
    prometheus
        .wait_for(
            "sum(gongji_family_debit_fen_total{purpose=\"PREMIUM\"})",
            &fen.to_string(),
        )
        .await;
    prometheus
        .wait_for(
            "sum(grpc_server_handled_total{grpc_method=\"AuthorizeUse\",grpc_code=\"Ok\"})",
            "1",
        )
        .await;
    drop(prometheus);
    env.finish().await;
}
