//! Prometheus metrics of one service: its own registry (two services in one process, as in
//! the local stack and the tests, never mix their figures), served as Prometheus text on a
//! separate HTTP port ([`http`]).
//!
//! Names follow the conventions existing dashboards expect: `grpc_server_*` and
//! `grpc_client_*` for calls ([`crate::rpc::metrics`]), `gongji_*` for the business. Amounts
//! are integer fen. Labels never carry an ID number, a name or a request ID: only names of
//! RPCs, codes, reasons, purposes and states, all from closed sets.

pub mod http;

use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Upper bounds of the call-duration histograms, in seconds: 1 ms to 10 s (the call limit).
pub const CALL_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the settlement-run histogram, in seconds.
pub const RUN_SECONDS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0];

/// Every name this crate and the services register, with its help text and buckets: a
/// metric not described here is refused in debug builds (so that no series goes out without
/// HELP, which `promtool check metrics` asks for).
const DESCRIBED: &[(&str, &str, Kind)] = &[
    (
        "grpc_server_started_total",
        "RPCs started on the server.",
        Kind::Counter,
    ),
    (
        "grpc_server_handled_total",
        "RPCs completed on the server, by gRPC status code.",
        Kind::Counter,
    ),
    (
        "grpc_server_handling_seconds",
        "Time from a call's arrival to its last response byte, in seconds.",
        Kind::Histogram(CALL_SECONDS_BUCKETS),
    ),
    (
        "grpc_client_started_total",
        "RPCs started to the peer service.",
        Kind::Counter,
    ),
    (
        "grpc_client_handled_total",
        "RPCs to the peer service completed, by gRPC status code.",
        Kind::Counter,
    ),
    (
        "grpc_client_handling_seconds",
        "Time from a peer call's start to its last response byte, in seconds.",
        Kind::Histogram(CALL_SECONDS_BUCKETS),
    ),
    (
        "gongji_refusals_total",
        "Calls refused with an AIP-193 error, by its reason.",
        Kind::Counter,
    ),
    (
        "gongji_family_debits_total",
        "Debits of an account for a family member, by purpose.",
        Kind::Counter,
    ),
    (
        "gongji_family_debit_fen_total",
        "Amount debited from accounts for family members, in fen, by purpose.",
        Kind::Counter,
    ),
    (
        "gongji_authorization_checks_total",
        "Authorization decisions (CheckAuthorization, AuthorizeUse), by outcome.",
        Kind::Counter,
    ),
    (
        "gongji_authorization_denials_total",
        "Reasons authorization was denied for (one decision may give several).",
        Kind::Counter,
    ),
    (
        "gongji_holds_open",
        "Holds of family debits placed and neither posted nor voided.",
        Kind::Gauge,
    ),
    (
        "gongji_holds_expired_total",
        "Holds voided because they ran out before their payment posted them.",
        Kind::Counter,
    ),
    (
        "gongji_settlement_runs_total",
        "Settlement runs of a business day, by outcome.",
        Kind::Counter,
    ),
    (
        "gongji_settlement_run_seconds",
        "Duration of settlement runs, in seconds.",
        Kind::Histogram(RUN_SECONDS_BUCKETS),
    ),
    (
        "gongji_db_pool_connections",
        "Connections of the database pool, by state (in_use, idle).",
        Kind::Gauge,
    ),
    (
        "gongji_event_watchers",
        "Event streams open on this server.",
        Kind::Gauge,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// A figure read when the metrics are scraped (a pool's connections, open streams).
type Probe = Box<dyn Fn(&Metrics) + Send + Sync>;

/// One service's metrics. Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    probes: Arc<Mutex<Vec<Probe>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A new registry holding the help texts and buckets of every known metric.
    pub fn new() -> Self {
        let mut builder = PrometheusBuilder::new();
        for (name, _, kind) in DESCRIBED {
            if let Kind::Histogram(buckets) = kind {
                builder = builder
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full((*name).to_owned()),
                        buckets,
                    )
                    // Only an empty bucket list is refused, and none is.
                    .unwrap_or_else(|_| PrometheusBuilder::new());
            }
        }
        let recorder = builder.build_recorder();
        for (name, help, kind) in DESCRIBED {
            let help = SharedString::const_str(help);
            match kind {
                Kind::Counter => recorder.describe_counter((*name).into(), None, help),
                Kind::Gauge => recorder.describe_gauge((*name).into(), None, help),
                Kind::Histogram(_) => {
                    recorder.describe_histogram((*name).into(), Some(Unit::Seconds), help)
                }
            }
        }
        Self {
            handle: recorder.handle(),
            recorder: Arc::new(recorder),
            probes: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The counter `name` with `labels`.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        debug_assert!(described(name), "{name} has no help text");
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// The gauge `name` with `labels`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        debug_assert!(described(name), "{name} has no help text");
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// The histogram `name` with `labels`.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        debug_assert!(described(name), "{name} has no help text");
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// Runs `probe` at every scrape, before the text is rendered.
    pub fn on_scrape(&self, probe: impl Fn(&Metrics) + Send + Sync + 'static) {
        if let Ok(mut probes) = self.probes.lock() {
            probes.push(Box::new(probe));
        }
    }

    /// The Prometheus text of every metric, after the probes ran.
    pub fn render(&self) -> String {
        if let Ok(probes) = self.probes.lock() {
            for probe in probes.iter() {
                probe(self);
            }
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Probes a service's database pool and event streams at every scrape.
pub fn probe_service<D: crate::db::Database>(
    metrics: &Metrics,
    store: D,
    watchers: crate::rpc::watch::Watchers,
) {
    metrics.on_scrape(move |m| {
        let pool = store.pool_connections();
        m.gauge("gongji_db_pool_connections", &[("state", "in_use")])
            .set(f64::from(pool.in_use));
        m.gauge("gongji_db_pool_connections", &[("state", "idle")])
            .set(f64::from(pool.idle));
        m.gauge("gongji_event_watchers", &[])
            .set(watchers.open() as f64);
    });
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn described(name: &str) -> bool {
    DESCRIBED.iter().any(|(n, _, _)| *n == name)
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_keep_their_own_figures_with_help_and_buckets() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.counter("gongji_family_debits_total", &[("purpose", "PREMIUM")])
            .increment(2);
        a.histogram(
            "grpc_server_handling_seconds",
            &[("grpc_service", "s"), ("grpc_method", "m")],
        )
        .record(0.003);
        let text = a.render();
        assert!(
            text.contains("gongji_family_debits_total{purpose=\"PREMIUM\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("# HELP gongji_family_debits_total Debits of an account"),
            "{text}"
        );
        assert!(
            text.contains(
                "grpc_server_handling_seconds_bucket{grpc_service=\"s\",grpc_method=\"m\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(!b.render().contains("gongji_family_debits_total{"));
    }

    #[test]
    fn probes_run_at_every_scrape() {
        let m = Metrics::new();
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = runs.clone();
        m.on_scrape(move |m| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            m.gauge("gongji_event_watchers", &[]).set(n as f64);
        });
        m.render();
        assert!(m.render().contains("gongji_event_watchers 2"));
    }
}
