//! Personal data at rest (issue 11): after a family is registered and bound, a premium paid
//! and refunded and a medical expense paid from the family account, no ID number and no name
//! used appears in either database's bytes: not in SQLite's files (main, WAL, journal), not
//! in a `pg_dump` of PostgreSQL's. The same data still reads back whole through the API.

use gongji_proto::{
    binding::v1::{GetInsuredPersonRequest, Relationship},
    payment::v1::{GetAccountRequest, PremiumPayment, RefundPremiumPaymentRequest},
};
use gongji_shared::Clock;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE, EMPLOYEE_NAME},
    payment::{medical, pay},
    premium::prior_years,
    support::{Backend, Clients, IN_WINDOW, ServiceDatabase, TestEnv, assert_error},
};

both_backends!(
    no_id_number_or_name_is_stored_in_clear,
    a_retry_after_the_retention_window_is_refused_and_does_nothing,
);

/// The spouse of the medical scenario.
const SPOUSE_NAME: &str = "赵刚";

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
    let spouse = fixtures::id_number("19850505", 7);
    fixtures::register(
        &mut c,
        fixtures::person(&spouse, SPOUSE_NAME, Some("340500"), None),
    )
    .await;
    let mut bind = fixtures::bind_child("bind-spouse", &spouse, SPOUSE_NAME);
    bind.relationship = Relationship::Spouse as i32;
    c.bindings.create_binding(bind).await.expect("bind spouse");
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");

    // Everything reads back whole.
    let person = c
        .registry
        .get_insured_person(GetInsuredPersonRequest {
            id_number: CHILD.into(),
        })
        .await
        .expect("person")
        .into_inner()
        .person
        .expect("person");
    assert_eq!(
        (person.id_number.as_str(), person.name.as_str()),
        (CHILD, CHILD_NAME)
    );
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
            find(&bytes, in_clear.as_bytes()).is_some(),
            "{service}: {what} holds the data"
        );
        for secret in &secrets {
            assert!(
                find(&bytes, secret.as_bytes()).is_none(),
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
    env.finish().await;
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

/// Every byte a database keeps: SQLite's main file, WAL and journal, or a `pg_dump`.
fn stored_bytes(database: &ServiceDatabase) -> (String, Vec<u8>) {
    match database {
        ServiceDatabase::Sqlite(path) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-journal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                if let Ok(content) = std::fs::read(&file) {
                    bytes.extend(content);
                }
            }
            (format!("{} and its WAL and journal", path.display()), bytes)
        }
        ServiceDatabase::Postgres { admin_url, name } => {
            let url = gongji_shared::testing::database_url(admin_url, name);
            let output = std::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(&url)
                .output()
                .expect("pg_dump runs (PostgreSQL's client tools are on the PATH)");
            assert!(
                output.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            (format!("a pg_dump of {name}"), output.stdout)
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
