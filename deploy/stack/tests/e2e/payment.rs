//! payment-service's rules (P1 to P9, M1, M2, S1, S2) over real gRPC with both services:
//! every refusal, windows and waiting periods, refunds, medical expenses, year closing,
//! settlement and the ledger's invariants.

use std::time::Duration;

use gongji_proto::{
    binding::v1::{CreateBindingRequest, RevokeBindingRequest},
    payment::v1::{
        Bucket, Channel, CloseYearRequest, CreditAccountRequest, GetAccountRequest,
        GetMedicalExpensePaymentRequest, GetSettlementRequest, InstitutionKind,
        ListPremiumPaymentsRequest, OpenAccountRequest, OtherMeans, PayMedicalExpenseRequest,
        PayPremiumRequest, PremiumPaymentState, PremiumQuote, QuotePremiumRequest,
        RefundPremiumPaymentRequest, SettleBusinessDayRequest, VerifyLedgerRequest,
    },
};
use gongji_shared::{Clock, policy::ANHUI_DEFAULT_TOML};
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE},
    support::{Backend, Clients, IN_WINDOW, TestEnv, acting_for, assert_error},
};

both_backends!(
    the_last_minute_of_the_window_covers_the_year_and_the_next_minute_waits,
    a_beneficiary_with_employee_insurance_owes_no_resident_premium,
    a_year_without_premium_or_before_its_window_is_not_open,
    cover_that_would_start_after_the_year_is_refused,
    newborns_within_90_days_are_covered_from_birth,
    gap_years_add_waiting_months_and_back_payments_remove_them,
    only_prior_years_money_pays_for_family,
    a_binding_revoked_between_quote_and_pay_stops_the_payment,
    a_retry_after_a_client_timeout_pays_once,
    refund_restores_the_buckets_and_the_year_can_be_paid_again,
    two_payers_racing_for_one_beneficiary_make_one_premium,
    medical_expenses_draw_own_then_family_then_other_means,
    medical_expenses_fail_closed,
    close_year_moves_current_into_prior_once,
    settlement_is_once_per_day_and_reproducible,
    accounts_refuse_bad_requests,
);

const DOMAIN: &str = "payment.gongji";

pub fn pay(request_id: &str, payer: &str, beneficiary: &str, year: i32) -> PayPremiumRequest {
    PayPremiumRequest {
        request_id: request_id.to_owned(),
        payer_id_number: payer.to_owned(),
        beneficiary_id_number: beneficiary.to_owned(),
        coverage_year: year,
        expected_amount: "400.00".to_owned(),
        other_means: None,
        back_payment: false,
    }
}

pub async fn quote(
    c: &mut Clients,
    beneficiary: &str,
    year: i32,
    back_payment: bool,
) -> Result<PremiumQuote, tonic::Status> {
    c.premiums
        .quote_premium(QuotePremiumRequest {
            payer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: beneficiary.into(),
            coverage_year: year,
            back_payment,
        })
        .await
        .map(|r| r.into_inner().quote.expect("quote"))
}

pub async fn balances(c: &mut Clients, holder: &str) -> (String, String) {
    let account = c
        .accounts
        .get_account(GetAccountRequest {
            holder_id_number: holder.into(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    (account.current_year_balance, account.prior_years_balance)
}

pub async fn verify_clean(c: &mut Clients) {
    let report = c
        .settlement
        .verify_ledger(VerifyLedgerRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(report.checks.len(), 7, "{report:?}");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

async fn the_last_minute_of_the_window_covers_the_year_and_the_next_minute_waits(backend: Backend) {
    for (clock, in_window, start, waiting) in [
        ("2024-12-31T23:59:00+08:00", true, "2025-01-01", 0),
        ("2025-01-01T00:01:00+08:00", false, "2025-04-01", 3),
    ] {
        let Some(env) = TestEnv::start(backend, clock).await else {
            return;
        };
        let mut c = env.clients_owned();
        fixtures::family(&mut c, "1000.00").await;
        let payment = c
            .premiums
            .pay_premium(pay("p", EMPLOYEE, CHILD, 2025))
            .await
            .expect("pay")
            .into_inner();
        let q = payment.payment.expect("payment").quote.expect("quote");
        assert_eq!(q.in_collection_window, in_window, "{clock}");
        assert_eq!(q.waiting_months, waiting, "{clock}");
        assert_eq!(
            (q.benefit_start_date.as_str(), q.benefit_end_date.as_str()),
            (start, "2025-12-31")
        );
        env.finish().await;
    }
}

async fn a_beneficiary_with_employee_insurance_owes_no_resident_premium(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    let spouse = fixtures::id_number("19880808", 4);
    fixtures::register(
        &mut c,
        fixtures::person(&spouse, "王芳", Some("340500"), None),
    )
    .await;
    fixtures::fund(&mut c, EMPLOYEE, "1000.00").await;
    let mut bind = fixtures::bind_child("bind", &spouse, "王芳");
    bind.relationship = gongji_proto::binding::v1::Relationship::Spouse as i32;
    c.bindings.create_binding(bind).await.expect("bind spouse");
    let r = c
        .premiums
        .pay_premium(pay("p", EMPLOYEE, &spouse, 2025))
        .await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "BENEFICIARY_HAS_EMPLOYEE_INSURANCE",
        DOMAIN,
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "1000.00");
    env.finish().await;
}

async fn a_year_without_premium_or_before_its_window_is_not_open(backend: Backend) {
    let Some(env) = TestEnv::start(backend, "2024-09-04T12:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    // Ma'anshan's 2025 window opens on 2024-09-05.
    let r = c
        .premiums
        .pay_premium(pay("early", EMPLOYEE, CHILD, 2025))
        .await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "COVERAGE_YEAR_NOT_OPEN",
        DOMAIN,
    );
    let r = quote(&mut c, CHILD, 2030, false).await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "COVERAGE_YEAR_NOT_OPEN",
        DOMAIN,
    );
    env.finish().await;
}

async fn cover_that_would_start_after_the_year_is_refused(backend: Backend) {
    let Some(env) = TestEnv::start(backend, "2025-10-15T09:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let status = assert_error(
        c.premiums
            .pay_premium(pay("late", EMPLOYEE, CHILD, 2025))
            .await,
        Code::FailedPrecondition,
        "NO_BENEFIT_IN_COVERAGE_YEAR",
        DOMAIN,
    );
    let info = tonic_types::StatusExt::get_error_details(&status);
    let start = info
        .error_info()
        .expect("info")
        .metadata
        .get("benefit_start_date")
        .cloned();
    assert_eq!(start.as_deref(), Some("2026-01-15"));
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "1000.00");
    env.finish().await;
}

async fn newborns_within_90_days_are_covered_from_birth(backend: Backend) {
    let newborn = fixtures::id_number("20250115", 2);
    for (clock, waiting, start) in [
        ("2025-03-01T10:00:00+08:00", 0, "2025-01-15"),
        ("2025-05-01T10:00:00+08:00", 3, "2025-08-01"),
    ] {
        let Some(env) = TestEnv::start(backend, clock).await else {
            return;
        };
        let mut c = env.clients_owned();
        fixtures::employee_and(&mut c, &newborn, "李宝", "340500").await;
        c.bindings
            .create_binding(fixtures::bind_child("b", &newborn, "李宝"))
            .await
            .expect("bind");
        let q = quote(&mut c, &newborn, 2025, false).await.expect("quote");
        assert_eq!(
            (q.waiting_months, q.benefit_start_date.as_str()),
            (waiting, start),
            "{clock}"
        );
        env.finish().await;
    }
}

/// The default policy with premiums for 2021 to 2027, so gaps can be years long.
fn long_policy() -> String {
    let mut text = ANHUI_DEFAULT_TOML.replacen(
        "effective_from = \"2024-01-01\"",
        "effective_from = \"2020-01-01\"",
        1,
    );
    for year in 2021..=2024 {
        text.push_str(&format!(
            "\n[[premiums]]\ncoverage_year = {year}\namount = \"400.00\"\nwindow_start = \"{}-09-01\"\nwindow_end = \"{}-12-31\"\n",
            year - 1,
            year - 1
        ));
    }
    text
}

async fn gap_years_add_waiting_months_and_back_payments_remove_them(backend: Backend) {
    let policy = long_policy();
    let Some(mut env) =
        TestEnv::start_with_policy(backend, "2020-11-01T10:00:00+08:00", Some(&policy)).await
    else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "3000.00").await;
    c.premiums
        .pay_premium(pay("paid-2021", EMPLOYEE, CHILD, 2021))
        .await
        .expect("2021 in its window");

    // 2022 to 2024 go by without cover; in March 2025 the family pays late.
    env.stack
        .restart_with_clock(Clock::parse("2025-03-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("time passes");
    let late = quote(&mut c, CHILD, 2025, false).await.expect("quote");
    // Fixed 3 months, plus one per gap year after the first (policy: first_gap_year_counts = false).
    assert_eq!(late.waiting_months, 5);
    assert_eq!(late.benefit_start_date, "2025-08-10");

    let back = quote(&mut c, CHILD, 2023, true)
        .await
        .expect("back-payment quote");
    assert!(back.back_payment);
    assert_eq!(back.premium, "400.00", "at the current year's rate");
    assert!(
        back.benefit_start_date.is_empty(),
        "a back-payment buys no cover"
    );
    let mut request = pay("back-2023", EMPLOYEE, CHILD, 2023);
    request.back_payment = true;
    c.premiums
        .pay_premium(request)
        .await
        .expect("back-pay 2023");
    let r = c
        .premiums
        .pay_premium(pay("2023-again", EMPLOYEE, CHILD, 2024))
        .await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "NO_BENEFIT_IN_COVERAGE_YEAR",
        DOMAIN,
    );

    let after = quote(&mut c, CHILD, 2025, false).await.expect("quote");
    assert_eq!(
        after.waiting_months, 4,
        "each back-paid year removes a variable month"
    );
    let paid = c
        .premiums
        .pay_premium(pay("paid-2025", EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay 2025");
    let q = paid
        .into_inner()
        .payment
        .expect("payment")
        .quote
        .expect("quote");
    assert_eq!(q.benefit_start_date, "2025-07-10");
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn only_prior_years_money_pays_for_family(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "100.00").await;
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: "current".into(),
            holder_id_number: EMPLOYEE.into(),
            amount: "1000.00".into(),
            bucket: Bucket::CurrentYear as i32,
            memo: "this year's contributions".into(),
        })
        .await
        .expect("credit");
    let q = quote(&mut c, CHILD, 2025, false).await.expect("quote");
    assert_eq!(
        (q.account_part.as_str(), q.other_means_part.as_str()),
        ("100.00", "300.00")
    );
    assert_eq!(q.draws.len(), 1);
    assert_eq!(q.draws[0].bucket, Bucket::PriorYears as i32);
    let mut request = pay("split", EMPLOYEE, CHILD, 2025);
    request.other_means = Some(OtherMeans {
        amount: "300.00".into(),
        channel: Channel::Alipay as i32,
        reference: "ali-1".into(),
    });
    c.premiums.pay_premium(request).await.expect("pay");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("1000.00".into(), "0.00".into())
    );
    env.finish().await;
}

async fn a_binding_revoked_between_quote_and_pay_stops_the_payment(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    quote(&mut c, CHILD, 2025, false)
        .await
        .expect("quote while bound");
    c.bindings
        .revoke_binding(acting_for(
            EMPLOYEE,
            RevokeBindingRequest {
                request_id: "revoke".into(),
                binding_id: binding.binding_id,
                reason: "changed my mind".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("revoke");
    let status = assert_error(
        c.premiums
            .pay_premium(pay("p", EMPLOYEE, CHILD, 2025))
            .await,
        Code::FailedPrecondition,
        "NOT_AUTHORIZED",
        DOMAIN,
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(
        details
            .precondition_failure()
            .expect("violations")
            .violations[0]
            .r#type,
        "BINDING_NOT_ACTIVE"
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "1000.00");
    env.finish().await;
}

async fn a_retry_after_a_client_timeout_pays_once(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let mut hurried = tonic::Request::new(pay("once", EMPLOYEE, CHILD, 2025));
    hurried.set_timeout(Duration::from_millis(1));
    // The client gives up at once; the server may or may not have paid.
    let _ = c.premiums.pay_premium(hurried).await;
    let first = c
        .premiums
        .pay_premium(pay("once", EMPLOYEE, CHILD, 2025))
        .await
        .expect("retry")
        .into_inner();
    let again = c
        .premiums
        .pay_premium(pay("once", EMPLOYEE, CHILD, 2025))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "600.00",
        "paid exactly once"
    );
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn refund_restores_the_buckets_and_the_year_can_be_paid_again(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "150.00").await;
    let mut request = pay("split", EMPLOYEE, CHILD, 2025);
    request.other_means = Some(OtherMeans {
        amount: "250.00".into(),
        channel: Channel::Bank as i32,
        reference: "bank-77".into(),
    });
    let paid = c
        .premiums
        .pay_premium(request)
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "0.00");
    let refund = |request_id: &str| RefundPremiumPaymentRequest {
        request_id: request_id.into(),
        payment_id: paid.payment_id.clone(),
        reason: "enrollment cancelled".into(),
    };
    let refunded = c
        .premiums
        .refund_premium_payment(refund("refund"))
        .await
        .expect("refund")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(refunded.state, PremiumPaymentState::Refunded as i32);
    let owed = refunded
        .other_means_owed_back
        .expect("other means owed back");
    assert_eq!(
        (owed.amount.as_str(), owed.reference.as_str()),
        ("250.00", "bank-77")
    );
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "150.00",
        "back into prior-years"
    );
    let r = c
        .premiums
        .refund_premium_payment(refund("refund-again"))
        .await;
    assert_error(r, Code::FailedPrecondition, "ALREADY_REFUNDED", DOMAIN);
    let r = c
        .premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: "nope".into(),
            payment_id: "no-such-payment".into(),
            reason: "x".into(),
        })
        .await;
    assert_error(r, Code::NotFound, "PAYMENT_NOT_FOUND", DOMAIN);

    // The year is unpaid again.
    let mut again = pay("again", EMPLOYEE, CHILD, 2025);
    again.other_means = Some(OtherMeans {
        amount: "250.00".into(),
        channel: Channel::Cash as i32,
        reference: "cash-2".into(),
    });
    c.premiums.pay_premium(again).await.expect("pay again");
    let list = c
        .premiums
        .list_premium_payments(ListPremiumPaymentsRequest {
            beneficiary_id_number: CHILD.into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        list.payments[0].state,
        PremiumPaymentState::Paid as i32,
        "newest first"
    );
    let older = c
        .premiums
        .list_premium_payments(ListPremiumPaymentsRequest {
            beneficiary_id_number: CHILD.into(),
            page_size: 1,
            page_token: list.next_page_token,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(older.payments[0].payment_id, paid.payment_id);
    assert!(older.next_page_token.is_empty());
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn two_payers_racing_for_one_beneficiary_make_one_premium(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let other = fixtures::id_number("19860606", 3);
    fixtures::register(
        &mut c,
        fixtures::person(&other, "李父", Some("340500"), None),
    )
    .await;
    fixtures::fund(&mut c, &other, "1000.00").await;
    c.bindings
        .create_binding(CreateBindingRequest {
            authorizer_id_number: other.clone(),
            ..fixtures::bind_request("second-authorizer")
        })
        .await
        .expect("a beneficiary may have several authorizers");
    let tasks: Vec<_> = [EMPLOYEE.to_owned(), other.clone()]
        .into_iter()
        .flat_map(|payer| (0..4).map(move |n| (payer.clone(), n)))
        .map(|(payer, n)| {
            let mut premiums = c.premiums.clone();
            tokio::spawn(async move {
                premiums
                    .pay_premium(pay(
                        &fixtures::opaque(&format!("race-{n}")),
                        &payer,
                        CHILD,
                        2025,
                    ))
                    .await
            })
        })
        .collect();
    let mut paid = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => paid += 1,
            Err(status) => assert!(
                matches!(status.code(), Code::AlreadyExists | Code::Aborted),
                "{status:?}"
            ),
        }
    }
    assert_eq!(paid, 1);
    let total: f64 = [
        balances(&mut c, EMPLOYEE).await.1,
        balances(&mut c, &other).await.1,
    ]
    .iter()
    .map(|b| b.parse::<f64>().expect("number"))
    .sum();
    assert_eq!(total, 1600.0, "one premium left the two accounts");
    verify_clean(&mut c).await;
    env.finish().await;
}

pub fn medical(
    request_id: &str,
    beneficiary: &str,
    family: &str,
    amount: &str,
) -> PayMedicalExpenseRequest {
    PayMedicalExpenseRequest {
        request_id: request_id.into(),
        beneficiary_id_number: beneficiary.into(),
        family_account_holder_id_number: family.into(),
        institution_code: "H340500001".into(),
        institution_kind: InstitutionKind::Hospital as i32,
        amount: amount.into(),
    }
}

async fn medical_expenses_draw_own_then_family_then_other_means(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "50.00").await;
    // Her husband is employee-insured too, with a small account of his own.
    let spouse = fixtures::id_number("19850505", 7);
    fixtures::register(
        &mut c,
        fixtures::person(&spouse, "赵刚", Some("340500"), None),
    )
    .await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    let mut bind = fixtures::bind_child("bind-spouse", &spouse, "赵刚");
    bind.relationship = gongji_proto::binding::v1::Relationship::Spouse as i32;
    c.bindings.create_binding(bind).await.expect("bind spouse");
    let payment = c
        .medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    let sum = |draws: &[gongji_proto::payment::v1::BucketDraw]| {
        draws
            .iter()
            .map(|d| d.amount.parse::<f64>().expect("amount"))
            .sum::<f64>()
    };
    assert_eq!(
        sum(&payment.own_account_draws),
        30.0,
        "his own account first"
    );
    assert_eq!(sum(&payment.family_account_draws), 50.0, "then hers");
    assert_eq!(payment.other_means_part, "20.00", "the rest by other means");
    assert!(
        !payment.binding_id.is_empty(),
        "the family part relied on the binding"
    );
    assert_eq!(balances(&mut c, &spouse).await.1, "0.00");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "0.00");
    let got = c
        .medical
        .get_medical_expense_payment(GetMedicalExpensePaymentRequest {
            payment_id: payment.payment_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(got, payment);
    let retry = c
        .medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("retry");
    assert_eq!(
        retry.into_inner().payment.expect("payment"),
        payment,
        "a retry moves no money"
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "0.00");
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn medical_expenses_fail_closed(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "500.00").await;
    // No binding: the family account may not pay.
    let r = c
        .medical
        .pay_medical_expense(medical("m1", CHILD, EMPLOYEE, "10.00"))
        .await;
    assert_error(r, Code::FailedPrecondition, "NOT_AUTHORIZED", DOMAIN);
    c.bindings
        .create_binding(fixtures::bind_request("bind"))
        .await
        .expect("bind");
    env.stack
        .stop_binding()
        .await
        .expect("stop binding-service");
    let r = c
        .medical
        .pay_medical_expense(medical("m2", CHILD, EMPLOYEE, "10.00"))
        .await;
    assert_error(r, Code::Unavailable, "DEPENDENCY_UNAVAILABLE", DOMAIN);
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "500.00",
        "no money moved"
    );
    env.stack.restart_binding().await.expect("restart");
    env.stack
        .wait_serving(gongji_stack::READY_TIMEOUT_MS)
        .await
        .expect("serving");
    c.medical
        .pay_medical_expense(medical("m2", CHILD, EMPLOYEE, "10.00"))
        .await
        .expect("paid once it is back");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "490.00");
    env.finish().await;
}

/// Corrected by the money-rules issue: a year moves the current-year balance it had at its
/// end, so the year is closed after it ends (here 2024, in January 2025); a year before
/// the account existed is refused.
async fn close_year_moves_current_into_prior_once(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: "current".into(),
            holder_id_number: EMPLOYEE.into(),
            amount: "250.50".into(),
            bucket: Bucket::CurrentYear as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("the year ends");
    let close = |request_id: &str, year: i32| CloseYearRequest {
        request_id: request_id.into(),
        holder_id_number: EMPLOYEE.into(),
        year,
    };
    let first = c
        .accounts
        .close_year(close("close-2024", 2024))
        .await
        .expect("close")
        .into_inner();
    assert_eq!(first.moved_amount, "250.50");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("0.00".into(), "350.50".into())
    );
    let again = c
        .accounts
        .close_year(close("close-2024-again", 2024))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(again.moved_amount, "0.00", "once per account and year");
    let r = c.accounts.close_year(close("close-2025", 2025)).await;
    assert_error(r, Code::FailedPrecondition, "YEAR_NOT_ENDED", DOMAIN);
    let r = c.accounts.close_year(close("close-2023", 2023)).await;
    assert_error(r, Code::FailedPrecondition, "YEAR_BEFORE_ACCOUNT", DOMAIN);
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn settlement_is_once_per_day_and_reproducible(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, "2024-11-15T23:59:30+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let hefei_child = fixtures::id_number("20160606", 8);
    fixtures::register(
        &mut c,
        fixtures::person(&hefei_child, "李禾", None, Some("340100")),
    )
    .await;
    c.bindings
        .create_binding(fixtures::bind_child("b2", &hefei_child, "李禾"))
        .await
        .expect("bind");
    c.premiums
        .pay_premium(pay("maanshan", EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay");
    let r = c
        .settlement
        .settle_business_day(SettleBusinessDayRequest {
            request_id: "too-early".into(),
            business_date: "2024-11-15".into(),
        })
        .await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "BUSINESS_DAY_NOT_CLOSED",
        DOMAIN,
    );

    // A minute later it is the next business day: this payment belongs to 2024-11-16.
    env.stack
        .restart_with_clock(Clock::parse("2024-11-16T00:00:30+08:00").expect("clock"))
        .await
        .expect("midnight passes");
    c.premiums
        .pay_premium(pay("hefei", EMPLOYEE, &hefei_child, 2025))
        .await
        .expect("pay");
    let settle = |request_id: &str| SettleBusinessDayRequest {
        request_id: request_id.into(),
        business_date: "2024-11-15".into(),
    };
    let first = c
        .settlement
        .settle_business_day(settle("s1"))
        .await
        .expect("settle")
        .into_inner();
    let first = first.settlement.expect("settlement");
    assert_eq!(first.movement_count, 1, "only the payment before midnight");
    assert_eq!(first.lines.len(), 1);
    let line = &first.lines[0];
    assert_eq!(
        (
            line.source_region_code.as_str(),
            line.destination_region_code.as_str()
        ),
        ("340500", "340500")
    );
    assert_eq!(
        (
            line.gross_amount.as_str(),
            line.net_amount.as_str(),
            line.payment_count
        ),
        ("400.00", "400.00", 1)
    );
    let second = c
        .settlement
        .settle_business_day(settle("s2"))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(
        second.settlement.expect("settlement"),
        first,
        "settling twice gives the same settlement"
    );
    let got = c
        .settlement
        .get_settlement(GetSettlementRequest {
            business_date: "2024-11-15".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.settlement.expect("settlement").digest, first.digest);
    let r = c
        .settlement
        .get_settlement(GetSettlementRequest {
            business_date: "2024-11-14".into(),
        })
        .await;
    assert_error(r, Code::NotFound, "SETTLEMENT_NOT_FOUND", DOMAIN);
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn accounts_refuse_bad_requests(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let open = |request_id: &str, holder: &str, region: &str| OpenAccountRequest {
        request_id: request_id.into(),
        holder_id_number: holder.into(),
        region_code: region.into(),
    };
    // Only an employee-insured person, in their enrollment's region, has an account.
    let r = c
        .accounts
        .open_account(open("o1", EMPLOYEE, "340500"))
        .await;
    assert_error(r, Code::FailedPrecondition, "PERSON_NOT_FOUND", DOMAIN);
    fixtures::register(
        &mut c,
        fixtures::person(CHILD, CHILD_NAME, None, Some("340500")),
    )
    .await;
    let r = c.accounts.open_account(open("o2", CHILD, "340500")).await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "HOLDER_NOT_EMPLOYEE_INSURED",
        DOMAIN,
    );
    fixtures::employee(&mut c).await;
    let r = c
        .accounts
        .open_account(open("o3", EMPLOYEE, "340100"))
        .await;
    assert_error(r, Code::FailedPrecondition, "REGION_MISMATCH", DOMAIN);
    fixtures::fund(&mut c, EMPLOYEE, "10.00").await;
    let r = c
        .accounts
        .open_account(OpenAccountRequest {
            request_id: "open-again".into(),
            holder_id_number: EMPLOYEE.into(),
            region_code: "340500".into(),
        })
        .await;
    assert_error(r, Code::AlreadyExists, "ACCOUNT_ALREADY_EXISTS", DOMAIN);
    let stranger = fixtures::id_number("19990909", 5);
    let r = c
        .accounts
        .get_account(GetAccountRequest {
            holder_id_number: stranger.clone(),
        })
        .await;
    assert_error(r, Code::NotFound, "ACCOUNT_NOT_FOUND", DOMAIN);
    for amount in ["0", "-5.00", "5.001", "1e3", "100000000.01"] {
        let r = c
            .accounts
            .credit_account(CreditAccountRequest {
                request_id: format!("bad-{amount}"),
                holder_id_number: EMPLOYEE.into(),
                amount: amount.into(),
                bucket: Bucket::PriorYears as i32,
                memo: String::new(),
            })
            .await;
        assert_error(r, Code::InvalidArgument, "INVALID_AMOUNT", DOMAIN);
    }
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "10.00",
        "refusals change nothing"
    );
    env.finish().await;
}
