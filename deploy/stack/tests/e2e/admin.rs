//! `gongji-admin`, the operator's command, run as a process against both services with a
//! caller's token: settling a day (again: the same answer), verifying the ledger, showing
//! records with ID numbers masked unless asked, and a failed call's exit status.

use std::process::Output;

use serde_json::Value;

use crate::{
    both_backends, fixtures,
    payment::pay,
    support::{Backend, CONTRACT_TESTS, IN_WINDOW, TestEnv},
};

both_backends!(the_operator_command_settles_verifies_and_shows_masked_records);

/// Runs `gongji-admin` against `env` as the contract tests' caller, with `args`.
async fn admin(env: &TestEnv, token: &std::path::Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gongji-admin"));
    command
        .arg("--payment-addr")
        .arg(env.stack.payment_url())
        .arg("--binding-addr")
        .arg(env.stack.binding_url())
        .arg("--token-file")
        .arg(token)
        .args(args)
        .env_remove("GONGJI_ADMIN_PAYMENT_ADDR")
        .env_remove("GONGJI_ADMIN_BINDING_ADDR");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("gongji-admin runs")
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "gongji-admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

async fn the_operator_command_settles_verifies_and_shows_masked_records(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    std::fs::write(&token, env.identity.caller_token(CONTRACT_TESTS, 600)).expect("token");
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    let paid = c
        .premiums
        .pay_premium(pay("admin-pay", fixtures::EMPLOYEE, fixtures::CHILD, 2025))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");

    // Shown masked by default, whole when asked.
    let account = json_of(
        &admin(
            &env,
            &token,
            &["--json", "show", "account", fixtures::EMPLOYEE],
        )
        .await,
    );
    assert_eq!(account["holder_id_number"], "3405**********0020");
    assert_eq!(account["prior_years_balance"], "600.00");
    let whole = json_of(
        &admin(
            &env,
            &token,
            &[
                "--json",
                "--show-id-numbers",
                "show",
                "account",
                fixtures::EMPLOYEE,
            ],
        )
        .await,
    );
    assert_eq!(whole["holder_id_number"], fixtures::EMPLOYEE);
    let shown = json_of(
        &admin(
            &env,
            &token,
            &["--json", "show", "payment", &paid.payment_id],
        )
        .await,
    );
    assert_eq!(shown["payer_id_number"], "3405**********0020");
    assert_eq!(shown["account_part"], "400.00");
    assert_eq!(shown["state"], "PREMIUM_PAYMENT_STATE_PAID");
    let text = admin(&env, &token, &["show", "binding", &binding.binding_id]).await;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("state: BINDING_STATE_ACTIVE"), "{text}");
    assert!(!text.contains(fixtures::CHILD), "{text}");

    // The day before the test's clock is over: settled, and settled again with one answer.
    let first = json_of(
        &admin(
            &env,
            &token,
            &["--json", "settle-day", "--date", "2024-11-14"],
        )
        .await,
    );
    assert_eq!(first["business_date"], "2024-11-14");
    let again = json_of(
        &admin(
            &env,
            &token,
            &["--json", "settle-day", "--date", "2024-11-14"],
        )
        .await,
    );
    assert_eq!(first, again);

    let verified = json_of(&admin(&env, &token, &["--json", "verify-ledger"]).await);
    assert_eq!(verified["clean"], true, "{verified}");
    assert!(
        verified["verified_business_days"].as_u64() >= Some(1),
        "{verified}"
    );

    // A refused call: exit status 2 and the service's reason on standard error.
    let today = admin(&env, &token, &["settle-day", "--date", "2024-11-15"]).await;
    assert_eq!(today.status.code(), Some(2));
    let said = String::from_utf8_lossy(&today.stderr);
    assert!(
        said.contains("FailedPrecondition BUSINESS_DAY_NOT_CLOSED"),
        "{said}"
    );
    env.finish().await;
}
