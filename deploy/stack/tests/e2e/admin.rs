//! `gongji-admin`, the operator's command, run as a process against both services with a
//! caller's token: settling a day (again: the same answer), verifying the ledger, showing
//! records with ID numbers masked unless asked, and a failed call's exit status.

use std::process::Output;

use gongji_proto::{
    binding::v1::{GetBindingRequest, ResealPersonalDataRequest},
    payment::v1::{Bucket, CloseYearForAllAccountsRequest, GetAccountRequest, OpenAccountRequest},
};
use serde_json::Value;
use tonic::Code;

use crate::{
    both_backends, fixtures,
    payment::pay,
    support::{Backend, CONTRACT_TESTS, IN_WINDOW, TestEnv, assert_error},
};

both_backends!(
    the_operator_command_settles_verifies_and_shows_masked_records,
    a_year_is_closed_for_every_account_a_page_at_a_time_and_once,
    the_operator_command_reseals_under_a_new_key_and_the_old_one_can_go,
);

const DOMAIN: &str = "payment.gongji";
/// After 2024 ended, on the services' clock.
const NEXT_JANUARY: &str = "2025-01-10T10:00:00+08:00";

fn batch(
    request_id: &str,
    year: i32,
    page_size: i32,
    token: &str,
) -> CloseYearForAllAccountsRequest {
    CloseYearForAllAccountsRequest {
        request_id: request_id.to_owned(),
        year,
        page_size,
        page_token: token.to_owned(),
    }
}

async fn a_year_is_closed_for_every_account_a_page_at_a_time_and_once(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    // Three accounts opened in 2024: 100.00 and 50.00 in current-year, and one empty.
    let other = fixtures::id_number("19800101", 7);
    let empty = fixtures::id_number("19810101", 8);
    fixtures::employee(&mut c).await;
    for id in [&other, &empty] {
        fixtures::register(&mut c, fixtures::person(id, "王强", Some("340500"), None)).await;
    }
    fixtures::fund_bucket(&mut c, fixtures::EMPLOYEE, "100.00", Bucket::CurrentYear).await;
    fixtures::fund_bucket(&mut c, &other, "50.00", Bucket::CurrentYear).await;
    c.accounts
        .open_account(OpenAccountRequest {
            request_id: fixtures::opaque("open"),
            holder_id_number: empty.clone(),
            region_code: "340500".to_owned(),
        })
        .await
        .expect("open");

    // Still 2024: the year has not ended, and nothing moves.
    let early = c
        .accounts
        .close_year_for_all_accounts(batch("close-early", 2024, 0, ""))
        .await;
    assert_error(early, Code::FailedPrecondition, "YEAR_NOT_ENDED", DOMAIN);

    env.stack
        .restart_with_clock(gongji_shared::Clock::parse(NEXT_JANUARY).expect("clock"))
        .await
        .expect("restart");
    let mut c = env.clients_owned();
    for (request, reason) in [
        (batch("close-bad-size", 2024, 101, ""), "INVALID_PAGE_SIZE"),
        (batch("close-bad-token", 2024, 2, "x"), "INVALID_PAGE_TOKEN"),
        (batch("close-bad-year", 1999, 2, ""), "INVALID_YEAR"),
    ] {
        let refused = c.accounts.close_year_for_all_accounts(request).await;
        assert_error(refused, Code::InvalidArgument, reason, DOMAIN);
    }
    let not_ended = c
        .accounts
        .close_year_for_all_accounts(batch("close-2025", 2025, 2, ""))
        .await;
    assert_error(
        not_ended,
        Code::FailedPrecondition,
        "YEAR_NOT_ENDED",
        DOMAIN,
    );

    // Directly: two pages of two, then a retry of the first answered the same.
    let first = c
        .accounts
        .close_year_for_all_accounts(batch("close-page-1", 2024, 2, ""))
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.accounts_seen, 2);
    assert!(!first.next_page_token.is_empty());
    let retry = c
        .accounts
        .close_year_for_all_accounts(batch("close-page-1", 2024, 2, ""))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, first, "a retry gets the first answer");
    let reused = c
        .accounts
        .close_year_for_all_accounts(batch("close-page-1", 2023, 2, ""))
        .await;
    assert_error(reused, Code::InvalidArgument, "REQUEST_ID_REUSED", DOMAIN);
    let second = c
        .accounts
        .close_year_for_all_accounts(batch("close-page-2", 2024, 2, &first.next_page_token))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.accounts_seen, 1);
    assert_eq!(second.next_page_token, "", "the last page");
    assert_eq!(first.accounts_closed + second.accounts_closed, 2);
    assert_eq!(
        first.accounts_nothing_to_move + second.accounts_nothing_to_move,
        1,
        "the empty account"
    );
    let moved = fixtures::fen(&first.moved_amount) + fixtures::fen(&second.moved_amount);
    assert_eq!(moved, 15_000);

    // The operator's command walks them all again, a page of one at a time: nothing moves
    // twice.
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    std::fs::write(&token, env.identity.caller_token(CONTRACT_TESTS, 600)).expect("token");
    let again = json_of(
        &admin(
            &env,
            &token,
            &["--json", "close-year", "--year", "2024", "--page-size", "1"],
        )
        .await,
    );
    assert_eq!(again["accounts_seen"], 3, "{again}");
    assert_eq!(again["accounts_closed"], 0, "{again}");
    assert_eq!(again["accounts_nothing_to_move"], 3, "{again}");
    assert_eq!(again["moved_amount"], "0.00", "{again}");
    let account = c
        .accounts
        .get_account(GetAccountRequest {
            holder_id_number: fixtures::EMPLOYEE.to_owned(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.current_year_balance, "0.00");
    assert_eq!(account.prior_years_balance, "100.00");
    env.finish().await;
}

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

async fn the_operator_command_reseals_under_a_new_key_and_the_old_one_can_go(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    c.premiums
        .pay_premium(pay("reseal-pay", fixtures::EMPLOYEE, fixtures::CHILD, 2025))
        .await
        .expect("pay");
    crate::personal_data::rotate_keys(&env, |k| k.with_new_version());
    let clock = gongji_shared::Clock::parse(IN_WINDOW).expect("clock");
    env.stack.restart_with_clock(clock).await.expect("key 2");
    let mut c = env.clients_owned();

    // The RPC itself: a bounded batch, a retry answered the same, a batch too large refused.
    let step = ResealPersonalDataRequest {
        request_id: "reseal-step-1".to_owned(),
        batch_size: 1,
    };
    let first = c
        .registry
        .reseal_personal_data(step.clone())
        .await
        .expect("a step")
        .into_inner();
    assert!(first.rewritten_values >= 1 && !first.done, "{first:?}");
    let retry = c
        .registry
        .reseal_personal_data(step)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, first);
    let too_many = c
        .registry
        .reseal_personal_data(ResealPersonalDataRequest {
            request_id: "reseal-too-many".to_owned(),
            batch_size: 501,
        })
        .await;
    assert_error(
        too_many,
        Code::InvalidArgument,
        "INVALID_BATCH_SIZE",
        "binding.gongji",
    );

    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    std::fs::write(&token, env.identity.caller_token(CONTRACT_TESTS, 600)).expect("token");
    let report = json_of(&admin(&env, &token, &["--json", "reseal", "--batch-size", "2"]).await);
    for service in ["binding-service", "payment-service"] {
        assert_eq!(report[service]["done"], true, "{report}");
        assert_eq!(
            report[service]["retired_key_versions"],
            serde_json::json!([1]),
            "{report}"
        );
    }
    assert!(
        report["payment-service"]["rewritten_values"].as_i64() > Some(0),
        "{report}"
    );
    let again = json_of(&admin(&env, &token, &["--json", "reseal"]).await);
    assert_eq!(again["binding-service"]["rewritten_values"], 0, "{again}");
    assert_eq!(again["payment-service"]["done"], true, "{again}");

    // Key 1 can go: both services start and read everything with key 2 alone.
    crate::personal_data::rotate_keys(&env, |k| k.without_version(1));
    env.stack
        .restart_with_clock(clock)
        .await
        .expect("key 2 alone");
    let mut c = env.clients_owned();
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
    assert_eq!(got.beneficiary_id_number, fixtures::CHILD);
    crate::payment::verify_clean(&mut c).await;
    env.finish().await;
}
