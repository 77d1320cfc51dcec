//! Money rules at their edges (DOMAIN.md P1 to P9, B3, B5, S1, S2): each test is named after
//! the rule it protects and runs on both databases.

use gongji_proto::{
    binding::v1::{
        ApproveBindingRequest, AuthorizeUseRequest, BindingKind, BindingState,
        CheckAuthorizationRequest, CreateBindingRequest, EnrollmentStatus, GetInsuredPersonRequest,
        ListBindingUsesRequest, ListBindingsRequest, Purpose, Relationship, RevokeBindingRequest,
        UpsertInsuredPersonRequest, WatchBindingEventsRequest,
    },
    payment::v1::{
        Bucket, CloseYearRequest, CreditAccountRequest, GetAccountRequest, GetSettlementRequest,
        ListAccountEntriesRequest, ReconcileBindingUsesRequest, RefundPremiumPaymentRequest,
        SettleBusinessDayRequest, Settlement, VerifyLedgerRequest,
    },
};
use gongji_shared::{Clock, policy::ANHUI_DEFAULT_TOML};
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, CHILD, EMPLOYEE},
    payment::{balances, medical, pay, quote, verify_clean},
    support::{
        Backend, CONTRACT_TESTS, Clients, IN_2026, IN_WINDOW, ServiceDatabase, TestEnv, acting_for,
        assert_error,
    },
};

both_backends!(
    p7_back_payments_stay_after_birth_within_the_policy_and_its_reach,
    b3_employee_insurance_in_anhui_makes_a_beneficiary_insured_in_anhui,
    b4_a_name_has_a_letter_and_nothing_invisible,
    s1_business_dates_are_exactly_yyyy_mm_dd,
    ledger_a_credit_keeps_its_memo,
    p3_closing_a_year_moves_only_what_it_had_at_its_end,
    ledger_no_sequence_of_valid_calls_makes_an_account_unreadable,
    p9_a_refund_of_a_closed_year_s_money_goes_to_prior_years,
    s1_a_settled_day_is_sealed_and_a_late_movement_gets_the_next_open_day,
    s1_concurrent_settlements_of_a_day_agree_in_one_line_order,
    s2_verify_ledger_pages_through_every_settled_day_on_one_snapshot,
    p2_premiums_and_windows_belong_to_the_pooling_region,
    errors_oversized_and_undecodable_requests_get_aip193_answers,
    errors_a_database_outage_is_unavailable_and_changes_nothing,
    b4_an_id_number_s_birth_date_is_plausible,
    b5_a_refused_application_is_kept_with_every_reason_and_replayed,
    b5_approval_checks_the_rules_again,
    p5_premiums_paid_elsewhere_count,
    p1_a_use_is_recorded_only_while_the_binding_is_active,
    p1_a_use_retried_is_answered_once_and_its_request_id_kept_for_it,
    p1_every_family_debit_has_a_use_recorded_before_the_revocation,
);

const DOMAIN: &str = "payment.gongji";

/// The default policy with premiums for 2019 to 2024 too.
fn policy_from_2019() -> String {
    let mut text = ANHUI_DEFAULT_TOML.to_owned();
    for year in 2019..=2024 {
        text.push_str(&format!(
            "\n[[premiums]]\ncoverage_year = {year}\namount = \"400.00\"\nwindow_start = \"{}-09-01\"\nwindow_end = \"{}-12-31\"\n",
            year - 1,
            year - 1
        ));
    }
    text
}

async fn back_pay(c: &mut Clients, year: i32) -> Result<(), tonic::Status> {
    let mut request = pay(&fixtures::opaque("back"), EMPLOYEE, CHILD, year);
    request.back_payment = true;
    c.premiums.pay_premium(request).await.map(|_| ())
}

/// P7: a back-payment is never for a year before the beneficiary's birth year (the child
/// was born in 2018), before the first coverage year the policy knows (2019 here), or more
/// than the policy's number of years back (3).
async fn p7_back_payments_stay_after_birth_within_the_policy_and_its_reach(backend: Backend) {
    let policy = policy_from_2019();
    let Some(env) = TestEnv::start_with_policy(backend, IN_2026, Some(&policy)).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "3000.00").await;
    for (year, reason) in [
        (2000, "BACK_PAYMENT_BEFORE_BIRTH"),
        (2010, "BACK_PAYMENT_BEFORE_BIRTH"),
        (2017, "BACK_PAYMENT_BEFORE_BIRTH"),
        (2018, "BACK_PAYMENT_BEFORE_POLICY"),
        (2022, "BACK_PAYMENT_TOO_OLD"),
    ] {
        let quoted = quote(&mut c, CHILD, year, true).await;
        assert_error(quoted, Code::FailedPrecondition, reason, DOMAIN);
        let paid = back_pay(&mut c, year).await;
        let status = assert_error(paid, Code::FailedPrecondition, reason, DOMAIN);
        assert!(status.message().len() > 10, "a clear message: {status:?}");
    }
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "3000.00",
        "nothing moved"
    );
    back_pay(&mut c, 2023)
        .await
        .expect("3 years back is allowed");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "2600.00");
    verify_clean(&mut c).await;
    env.finish().await;
}

/// B3: a beneficiary with employee insurance in Anhui and resident insurance in another
/// province is insured in Anhui: the binding is allowed and she is paid for in Anhui.
async fn b3_employee_insurance_in_anhui_makes_a_beneficiary_insured_in_anhui(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "500.00").await;
    let spouse = fixtures::id_number("19880101", 22);
    fixtures::register(
        &mut c,
        fixtures::person(&spouse, "王芳", Some("340500"), Some("110105")),
    )
    .await;
    let binding = c
        .bindings
        .create_binding(CreateBindingRequest {
            request_id: fixtures::opaque("bind"),
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: spouse.clone(),
            beneficiary_name: "王芳".into(),
            relationship: Relationship::Spouse as i32,
            kind: BindingKind::FundsSharing as i32,
            verification_method: 0,
        })
        .await
        .expect("insured in Anhui: allowed")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(binding.state, BindingState::Active as i32);
    let answer = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: spouse,
            purpose: Purpose::MedicalExpense as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(answer.authorized, "{answer:?}");
    assert_eq!(answer.beneficiary_region_code, "340500");
    env.finish().await;
}

/// B4: a name is checked against the registry, so it must be one a person can have: at
/// least one letter, no control or invisible format characters (which can reorder or hide
/// what an operator reads), no emoji. A refused record or application stores nothing.
async fn b4_a_name_has_a_letter_and_nothing_invisible(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "500.00").await;
    let child = fixtures::id_number("20180110", 12);
    for name in ["\u{202E}\u{200B}", "🙂🙂", "李\u{200B}子轩", "李🙂", "  "] {
        let r = c
            .registry
            .upsert_insured_person(UpsertInsuredPersonRequest {
                request_id: fixtures::opaque("register"),
                person: Some(fixtures::person(&child, name, None, Some("340500"))),
            })
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_NAME", "binding.gongji");
        let r = c
            .bindings
            .create_binding(fixtures::bind_child(
                &fixtures::opaque("bind"),
                &child,
                name,
            ))
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_NAME", "binding.gongji");
    }
    let r = c
        .registry
        .get_insured_person(GetInsuredPersonRequest {
            id_number: child.clone(),
        })
        .await;
    assert_error(r, Code::NotFound, "PERSON_NOT_FOUND", "binding.gongji");
    fixtures::register(
        &mut c,
        fixtures::person(&child, "阿依古丽·买买提", None, Some("340500")),
    )
    .await;
    env.finish().await;
}

/// S1: a business day is named exactly `YYYY-MM-DD`; anything else is refused and writes no
/// settlement.
async fn s1_business_dates_are_exactly_yyyy_mm_dd(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    for date in [
        "2024-1-5",
        " 2024-11-14",
        "-0044-01-01",
        "2024-11-14T00:00",
        "0044-01-01",
    ] {
        let r = c
            .settlement
            .settle_business_day(SettleBusinessDayRequest {
                request_id: fixtures::opaque("settle"),
                business_date: date.into(),
            })
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_DATE", DOMAIN);
        let r = c
            .settlement
            .get_settlement(GetSettlementRequest {
                business_date: date.into(),
            })
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_DATE", DOMAIN);
    }
    for written in ["2024-01-05", "2024-11-14"] {
        let r = c
            .settlement
            .get_settlement(GetSettlementRequest {
                business_date: written.into(),
            })
            .await;
        assert_error(r, Code::NotFound, "SETTLEMENT_NOT_FOUND", DOMAIN);
    }
    env.finish().await;
}

/// The ledger: every movement is an entry a holder can read back, with what the caller
/// said a credit was for.
async fn ledger_a_credit_keeps_its_memo(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let credit = |memo: &str| CreditAccountRequest {
        request_id: fixtures::opaque("credit"),
        holder_id_number: EMPLOYEE.into(),
        amount: "12.34".into(),
        bucket: Bucket::CurrentYear as i32,
        memo: memo.into(),
    };
    let entry = c
        .accounts
        .credit_account(credit("2024年11月 单位缴费划入"))
        .await
        .expect("credit")
        .into_inner()
        .entry
        .expect("entry");
    assert_eq!(entry.memo, "2024年11月 单位缴费划入");
    let r = c.accounts.credit_account(credit("line\nbreak")).await;
    assert_error(r, Code::InvalidArgument, "INVALID_MEMO", DOMAIN);
    let listed = c
        .accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: EMPLOYEE.into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].memo, "2024年11月 单位缴费划入");
    assert_eq!(listed[0].entry_id, entry.entry_id);
    assert_eq!(listed[1].memo, "", "the fixture's credit said nothing");
    env.finish().await;
}

fn credit(amount: &str, bucket: Bucket) -> CreditAccountRequest {
    CreditAccountRequest {
        request_id: fixtures::opaque("credit"),
        holder_id_number: EMPLOYEE.into(),
        amount: amount.into(),
        bucket: bucket as i32,
        memo: String::new(),
    }
}

fn close(year: i32) -> CloseYearRequest {
    CloseYearRequest {
        request_id: fixtures::opaque("close"),
        holder_id_number: EMPLOYEE.into(),
        year,
    }
}

/// P3: closing a year moves the current-year balance the account had at the end of that
/// year (Asia/Shanghai), once; money credited later stays current-year; a year before the
/// account existed is refused and moves nothing.
async fn p3_closing_a_year_moves_only_what_it_had_at_its_end(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    c.accounts
        .credit_account(credit("20.00", Bucket::CurrentYear))
        .await
        .expect("2024 money");
    env.stack
        .restart_with_clock(Clock::parse("2025-02-01T10:00:00+08:00").expect("clock"))
        .await
        .expect("into 2025");
    c.accounts
        .credit_account(credit("300.00", Bucket::CurrentYear))
        .await
        .expect("2025 money");
    let closed = c
        .accounts
        .close_year(close(2024))
        .await
        .expect("close 2024")
        .into_inner();
    assert_eq!(closed.moved_amount, "20.00", "2024's money only");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("300.00".into(), "120.00".into())
    );
    for year in [2019, 2000] {
        let r = c.accounts.close_year(close(year)).await;
        assert_error(r, Code::FailedPrecondition, "YEAR_BEFORE_ACCOUNT", DOMAIN);
    }
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("300.00".into(), "120.00".into())
    );
    verify_clean(&mut c).await;
    env.finish().await;
}

/// No balance ever becomes unreadable: caps apply to single amounts, and a balance may
/// pass them. Credit the largest amount, pay a premium, credit 400.00, refund: the account
/// still reads, pays and verifies.
async fn ledger_no_sequence_of_valid_calls_makes_an_account_unreadable(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "100000000.00").await;
    let paid = c
        .premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    c.accounts
        .credit_account(credit("400.00", Bucket::PriorYears))
        .await
        .expect("credit");
    c.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: fixtures::opaque("refund"),
            payment_id: paid.payment_id,
            reason: "enrollment cancelled".into(),
        })
        .await
        .expect("refund");
    let account = c
        .accounts
        .get_account(GetAccountRequest {
            holder_id_number: EMPLOYEE.into(),
        })
        .await
        .expect("still readable")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.prior_years_balance, "100000400.00");
    c.premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, CHILD, 2025))
        .await
        .expect("still pays");
    verify_clean(&mut c).await;
    env.finish().await;
}

/// P9 with P3: a refund puts money back where it would be now. Current-year money of a
/// year closed since the payment comes back as prior-years.
async fn p9_a_refund_of_a_closed_year_s_money_goes_to_prior_years(backend: Backend) {
    let policy = ANHUI_DEFAULT_TOML.replacen(
        "usable_buckets = [\"PRIOR_YEARS\"]",
        "usable_buckets = [\"CURRENT_YEAR\", \"PRIOR_YEARS\"]",
        1,
    );
    let Some(mut env) = TestEnv::start_with_policy(backend, IN_WINDOW, Some(&policy)).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "100.00").await;
    c.accounts
        .credit_account(credit("400.00", Bucket::CurrentYear))
        .await
        .expect("2024 money");
    let paid = c
        .premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay from current-year money")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("0.00".into(), "100.00".into())
    );
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("into 2025");
    let closed = c
        .accounts
        .close_year(close(2024))
        .await
        .expect("close 2024")
        .into_inner();
    assert_eq!(closed.moved_amount, "0.00", "2024's money was spent");
    c.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: fixtures::opaque("refund"),
            payment_id: paid.payment_id,
            reason: "enrollment cancelled".into(),
        })
        .await
        .expect("refund");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("0.00".into(), "500.00".into()),
        "2024's money is prior-years money now"
    );
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn at(env: &mut TestEnv, clock: &str) {
    env.stack
        .restart_with_clock(Clock::parse(clock).expect("clock"))
        .await
        .expect("restart at another time");
}

async fn settle(c: &mut Clients, day: &str) -> Settlement {
    c.settlement
        .settle_business_day(SettleBusinessDayRequest {
            request_id: fixtures::opaque("settle"),
            business_date: day.into(),
        })
        .await
        .expect("settle")
        .into_inner()
        .settlement
        .expect("settlement")
}

async fn newest_entry_day(c: &mut Clients) -> String {
    c.accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: EMPLOYEE.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries
        .remove(0)
        .business_date
}

/// S1: a settled business day is sealed. A movement stamped with it that commits after its
/// settlement (a payment started at 23:59:59.95 that commits late; here the clock is set
/// back to that instant after the day was settled) gets the next open day, and is settled
/// exactly once, with that day.
async fn s1_a_settled_day_is_sealed_and_a_late_movement_gets_the_next_open_day(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, "2024-11-15T23:59:59.900+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "2000.00").await;
    c.premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay");
    assert_eq!(newest_entry_day(&mut c).await, "2024-11-15");
    at(&mut env, "2024-11-16T00:00:30+08:00").await;
    let first = settle(&mut c, "2024-11-15").await;
    assert_eq!(first.movement_count, 1);

    at(&mut env, "2024-11-15T23:59:59.950+08:00").await;
    c.medical
        .pay_medical_expense(medical(&fixtures::opaque("med"), CHILD, EMPLOYEE, "100.00"))
        .await
        .expect("a late payment");
    assert_eq!(
        newest_entry_day(&mut c).await,
        "2024-11-16",
        "the sealed day is not reused"
    );

    at(&mut env, "2024-11-17T00:00:30+08:00").await;
    let next = settle(&mut c, "2024-11-16").await;
    assert_eq!(next.movement_count, 1, "the late movement, settled once");
    let again = c
        .settlement
        .get_settlement(GetSettlementRequest {
            business_date: "2024-11-15".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .settlement
        .expect("settlement");
    assert_eq!((again.movement_count, again.digest), (1, first.digest));
    verify_clean(&mut c).await;
    env.finish().await;
}

/// S1: concurrent settlements of one day return the same settlement, and lines come back in
/// one order (source region, destination region, purpose name) from every call.
async fn s1_concurrent_settlements_of_a_day_agree_in_one_line_order(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "2000.00").await;
    c.premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay");
    c.medical
        .pay_medical_expense(medical(&fixtures::opaque("med"), CHILD, EMPLOYEE, "100.00"))
        .await
        .expect("medical");
    at(&mut env, "2024-11-16T10:00:00+08:00").await;
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { settle(&mut c, "2024-11-15").await })
        })
        .collect();
    let mut settlements = Vec::new();
    for run in runs {
        settlements.push(run.await.expect("no panic"));
    }
    let got = c
        .settlement
        .get_settlement(GetSettlementRequest {
            business_date: "2024-11-15".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .settlement
        .expect("settlement");
    let purposes: Vec<i32> = got.lines.iter().map(|l| l.purpose).collect();
    assert_eq!(
        purposes,
        [
            gongji_proto::payment::v1::SettlementPurpose::MedicalExpense as i32,
            gongji_proto::payment::v1::SettlementPurpose::Premium as i32
        ]
    );
    for s in &settlements {
        assert_eq!(
            (&s.lines, &s.digest, s.movement_count),
            (&got.lines, &got.digest, 2)
        );
    }
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn verify(
    c: &mut Clients,
    page_token: &str,
    page_size: i32,
) -> gongji_proto::payment::v1::VerifyLedgerResponse {
    c.settlement
        .verify_ledger(VerifyLedgerRequest {
            page_token: page_token.into(),
            page_size,
        })
        .await
        .expect("verify")
        .into_inner()
}

/// S2: VerifyLedger covers every settled day, a bounded page per call, and sees one
/// snapshot: it stays clean while payments commit around it.
async fn s2_verify_ledger_pages_through_every_settled_day_on_one_snapshot(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "5000.00").await;
    for (day, next) in [
        ("2024-11-15", "2024-11-16T10:00:00+08:00"),
        ("2024-11-16", "2024-11-17T10:00:00+08:00"),
        ("2024-11-17", "2024-11-18T10:00:00+08:00"),
    ] {
        c.medical
            .pay_medical_expense(medical(&fixtures::opaque("med"), CHILD, EMPLOYEE, "10.00"))
            .await
            .expect("medical");
        at(&mut env, next).await;
        settle(&mut c, day).await;
    }
    let mut token = String::new();
    let mut days = Vec::new();
    for _ in 0..4 {
        let page = verify(&mut c, &token, 1).await;
        assert!(page.violations.is_empty(), "{:?}", page.violations);
        days.extend(page.verified_business_dates);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(days, ["2024-11-15", "2024-11-16", "2024-11-17"]);
    assert!(token.is_empty(), "the last page says so");
    let r = c
        .settlement
        .verify_ledger(VerifyLedgerRequest {
            page_token: "not-a-day".into(),
            page_size: 1,
        })
        .await;
    assert_error(r, Code::InvalidArgument, "INVALID_PAGE_TOKEN", DOMAIN);

    // Payments commit while the ledger is verified: every answer is clean.
    let payments: Vec<_> = (0..40)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move {
                c.medical
                    .pay_medical_expense(medical(&fixtures::opaque("med"), CHILD, EMPLOYEE, "1.00"))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for _ in 0..10 {
        let report = verify(&mut c, "", 0).await;
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }
    for p in payments {
        p.await.expect("no panic").expect("paid");
    }
    verify_clean(&mut c).await;
    env.finish().await;
}

/// P2: premiums and windows belong to the pooling region (统筹区). A child insured in a
/// county of Ma'anshan (340521) pays as Ma'anshan does: its window ended on 2024-12-31,
/// while the province default runs to February. A region outside the province never gets
/// the province's figures.
async fn p2_premiums_and_windows_belong_to_the_pooling_region(backend: Backend) {
    let Some(env) = TestEnv::start(backend, "2025-01-10T10:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    let county_child = fixtures::id_number("20180110", 14);
    fixtures::employee_and(&mut c, &county_child, "李子涵", "340521").await;
    let county = quote(&mut c, &county_child, 2025, false)
        .await
        .expect("quote");
    assert_eq!(county.window_end_date, "2024-12-31", "{county:?}");
    assert!(!county.in_collection_window);
    assert_eq!(county.waiting_months, 3);
    let hefei_child = fixtures::id_number("20180110", 16);
    fixtures::register(
        &mut c,
        fixtures::person(&hefei_child, "李子墨", None, Some("340102")),
    )
    .await;
    let hefei = quote(&mut c, &hefei_child, 2025, false)
        .await
        .expect("quote");
    assert_eq!(hefei.window_end_date, "2025-02-28");
    assert!(hefei.in_collection_window);
    let beijing_child = fixtures::id_number("20180110", 18);
    fixtures::register(
        &mut c,
        fixtures::person(&beijing_child, "李子安", None, Some("110105")),
    )
    .await;
    let r = quote(&mut c, &beijing_child, 2025, false).await;
    assert_error(r, Code::FailedPrecondition, "REGION_OUTSIDE_POLICY", DOMAIN);
    env.finish().await;
}

/// Errors clients can act on: a message over the size limit is RESOURCE_EXHAUSTED, and a
/// body that does not decode as the RPC's message is INVALID_ARGUMENT, each with one
/// ErrorInfo of the service's domain; neither changes anything.
async fn errors_oversized_and_undecodable_requests_get_aip193_answers(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let huge = "备".repeat(100 * 1024);
    let r = c
        .accounts
        .credit_account(credit("1.00", Bucket::PriorYears))
        .await;
    r.expect("a normal credit");
    let mut oversized = credit("1.00", Bucket::PriorYears);
    oversized.memo = huge.clone();
    let r = c.accounts.credit_account(oversized).await;
    assert_error(r, Code::ResourceExhausted, "MESSAGE_TOO_LARGE", DOMAIN);
    let r = c
        .registry
        .upsert_insured_person(UpsertInsuredPersonRequest {
            request_id: fixtures::opaque("register"),
            person: Some(fixtures::person(CHILD, &huge, None, Some("340500"))),
        })
        .await;
    assert_error(
        r,
        Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
        "binding.gongji",
    );

    // A Timestamp where a CreditAccountRequest belongs: field 1 is a number, not a string.
    let channel = tonic::transport::Endpoint::from_shared(env.stack.payment_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.expect("ready");
    let codec: tonic_prost::ProstCodec<
        prost_types::Timestamp,
        gongji_proto::payment::v1::CreditAccountResponse,
    > = tonic_prost::ProstCodec::default();
    // Credentials as every client of the harness has them: the body is what is wrong.
    let mut malformed = tonic::Request::new(prost_types::Timestamp {
        seconds: 42,
        nanos: 7,
    });
    let token = env.identity.caller_token(CONTRACT_TESTS, 600);
    malformed.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    let r = raw
        .unary(
            malformed,
            http::uri::PathAndQuery::from_static("/gongji.payment.v1.AccountService/CreditAccount"),
            codec,
        )
        .await;
    assert_error(r, Code::InvalidArgument, "MALFORMED_REQUEST", DOMAIN);
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "101.00",
        "nothing more moved"
    );
    env.finish().await;
}

/// Errors clients can act on: while payment-service's database cannot serve (SQLite: another
/// process holds it locked past the busy timeout; PostgreSQL: its connections are cut and
/// refused), a call answers UNAVAILABLE DATABASE_UNAVAILABLE, not INTERNAL, and nothing
/// changes; once the database is back, the call goes through.
async fn errors_a_database_outage_is_unavailable_and_changes_nothing(backend: Backend) {
    use sqlx::Connection as _;

    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    enum Held {
        Sqlite(sqlx::SqliteConnection),
        Postgres(sqlx::PgConnection, String),
    }
    let held = match env.payment_database() {
        ServiceDatabase::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut lock = sqlx::SqliteConnection::connect(&url).await.expect("open");
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut lock)
                .await
                .expect("lock");
            Held::Sqlite(lock)
        }
        ServiceDatabase::Postgres { admin_url, name } => {
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("admin");
            sqlx::query(&format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
            ))
            .execute(&mut admin)
            .await
            .expect("refuse connections");
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&name)
            .execute(&mut admin)
            .await
            .expect("cut connections");
            Held::Postgres(admin, name)
        }
    };
    let r = c
        .accounts
        .credit_account(credit("1.00", Bucket::PriorYears))
        .await;
    assert_error(r, Code::Unavailable, "DATABASE_UNAVAILABLE", DOMAIN);
    match held {
        Held::Sqlite(mut lock) => {
            sqlx::query("ROLLBACK")
                .execute(&mut lock)
                .await
                .expect("unlock");
        }
        Held::Postgres(mut admin, name) => {
            sqlx::query(&format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
            ))
            .execute(&mut admin)
            .await
            .expect("allow connections");
        }
    }
    c.accounts
        .credit_account(credit("1.00", Bucket::PriorYears))
        .await
        .expect("back");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "101.00",
        "the refused call changed nothing"
    );
    env.finish().await;
}

/// B4: an ID number's birth date is plausible: not after today on the service's clock, not
/// before 1880-01-01 (GB 11643's own sample, born 1880-01-01, stays valid).
async fn b4_an_id_number_s_birth_date_is_plausible(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let tomorrow = fixtures::id_number("20241116", 11);
    let too_early = fixtures::id_number("18791231", 11);
    for id in [&tomorrow, &too_early] {
        let r = c
            .registry
            .upsert_insured_person(UpsertInsuredPersonRequest {
                request_id: fixtures::opaque("register"),
                person: Some(fixtures::person(id, "李某", None, Some("340500"))),
            })
            .await;
        assert_error(
            r,
            Code::InvalidArgument,
            "INVALID_ID_NUMBER",
            "binding.gongji",
        );
        let r = c
            .accounts
            .get_account(GetAccountRequest {
                holder_id_number: id.clone(),
            })
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_ID_NUMBER", DOMAIN);
    }
    fixtures::register(
        &mut c,
        fixtures::person(
            &fixtures::id_number("20241115", 11),
            "李宝",
            None,
            Some("340500"),
        ),
    )
    .await;
    fixtures::register(
        &mut c,
        fixtures::person("440524188001010014", "李老", None, Some("340500")),
    )
    .await;
    env.finish().await;
}

/// B5: a refused CreateBinding is kept as a REJECTED application with every reason, so the
/// audit trail shows it; the caller gets the refusal, and a retry with the same request_id
/// gets the same refusal without a second record.
async fn b5_a_refused_application_is_kept_with_every_reason_and_replayed(backend: Backend) {
    use tokio_stream::StreamExt as _;

    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let sibling = fixtures::id_number("19900101", 31);
    fixtures::register(
        &mut c,
        fixtures::person(&sibling, "李强", None, Some("110105")),
    )
    .await;
    let apply = CreateBindingRequest {
        request_id: fixtures::opaque("bind"),
        authorizer_id_number: EMPLOYEE.into(),
        beneficiary_id_number: sibling.clone(),
        beneficiary_name: "李强".into(),
        relationship: Relationship::Sibling as i32,
        kind: BindingKind::FundsSharing as i32,
        verification_method: 0,
    };
    let first = assert_error(
        c.bindings.create_binding(apply.clone()).await,
        Code::FailedPrecondition,
        "REGION_NOT_ALLOWED",
        "binding.gongji",
    );
    let again = assert_error(
        c.bindings.create_binding(apply).await,
        Code::FailedPrecondition,
        "REGION_NOT_ALLOWED",
        "binding.gongji",
    );
    assert_eq!(
        again.message(),
        first.message(),
        "the first answer, replayed"
    );
    let rejected = c
        .bindings
        .list_bindings(ListBindingsRequest {
            authorizer_id_number: EMPLOYEE.into(),
            states: vec![BindingState::Rejected as i32],
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .bindings;
    assert_eq!(rejected.len(), 1, "kept once: {rejected:?}");
    assert!(rejected[0].state_reason.contains("REGION_NOT_ALLOWED"));
    assert!(
        rejected[0]
            .state_reason
            .contains("RELATIONSHIP_NOT_ALLOWED")
    );
    let mut events = c
        .bindings
        .watch_binding_events(WatchBindingEventsRequest { after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok")
        .event
        .expect("event");
    assert_eq!(event.to_state, BindingState::Rejected as i32);
    assert_eq!(event.binding_id, rejected[0].binding_id);
    let auth = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: sibling,
            purpose: Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(
        !auth.authorized && auth.binding_id.is_empty(),
        "an application is no binding"
    );
    env.finish().await;
}

/// B5: ApproveBinding checks the rules again: an authorizer whose employee insurance was
/// suspended after applying is refused, and the binding stays PENDING_REVIEW.
async fn b5_approval_checks_the_rules_again(backend: Backend) {
    let policy =
        ANHUI_DEFAULT_TOML.replace("review_mode = \"AUTOMATIC\"", "review_mode = \"MANUAL\"");
    let Some(env) = TestEnv::start_with_policy(backend, IN_WINDOW, Some(&policy)).await else {
        return;
    };
    let mut c = env.clients_owned();
    let pending = fixtures::family(&mut c, "100.00").await;
    assert_eq!(pending.state, BindingState::PendingReview as i32);
    fixtures::register(&mut c, fixtures::employee_with(EnrollmentStatus::Suspended)).await;
    let approve = |request_id: &str| ApproveBindingRequest {
        request_id: request_id.into(),
        binding_id: pending.binding_id.clone(),
        ..Default::default()
    };
    let r = c.bindings.approve_binding(approve("approve-1")).await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "AUTHORIZER_STATUS_ABNORMAL",
        "binding.gongji",
    );
    fixtures::register(&mut c, fixtures::employee_with(EnrollmentStatus::Normal)).await;
    let approved = c
        .bindings
        .approve_binding(approve("approve-2"))
        .await
        .expect("eligible again")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(approved.state, BindingState::Active as i32);
    env.finish().await;
}

/// P5: premiums paid through other channels (the tax bureau, a counter) count. The registry
/// record carries them; no second premium is taken for such a year, and they count as
/// covered when gap years are counted (P7).
async fn p5_premiums_paid_elsewhere_count(backend: Backend) {
    let Some(env) = TestEnv::start(backend, "2025-03-10T10:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "2000.00").await;
    let register = |id: &str, years: Vec<i32>| {
        let mut person = fixtures::person(id, "李某", None, Some("340500"));
        person.resident_paid_years = years;
        person
    };
    let paid_2025 = fixtures::id_number("20150601", 21);
    let paid_2021 = fixtures::id_number("20150601", 23);
    fixtures::register(&mut c, register(&paid_2025, vec![2025])).await;
    fixtures::register(&mut c, register(&paid_2021, vec![2021])).await;
    let got = c
        .registry
        .get_insured_person(GetInsuredPersonRequest {
            id_number: paid_2025.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .person
        .expect("person");
    assert_eq!(got.resident_paid_years, [2025]);
    for child in [&paid_2025, &paid_2021] {
        c.bindings
            .create_binding(fixtures::bind_child(
                &fixtures::opaque("bind"),
                child,
                "李某",
            ))
            .await
            .expect("bind");
    }
    let r = quote(&mut c, &paid_2025, 2025, false).await;
    assert_error(r, Code::AlreadyExists, "PREMIUM_ALREADY_PAID", DOMAIN);
    let r = c
        .premiums
        .pay_premium(pay(&fixtures::opaque("pay"), EMPLOYEE, &paid_2025, 2025))
        .await;
    assert_error(r, Code::AlreadyExists, "PREMIUM_ALREADY_PAID", DOMAIN);
    // Covered in 2021 (paid elsewhere), not since: 2022 to 2024 are gap years.
    let late = quote(&mut c, &paid_2021, 2025, false).await.expect("quote");
    assert_eq!(late.waiting_months, 3 + 2, "{late:?}");
    let r = c
        .registry
        .upsert_insured_person(UpsertInsuredPersonRequest {
            request_id: fixtures::opaque("register"),
            person: Some(register(&paid_2021, vec![2021, 2021])),
        })
        .await;
    assert_error(
        r,
        Code::InvalidArgument,
        "INVALID_COVERAGE_YEAR",
        "binding.gongji",
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "2000.00");
    env.finish().await;
}

fn use_request(movement: &str) -> AuthorizeUseRequest {
    AuthorizeUseRequest {
        request_id: fixtures::opaque("use"),
        authorizer_id_number: EMPLOYEE.into(),
        beneficiary_id_number: CHILD.into(),
        purpose: Purpose::MedicalExpense as i32,
        amount: "10.00".into(),
        movement_id: movement.into(),
    }
}

/// P1, the authorizing half of the fence: binding-service records a use with the check,
/// under the lock revocation takes. Uses racing a revocation are recorded against the
/// ACTIVE version or not at all; after the revocation commits, none is recorded. A retry
/// gets the first answer; another request for a recorded movement is refused.
async fn p1_a_use_is_recorded_only_while_the_binding_is_active(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "100.00").await;
    let first = use_request("m-first");
    let answer = c
        .bindings
        .authorize_use(first.clone())
        .await
        .expect("use")
        .into_inner();
    assert!(answer.authorization.as_ref().expect("decision").authorized);
    let recorded = answer.r#use.clone().expect("recorded");
    assert_eq!(
        (recorded.binding_id.as_str(), recorded.binding_version),
        (binding.binding_id.as_str(), 1)
    );
    let again = c
        .bindings
        .authorize_use(first)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(again, answer, "a retry gets the first answer");
    let r = c.bindings.authorize_use(use_request("m-first")).await;
    assert_error(
        r,
        Code::AlreadyExists,
        "USE_ALREADY_RECORDED",
        "binding.gongji",
    );

    // 30 uses race the revocation.
    let racing: Vec<_> = (0..30)
        .map(|n| {
            let mut bindings = c.bindings.clone();
            tokio::spawn(async move {
                bindings
                    .authorize_use(use_request(&format!("m-race-{n}")))
                    .await
                    .expect("an answer")
                    .into_inner()
            })
        })
        .collect();
    c.bindings
        .revoke_binding(revoked_by_employee(&binding.binding_id))
        .await
        .expect("revoke");
    let after = c
        .bindings
        .authorize_use(use_request("m-after"))
        .await
        .expect("answer")
        .into_inner();
    assert!(
        after.r#use.is_none(),
        "no use after the revocation committed"
    );
    assert!(!after.authorization.expect("decision").authorized);
    let mut authorized = 1;
    for task in racing {
        let answer = task.await.expect("no panic");
        if let Some(u) = answer.r#use {
            assert_eq!(u.binding_version, 1, "recorded while ACTIVE");
            authorized += 1;
        }
    }
    let uses = binding_uses(&mut c, &binding.binding_id).await;
    assert_eq!(uses.len(), authorized, "one use per authorized answer");
    assert!(uses.iter().all(|u| u.binding_version == 1));
    env.finish().await;
}

/// P1, the whole fence: 50 family medical payments are in flight while the binding is
/// revoked. Every debit that committed had its use recorded while the binding was ACTIVE
/// (version 1; the revocation made it 2), none was taken after, every refusal moved
/// nothing, and reconciliation finds each debit's use and each use's debit.
/// AuthorizeUse looks for a first answer only when its request ID turns out taken: a retry,
/// a denied one included, gets the first answer and records nothing more, and the request ID
/// with other content is refused.
async fn p1_a_use_retried_is_answered_once_and_its_request_id_kept_for_it(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "100.00").await;
    let first = use_request("m-retried");
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(
            c.bindings
                .authorize_use(first.clone())
                .await
                .expect("use")
                .into_inner(),
        );
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(binding_uses(&mut c, &binding.binding_id).await.len(), 1);
    let other = AuthorizeUseRequest {
        amount: "20.00".into(),
        ..first
    };
    assert_error(
        c.bindings.authorize_use(other).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        "binding.gongji",
    );
    // A denied use (no binding for this pair) is answered once too.
    let stranger = fixtures::id_number("20100101", 77);
    let denied = AuthorizeUseRequest {
        beneficiary_id_number: stranger,
        ..use_request("m-denied")
    };
    let once = c
        .bindings
        .authorize_use(denied.clone())
        .await
        .expect("denied")
        .into_inner();
    let twice = c
        .bindings
        .authorize_use(denied)
        .await
        .expect("retry")
        .into_inner();
    assert!(once.r#use.is_none());
    assert_eq!(once, twice);
    assert_eq!(binding_uses(&mut c, &binding.binding_id).await.len(), 1);
    env.finish().await;
}

async fn p1_every_family_debit_has_a_use_recorded_before_the_revocation(backend: Backend) {
    const PAYMENTS: usize = 50;
    const REVOKE_AFTER: usize = 5;
    const STAGGER_MS: u64 = 5;
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1200.00").await;
    let paid = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (first_paid, first_paid_rx) = tokio::sync::watch::channel(0_usize);
    let first_paid = std::sync::Arc::new(first_paid);
    let racing: Vec<_> = (0..PAYMENTS)
        .map(|n| {
            let mut medical_client = c.medical.clone();
            let (paid, first_paid) = (paid.clone(), first_paid.clone());
            tokio::spawn(async move {
                // Spread over a quarter of a second, so the revocation lands among them.
                let stagger_ms = u64::try_from(n).expect("small") * STAGGER_MS;
                tokio::time::sleep(std::time::Duration::from_millis(stagger_ms)).await;
                let answer = medical_client
                    .pay_medical_expense(medical(&format!("fence-{n}"), CHILD, EMPLOYEE, "10.00"))
                    .await;
                if answer.is_ok() {
                    let so_far = paid.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    first_paid.send_replace(so_far);
                }
                answer
            })
        })
        .collect();
    // Revoke once a few have paid, with the rest still in flight.
    let mut watch = first_paid_rx;
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        watch.wait_for(|n| *n >= REVOKE_AFTER),
    )
    .await
    .expect("the first payments within a minute")
    .expect("payments running");
    let revoked = c
        .bindings
        .revoke_binding(revoked_by_employee(&binding.binding_id))
        .await
        .expect("revoke")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(revoked.version, 2);
    let mut debits = Vec::new();
    let mut refused = 0;
    for task in racing {
        match task.await.expect("no panic") {
            Ok(answer) => {
                let payment = answer.into_inner().payment.expect("payment");
                assert_eq!(payment.binding_version, 1, "relied on the ACTIVE binding");
                assert!(!payment.movement_id.is_empty());
                debits.push(payment.movement_id);
            }
            Err(status) => {
                assert_error::<()>(
                    Err(status),
                    Code::FailedPrecondition,
                    "NOT_AUTHORIZED",
                    DOMAIN,
                );
                refused += 1;
            }
        }
    }
    assert_eq!(debits.len() + refused, PAYMENTS);
    assert!(debits.len() >= REVOKE_AFTER, "{} paid", debits.len());
    assert!(refused > 0, "the revocation landed among the payments");
    let r = c
        .medical
        .pay_medical_expense(medical("fence-after", CHILD, EMPLOYEE, "10.00"))
        .await;
    assert_error(r, Code::FailedPrecondition, "NOT_AUTHORIZED", DOMAIN);

    // binding-service recorded exactly the debits that committed, all before the revocation.
    let uses = binding_uses(&mut c, &binding.binding_id).await;
    assert!(
        uses.iter()
            .all(|u| u.binding_version == 1 && u.amount == "10.00")
    );
    let mut used: Vec<String> = uses.into_iter().map(|u| u.movement_id).collect();
    used.sort();
    debits.sort();
    assert_eq!(used, debits, "one use per committed debit, and no other");
    let spent = 10 * debits.len();
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        format!("{}.00", 1200 - spent),
        "only the authorized debits moved money"
    );
    let report = c
        .settlement
        .reconcile_binding_uses(ReconcileBindingUsesRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("reconcile")
        .into_inner();
    assert!(report.clean, "{report:?}");
    assert_eq!(report.debit_count, i64::try_from(debits.len()).unwrap());
    assert_eq!(report.use_count, report.debit_count);
    assert!(report.in_flight.is_empty(), "{report:?}");
    let r = c
        .settlement
        .reconcile_binding_uses(ReconcileBindingUsesRequest {
            binding_id: String::new(),
        })
        .await;
    assert_error(r, Code::InvalidArgument, "INVALID_BINDING_ID", DOMAIN);
    let r = c
        .settlement
        .reconcile_binding_uses(ReconcileBindingUsesRequest {
            binding_id: "no-such-binding".into(),
        })
        .await;
    assert_error(r, Code::NotFound, "BINDING_NOT_FOUND", DOMAIN);
    verify_clean(&mut c).await;
    env.finish().await;
}

/// The employee revokes her binding.
fn revoked_by_employee(binding_id: &str) -> tonic::Request<RevokeBindingRequest> {
    acting_for(
        EMPLOYEE,
        RevokeBindingRequest {
            request_id: fixtures::opaque("revoke"),
            binding_id: binding_id.to_owned(),
            reason: "no longer".into(),
            ..Default::default()
        },
    )
}

/// The uses binding-service recorded for a binding (one page is enough here).
async fn binding_uses(
    c: &mut Clients,
    binding_id: &str,
) -> Vec<gongji_proto::binding::v1::BindingUse> {
    c.bindings
        .list_binding_uses(ListBindingUsesRequest {
            binding_id: binding_id.to_owned(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("uses")
        .into_inner()
        .uses
}
