//! Two-party consent (issue 13, B5, national notice of 2026): from the policy version that asks
//! for it, a binding to an adult beneficiary waits for the beneficiary's acceptance; a minor is
//! bound by the parent as guardian; bindings made before keep working.

use gongji_proto::binding::v1::{
    self as b, AcceptBindingRequest, Binding, BindingState, CheckAuthorizationRequest,
    DeclineBindingRequest, GetBindingRequest, Relationship, VerificationMethod,
};
use gongji_shared::{Clock, rpc::peer::PeerInterceptor};
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, CHILD, EMPLOYEE},
    support::{Backend, Clients, IN_2026, TestEnv, acting_for, assert_error, clients_with},
};

const B: &str = "binding.gongji";
/// Inside the policy version that asks for consent (from 2026-07-01).
const UNDER_CONSENT: &str = "2026-08-03T10:00:00+08:00";

both_backends!(
    consent_an_adult_accepts_with_the_evidence_kept,
    consent_an_adult_declines,
    consent_a_request_unanswered_expires,
    consent_a_minor_is_bound_without_acceptance,
    consent_bindings_made_before_the_policy_date_keep_working
);

/// The employee with a funded account, and her husband registered (no binding yet).
async fn employee_and_spouse(c: &mut Clients) -> String {
    fixtures::employee(c).await;
    fixtures::fund(c, EMPLOYEE, "500.00").await;
    let spouse = fixtures::id_number("19850505", 7);
    fixtures::register(
        c,
        fixtures::person(&spouse, fixtures::SPOUSE_NAME, Some("340500"), None),
    )
    .await;
    spouse
}

/// She applies through her channel, verified by face.
async fn apply(c: &mut Clients, request_id: &str, spouse: &str) -> Binding {
    let mut bind = fixtures::bind_child(request_id, spouse, fixtures::SPOUSE_NAME);
    bind.relationship = Relationship::Spouse as i32;
    bind.verification_method = VerificationMethod::FaceRecognition as i32;
    c.bindings
        .create_binding(acting_for(EMPLOYEE, bind))
        .await
        .expect("apply")
        .into_inner()
        .binding
        .expect("binding")
}

fn accept(request_id: &str, binding_id: &str, method: VerificationMethod) -> AcceptBindingRequest {
    AcceptBindingRequest {
        request_id: request_id.into(),
        binding_id: binding_id.into(),
        verification_method: method as i32,
    }
}

async fn get(c: &mut Clients, binding_id: &str) -> Binding {
    c.bindings
        .get_binding(GetBindingRequest {
            binding_id: binding_id.into(),
        })
        .await
        .expect("get")
        .into_inner()
        .binding
        .expect("binding")
}

async fn authorized(c: &mut Clients, beneficiary: &str) -> bool {
    c.bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: beneficiary.into(),
            purpose: b::Purpose::MedicalExpense as i32,
        })
        .await
        .expect("check")
        .into_inner()
        .authorized
}

/// The channel the spouse logs in to.
async fn his_channel(env: &TestEnv) -> Clients {
    let token = env.identity.caller_token("gov-app", 600);
    clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await
}

async fn consent_an_adult_accepts_with_the_evidence_kept(backend: Backend) {
    let Some(env) = TestEnv::start(backend, UNDER_CONSENT).await else {
        return;
    };
    let mut c = env.clients_owned();
    let spouse = employee_and_spouse(&mut c).await;
    let mut unknown = fixtures::bind_child("bind-0", &spouse, fixtures::SPOUSE_NAME);
    unknown.relationship = Relationship::Spouse as i32;
    unknown.verification_method = 99;
    assert_error(
        c.bindings.create_binding(unknown).await,
        Code::InvalidArgument,
        "INVALID_VERIFICATION_METHOD",
        B,
    );
    let pending = apply(&mut c, "bind", &spouse).await;
    assert_eq!(pending.state, BindingState::PendingConsent as i32);
    let expires = pending.consent_expire_time.expect("a deadline");
    let created = pending.create_time.expect("created");
    assert_eq!(
        expires.seconds - created.seconds,
        7 * 86_400,
        "the policy's 7 days"
    );
    assert!(
        !authorized(&mut c, &spouse).await,
        "nothing is authorized before consent"
    );

    // Only he answers, as the person his channel acts for, and says how he was verified.
    let mut channel = his_channel(&env).await;
    let id = pending.binding_id.clone();
    let face = VerificationMethod::FaceRecognition;
    for (request, code, reason) in [
        (
            acting_for(EMPLOYEE, accept("a0", &id, face)),
            Code::PermissionDenied,
            "NOT_THE_BENEFICIARY",
        ),
        (
            tonic::Request::new(accept("a0", &id, face)),
            Code::PermissionDenied,
            "ACTING_PERSON_REQUIRED",
        ),
        (
            acting_for(&spouse, accept("a0", &id, VerificationMethod::Unspecified)),
            Code::InvalidArgument,
            "INVALID_VERIFICATION_METHOD",
        ),
    ] {
        assert_error(c.bindings.accept_binding(request).await, code, reason, B);
    }
    let accepted = channel
        .bindings
        .accept_binding(acting_for(&spouse, accept("a1", &id, face)))
        .await
        .expect("accept")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(accepted.state, BindingState::Active as i32);
    assert_eq!(accepted.version, 2);
    let again = channel
        .bindings
        .accept_binding(acting_for(&spouse, accept("a1", &id, face)))
        .await
        .expect("retry")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(again, accepted, "a retry answers the same");
    assert!(authorized(&mut c, &spouse).await);
    assert_error(
        channel
            .bindings
            .accept_binding(acting_for(&spouse, accept("a2", &id, face)))
            .await,
        Code::FailedPrecondition,
        "BINDING_NOT_PENDING_CONSENT",
        B,
    );

    // Each side's consent: who, through which channel, when, verified how.
    let history = get(&mut c, &id).await.history;
    let evidence: Vec<_> = history
        .iter()
        .map(|e| {
            (
                e.to_state,
                e.actor.as_str(),
                e.acting_person_id_number.clone(),
                e.caller.as_str(),
                e.verification_method,
            )
        })
        .collect();
    let masked = |id: &str| gongji_shared::IdNumber::parse(id).expect("id").masked();
    assert_eq!(
        evidence,
        [
            (
                BindingState::PendingConsent as i32,
                "authorizer",
                masked(EMPLOYEE),
                "contract-tests",
                face as i32
            ),
            (
                BindingState::Active as i32,
                "beneficiary",
                masked(&spouse),
                "gov-app",
                face as i32
            ),
        ]
    );
    assert!(history.iter().all(|e| e.event_time.is_some()));
    env.finish().await;
}

async fn consent_an_adult_declines(backend: Backend) {
    let Some(env) = TestEnv::start(backend, UNDER_CONSENT).await else {
        return;
    };
    let mut c = env.clients_owned();
    let spouse = employee_and_spouse(&mut c).await;
    let pending = apply(&mut c, "bind", &spouse).await;
    let decline = |request_id: &str| DeclineBindingRequest {
        request_id: request_id.into(),
        binding_id: pending.binding_id.clone(),
        verification_method: VerificationMethod::SmsCode as i32,
        reason: "不需要".into(),
    };
    let mut no_reason = decline("d0");
    no_reason.reason = String::new();
    assert_error(
        c.bindings
            .decline_binding(acting_for(&spouse, no_reason))
            .await,
        Code::InvalidArgument,
        "INVALID_REASON",
        B,
    );
    let declined = c
        .bindings
        .decline_binding(acting_for(&spouse, decline("d1")))
        .await
        .expect("decline")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(declined.state, BindingState::Declined as i32);
    assert_eq!(declined.state_reason, "不需要");
    let last = get(&mut c, &pending.binding_id).await.history;
    assert_eq!(
        (
            last[1].actor.as_str(),
            last[1].verification_method,
            last[1].from_state
        ),
        (
            "beneficiary",
            VerificationMethod::SmsCode as i32,
            BindingState::PendingConsent as i32
        )
    );
    assert!(!authorized(&mut c, &spouse).await);
    assert_error(
        c.bindings
            .accept_binding(acting_for(
                &spouse,
                accept(
                    "a1",
                    &pending.binding_id,
                    VerificationMethod::FaceRecognition,
                ),
            ))
            .await,
        Code::FailedPrecondition,
        "BINDING_NOT_PENDING_CONSENT",
        B,
    );
    // A declined request is no live binding: she may ask again.
    let second = apply(&mut c, "bind-again", &spouse).await;
    assert_eq!(second.state, BindingState::PendingConsent as i32);
    env.finish().await;
}

async fn consent_a_request_unanswered_expires(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, UNDER_CONSENT).await else {
        return;
    };
    let mut c = env.clients_owned();
    let spouse = employee_and_spouse(&mut c).await;
    let pending = apply(&mut c, "bind", &spouse).await;
    // Six days on it still waits; eight days on it has expired, by the system.
    for (clock, state) in [
        ("2026-08-09T10:00:00+08:00", BindingState::PendingConsent),
        ("2026-08-11T10:00:00+08:00", BindingState::Expired),
    ] {
        env.stack
            .restart_with_clock(Clock::parse(clock).expect("clock"))
            .await
            .expect("later");
        assert_eq!(
            get(&mut c, &pending.binding_id).await.state,
            state as i32,
            "{clock}"
        );
    }
    let expired = get(&mut c, &pending.binding_id).await;
    let last = expired.history.last().expect("an event");
    assert_eq!(
        (last.actor.as_str(), last.from_state, last.caller.as_str()),
        ("system", BindingState::PendingConsent as i32, "system")
    );
    assert_error(
        c.bindings
            .accept_binding(acting_for(
                &spouse,
                accept(
                    "late",
                    &pending.binding_id,
                    VerificationMethod::FaceRecognition,
                ),
            ))
            .await,
        Code::FailedPrecondition,
        "BINDING_NOT_PENDING_CONSENT",
        B,
    );
    assert!(!authorized(&mut c, &spouse).await);
    env.finish().await;
}

async fn consent_a_minor_is_bound_without_acceptance(backend: Backend) {
    let Some(env) = TestEnv::start(backend, UNDER_CONSENT).await else {
        return;
    };
    let mut c = env.clients_owned();
    // The child was born in 2018: eight years old, bound by the parent as guardian.
    let binding = fixtures::family(&mut c, "500.00").await;
    assert_eq!(binding.beneficiary_id_number, CHILD);
    assert_eq!(binding.state, BindingState::Active as i32);
    assert!(binding.consent_expire_time.is_none());
    assert!(authorized(&mut c, CHILD).await);
    env.finish().await;
}

async fn consent_bindings_made_before_the_policy_date_keep_working(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_2026).await else {
        return;
    };
    let mut c = env.clients_owned();
    let spouse = employee_and_spouse(&mut c).await;
    let before = apply(&mut c, "bind", &spouse).await;
    assert_eq!(
        before.state,
        BindingState::Active as i32,
        "no consent asked before"
    );
    env.stack
        .restart_with_clock(Clock::parse(UNDER_CONSENT).expect("clock"))
        .await
        .expect("after the policy date");
    assert_eq!(
        get(&mut c, &before.binding_id).await.state,
        BindingState::Active as i32
    );
    assert!(authorized(&mut c, &spouse).await);
    // A new binding to an adult now waits.
    let parent = fixtures::id_number("19600101", 3);
    fixtures::register(
        &mut c,
        fixtures::person(&parent, "李建国", None, Some("340500")),
    )
    .await;
    let mut bind = fixtures::bind_child("bind-parent", &parent, "李建国");
    bind.relationship = Relationship::Parent as i32;
    let after = c
        .bindings
        .create_binding(bind)
        .await
        .expect("apply")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(after.state, BindingState::PendingConsent as i32);
    env.finish().await;
}
