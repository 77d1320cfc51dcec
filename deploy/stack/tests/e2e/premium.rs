//! The seed's scenario end to end: bind a child, quote and pay the 2025 premium.

use gongji_proto::{
    binding::v1::{BindingState, CheckAuthorizationRequest, GetBindingRequest, Purpose},
    payment::v1::{
        Bucket, Channel, GetAccountRequest, GetPremiumPaymentRequest, ListAccountEntriesRequest,
        OtherMeans, PayPremiumRequest, PremiumPaymentState, QuotePremiumRequest,
    },
};
use tonic::Code;

use crate::{
    both_backends, fixtures,
    support::{Backend, Clients, IN_WINDOW, TestEnv, assert_error},
};

both_backends!(
    seed_happy_path_covers_the_child_for_2025,
    a_short_account_is_topped_up_by_other_means,
    a_short_account_without_other_means_is_refused_with_the_shortfall,
    a_retry_returns_the_first_payment_and_moves_no_money,
    paying_without_a_binding_is_not_authorized,
);

fn pay(request_id: &str) -> PayPremiumRequest {
    PayPremiumRequest {
        request_id: request_id.to_owned(),
        payer_id_number: fixtures::EMPLOYEE.to_owned(),
        beneficiary_id_number: fixtures::CHILD.to_owned(),
        coverage_year: 2025,
        expected_amount: "400.00".to_owned(),
        other_means: None,
        back_payment: false,
    }
}

/// The employee's prior-years balance.
pub async fn prior_years(c: &mut Clients) -> String {
    c.accounts
        .get_account(GetAccountRequest {
            holder_id_number: fixtures::EMPLOYEE.to_owned(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .prior_years_balance
}

async fn seed_happy_path_covers_the_child_for_2025(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1200.00").await;
    assert_eq!(binding.state, BindingState::Active as i32);
    let fetched = c
        .bindings
        .get_binding(GetBindingRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("get binding")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(
        fetched.history.len(),
        1,
        "the application is in the audit trail"
    );

    let auth = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            purpose: Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(auth.authorized, "{auth:?}");
    assert_eq!(auth.beneficiary_region_code, "340500");

    let quote = c
        .premiums
        .quote_premium(QuotePremiumRequest {
            payer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            coverage_year: 2025,
            back_payment: false,
        })
        .await
        .expect("quote")
        .into_inner()
        .quote
        .expect("quote");
    assert_eq!(quote.premium, "400.00");
    assert_eq!(quote.account_part, "400.00");
    assert_eq!(quote.other_means_part, "0.00");
    assert!(quote.in_collection_window);
    assert_eq!(
        (
            quote.window_start_date.as_str(),
            quote.window_end_date.as_str()
        ),
        ("2024-09-05", "2024-12-31")
    );
    assert_eq!(quote.waiting_months, 0);
    assert_eq!(
        (
            quote.benefit_start_date.as_str(),
            quote.benefit_end_date.as_str()
        ),
        ("2025-01-01", "2025-12-31")
    );
    assert_eq!(
        prior_years(&mut c).await,
        "1200.00",
        "a quote moves no money"
    );

    let payment = c
        .premiums
        .pay_premium(pay("pay-1"))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(payment.state, PremiumPaymentState::Paid as i32);
    assert_eq!(payment.binding_id, binding.binding_id);
    assert_eq!(payment.binding_version, binding.version);
    assert_eq!(payment.payer_region_code, "340500");
    assert_eq!(
        payment.quote.as_ref(),
        Some(&quote),
        "the payment did what the quote said"
    );
    assert_eq!(prior_years(&mut c).await, "800.00");

    let got = c
        .premiums
        .get_premium_payment(GetPremiumPaymentRequest {
            payment_id: payment.payment_id.clone(),
        })
        .await
        .expect("get payment")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(got, payment);

    let entries = c
        .accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: fixtures::EMPLOYEE.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner();
    assert_eq!(entries.entries.len(), 1);
    assert_eq!(
        entries.entries[0].amount, "-400.00",
        "newest first: the premium"
    );
    assert_eq!(entries.entries[0].bucket, Bucket::PriorYears as i32);
    let older = c
        .accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: fixtures::EMPLOYEE.into(),
            page_size: 1,
            page_token: entries.next_page_token,
        })
        .await
        .expect("entries")
        .into_inner();
    assert_eq!(older.entries[0].amount, "1200.00");
    assert!(older.next_page_token.is_empty(), "the last page");

    let again = c.premiums.pay_premium(pay("pay-2")).await;
    assert_error(
        again,
        Code::AlreadyExists,
        "PREMIUM_ALREADY_PAID",
        "payment.gongji",
    );
    env.finish().await;
}

async fn a_short_account_is_topped_up_by_other_means(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "150.50").await;
    let mut request = pay("pay-split");
    request.other_means = Some(OtherMeans {
        amount: "249.50".into(),
        channel: Channel::WechatPay as i32,
        reference: "wx-4200001".into(),
    });
    let payment = c
        .premiums
        .pay_premium(request)
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    let quote = payment.quote.expect("quote");
    assert_eq!(
        (quote.account_part.as_str(), quote.other_means_part.as_str()),
        ("150.50", "249.50")
    );
    assert_eq!(
        payment.other_means.expect("other means").reference,
        "wx-4200001"
    );
    assert_eq!(prior_years(&mut c).await, "0.00");
    env.finish().await;
}

async fn a_short_account_without_other_means_is_refused_with_the_shortfall(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "150.50").await;
    let status = assert_error(
        c.premiums.pay_premium(pay("pay-short")).await,
        Code::FailedPrecondition,
        "INSUFFICIENT_BALANCE",
        "payment.gongji",
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(
        details
            .error_info()
            .expect("info")
            .metadata
            .get("shortfall")
            .map(String::as_str),
        Some("249.50")
    );

    let mut wrong = pay("pay-wrong-top-up");
    wrong.other_means = Some(OtherMeans {
        amount: "200.00".into(),
        channel: Channel::Cash as i32,
        reference: "cash-1".into(),
    });
    assert_error(
        c.premiums.pay_premium(wrong).await,
        Code::InvalidArgument,
        "INVALID_OTHER_MEANS",
        "payment.gongji",
    );

    let mut mismatch = pay("pay-mismatch");
    mismatch.expected_amount = "380.00".into();
    assert_error(
        c.premiums.pay_premium(mismatch).await,
        Code::FailedPrecondition,
        "AMOUNT_MISMATCH",
        "payment.gongji",
    );
    assert_eq!(
        prior_years(&mut c).await,
        "150.50",
        "refusals move no money"
    );
    env.finish().await;
}

async fn a_retry_returns_the_first_payment_and_moves_no_money(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let first = c
        .premiums
        .pay_premium(pay("pay-once"))
        .await
        .expect("pay")
        .into_inner();
    let retry = c
        .premiums
        .pay_premium(pay("pay-once"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, retry);
    assert_eq!(prior_years(&mut c).await, "600.00");
    let mut other = pay("pay-once");
    other.coverage_year = 2026;
    assert_error(
        c.premiums.pay_premium(other).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        "payment.gongji",
    );
    env.finish().await;
}

async fn paying_without_a_binding_is_not_authorized(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::register(
        &mut c,
        fixtures::person(
            fixtures::EMPLOYEE,
            fixtures::EMPLOYEE_NAME,
            Some("340500"),
            None,
        ),
    )
    .await;
    fixtures::register(
        &mut c,
        fixtures::person(fixtures::CHILD, fixtures::CHILD_NAME, None, Some("340500")),
    )
    .await;
    fixtures::fund(&mut c, fixtures::EMPLOYEE, "1000.00").await;
    let status = assert_error(
        c.premiums.pay_premium(pay("pay-unbound")).await,
        Code::FailedPrecondition,
        "NOT_AUTHORIZED",
        "payment.gongji",
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    let kinds: Vec<_> = details
        .precondition_failure()
        .expect("violations")
        .violations
        .iter()
        .map(|v| v.r#type.as_str())
        .collect();
    assert_eq!(kinds, ["BINDING_NOT_FOUND"]);
    assert_eq!(prior_years(&mut c).await, "1000.00");
    env.finish().await;
}
