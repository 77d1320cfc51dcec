//! Authorizer limits (issue 12): set by the authorizer alone as an audited binding event, and
//! enforced by payment-service in the transaction that reserves each family debit.

use gongji_proto::{
    binding::v1::{
        self as b, BindingLimit, CheckAuthorizationRequest, GetBindingRequest, LimitPeriod,
        RevokeBindingRequest, SetBindingLimitsRequest,
    },
    payment::v1::{MedicalExpensePayment, OtherMeans, ReconcileBindingUsesRequest},
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    both_backends,
    fixtures::{self, CHILD, EMPLOYEE, fen},
    payment::{balances, medical, pay, verify_clean},
    support::{Backend, Clients, IN_WINDOW, TestEnv, acting_for, assert_error},
};

const B: &str = "binding.gongji";
const P: &str = "payment.gongji";

both_backends!(
    limits_are_set_by_the_authorizer_alone_as_an_audited_event,
    limits_hold_under_fifty_concurrent_medical_payments,
    a_premium_over_the_limit_needs_other_means_for_the_rest,
    a_limit_change_racing_payments_keeps_each_within_the_limits_it_was_checked_against
);

pub fn limit(purpose: b::Purpose, period: LimitPeriod, amount: &str) -> BindingLimit {
    BindingLimit {
        purpose: purpose as i32,
        period: period as i32,
        amount: amount.into(),
    }
}

fn set(request_id: &str, binding_id: &str, limits: Vec<BindingLimit>) -> SetBindingLimitsRequest {
    SetBindingLimitsRequest {
        request_id: request_id.into(),
        binding_id: binding_id.into(),
        limits,
    }
}

/// The authorizer sets limits through her channel.
pub async fn set_limits(
    c: &mut Clients,
    request_id: &str,
    binding_id: &str,
    limits: Vec<BindingLimit>,
) {
    c.bindings
        .set_binding_limits(acting_for(EMPLOYEE, set(request_id, binding_id, limits)))
        .await
        .expect("set limits");
}

pub fn family_fen(p: &MedicalExpensePayment) -> i64 {
    p.family_account_draws.iter().map(|d| fen(&d.amount)).sum()
}

pub fn own_fen(p: &MedicalExpensePayment) -> i64 {
    p.own_account_draws.iter().map(|d| fen(&d.amount)).sum()
}

/// She limits her binding to the child; it stays ACTIVE with a new version and an event by
/// the authorizer; a retry answers the same; the child, a caller acting for nobody, bad
/// limits, and a revoked binding are refused; CheckAuthorization says which limits apply.
async fn limits_are_set_by_the_authorizer_alone_as_an_audited_event(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    let id = binding.binding_id.clone();
    let limits = vec![
        limit(b::Purpose::MedicalExpense, LimitPeriod::Year, "3000.00"),
        limit(b::Purpose::Unspecified, LimitPeriod::Month, "500.00"),
    ];
    let first = c
        .bindings
        .set_binding_limits(acting_for(EMPLOYEE, set("l1", &id, limits.clone())))
        .await
        .expect("set")
        .into_inner()
        .binding
        .expect("binding");
    let again = c
        .bindings
        .set_binding_limits(acting_for(EMPLOYEE, set("l1", &id, limits.clone())))
        .await
        .expect("retry")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(first, again, "a retry answers the same");
    assert_eq!(first.version, binding.version + 1);
    assert_eq!(first.state, b::BindingState::Active as i32);
    assert_eq!(
        first.limits,
        [
            limit(b::Purpose::Unspecified, LimitPeriod::Month, "500.00"),
            limit(b::Purpose::MedicalExpense, LimitPeriod::Year, "3000.00"),
        ],
        "overall first"
    );
    let read = c
        .bindings
        .get_binding(GetBindingRequest {
            binding_id: id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(read.limits, first.limits);
    let event = read.history.last().expect("an event");
    assert_eq!(
        (event.actor.as_str(), event.to_state, event.binding_version),
        ("authorizer", b::BindingState::Active as i32, first.version)
    );
    assert!(
        event.reason.contains("ALL MONTH 500.00"),
        "{}",
        event.reason
    );
    let answer = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: CHILD.into(),
            purpose: b::Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert_eq!(answer.limits, first.limits);

    let bad = [
        (
            "l2",
            vec![
                limit(b::Purpose::Premium, LimitPeriod::Month, "1.00"),
                limit(b::Purpose::Premium, LimitPeriod::Month, "2.00"),
            ],
        ),
        (
            "l3",
            vec![limit(b::Purpose::Premium, LimitPeriod::Month, "0.00")],
        ),
        (
            "l4",
            vec![limit(b::Purpose::Premium, LimitPeriod::Unspecified, "1.00")],
        ),
        (
            "l5",
            vec![limit(b::Purpose::Premium, LimitPeriod::Year, "1.505")],
        ),
    ];
    for (request_id, limits) in bad {
        assert_error(
            c.bindings
                .set_binding_limits(acting_for(EMPLOYEE, set(request_id, &id, limits)))
                .await,
            Code::InvalidArgument,
            "INVALID_LIMIT",
            B,
        );
    }
    assert_error(
        c.bindings
            .set_binding_limits(acting_for(CHILD, set("l6", &id, Vec::new())))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_NOT_PARTY",
        B,
    );
    assert_error(
        c.bindings
            .set_binding_limits(set("l7", &id, Vec::new()))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_REQUIRED",
        B,
    );
    c.bindings
        .revoke_binding(acting_for(
            EMPLOYEE,
            RevokeBindingRequest {
                request_id: "revoke".into(),
                binding_id: id.clone(),
                reason: "no longer needed".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("revoke");
    assert_error(
        c.bindings
            .set_binding_limits(acting_for(EMPLOYEE, set("l8", &id, Vec::new())))
            .await,
        Code::FailedPrecondition,
        "BINDING_NOT_ACTIVE",
        B,
    );
    env.finish().await;
}

/// The spouse (no account of his own) pays 50 expenses of 30.00 at once, her account capped
/// at 500.00 a month: each payment's parts add up to 30.00, her account pays exactly 500.00
/// in all, and the ledger and binding-service's uses agree.
async fn limits_hold_under_fifty_concurrent_medical_payments(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "10000.00").await;
    let (spouse, binding) = fixtures::spouse(&mut c).await;
    set_limits(
        &mut c,
        "cap",
        &binding.binding_id,
        vec![limit(b::Purpose::Unspecified, LimitPeriod::Month, "500.00")],
    )
    .await;
    let calls = (0..50).map(|i| {
        let mut c = c.clone();
        let spouse = spouse.clone();
        async move {
            // A payment that lost a race for the limit is retried with the same request ID.
            for _ in 0..20 {
                match c
                    .medical
                    .pay_medical_expense(medical(&format!("m{i}"), &spouse, EMPLOYEE, "30.00"))
                    .await
                {
                    Ok(r) => return r.into_inner().payment.expect("payment"),
                    Err(s) if s.code() == Code::Aborted => continue,
                    Err(s) => panic!("payment {i}: {s:?}"),
                }
            }
            panic!("payment {i} kept losing races");
        }
    });
    let paid = futures::future::join_all(calls).await;
    for p in &paid {
        assert_eq!(
            own_fen(p) + family_fen(p) + fen(&p.other_means_part),
            3_000,
            "{p:?}"
        );
    }
    let family: i64 = paid.iter().map(family_fen).sum();
    assert_eq!(family, 50_000, "exactly the cap, never more");
    let (_, prior) = balances(&mut c, EMPLOYEE).await;
    assert_eq!(fen(&prior), 1_000_000 - 50_000, "the ledger agrees");
    let report = c
        .settlement
        .reconcile_binding_uses(ReconcileBindingUsesRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("reconcile")
        .into_inner();
    assert!(report.clean, "{report:?}");
    verify_clean(&mut c).await;
    env.finish().await;
}

/// A premium cap of 300.00 a year: the quote takes 300.00 from her account and leaves 100.00
/// to other means; paying without them is refused with what is left, paying with them works.
async fn a_premium_over_the_limit_needs_other_means_for_the_rest(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "1000.00").await;
    set_limits(
        &mut c,
        "cap",
        &binding.binding_id,
        vec![limit(b::Purpose::Premium, LimitPeriod::Year, "300.00")],
    )
    .await;
    let quote = crate::payment::quote(&mut c, CHILD, 2025, false)
        .await
        .expect("quote");
    assert_eq!(
        (quote.account_part.as_str(), quote.other_means_part.as_str()),
        ("300.00", "100.00")
    );
    let refused = assert_error(
        c.premiums
            .pay_premium(pay("p1", EMPLOYEE, CHILD, 2025))
            .await,
        Code::FailedPrecondition,
        "FAMILY_LIMIT_REACHED",
        P,
    );
    let info = refused
        .get_error_details()
        .error_info()
        .cloned()
        .expect("info");
    assert_eq!(
        (
            info.metadata.get("remaining").map(String::as_str),
            info.metadata.get("shortfall").map(String::as_str)
        ),
        (Some("300.00"), Some("100.00"))
    );
    let mut with_other_means = pay("p2", EMPLOYEE, CHILD, 2025);
    with_other_means.other_means = Some(OtherMeans {
        amount: "100.00".into(),
        channel: gongji_proto::payment::v1::Channel::WechatPay as i32,
        reference: "wx-1".into(),
    });
    let paid = c
        .premiums
        .pay_premium(with_other_means)
        .await
        .expect("paid with other means")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(paid.quote.expect("quote").account_part, "300.00");
    let (_, prior) = balances(&mut c, EMPLOYEE).await;
    assert_eq!(prior, "700.00");
    verify_clean(&mut c).await;
    env.finish().await;
}

/// Ten expenses of 100.00 race her lowering the cap from 1,000.00 to 300.00 a month. Each
/// payment either kept within the limits it was checked against, or was refused to be retried;
/// whatever the order, her account never pays more than 1,000.00, and once the change is in, no
/// more than the new cap in all.
async fn a_limit_change_racing_payments_keeps_each_within_the_limits_it_was_checked_against(
    backend: Backend,
) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "5000.00").await;
    let (spouse, binding) = fixtures::spouse(&mut c).await;
    let monthly = |amount: &str| vec![limit(b::Purpose::Unspecified, LimitPeriod::Month, amount)];
    set_limits(&mut c, "cap-1000", &binding.binding_id, monthly("1000.00")).await;
    let payments = (0..10).map(|i| {
        let mut c = c.clone();
        let spouse = spouse.clone();
        async move {
            c.medical
                .pay_medical_expense(medical(&format!("r{i}"), &spouse, EMPLOYEE, "100.00"))
                .await
        }
    });
    let change = {
        let mut c = c.clone();
        let id = binding.binding_id.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            set_limits(&mut c, "cap-300", &id, monthly("300.00")).await;
        }
    };
    let (results, ()) = tokio::join!(futures::future::join_all(payments), change);
    let mut before_total = 0;
    for r in &results {
        match r {
            Ok(p) => {
                let p = p.get_ref().payment.as_ref().expect("payment");
                assert_eq!(
                    own_fen(p) + family_fen(p) + fen(&p.other_means_part),
                    10_000
                );
                before_total += family_fen(p);
            }
            Err(s) => assert_eq!(s.code(), Code::Aborted, "{s:?}"),
        }
    }
    assert!(before_total <= 100_000, "{before_total}");
    // After the change: whatever the race left, the month's total reaches 300.00 at most by new
    // payments.
    let after = c
        .medical
        .pay_medical_expense(medical("after", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("after")
        .into_inner()
        .payment
        .expect("payment");
    let expected_after = (30_000 - before_total).clamp(0, 10_000);
    assert_eq!(family_fen(&after), expected_after);
    let (_, prior) = balances(&mut c, EMPLOYEE).await;
    assert_eq!(fen(&prior), 500_000 - before_total - expected_after);
    verify_clean(&mut c).await;
    env.finish().await;
}
