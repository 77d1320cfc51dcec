//! `gongji-bench`: the benchmark. Both services in this process (build with `--release`),
//! fresh databases, N families loaded through the public RPCs, then closed-loop load on the
//! paying and checking RPCs at chosen concurrencies, with `pgbench` (TPC-B and `-S`) run
//! on the same PostgreSQL in the same run as the anchor. Prints a table and writes JSON.
//!
//! A benchmark, not a test: figures are only compared as ratios within one run.

mod cpu;
mod neighbours;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Parser;
use gongji_proto::{
    binding::v1::{
        BatchUpsertInsuredPersonsRequest, BindingKind, CheckAuthorizationRequest,
        CreateBindingRequest, Enrollment, EnrollmentStatus, GetInsuredPersonRequest, InsuredPerson,
        Purpose, Relationship, UpsertInsuredPersonRequest,
        binding_service_client::BindingServiceClient,
        registry_service_client::RegistryServiceClient,
    },
    payment::v1::{
        Bucket, CreditAccountRequest, GetAccountRequest, InstitutionKind, OpenAccountRequest,
        PayMedicalExpenseRequest, PayPremiumRequest, account_service_client::AccountServiceClient,
        medical_expense_service_client::MedicalExpenseServiceClient,
        premium_service_client::PremiumServiceClient,
    },
};
use gongji_shared::{
    Clock, IdNumber,
    rpc::{auth::ACTING_PERSON_HEADER, peer::PeerInterceptor},
    vault::Vault,
};
use gongji_stack::{READY_TIMEOUT_MS, Stack, StackConfig, identity::LocalIdentity};
use tonic::{codegen::InterceptedService, transport::Channel};

// The allocator the services' binaries use, so that the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The caller the benchmark calls as: every RPC, no rate limit to speak of.
const BENCH_CALLER: &str = r#"
[roles.bench]
rpcs = [
  "gongji.binding.v1.RegistryService/UpsertInsuredPerson",
  "gongji.binding.v1.RegistryService/BatchUpsertInsuredPersons",
  "gongji.binding.v1.RegistryService/GetInsuredPerson",
  "gongji.binding.v1.BindingService/CreateBinding",
  "gongji.binding.v1.BindingService/CheckAuthorization",
  "gongji.payment.v1.AccountService/OpenAccount",
  "gongji.payment.v1.AccountService/CreditAccount",
  "gongji.payment.v1.AccountService/GetAccount",
  "gongji.payment.v1.PremiumService/PayPremium",
  "gongji.payment.v1.MedicalExpenseService/PayMedicalExpense",
  "gongji.payment.v1.MedicalExpenseService/BatchUpsertDesignatedInstitutions",
]
[[callers]]
identity = "bench"
roles = ["bench"]
trusted_acting_person = true
requests_per_second = 100000
"#;
/// Inside Ma'anshan's 2025 collection window.
const CLOCK: &str = "2024-11-15T10:00:00+08:00";

/// Runs the benchmark.
#[derive(Debug, Parser)]
#[command(name = "gongji-bench")]
struct Args {
    /// Families loaded (employee, child, account, binding) before the load runs. Each
    /// PayPremium uses one family up (a year is paid once), and the default runs pay for
    /// about 16 seconds at up to the peak rate: enough for a peak of about 1,500 payments a
    /// second (12,000 ran out at 920 a second on a fast day).
    #[arg(long, default_value_t = 24_000)]
    families: usize,
    /// Concurrencies of the closed-loop runs.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    clients: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Databases: postgres, sqlite, or both.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    backends: Vec<String>,
    /// The PostgreSQL server (an admin database on it).
    #[arg(
        long,
        env = "GONGJI_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/bench.json")]
    json: PathBuf,
    /// Persons bulk-loaded straight into PostgreSQL before the families, half of them bound
    /// to the other half and holding an empty account: the size the load runs against.
    #[arg(long, default_value_t = 0)]
    bulk: usize,
    /// Seconds of each registry-sync run (one record per call, then batches).
    #[arg(long, default_value_t = 3)]
    sync_seconds: u64,
    /// Count the SQL statements each call runs (sqlx's statement events: a COMMIT is one, a
    /// BEGIN is not). Counting costs time: compare throughput only between runs without it.
    #[arg(long)]
    count_sql: bool,
    /// HTTP/2 connections the load client opens to each service; the clients of a run take
    /// them in turn. With 1 every call shares one connection, as one calling platform's
    /// would; pgbench opens one per client.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// Only the workloads whose names start with one of these (e.g. `CheckAuthorization`);
    /// every workload when empty. For profiling one workload at a time.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    /// Whether the workload named `workload` is run.
    fn runs(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| workload.starts_with(o.as_str()))
    }
}

/// SQL statements run so far, when `--count-sql` is given.
static SQL_STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts sqlx's statement events (target `sqlx::query`), one per statement run.
struct SqlCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SqlCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            SQL_STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records per BatchUpsertInsuredPersons call in the sync run: the largest batch allowed.
const SYNC_BATCH: usize = 500;
/// Rows per statement of the bulk load.
const BULK_ROWS: usize = 10_000;

type Authed = InterceptedService<Channel, PeerInterceptor>;

#[derive(Clone)]
struct Clients {
    registry: RegistryServiceClient<Authed>,
    bindings: BindingServiceClient<Authed>,
    accounts: AccountServiceClient<Authed>,
    premiums: PremiumServiceClient<Authed>,
    medical: MedicalExpenseServiceClient<Authed>,
}

/// Every family's premium is paid: the run ends early.
#[derive(Debug, thiserror::Error)]
#[error("out of families: load more with --families")]
struct Exhausted;

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize)]
struct Figure {
    backend: String,
    workload: String,
    clients: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    /// SQL statements per call, with `--count-sql`.
    sql_per_call: Option<f64>,
    /// CPU per call, here and in PostgreSQL.
    cpu_per_call: Option<cpu::PerCall>,
    /// What other processes on this host took of its CPU during the run (the paced run's).
    #[serde(skip_serializing_if = "Option::is_none")]
    neighbours: Option<neighbours::Neighbours>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.count_sql {
        use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};
        let only_sql = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::TRACE);
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(SqlCounter.with_filter(only_sql)),
        )?;
    }
    let mut figures = Vec::new();
    for backend in &args.backends {
        figures.extend(run_backend(&args, backend).await?);
        if backend == "postgres" {
            figures.extend(pgbench(&args)?);
        }
    }
    print_table(&figures);
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let report = serde_json::json!({
        "figures": figures,
        "ratios": ratios(&figures),
        "loadavg": load.trim(),
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("JSON: {}", args.json.display());
    Ok(())
}

/// Starts both services on `backend`, loads the families, runs every workload.
async fn run_backend(args: &Args, backend: &str) -> anyhow::Result<Vec<Figure>> {
    let scratch =
        std::env::temp_dir().join(format!("gongji-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch)?;
    let (binding_url, payment_url, databases) = match backend {
        "sqlite" => (
            format!("sqlite://{}", scratch.join("binding.db").display()),
            format!("sqlite://{}", scratch.join("payment.db").display()),
            Vec::new(),
        ),
        "postgres" => {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            let names = vec![
                format!("gongji_bench_{tag}_b"),
                format!("gongji_bench_{tag}_p"),
            ];
            admin(&args.postgres, &each(&names, "CREATE DATABASE", "")).await?;
            (
                database_url(&args.postgres, &names[0]),
                database_url(&args.postgres, &names[1]),
                names,
            )
        }
        other => anyhow::bail!("unknown backend {other}"),
    };
    let identity = LocalIdentity::create(&scratch.join("identity"), BENCH_CALLER)?;
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let stack = Stack::start(StackConfig::local(
        (any, any),
        (binding_url, payment_url),
        None,
        Clock::parse(CLOCK)?,
        &identity,
    ))
    .await?;
    let started = Instant::now();
    stack.wait_serving(READY_TIMEOUT_MS).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    let token = identity.caller_token("bench", 24 * 3_600);
    let mut connections = Vec::with_capacity(usize::from(args.connections));
    for _ in 0..args.connections {
        connections.push(connect(&stack, &token).await?);
    }
    let clients = &connections[0];

    let mut figures = Vec::new();
    if args.bulk > 0 {
        anyhow::ensure!(backend == "postgres", "--bulk loads PostgreSQL only");
        let started = Instant::now();
        let vaults = (
            identity.service_keys("binding-service").load()?,
            identity.service_keys("payment-service").load()?,
        );
        bulk_load(&args.postgres, &databases, &vaults, args.bulk).await?;
        // The bulk rows read back through the services, as rows they wrote would.
        let first = bulk_person(0)?;
        clients
            .registry
            .clone()
            .get_insured_person(GetInsuredPersonRequest {
                id_number: first.as_str().to_owned(),
            })
            .await?;
        clients
            .accounts
            .clone()
            .get_account(GetAccountRequest {
                holder_id_number: first.as_str().to_owned(),
            })
            .await?;
        println!(
            "{backend}: {} persons bulk-loaded in {:.1} s",
            args.bulk,
            started.elapsed().as_secs_f64()
        );
    }
    let loaded = Instant::now();
    load_families(clients, args.families).await?;
    let load_s = loaded.elapsed().as_secs_f64();
    figures.push(Figure {
        backend: backend.to_owned(),
        workload: "LoadFamily (5 RPCs each)".to_owned(),
        clients: 16,
        per_second: args.families as f64 / load_s,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
        sql_per_call: None,
        cpu_per_call: None,
        neighbours: None,
    });
    println!(
        "{backend}: SERVING in {ready_ms:.0} ms; {} families in {load_s:.1} s",
        args.families
    );

    let next_family = Arc::new(AtomicUsize::new(0));
    let families = args.families;
    let pay_premium = move |f: Arc<AtomicUsize>| {
        move |mut c: Clients, _| {
            let f = f.clone();
            async move {
                let i = f.fetch_add(1, Ordering::Relaxed);
                if i >= families {
                    return Err(Exhausted.into());
                }
                let mut request = tonic::Request::new(PayPremiumRequest {
                    request_id: format!("bench-premium-{i}"),
                    payer_id_number: employee(i),
                    beneficiary_id_number: child(i),
                    coverage_year: 2025,
                    expected_amount: "400.00".to_owned(),
                    other_means: None,
                    back_payment: false,
                });
                acting(&mut request, &employee(i));
                c.premiums.pay_premium(request).await?;
                Ok(())
            }
        }
    };
    let mut peak_per_second: f64 = 0.0;
    for &n in args.clients.iter().filter(|_| args.runs("PayPremium")) {
        let figure = closed_loop(
            backend,
            "PayPremium",
            n,
            args.seconds,
            &connections,
            pay_premium(next_family.clone()),
        )
        .await;
        peak_per_second = peak_per_second.max(figure.per_second);
        figures.push(figure);
    }
    // The latency target is set at 70% of the peak: paced, not closed-loop.
    if peak_per_second > 0.0 {
        figures.push(
            paced(
                backend,
                "PayPremium at 70% of peak, paced",
                peak_per_second * PACED_SHARE,
                args.seconds,
                &connections,
                pay_premium(next_family.clone()),
            )
            .await,
        );
    }
    let seq = Arc::new(AtomicUsize::new(0));
    for &n in &args.clients {
        for (name, hot) in [
            ("PayMedicalExpense, spread", false),
            ("PayMedicalExpense, one hot account", true),
        ] {
            if !args.runs(name) {
                continue;
            }
            let seq = seq.clone();
            let families = args.families;
            figures.push(
                closed_loop(
                    backend,
                    name,
                    n,
                    args.seconds,
                    &connections,
                    move |mut c, _| {
                        let seq = seq.clone();
                        async move {
                            let k = seq.fetch_add(1, Ordering::Relaxed);
                            let i = if hot { 0 } else { k % families };
                            c.medical
                                .pay_medical_expense(PayMedicalExpenseRequest {
                                    request_id: format!("bench-medical-{k}"),
                                    beneficiary_id_number: child(i),
                                    family_account_holder_id_number: employee(i),
                                    institution_code: "H340500001".to_owned(),
                                    institution_kind: InstitutionKind::Hospital as i32,
                                    amount: "0.01".to_owned(),
                                })
                                .await?;
                            Ok(())
                        }
                    },
                )
                .await,
            );
        }
        if !args.runs("CheckAuthorization") {
            continue;
        }
        let families = args.families;
        figures.push(
            closed_loop(
                backend,
                "CheckAuthorization",
                n,
                args.seconds,
                &connections,
                move |mut c, k| async move {
                    let i = k % families;
                    c.bindings
                        .check_authorization(CheckAuthorizationRequest {
                            authorizer_id_number: employee(i),
                            beneficiary_id_number: child(i),
                            purpose: Purpose::MedicalExpense as i32,
                        })
                        .await?;
                    Ok(())
                },
            )
            .await,
        );
    }
    if args.runs("UpsertInsuredPerson") || args.runs("BatchUpsertInsuredPersons") {
        figures.extend(registry_sync(backend, args.sync_seconds, &connections).await);
    }
    let peak_mib = peak_rss_mib();
    figures.push(Figure {
        backend: backend.to_owned(),
        workload: "peak RSS MiB, both services (VmHWM)".to_owned(),
        clients: 0,
        per_second: peak_mib,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
        sql_per_call: None,
        cpu_per_call: None,
        neighbours: None,
    });
    figures.push(Figure {
        backend: backend.to_owned(),
        workload: "start-up to SERVING, ms".to_owned(),
        clients: 0,
        per_second: ready_ms,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
        sql_per_call: None,
        cpu_per_call: None,
        neighbours: None,
    });
    println!("{backend}: peak RSS of both services {peak_mib:.0} MiB");
    stack.stop().await?;
    if !databases.is_empty() {
        admin(
            &args.postgres,
            &each(&databases, "DROP DATABASE IF EXISTS", " WITH (FORCE)"),
        )
        .await?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(figures)
}

/// The process's peak resident set (VmHWM), in MiB: both services run in this process, so
/// each alone stays under it.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The i-th bulk-loaded person (district 340503, apart from the families' 340504).
fn bulk_person(i: usize) -> anyhow::Result<IdNumber> {
    let day = chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default()
        + chrono::Duration::days((i / 1000) as i64);
    let body = format!("340503{}{:03}", day.format("%Y%m%d"), i % 1000);
    IdNumber::with_check_char(&body).ok_or_else(|| anyhow::anyhow!("no ID number for {body}"))
}

/// Loads `n` persons straight into binding-service's database (even ones employees, odd
/// ones residents), binds each odd one to the even one before it, and opens an empty
/// account for every even one in payment-service's, `BULK_ROWS` rows per statement, sealed
/// and indexed under each service's keys as the services would. No ANALYZE follows: the
/// plans must not depend on fresh statistics.
async fn bulk_load(
    admin: &str,
    databases: &[String],
    (binding_vault, payment_vault): &(Vault, Vault),
    n: usize,
) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let [binding_db, payment_db] = databases else {
        anyhow::bail!("two databases expected");
    };
    let mut binding = sqlx::PgConnection::connect(&database_url(admin, binding_db)).await?;
    let mut payment = sqlx::PgConnection::connect(&database_url(admin, payment_db)).await?;
    let name = gongji_shared::PersonName::parse("测试")?;
    // Each person's keyed index and sealed number under binding-service's keys.
    let sealed = |ids: &[IdNumber]| -> (Vec<String>, Vec<String>, Vec<String>) {
        (
            ids.iter().map(|id| binding_vault.index(id)).collect(),
            ids.iter().map(|id| binding_vault.seal_id(id)).collect(),
            ids.iter().map(|_| binding_vault.seal_name(&name)).collect(),
        )
    };
    for start in (0..n).step_by(BULK_ROWS) {
        let ids: Vec<IdNumber> = (start..(start + BULK_ROWS).min(n))
            .map(bulk_person)
            .collect::<Result<_, _>>()?;
        let employees: Vec<IdNumber> = ids.iter().step_by(2).cloned().collect();
        let residents: Vec<IdNumber> = ids.iter().skip(1).step_by(2).cloned().collect();
        for (enrollment, ids) in [("employee", &employees), ("resident", &residents)] {
            let (index, id_sealed, names) = sealed(ids);
            sqlx::query(&format!(
                "INSERT INTO persons (id_number, id_sealed, name, {enrollment}_region, {enrollment}_status, update_time) \
                 SELECT i, s, n, '340500', 'NORMAL', now() FROM UNNEST($1::text[], $2::text[], $3::text[]) AS p(i, s, n)"
            ))
            .bind(index)
            .bind(id_sealed)
            .bind(names)
            .execute(&mut binding)
            .await?;
        }
        let pairs = employees.len().min(residents.len());
        let (a, a_sealed, _) = sealed(&employees[..pairs]);
        let (b, b_sealed, names) = sealed(&residents[..pairs]);
        sqlx::query(
            "INSERT INTO bindings (binding_id, authorizer, beneficiary, authorizer_sealed, beneficiary_sealed, \
             beneficiary_name, relationship, kind, state, version, create_time, update_time, state_reason, seq) \
             SELECT 'bulk-' || (ROW_NUMBER() OVER () + $6), a, b, sa, sb, n, 'CHILD', 'FUNDS_SHARING', 'ACTIVE', 1, now(), now(), '', \
             -(ROW_NUMBER() OVER () + $6) FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS p(a, b, sa, sb, n)",
        )
        .bind(a)
        .bind(b)
        .bind(a_sealed)
        .bind(b_sealed)
        .bind(names)
        .bind(start as i64)
        .execute(&mut binding)
        .await?;
        let holders: Vec<String> = employees.iter().map(|id| payment_vault.index(id)).collect();
        let holders_sealed: Vec<String> = employees
            .iter()
            .map(|id| payment_vault.seal_id(id))
            .collect();
        sqlx::query(
            "INSERT INTO accounts (holder, holder_sealed, region, current_fen, prior_fen, open_time) \
             SELECT h, s, '340500', 0, 0, now() FROM UNNEST($1::text[], $2::text[]) AS p(h, s)",
        )
        .bind(holders)
        .bind(holders_sealed)
        .execute(&mut payment)
        .await?;
    }
    Ok(())
}

/// Registry sync of new persons for `seconds` each way, 8 clients: one record per
/// UpsertInsuredPerson call, then `SYNC_BATCH` records per BatchUpsertInsuredPersons call.
/// Both figures count records per second.
async fn registry_sync(backend: &str, seconds: u64, clients: &[Clients]) -> Vec<Figure> {
    let next = Arc::new(AtomicUsize::new(0));
    let record = |i: usize| {
        let day = chrono::NaiveDate::from_ymd_opt(1930, 1, 1).unwrap_or_default()
            + chrono::Duration::days((i / 1000) as i64);
        let body = format!("340521{}{:03}", day.format("%Y%m%d"), i % 1000);
        InsuredPerson {
            id_number: gongji_shared::IdNumber::with_check_char(&body)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            name: "测试".to_owned(),
            employee_enrollment: None,
            resident_enrollment: Some(Enrollment {
                region_code: "340500".to_owned(),
                status: EnrollmentStatus::Normal as i32,
            }),
            update_time: None,
            resident_paid_years: Vec::new(),
        }
    };
    let single = {
        let next = next.clone();
        closed_loop(
            backend,
            "UpsertInsuredPerson, records",
            8,
            seconds,
            clients,
            move |mut c, _| {
                let i = next.fetch_add(1, Ordering::Relaxed);
                async move {
                    c.registry
                        .upsert_insured_person(UpsertInsuredPersonRequest {
                            request_id: format!("sync-{i}"),
                            person: Some(record(i)),
                        })
                        .await?;
                    Ok(())
                }
            },
        )
        .await
    };
    let mut batch = {
        let next = next.clone();
        closed_loop(
            backend,
            "BatchUpsertInsuredPersons, calls",
            8,
            seconds,
            clients,
            move |mut c, k| {
                let first = next.fetch_add(SYNC_BATCH, Ordering::Relaxed);
                async move {
                    c.registry
                        .batch_upsert_insured_persons(BatchUpsertInsuredPersonsRequest {
                            request_id: format!("sync-batch-{k}"),
                            persons: (first..first + SYNC_BATCH).map(record).collect(),
                        })
                        .await?;
                    Ok(())
                }
            },
        )
        .await
    };
    let records = Figure {
        workload: "BatchUpsertInsuredPersons, records".to_owned(),
        per_second: batch.per_second * SYNC_BATCH as f64,
        ..batch.clone()
    };
    batch.workload = "BatchUpsertInsuredPersons, calls".to_owned();
    println!(
        "  {backend:8} registry sync: {:.0} records/s one per call, {:.0} records/s in batches of {SYNC_BATCH}",
        single.per_second, records.per_second
    );
    vec![single, batch, records]
}

/// The URL of `database` on the server of the admin URL.
fn database_url(admin: &str, database: &str) -> String {
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}"),
        None => format!("{admin}/{database}"),
    }
}

/// `before NAME after` for each database name.
fn each(names: &[String], before: &str, after: &str) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("{before} {n}{after}"))
        .collect()
}

/// Runs `statements` on the admin database.
async fn admin(url: &str, statements: &[String]) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("PostgreSQL")?;
    for statement in statements {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    Ok(())
}

async fn connect(stack: &Stack, token: &str) -> anyhow::Result<Clients> {
    let channel = |url: String| async move {
        tonic::transport::Endpoint::from_shared(url)?
            .tcp_nodelay(true)
            .connect()
            .await
    };
    let b = channel(stack.binding_url()).await?;
    let p = channel(stack.payment_url()).await?;
    let c = PeerInterceptor::with_token(token);
    Ok(Clients {
        registry: RegistryServiceClient::with_interceptor(b.clone(), c.clone()),
        bindings: BindingServiceClient::with_interceptor(b, c.clone()),
        accounts: AccountServiceClient::with_interceptor(p.clone(), c.clone()),
        premiums: PremiumServiceClient::with_interceptor(p.clone(), c.clone()),
        medical: MedicalExpenseServiceClient::with_interceptor(p, c),
    })
}

fn acting<T>(request: &mut tonic::Request<T>, person: &str) {
    if let Ok(value) = person.parse() {
        request.metadata_mut().insert(ACTING_PERSON_HEADER, value);
    }
}

/// A valid ID number: region 340504, the birth date, a sequence, its check character.
fn id_number(birth: &str, sequence: usize) -> String {
    let body = format!("340504{birth}{:03}", sequence % 1000);
    gongji_shared::IdNumber::with_check_char(&body)
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// The i-th family's employee and child: distinct birth dates per thousand.
fn employee(i: usize) -> String {
    let day = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default()
        + chrono::Duration::days((i / 1000) as i64);
    id_number(&day.format("%Y%m%d").to_string(), i)
}

fn child(i: usize) -> String {
    let day = chrono::NaiveDate::from_ymd_opt(2012, 1, 1).unwrap_or_default()
        + chrono::Duration::days((i / 1000) as i64);
    id_number(&day.format("%Y%m%d").to_string(), i)
}

/// Registers, funds and binds `n` families, 16 at a time.
async fn load_families(c: &Clients, n: usize) -> anyhow::Result<()> {
    // The hospital the medical expenses are paid at is designated (M1).
    c.clone()
        .medical
        .batch_upsert_designated_institutions(gongji_stack::demo::designated_institutions())
        .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (mut c, next) = (c.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), anyhow::Error>(());
                    }
                    load_family(&mut c, i).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn load_family(c: &mut Clients, i: usize) -> anyhow::Result<()> {
    let enrollment = Some(Enrollment {
        region_code: "340500".to_owned(),
        status: EnrollmentStatus::Normal as i32,
    });
    for (id, employee_enrollment, resident_enrollment) in [
        (employee(i), enrollment.clone(), None),
        (child(i), None, enrollment.clone()),
    ] {
        c.registry
            .upsert_insured_person(UpsertInsuredPersonRequest {
                request_id: format!("load-{id}"),
                person: Some(InsuredPerson {
                    id_number: id,
                    name: "测试".to_owned(),
                    employee_enrollment,
                    resident_enrollment,
                    update_time: None,
                    resident_paid_years: Vec::new(),
                }),
            })
            .await?;
    }
    c.accounts
        .open_account(OpenAccountRequest {
            request_id: format!("open-{i}"),
            holder_id_number: employee(i),
            region_code: "340500".to_owned(),
        })
        .await?;
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: format!("credit-{i}"),
            holder_id_number: employee(i),
            amount: "100000.00".to_owned(),
            bucket: Bucket::PriorYears as i32,
            memo: String::new(),
        })
        .await?;
    let mut bind = tonic::Request::new(CreateBindingRequest {
        request_id: format!("bind-{i}"),
        authorizer_id_number: employee(i),
        beneficiary_id_number: child(i),
        beneficiary_name: "测试".to_owned(),
        relationship: Relationship::Child as i32,
        kind: BindingKind::FundsSharing as i32,
        verification_method: 0,
    });
    acting(&mut bind, &employee(i));
    c.bindings.create_binding(bind).await?;
    Ok(())
}

/// `clients` tasks calling `call` back to back for `seconds`; each call's latency kept.
async fn closed_loop<F, Fut>(
    backend: &str,
    workload: &str,
    clients: usize,
    seconds: u64,
    c: &[Clients],
    call: F,
) -> Figure
where
    F: Fn(Clients, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let cpu_before = cpu::sample();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (c, call, counter) = (c[i % c.len()].clone(), call.clone(), counter.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut first) = (Vec::new(), 0_usize, None);
                while Instant::now() < deadline {
                    let k = counter.fetch_add(1, Ordering::Relaxed);
                    let start = Instant::now();
                    match call(c.clone(), k).await {
                        Ok(()) => latencies.push(start.elapsed()),
                        Err(e) if e.is::<Exhausted>() => {
                            first.get_or_insert_with(|| e.to_string());
                            break;
                        }
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (latencies, errors, first)
            })
        })
        .collect();
    let started = Instant::now();
    let statements_before = SQL_STATEMENTS.load(Ordering::Relaxed);
    let (mut all, mut errors, mut first_error) = (Vec::new(), 0, None);
    for task in tasks {
        if let Ok((latencies, e, first)) = task.await {
            all.extend(latencies);
            errors += e;
            first_error = first_error.or(first);
        }
    }
    let statements = SQL_STATEMENTS.load(Ordering::Relaxed) - statements_before;
    let calls = all.len() + errors;
    let mut figure = figure_of(
        backend,
        workload,
        clients,
        started,
        all,
        errors,
        first_error,
    );
    figure.sql_per_call = (statements > 0).then(|| statements as f64 / calls.max(1) as f64);
    figure.cpu_per_call = cpu::sample().per_call_since(&cpu_before, calls);
    println!(
        "  {backend:8} {workload:36} {clients:3} clients: {:8.0}/s  p50 {:6.2} ms  p99 {:6.2} ms  errors {}{}{}",
        figure.per_second,
        figure.p50_ms,
        figure.p99_ms,
        figure.errors,
        figure
            .sql_per_call
            .map(|n| format!("  SQL statements per call {n:.1}"))
            .unwrap_or_default(),
        cpu_text(figure.cpu_per_call),
    );
    figure
}

/// `  CPU per call: …` for a run's line; empty when not measured.
fn cpu_text(cpu: Option<cpu::PerCall>) -> String {
    let Some(cpu) = cpu else {
        return String::new();
    };
    let postgres = cpu
        .postgres_us
        .map(|us| format!(", PostgreSQL {us:.0} µs"))
        .unwrap_or_default();
    format!("  CPU per call: here {:.0} µs{postgres}", cpu.own_us)
}

/// The figure of a run that started at `started`: its rate, and p50 and p99 of `latencies`.
fn figure_of(
    backend: &str,
    workload: &str,
    clients: usize,
    started: Instant,
    mut latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
) -> Figure {
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    if let Some(error) = first_error {
        println!("  ({workload}: {error})");
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Figure {
        backend: backend.to_owned(),
        workload: workload.to_owned(),
        clients,
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        sql_per_call: None,
        cpu_per_call: None,
        neighbours: None,
    }
}

/// The share of the closed-loop peak the paced PayPremium run offers.
const PACED_SHARE: f64 = 0.7;
/// Most calls of the paced run in flight at once: beyond it the service is overloaded.
const PACED_MAX_IN_FLIGHT: usize = 256;

/// Calls started at a fixed `rate` per second for `seconds` (open loop: each call's latency
/// counts from its scheduled start, so queueing shows), at most `PACED_MAX_IN_FLIGHT` at once.
async fn paced<F, Fut>(
    backend: &str,
    workload: &str,
    rate: f64,
    seconds: u64,
    c: &[Clients],
    call: F,
) -> Figure
where
    F: Fn(Clients, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let slots = Arc::new(tokio::sync::Semaphore::new(PACED_MAX_IN_FLIGHT));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let cpu_before = cpu::sample();
    let probe = neighbours::Probe::start();
    let mut tasks = Vec::new();
    let mut k = 0;
    while Instant::now() < deadline {
        // The tick's own instant: a call started late (the loop was not scheduled in time,
        // or every slot was taken) counts its wait, as a caller's would.
        let scheduled = ticker.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (c, call) = (c[k % c.len()].clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let result = call(c, k).await;
            drop(slot);
            (scheduled.elapsed(), result.map_err(|e| e.to_string()))
        }));
        k += 1;
    }
    let (mut all, mut errors, mut first_error) = (Vec::new(), 0, None);
    for task in tasks {
        match task.await {
            Ok((latency, Ok(()))) => all.push(latency),
            Ok((_, Err(e))) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(_) => errors += 1,
        }
    }
    let calls = all.len() + errors;
    let mut figure = figure_of(
        backend,
        workload,
        PACED_MAX_IN_FLIGHT,
        started,
        all,
        errors,
        first_error,
    );
    figure.cpu_per_call = cpu::sample().per_call_since(&cpu_before, calls);
    figure.neighbours = probe.stop();
    println!(
        "  {backend:8} {workload:36} offered {rate:6.0}/s: {:8.0}/s  p50 {:6.2} ms  p99 {:6.2} ms  errors {}{}",
        figure.per_second,
        figure.p50_ms,
        figure.p99_ms,
        figure.errors,
        cpu_text(figure.cpu_per_call),
    );
    if let Some(n) = &figure.neighbours {
        let busiest = n
            .peak_busiest
            .as_ref()
            .map(|(name, share)| format!(" ({name} {:.0}%)", share * 100.0))
            .unwrap_or_default();
        println!(
            "  {backend:8} {:36} other processes on this host took {:.0}% of its CPU, {:.0}% in the busiest half second{busiest}",
            "",
            n.share * 100.0,
            n.peak_share * 100.0,
        );
    }
    figure
}

/// pgbench TPC-B and `-S` on a scratch database of the same server, at each concurrency.
fn pgbench(args: &Args) -> anyhow::Result<Vec<Figure>> {
    let name = format!("gongji_bench_pgbench_{}", uuid::Uuid::new_v4().simple());
    let url = database_url(&args.postgres, &name);
    let admin_url = args.postgres.clone();
    let run = |sql: String| {
        let admin_url = admin_url.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()?.block_on(admin(&admin_url, &[sql]))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("admin thread"))?
    };
    run(format!("CREATE DATABASE {name}"))?;
    let init = std::process::Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", &url])
        .output()
        .context("pgbench is not installed")?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut figures = Vec::new();
    for &n in &args.clients {
        for (workload, select_only) in [("pgbench TPC-B", false), ("pgbench -S", true)] {
            if !args.runs(workload) {
                continue;
            }
            let mut cmd = std::process::Command::new("pgbench");
            cmd.args([
                "-n",
                "-c",
                &n.to_string(),
                "-j",
                &n.min(2).to_string(),
                "-T",
                &args.seconds.to_string(),
                "-r",
            ]);
            if select_only {
                cmd.arg("-S");
            }
            let cpu_before = cpu::sample();
            let out = cmd.arg(&url).output()?;
            let cpu_after = cpu::sample();
            let text = String::from_utf8_lossy(&out.stdout);
            // `tps = 2448.1 (…)`, `latency average = 13.07 ms`, `number of … processed: 12240`.
            let field = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.trim_start().strip_prefix(prefix))
                    .map(|v| v.trim_start_matches([' ', '=', ':']))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let transactions = field("number of transactions actually processed") as usize;
            let figure = Figure {
                backend: "postgres".to_owned(),
                workload: workload.to_owned(),
                clients: n,
                per_second: field("tps"),
                p50_ms: field("latency average"),
                p99_ms: 0.0,
                errors: 0,
                sql_per_call: None,
                cpu_per_call: cpu_after.per_call_since(&cpu_before, transactions),
                neighbours: None,
            };
            println!(
                "  postgres {workload:36} {n:3} clients: {:8.0}/s  avg {:6.2} ms{}",
                figure.per_second,
                figure.p50_ms,
                cpu_text(figure.cpu_per_call),
            );
            figures.push(figure);
        }
    }
    run(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(figures)
}

/// The ratios the performance issue sets targets for.
fn ratios(figures: &[Figure]) -> serde_json::Value {
    let find = |backend: &str, workload: &str, clients: usize| {
        figures
            .iter()
            .find(|f| f.backend == backend && f.workload == workload && f.clients == clients)
    };
    let get = |backend: &str, workload: &str, clients: usize| {
        find(backend, workload, clients).map(|f| f.per_second)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => serde_json::json!((a / b * 100.0).round() / 100.0),
        _ => serde_json::Value::Null,
    };
    // PostgreSQL's CPU per call of a workload: what the server spends on one call, whose
    // ratio to its spend on one pgbench transaction bounds the ratio of the rates.
    let postgres_us = |backend: &str, workload: &str, clients: usize| {
        find(backend, workload, clients)
            .and_then(|f| f.cpu_per_call)
            .and_then(|c| c.postgres_us)
    };
    let mut out = serde_json::Map::new();
    out.insert(
        "PostgreSQL CPU per call: PayPremium / pgbench TPC-B at 8".to_owned(),
        ratio(
            postgres_us("postgres", "PayPremium", 8),
            postgres_us("postgres", "pgbench TPC-B", 8),
        ),
    );
    out.insert(
        "PostgreSQL CPU per call: CheckAuthorization / pgbench -S at 32".to_owned(),
        ratio(
            postgres_us("postgres", "CheckAuthorization", 32),
            postgres_us("postgres", "pgbench -S", 32),
        ),
    );
    for n in [8, 32] {
        out.insert(
            format!("PayPremium postgres / pgbench TPC-B at {n}"),
            ratio(
                get("postgres", "PayPremium", n),
                get("postgres", "pgbench TPC-B", n),
            ),
        );
    }
    out.insert(
        "CheckAuthorization postgres / pgbench -S at 32".to_owned(),
        ratio(
            get("postgres", "CheckAuthorization", 32),
            get("postgres", "pgbench -S", 32),
        ),
    );
    for backend in ["postgres", "sqlite"] {
        out.insert(
            format!("registry sync {backend}: batch / single records per second"),
            ratio(
                get(backend, "BatchUpsertInsuredPersons, records", 8),
                get(backend, "UpsertInsuredPerson, records", 8),
            ),
        );
    }
    out.insert(
        "PayPremium sqlite / postgres at 8".to_owned(),
        ratio(
            get("sqlite", "PayPremium", 8),
            get("postgres", "PayPremium", 8),
        ),
    );
    serde_json::Value::Object(out)
}

fn print_table(figures: &[Figure]) {
    println!();
    println!(
        "| backend | workload | clients | per second | p50 ms | p99 ms | errors | CPU µs per call: here | PostgreSQL |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        let cpu = |us: Option<f64>| us.map(|us| format!("{us:.0}")).unwrap_or_default();
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            f.backend,
            f.workload,
            f.clients,
            f.per_second,
            f.p50_ms,
            f.p99_ms,
            f.errors,
            cpu(f.cpu_per_call.map(|c| c.own_us)),
            cpu(f.cpu_per_call.and_then(|c| c.postgres_us)),
        );
    }
    println!();
    println!("ratios: {}", ratios(figures));
}
