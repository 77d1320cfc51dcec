//! binding-service's rules (B1 to B8): every refusal reason, review, revocation, automatic
//! ending, suspension, idempotency, concurrency, the event stream and the policy in force.

use std::time::Duration;

use gongji_proto::binding::v1::{
    ApproveBindingRequest, BindingKind, BindingState, CheckAuthorizationRequest,
    CreateBindingRequest, EnrollmentStatus, GetBindingRequest, ListBindingsRequest, Purpose,
    RejectBindingRequest, Relationship, RevokeBindingRequest, UpsertInsuredPersonRequest,
    WatchBindingEventsRequest,
};
use gongji_shared::policy::ANHUI_DEFAULT_TOML;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE, EMPLOYEE_NAME},
    support::{Backend, Clients, IN_2026, IN_WINDOW, TestEnv, acting_for, assert_error},
};

both_backends!(
    refused_authorizer_not_employee_insured,
    refused_authorizer_status_abnormal,
    refused_authorizer_no_balance,
    refused_person_not_found,
    refused_name_mismatch,
    refused_beneficiary_not_insured,
    refused_region_not_allowed,
    refused_relationship_not_allowed_in_2025_but_allowed_in_2026,
    refused_self_binding,
    refused_binding_already_exists,
    refused_binding_limit_reached,
    proxy_bindings_cross_provinces_and_never_authorize_money,
    manual_review_approves_and_rejects,
    revoke_by_each_side_and_not_by_a_stranger,
    registry_changes_end_dependent_bindings,
    a_suspended_authorizer_keeps_the_binding_but_cannot_pay,
    create_is_idempotent,
    concurrent_duplicates_create_one_binding,
    events_stream_in_order_and_resume,
    payment_service_down_stores_nothing,
    list_pages_are_stable,
);

const DOMAIN: &str = "binding.gongji";

async fn refused(
    c: &mut Clients,
    request: CreateBindingRequest,
    code: Code,
    reason: &str,
) -> tonic::Status {
    let status = assert_error(
        c.bindings.create_binding(request).await,
        code,
        reason,
        DOMAIN,
    );
    let auth = check(c, EMPLOYEE, CHILD).await;
    assert!(
        auth.binding_id.is_empty() || code == Code::AlreadyExists,
        "a refusal stores nothing"
    );
    status
}

pub async fn check(
    c: &mut Clients,
    authorizer: &str,
    beneficiary: &str,
) -> gongji_proto::binding::v1::CheckAuthorizationResponse {
    c.bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: authorizer.into(),
            beneficiary_id_number: beneficiary.into(),
            purpose: Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner()
}

pub fn denials(auth: &gongji_proto::binding::v1::CheckAuthorizationResponse) -> Vec<&str> {
    auth.denials.iter().map(|d| d.reason.as_str()).collect()
}

async fn refused_authorizer_not_employee_insured(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::register(
        &mut c,
        fixtures::person(EMPLOYEE, EMPLOYEE_NAME, None, Some("340500")),
    )
    .await;
    fixtures::register(
        &mut c,
        fixtures::person(CHILD, CHILD_NAME, None, Some("340500")),
    )
    .await;
    // Without employee insurance there is no personal account either.
    refused(
        &mut c,
        fixtures::bind_request("b"),
        Code::FailedPrecondition,
        "AUTHORIZER_NOT_EMPLOYEE_INSURED",
    )
    .await;
    env.finish().await;
}

async fn refused_authorizer_status_abnormal(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let employee = fixtures::employee_with(EnrollmentStatus::Suspended);
    fixtures::register(&mut c, employee).await;
    fixtures::register(
        &mut c,
        fixtures::person(CHILD, CHILD_NAME, None, Some("340500")),
    )
    .await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    refused(
        &mut c,
        fixtures::bind_request("b"),
        Code::FailedPrecondition,
        "AUTHORIZER_STATUS_ABNORMAL",
    )
    .await;
    env.finish().await;
}

async fn refused_authorizer_no_balance(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    // No account at all, then an account with only current-year money (not usable by family).
    refused(
        &mut c,
        fixtures::bind_request("b1"),
        Code::FailedPrecondition,
        "AUTHORIZER_NO_BALANCE",
    )
    .await;
    c.accounts
        .open_account(gongji_proto::payment::v1::OpenAccountRequest {
            request_id: "open".into(),
            holder_id_number: EMPLOYEE.into(),
            region_code: "340500".into(),
        })
        .await
        .expect("open");
    c.accounts
        .credit_account(gongji_proto::payment::v1::CreditAccountRequest {
            request_id: "credit".into(),
            holder_id_number: EMPLOYEE.into(),
            amount: "300.00".into(),
            bucket: gongji_proto::payment::v1::Bucket::CurrentYear as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
    refused(
        &mut c,
        fixtures::bind_request("b2"),
        Code::FailedPrecondition,
        "AUTHORIZER_NO_BALANCE",
    )
    .await;
    env.finish().await;
}

async fn refused_person_not_found(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    refused(
        &mut c,
        fixtures::bind_request("b"),
        Code::FailedPrecondition,
        "PERSON_NOT_FOUND",
    )
    .await;
    env.finish().await;
}

async fn refused_name_mismatch(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee_and(&mut c, CHILD, CHILD_NAME, "340500").await;
    let mut request = fixtures::bind_request("b");
    request.beneficiary_name = "李子萱".into();
    let status = refused(&mut c, request, Code::FailedPrecondition, "NAME_MISMATCH").await;
    assert!(!status.message().contains("李子"), "no names in messages");
    env.finish().await;
}

async fn refused_beneficiary_not_insured(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    let mut child = fixtures::person(CHILD, CHILD_NAME, None, Some("340500"));
    child
        .resident_enrollment
        .as_mut()
        .expect("enrollment")
        .status = EnrollmentStatus::Terminated as i32;
    fixtures::register(&mut c, child).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    refused(
        &mut c,
        fixtures::bind_request("b"),
        Code::FailedPrecondition,
        "BENEFICIARY_NOT_INSURED",
    )
    .await;
    env.finish().await;
}

async fn refused_region_not_allowed(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee_and(&mut c, CHILD, CHILD_NAME, "320500").await;
    refused(
        &mut c,
        fixtures::bind_request("b"),
        Code::FailedPrecondition,
        "REGION_NOT_ALLOWED",
    )
    .await;
    env.finish().await;
}

async fn refused_relationship_not_allowed_in_2025_but_allowed_in_2026(backend: Backend) {
    for (clock, allowed) in [(IN_WINDOW, false), (IN_2026, true)] {
        let Some(env) = TestEnv::start(backend, clock).await else {
            return;
        };
        let mut c = env.clients_owned();
        let sibling = fixtures::id_number("19900303", 4);
        fixtures::employee_and(&mut c, &sibling, "李强", "340100").await;
        let mut request = fixtures::bind_child("b", &sibling, "李强");
        request.relationship = Relationship::Sibling as i32;
        let result = c.bindings.create_binding(request).await;
        if allowed {
            let binding = result
                .expect("a sibling is a close relative from 2026")
                .into_inner()
                .binding
                .expect("binding");
            assert_eq!(binding.state, BindingState::Active as i32);
        } else {
            assert_error(
                result,
                Code::FailedPrecondition,
                "RELATIONSHIP_NOT_ALLOWED",
                DOMAIN,
            );
        }
        env.finish().await;
    }
}

async fn refused_self_binding(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let request = fixtures::bind_child("b", EMPLOYEE, EMPLOYEE_NAME);
    assert_error(
        c.bindings.create_binding(request).await,
        Code::FailedPrecondition,
        "SELF_BINDING",
        DOMAIN,
    );
    env.finish().await;
}

async fn refused_binding_already_exists(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "100.00").await;
    refused(
        &mut c,
        fixtures::bind_request("again"),
        Code::AlreadyExists,
        "BINDING_ALREADY_EXISTS",
    )
    .await;
    // A PROXY binding for the same pair is a different thing (B8) and may exist beside it.
    let mut proxy = fixtures::bind_request("proxy");
    proxy.kind = BindingKind::Proxy as i32;
    c.bindings
        .create_binding(proxy)
        .await
        .expect("proxy beside funds sharing");
    env.finish().await;
}

async fn refused_binding_limit_reached(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    // The default cap is 6 beneficiaries.
    for n in 1..=7 {
        let child = fixtures::id_number("20100101", n);
        fixtures::register(
            &mut c,
            fixtures::person(&child, "李某", None, Some("340500")),
        )
        .await;
        let result = c
            .bindings
            .create_binding(fixtures::bind_child(&format!("b{n}"), &child, "李某"))
            .await;
        if n <= 6 {
            result.expect("within the cap");
        } else {
            assert_error(
                result,
                Code::FailedPrecondition,
                "BINDING_LIMIT_REACHED",
                DOMAIN,
            );
        }
    }
    env.finish().await;
}

async fn proxy_bindings_cross_provinces_and_never_authorize_money(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::register(
        &mut c,
        fixtures::person(CHILD, CHILD_NAME, None, Some("320500")),
    )
    .await;
    // No account, no balance: a PROXY binding needs none.
    let mut proxy = fixtures::bind_request("proxy");
    proxy.kind = BindingKind::Proxy as i32;
    let binding = c
        .bindings
        .create_binding(proxy)
        .await
        .expect("proxy")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(binding.kind, BindingKind::Proxy as i32);
    let auth = check(&mut c, EMPLOYEE, CHILD).await;
    assert!(!auth.authorized);
    assert!(denials(&auth).contains(&"BINDING_NOT_FOUND"), "{auth:?}");
    env.finish().await;
}

const MANUAL: &str = "review_mode = \"MANUAL\"";

fn manual_policy() -> String {
    ANHUI_DEFAULT_TOML.replace("review_mode = \"AUTOMATIC\"", MANUAL)
}

async fn manual_review_approves_and_rejects(backend: Backend) {
    let policy = manual_policy();
    let Some(env) = TestEnv::start_with_policy(backend, IN_WINDOW, Some(&policy)).await else {
        return;
    };
    let mut c = env.clients_owned();
    let pending = fixtures::family(&mut c, "100.00").await;
    assert_eq!(pending.state, BindingState::PendingReview as i32);
    let auth = check(&mut c, EMPLOYEE, CHILD).await;
    assert_eq!(
        denials(&auth),
        ["BINDING_NOT_ACTIVE"],
        "a pending binding authorizes nothing"
    );

    let approved = c
        .bindings
        .approve_binding(ApproveBindingRequest {
            request_id: "approve".into(),
            binding_id: pending.binding_id.clone(),
            ..Default::default()
        })
        .await
        .expect("approve")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(
        (approved.state, approved.version),
        (BindingState::Active as i32, 2)
    );
    assert!(check(&mut c, EMPLOYEE, CHILD).await.authorized);
    let again = c
        .bindings
        .approve_binding(ApproveBindingRequest {
            request_id: "approve-again".into(),
            binding_id: pending.binding_id.clone(),
            ..Default::default()
        })
        .await;
    assert_error(
        again,
        Code::FailedPrecondition,
        "BINDING_NOT_PENDING",
        DOMAIN,
    );

    // A second application, rejected with a reason, is kept for audit.
    let sibling = fixtures::id_number("20120202", 6);
    fixtures::register(
        &mut c,
        fixtures::person(&sibling, "李小", None, Some("340500")),
    )
    .await;
    let second = c
        .bindings
        .create_binding(fixtures::bind_child("second", &sibling, "李小"))
        .await
        .expect("apply")
        .into_inner()
        .binding
        .expect("binding");
    c.bindings
        .reject_binding(RejectBindingRequest {
            request_id: "reject".into(),
            binding_id: second.binding_id.clone(),
            reason: "relationship not proven".into(),
            ..Default::default()
        })
        .await
        .expect("reject");
    let rejected = get(&mut c, &second.binding_id).await;
    assert_eq!(rejected.state, BindingState::Rejected as i32);
    assert_eq!(rejected.state_reason, "relationship not proven");
    let steps: Vec<_> = rejected
        .history
        .iter()
        .map(|e| (e.to_state, e.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (BindingState::PendingReview as i32, "authorizer"),
            // The reviewer is the authenticated caller, not a name in the request.
            (BindingState::Rejected as i32, "reviewer:contract-tests"),
        ]
    );
    env.finish().await;
}

async fn get(c: &mut Clients, binding_id: &str) -> gongji_proto::binding::v1::Binding {
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

/// A revocation asked by `requester`, the person the caller acts for (which side they
/// are is read from the binding).
fn revoke(
    request_id: &str,
    binding_id: &str,
    requester: &str,
) -> tonic::Request<RevokeBindingRequest> {
    acting_for(
        requester,
        RevokeBindingRequest {
            request_id: request_id.into(),
            binding_id: binding_id.into(),
            reason: "no longer needed".into(),
            ..Default::default()
        },
    )
}

async fn revoke_by_each_side_and_not_by_a_stranger(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let first = fixtures::family(&mut c, "100.00").await;
    let stranger = fixtures::id_number("19700101", 9);
    let r = c
        .bindings
        .revoke_binding(revoke("s", &first.binding_id, &stranger))
        .await;
    assert_error(r, Code::PermissionDenied, "ACTING_PERSON_NOT_PARTY", DOMAIN);
    assert_eq!(
        get(&mut c, &first.binding_id).await.state,
        BindingState::Active as i32,
        "a refusal changes nothing"
    );

    let revoked = c
        .bindings
        .revoke_binding(revoke("by-authorizer", &first.binding_id, EMPLOYEE))
        .await
        .expect("revoke")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(revoked.state, BindingState::Revoked as i32);
    let readable = get(&mut c, &first.binding_id).await;
    assert_eq!(readable.history.last().expect("event").actor, "authorizer");
    assert_eq!(
        denials(&check(&mut c, EMPLOYEE, CHILD).await),
        ["BINDING_NOT_ACTIVE"]
    );
    let r = c
        .bindings
        .revoke_binding(revoke("twice", &first.binding_id, EMPLOYEE))
        .await;
    assert_error(r, Code::FailedPrecondition, "BINDING_NOT_ACTIVE", DOMAIN);

    // Bound again, then revoked by the beneficiary.
    let second = c
        .bindings
        .create_binding(fixtures::bind_request("rebind"))
        .await
        .expect("rebind")
        .into_inner();
    let second = second.binding.expect("binding");
    assert!(check(&mut c, EMPLOYEE, CHILD).await.authorized);
    c.bindings
        .revoke_binding(revoke("by-beneficiary", &second.binding_id, CHILD))
        .await
        .expect("revoke by beneficiary");
    assert_eq!(
        get(&mut c, &second.binding_id)
            .await
            .history
            .last()
            .expect("event")
            .actor,
        "beneficiary"
    );
    env.finish().await;
}

async fn upsert(
    c: &mut Clients,
    request_id: &str,
    person: gongji_proto::binding::v1::InsuredPerson,
) -> Vec<String> {
    c.registry
        .upsert_insured_person(UpsertInsuredPersonRequest {
            request_id: request_id.into(),
            person: Some(person),
        })
        .await
        .expect("upsert")
        .into_inner()
        .ended_binding_ids
}

async fn registry_changes_end_dependent_bindings(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    // The child moves to Jiangsu: out of scope for funds sharing.
    let first = fixtures::family(&mut c, "100.00").await;
    let ended = upsert(
        &mut c,
        "move",
        fixtures::person(CHILD, CHILD_NAME, None, Some("320500")),
    )
    .await;
    assert_eq!(ended, std::slice::from_ref(&first.binding_id));
    let got = get(&mut c, &first.binding_id).await;
    assert_eq!(got.state, BindingState::Ended as i32);
    let last = got.history.last().expect("event");
    assert_eq!(
        (last.actor.as_str(), last.request_id.as_str()),
        ("system", "move")
    );
    assert!(!got.state_reason.is_empty());

    // Back in Anhui and bound again; then the employee's insurance terminates.
    upsert(
        &mut c,
        "back",
        fixtures::person(CHILD, CHILD_NAME, None, Some("340500")),
    )
    .await;
    let second = c
        .bindings
        .create_binding(fixtures::bind_request("rebind"))
        .await
        .expect("rebind")
        .into_inner();
    let second = second.binding.expect("binding");
    let employee = fixtures::employee_with(EnrollmentStatus::Terminated);
    assert_eq!(
        upsert(&mut c, "terminate", employee).await,
        std::slice::from_ref(&second.binding_id)
    );
    assert_eq!(
        get(&mut c, &second.binding_id).await.state,
        BindingState::Ended as i32
    );
    env.finish().await;
}

async fn a_suspended_authorizer_keeps_the_binding_but_cannot_pay(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "100.00").await;
    let employee = fixtures::employee_with(EnrollmentStatus::Suspended);
    assert!(
        upsert(&mut c, "suspend", employee).await.is_empty(),
        "suspension ends nothing"
    );
    assert_eq!(
        get(&mut c, &binding.binding_id).await.state,
        BindingState::Active as i32
    );
    assert_eq!(
        denials(&check(&mut c, EMPLOYEE, CHILD).await),
        ["AUTHORIZER_STATUS_ABNORMAL"]
    );
    upsert(
        &mut c,
        "resume",
        fixtures::person(EMPLOYEE, EMPLOYEE_NAME, Some("340500"), None),
    )
    .await;
    assert!(check(&mut c, EMPLOYEE, CHILD).await.authorized);
    env.finish().await;
}

async fn create_is_idempotent(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let first = fixtures::family(&mut c, "100.00").await;
    let retry = c
        .bindings
        .create_binding(fixtures::bind_request("bind-family"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(
        retry.binding.expect("binding"),
        first,
        "a retry gets the first answer"
    );
    let mut other = fixtures::bind_request("bind-family");
    other.kind = BindingKind::Proxy as i32;
    assert_error(
        c.bindings.create_binding(other).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        DOMAIN,
    );
    env.finish().await;
}

async fn concurrent_duplicates_create_one_binding(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee_and(&mut c, CHILD, CHILD_NAME, "340500").await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let mut bindings = c.bindings.clone();
            tokio::spawn(async move {
                bindings
                    .create_binding(fixtures::bind_request(&format!("race-{n}")))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(created, 1);
    let list = c
        .bindings
        .list_bindings(ListBindingsRequest {
            authorizer_id_number: EMPLOYEE.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.bindings.len(), 1);
    env.finish().await;
}

async fn events_stream_in_order_and_resume(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let first = fixtures::family(&mut c, "100.00").await;
    c.bindings
        .revoke_binding(revoke("revoke", &first.binding_id, CHILD))
        .await
        .expect("revoke");

    let mut stream = c
        .bindings
        .watch_binding_events(WatchBindingEventsRequest { after_sequence: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("open stream")
            .expect("ok")
            .event
            .expect("event")
    };
    let created = next().await;
    let revoked = next().await;
    assert_eq!(
        (created.to_state, revoked.to_state),
        (BindingState::Active as i32, BindingState::Revoked as i32)
    );
    assert!(created.sequence < revoked.sequence);
    // A change made while watching arrives too.
    c.bindings
        .create_binding(fixtures::bind_request("rebind"))
        .await
        .expect("rebind");
    let live = next().await;
    assert_eq!(live.to_state, BindingState::Active as i32);

    // Resuming after the second event gives the third and nothing before it.
    let mut resumed = c
        .bindings
        .watch_binding_events(WatchBindingEventsRequest {
            after_sequence: revoked.sequence,
        })
        .await
        .expect("watch")
        .into_inner();
    let again = tokio::time::timeout(Duration::from_secs(10), resumed.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok")
        .event
        .expect("event");
    assert_eq!(again, live);
    env.finish().await;
}

async fn payment_service_down_stores_nothing(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee_and(&mut c, CHILD, CHILD_NAME, "340500").await;
    env.stack
        .stop_payment()
        .await
        .expect("stop payment-service");
    let r = c.bindings.create_binding(fixtures::bind_request("b")).await;
    assert_error(r, Code::Unavailable, "DEPENDENCY_UNAVAILABLE", DOMAIN);
    assert!(
        check(&mut c, EMPLOYEE, CHILD).await.binding_id.is_empty(),
        "nothing stored"
    );
    env.stack.restart_payment().await.expect("restart");
    env.stack
        .wait_serving(gongji_stack::READY_TIMEOUT_MS)
        .await
        .expect("serving");
    c.bindings
        .create_binding(fixtures::bind_request("b"))
        .await
        .expect("the same request succeeds later");
    env.finish().await;
}

async fn list_pages_are_stable(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let children: Vec<String> = (1..=4)
        .map(|n| fixtures::id_number("20150505", n))
        .collect();
    for child in &children {
        fixtures::register(
            &mut c,
            fixtures::person(child, "李某", None, Some("340500")),
        )
        .await;
    }
    for child in &children[..3] {
        c.bindings
            .create_binding(fixtures::bind_child(
                &fixtures::opaque("bind"),
                child,
                "李某",
            ))
            .await
            .expect("bind");
    }
    let list = |token: String| ListBindingsRequest {
        authorizer_id_number: EMPLOYEE.into(),
        page_size: 2,
        page_token: token,
        ..Default::default()
    };
    let first = c
        .bindings
        .list_bindings(list(String::new()))
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.bindings.len(), 2);
    // Added between pages: it comes after the ones already listed.
    c.bindings
        .create_binding(fixtures::bind_child("bind-4", &children[3], "李某"))
        .await
        .expect("bind");
    let second = c
        .bindings
        .list_bindings(list(first.next_page_token))
        .await
        .expect("page 2")
        .into_inner();
    let seen: Vec<_> = first
        .bindings
        .iter()
        .chain(&second.bindings)
        .map(|b| b.beneficiary_id_number.clone())
        .collect();
    assert_eq!(seen, children);
    assert!(second.next_page_token.is_empty());
    let by_beneficiary = c
        .bindings
        .list_bindings(ListBindingsRequest {
            beneficiary_id_number: children[0].clone(),
            states: vec![BindingState::Active as i32],
            ..Default::default()
        })
        .await
        .expect("by beneficiary")
        .into_inner();
    assert_eq!(by_beneficiary.bindings.len(), 1);
    env.finish().await;
}
