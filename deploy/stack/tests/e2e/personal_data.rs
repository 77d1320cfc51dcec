//! Personal data at rest (issue 11): after a family is registered and bound, a premium paid
//! and refunded and a medical expense paid from the family account, no ID number and no name
//! used appears in either database's bytes: not in SQLite's files (main, WAL, journal), not
//! in a `pg_dump` of PostgreSQL's. The same data still reads back whole through the API.

use gongji_proto::{
    binding::v1::{GetBindingRequest, GetInsuredPersonRequest},
    payment::v1::{
        GetAccountRequest, GetMedicalExpensePaymentRequest, PremiumPayment,
        RefundPremiumPaymentRequest,
    },
};
use gongji_shared::rpc::peer::PeerInterceptor;
use gongji_shared::{
    Clock, testing,
    vault::{
        KeyMaterial, KeyProvider as _,
        keys::{FileKeys, write_keys},
    },
};
use gongji_stack::{READY_TIMEOUT_MS, Stack};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE, EMPLOYEE_NAME, SPOUSE_NAME},
    payment::{medical, pay},
    premium::prior_years,
    support::{
        Backend, CONTRACT_TESTS, Clients, IN_WINDOW, ServiceDatabase, TestEnv, acting_for,
        assert_error, clients,
    },
    trust::payment_rows,
};

both_backends!(
    no_id_number_or_name_is_stored_in_clear,
    a_retry_after_the_retention_window_is_refused_and_does_nothing,
    a_new_key_takes_over_and_the_old_one_goes_once_everything_is_resealed,
    a_backup_restored_into_fresh_databases_verifies_and_serves,
);

async fn no_id_number_or_name_is_stored_in_clear(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let paid = pay_child_premium(&mut c, "p").await;
    c.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: "refund".into(),
            payment_id: paid.payment_id.clone(),
            reason: "enrollment cancelled".into(),
        })
        .await
        .expect("refund");
    let (spouse, _) = fixtures::spouse(&mut c).await;
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");

    // Everything reads back whole.
    assert_person(&mut c, CHILD, CHILD_NAME).await;
    let account = c
        .accounts
        .get_account(GetAccountRequest {
            holder_id_number: EMPLOYEE.into(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.holder_id_number, EMPLOYEE);

    let secrets: Vec<&str> = vec![
        EMPLOYEE,
        CHILD,
        &spouse,
        EMPLOYEE_NAME,
        CHILD_NAME,
        SPOUSE_NAME,
    ];
    // Each search also finds a value that is stored in clear (a binding's kind, a refund's
    // reason): the bytes searched are the bytes that hold the data.
    for (service, database, in_clear) in [
        ("binding-service", env.binding_database(), "FUNDS_SHARING"),
        (
            "payment-service",
            env.payment_database(),
            "enrollment cancelled",
        ),
    ] {
        let (what, bytes) = stored_bytes(&database);
        assert!(
            testing::contains(&bytes, in_clear.as_bytes()),
            "{service}: {what} holds the data"
        );
        for secret in &secrets {
            assert!(
                !testing::contains(&bytes, secret.as_bytes()),
                "{service}: {what} holds {secret:?} in clear"
            );
        }
    }
    env.finish().await;
}

/// First answers are kept 30 days (the default): a retry within them gets the first answer;
/// after them the request ID stays taken, and a retry is FAILED_PRECONDITION
/// REQUEST_ID_EXPIRED on either service, with nothing done again.
async fn a_retry_after_the_retention_window_is_refused_and_does_nothing(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let paid = pay_child_premium(&mut c, "p").await;
    assert_eq!(prior_years(&mut c).await, "600.00");
    // gongji-local's demo data, loaded by fixed request IDs at every start.
    let load_demo = |stack: &Stack| {
        let token = PeerInterceptor::with_token(&env.identity.caller_token(CONTRACT_TESTS, 3_600));
        let (binding, payment) = (stack.binding_url(), stack.payment_url());
        async move { gongji_stack::demo::load(&binding, &payment, token.clone(), token).await }
    };
    load_demo(&env.stack).await.expect("the demo loads");

    // 29 days on: still kept.
    env.stack
        .restart_with_clock(Clock::parse("2024-12-14T10:00:00+08:00").expect("clock"))
        .await
        .expect("restart");
    let mut c = env.clients_owned();
    let again = pay_child_premium(&mut c, "p").await;
    assert_eq!(again.payment_id, paid.payment_id);

    // 31 days on: dropped at start-up; the ID stays taken.
    env.stack
        .restart_with_clock(Clock::parse("2024-12-16T10:00:00+08:00").expect("clock"))
        .await
        .expect("restart");
    let mut c = env.clients_owned();
    let status = assert_error(
        c.premiums
            .pay_premium(pay("p", EMPLOYEE, CHILD, 2025))
            .await,
        Code::FailedPrecondition,
        "REQUEST_ID_EXPIRED",
        "payment.gongji",
    );
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("info");
    assert_eq!(info.metadata["request_id"], "p");
    assert_eq!(info.metadata["first_operation"], "PayPremium");
    assert_error(
        c.bindings
            .create_binding(fixtures::bind_request("bind-family"))
            .await,
        Code::FailedPrecondition,
        "REQUEST_ID_EXPIRED",
        "binding.gongji",
    );
    assert_eq!(prior_years(&mut c).await, "600.00", "nothing paid twice");
    // A start after the window (as gongji-local without --clock after a demo with one)
    // still loads the demo: its steps are done, not refused.
    load_demo(&env.stack).await.expect("the demo loads again");
    let (_, demo_prior_years) =
        crate::payment::balances(&mut c, gongji_stack::demo::EMPLOYEE_ID).await;
    assert_eq!(demo_prior_years, "1000.00", "credited once");
    env.finish().await;
}

/// Key rotation: data written under key 1, key 2 added and written under, everything
/// re-sealed, key 1 dropped; everything still reads, a retry still gets its first answer,
/// and dropping key 1 before re-sealing stops start-up.
async fn a_new_key_takes_over_and_the_old_one_goes_once_everything_is_resealed(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    // Paid acting for the employee: the movement, the payment and the call's record hold her
    // ID number sealed under key 1 (the movement in an append-only table).
    let paid = pay_as_employee(&mut c).await;

    rotate_keys(&env, |k| k.with_new_version());
    env.stack
        .restart_with_clock(Clock::parse(IN_WINDOW).expect("clock"))
        .await
        .expect("restart with key 2");
    let mut c = env.clients_owned();
    let (spouse, _) = fixtures::spouse(&mut c).await;
    let medical_paid = c
        .medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical")
        .into_inner()
        .payment
        .expect("payment");

    // Key 1 cannot go yet: the databases hold values under it.
    let held = rotate_keys(&env, |k| k.without_version(1));
    let error = format!(
        "{:#}",
        env.stack.reseal().await.expect_err("key 1 is missing")
    );
    assert!(error.contains("key version 1"), "{error}");
    restore_keys(&env, &held);

    env.stack.reseal().await.expect("re-seal both databases");
    rotate_keys(&env, |k| k.without_version(1));
    env.stack
        .restart_with_clock(Clock::parse(IN_WINDOW).expect("clock"))
        .await
        .expect("restart with key 2 alone");
    let mut c = env.clients_owned();
    for (id, name) in [(CHILD, CHILD_NAME), (spouse.as_str(), SPOUSE_NAME)] {
        assert_person(&mut c, id, name).await;
    }
    let got = c
        .bindings
        .get_binding(GetBindingRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("binding")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(got.beneficiary_id_number, CHILD);
    assert_eq!(
        pay_as_employee(&mut c).await.payment_id,
        paid.payment_id,
        "a retry"
    );
    let vault = env.payment_vault();
    let acting = payment_rows(
        &env,
        &format!(
            "SELECT caller, acting_person FROM movements WHERE movement_id = '{}'",
            paid.movement_id
        ),
    )
    .await;
    let sealed = acting[0].1.clone().expect("an acting person");
    assert!(sealed.starts_with("v2:"), "re-sealed under key 2");
    assert_eq!(vault.open(&sealed).expect("opens"), EMPLOYEE);
    let got = c
        .medical
        .get_medical_expense_payment(GetMedicalExpensePaymentRequest {
            payment_id: medical_paid.payment_id.clone(),
        })
        .await
        .expect("medical payment")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(got.beneficiary_id_number, spouse);
    assert_eq!(prior_years(&mut c).await, "500.00");
    crate::payment::verify_clean(&mut c).await;
    env.finish().await;
}

/// Rewrites both services' key files with `change` of what each holds; returns what they
/// held, binding-service's first.
pub(crate) fn rotate_keys(
    env: &TestEnv,
    change: impl Fn(&KeyMaterial) -> KeyMaterial,
) -> Vec<KeyMaterial> {
    key_files(env)
        .into_iter()
        .map(|path| {
            let keys = FileKeys(path.clone()).load().expect("keys");
            write_keys(&path, &change(&keys)).expect("write keys");
            keys
        })
        .collect()
}

/// Puts back what [`rotate_keys`] returned.
fn restore_keys(env: &TestEnv, held: &[KeyMaterial]) {
    for (path, keys) in key_files(env).into_iter().zip(held) {
        write_keys(&path, keys).expect("write keys");
    }
}

fn key_files(env: &TestEnv) -> Vec<std::path::PathBuf> {
    ["binding-service", "payment-service"]
        .into_iter()
        .map(|service| {
            env.identity
                .service_keys(service)
                .data_keys_file
                .expect("a key file")
        })
        .collect()
}

/// A backup of both databases (SQLite's `VACUUM INTO`, PostgreSQL's `pg_dump` and
/// `pg_restore`) restored into fresh databases and served with the same keys: the ledger
/// verifies, a retry gets its first answer, and new calls work on it.
async fn a_backup_restored_into_fresh_databases_verifies_and_serves(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let paid = pay_child_premium(&mut c, "p").await;
    let dir = tempfile::tempdir().expect("backup folder");
    let mut restored_databases = Vec::new();
    let mut urls = Vec::new();
    for (service, database) in [
        ("binding", env.binding_database()),
        ("payment", env.payment_database()),
    ] {
        urls.push(match database {
            ServiceDatabase::Sqlite(path) => {
                use sqlx::Connection as _;
                let copy = dir.path().join(format!("{service}.db"));
                let url = format!("sqlite://{}", path.display());
                let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open");
                sqlx::query("VACUUM INTO $1")
                    .bind(copy.display().to_string())
                    .execute(&mut db)
                    .await
                    .expect("VACUUM INTO");
                format!("sqlite://{}", copy.display())
            }
            ServiceDatabase::Postgres { admin_url, name } => {
                let dump = dir.path().join(format!("{service}.dump"));
                let run = |program: &str, args: &[&str]| {
                    let output = std::process::Command::new(program)
                        .args(args)
                        .output()
                        .expect("PostgreSQL's client tools");
                    assert!(
                        output.status.success(),
                        "{program}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                };
                let source = testing::database_url(&admin_url, &name);
                run(
                    "pg_dump",
                    &[
                        "-Fc",
                        "--dbname",
                        &source,
                        "-f",
                        &dump.display().to_string(),
                    ],
                );
                let fresh = testing::create_databases(&[&format!("restored_{service}")])
                    .await
                    .expect("a fresh database");
                let target = testing::database_url(&admin_url, &fresh[0]);
                run(
                    "pg_restore",
                    &[
                        "--no-owner",
                        "--dbname",
                        &target,
                        &dump.display().to_string(),
                    ],
                );
                restored_databases.extend(fresh);
                target
            }
        });
    }
    let mut config = env.stack.config.clone();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    (config.binding_addr, config.payment_addr) = (any, any);
    (config.binding_database_url, config.payment_database_url) = (urls[0].clone(), urls[1].clone());
    let restored = Stack::start(config)
        .await
        .expect("start on the restored copy");
    restored
        .wait_serving(READY_TIMEOUT_MS)
        .await
        .expect("SERVING on the restored copy");
    let token = env.identity.caller_token(CONTRACT_TESTS, 3_600);
    let mut r = clients(&restored, PeerInterceptor::with_token(&token)).await;
    crate::payment::verify_clean(&mut r).await;
    assert_eq!(
        pay_child_premium(&mut r, "p").await.payment_id,
        paid.payment_id,
        "a retry"
    );
    assert_eq!(prior_years(&mut r).await, "600.00");
    r.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: "refund".into(),
            payment_id: paid.payment_id.clone(),
            reason: "enrollment cancelled".into(),
        })
        .await
        .expect("a refund on the restored copy");
    assert_eq!(prior_years(&mut r).await, "1000.00");
    // The seed scenario on the restored copy, for her second child: registered, bound,
    // quoted, paid.
    let second = fixtures::id_number("20200101", 5);
    fixtures::register(
        &mut r,
        fixtures::person(&second, "李子涵", None, Some("340500")),
    )
    .await;
    r.bindings
        .create_binding(fixtures::bind_child("bind-second", &second, "李子涵"))
        .await
        .expect("bind on the restored copy");
    let quote = crate::payment::quote(&mut r, &second, 2025, false)
        .await
        .expect("quote on the restored copy");
    assert_eq!(quote.premium, "400.00");
    r.premiums
        .pay_premium(pay("p-second", EMPLOYEE, &second, 2025))
        .await
        .expect("pay on the restored copy");
    assert_eq!(prior_years(&mut r).await, "600.00");
    crate::payment::verify_clean(&mut r).await;
    restored.stop().await.expect("stop");
    if !restored_databases.is_empty() {
        testing::drop_databases(&restored_databases).await;
    }
    env.finish().await;
}

/// The registry record of `id` reads back whole.
async fn assert_person(c: &mut Clients, id: &str, name: &str) {
    let person = c
        .registry
        .get_insured_person(GetInsuredPersonRequest {
            id_number: id.into(),
        })
        .await
        .expect("person")
        .into_inner()
        .person
        .expect("person");
    assert_eq!(
        (person.id_number.as_str(), person.name.as_str()),
        (id, name)
    );
}

/// The employee, logged in, pays the child's 2025 premium (request ID "p").
async fn pay_as_employee(c: &mut Clients) -> PremiumPayment {
    c.premiums
        .pay_premium(acting_for(EMPLOYEE, pay("p", EMPLOYEE, CHILD, 2025)))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment")
}

/// The employee pays the child's 2025 premium under `request_id`.
async fn pay_child_premium(c: &mut Clients, request_id: &str) -> PremiumPayment {
    c.premiums
        .pay_premium(pay(request_id, EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment")
}

/// Every byte a database keeps: SQLite's files, or a `pg_dump`.
fn stored_bytes(database: &ServiceDatabase) -> (String, Vec<u8>) {
    match database {
        ServiceDatabase::Sqlite(path) => (
            format!("{} and its WAL and journal", path.display()),
            testing::sqlite_bytes(path),
        ),
        ServiceDatabase::Postgres { admin_url, name } => (
            format!("a pg_dump of {name}"),
            testing::pg_dump(&testing::database_url(admin_url, name)),
        ),
    }
}
