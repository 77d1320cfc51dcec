//! Trust: every call but health and reflection is authenticated, every RPC is allowed only
//! to the roles that grant it, and citizen channels name the person they act for. The
//! callers are those `gongji-local` ships with, holding the roles of deploy/auth/roles.toml.

use std::collections::BTreeSet;

use gongji_proto::{
    binding::v1::{
        BindingState, CheckAuthorizationRequest, GetBindingRequest, GetInsuredPersonRequest,
        GetInsuredPersonResponse, ListBindingsRequest, Party, Purpose, RejectBindingRequest,
        RevokeBindingRequest, WatchBindingEventsRequest,
    },
    payment::v1::{CreditAccountRequest, GetAccountRequest, GetPremiumPaymentRequest},
};
use gongji_shared::rpc::auth::{ACTING_PERSON_HEADER, Callers, contract_rpcs, dev::DevIssuer};
use gongji_shared::rpc::peer::PeerInterceptor;
use gongji_stack::identity::{
    CALLER_AUDIENCE, CALLER_ISSUER, DEMO_CALLERS, PAYMENT_SERVICE, ROLES_TOML,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE},
    payment::{balances, medical, pay, verify_clean},
    support::{
        Backend, Clients, FIRST_CALL_TIMEOUT_MS, IN_WINDOW, ServiceDatabase, TestEnv, TestPki,
        acting_for, assert_error, clients, clients_with,
    },
};

both_backends!(
    trust_each_denial_reason_is_its_own_aip193_error,
    trust_each_role_is_allowed_exactly_its_rpcs,
    trust_a_caller_past_its_rate_waits_as_told,
    trust_a_stranger_moves_no_money_and_rewrites_nothing,
    trust_a_citizen_channel_touches_only_its_person_s_accounts_and_bindings,
    trust_who_asks_comes_from_the_caller_not_the_request,
    trust_names_are_whole_only_for_roles_that_need_them,
    trust_request_ids_are_scoped_to_their_caller,
    trust_no_caller_holds_every_watcher_slot,
    trust_a_connection_that_makes_no_call_is_closed,
    trust_every_state_change_records_its_caller_and_acting_person,
    trust_mutual_tls_names_the_caller_and_the_peers,
);

/// Calls `rpc` (`package.Service/Method`) with an empty request, as the holder of `token`,
/// naming `acting` as acting person; the answer's status (OK when it answered).
async fn call(env: &TestEnv, rpc: &str, token: Option<&str>, acting: Option<&str>) -> Status {
    let url = if rpc.starts_with("gongji.binding.") {
        env.stack.binding_url()
    } else {
        env.stack.payment_url()
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.expect("ready");
    let mut request = tonic::Request::new(prost_types::Timestamp::default());
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("metadata");
        request.metadata_mut().insert("authorization", value);
    }
    if let Some(acting) = acting {
        let value = acting.parse().expect("metadata");
        request.metadata_mut().insert(ACTING_PERSON_HEADER, value);
    }
    let path: http::uri::PathAndQuery = format!("/{rpc}").parse().expect("path");
    let codec: tonic_prost::ProstCodec<prost_types::Timestamp, prost_types::Timestamp> =
        tonic_prost::ProstCodec::default();
    let answer = if rpc
        .rsplit('/')
        .next()
        .is_some_and(|m| m.starts_with("Watch"))
    {
        raw.server_streaming(request, path, codec).await.map(|_| ())
    } else {
        raw.unary(request, path, codec).await.map(|_| ())
    };
    answer.err().unwrap_or_else(|| Status::ok(""))
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

const GET_ACCOUNT: &str = "gongji.payment.v1.AccountService/GetAccount";

async fn trust_each_denial_reason_is_its_own_aip193_error(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let id = &env.identity;
    let auditor = id.caller_token("auditor", 600);
    let ok = call(&env, GET_ACCOUNT, Some(&auditor), None).await;
    assert_eq!(
        (ok.code(), reason(&ok).as_str()),
        (Code::InvalidArgument, "INVALID_ID_NUMBER"),
        "the auditor's call reaches the handler, which reads the empty request"
    );
    let cases: Vec<(Status, Code, &str)> = vec![
        (
            call(&env, GET_ACCOUNT, None, None).await,
            Code::Unauthenticated,
            "CREDENTIALS_MISSING",
        ),
        (
            call(&env, GET_ACCOUNT, Some("not-a-token"), None).await,
            Code::Unauthenticated,
            "CREDENTIALS_INVALID",
        ),
        (
            call(
                &env,
                GET_ACCOUNT,
                Some(
                    &DevIssuer::generate(CALLER_ISSUER, CALLER_AUDIENCE)
                        .expect("key")
                        .token_now("auditor", 600),
                ),
                None,
            )
            .await,
            Code::Unauthenticated,
            "CREDENTIALS_INVALID",
        ),
        (
            call(
                &env,
                GET_ACCOUNT,
                Some(&id.caller_token("auditor", -3_600)),
                None,
            )
            .await,
            Code::Unauthenticated,
            "CREDENTIALS_EXPIRED",
        ),
        (
            call(
                &env,
                "gongji.payment.v1.AccountService/CreditAccount",
                Some(&auditor),
                None,
            )
            .await,
            Code::PermissionDenied,
            "CALLER_NOT_PERMITTED",
        ),
        (
            call(
                &env,
                GET_ACCOUNT,
                Some(&id.caller_token("nobody-we-know", 600)),
                None,
            )
            .await,
            Code::PermissionDenied,
            "CALLER_NOT_PERMITTED",
        ),
        (
            call(
                &env,
                GET_ACCOUNT,
                Some(&id.caller_token("wechat-backend", 600)),
                None,
            )
            .await,
            Code::PermissionDenied,
            "ACTING_PERSON_REQUIRED",
        ),
        // The WeChat backend is not trusted to name a person by plain ID number.
        (
            call(
                &env,
                GET_ACCOUNT,
                Some(&id.caller_token("wechat-backend", 600)),
                Some(EMPLOYEE),
            )
            .await,
            Code::Unauthenticated,
            "CREDENTIALS_INVALID",
        ),
    ];
    for (status, code, expected) in cases {
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (code, expected),
            "{status:?}"
        );
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(info.domain, "payment.gongji");
    }
    // The denial names the caller and the RPC.
    let denied = call(
        &env,
        "gongji.payment.v1.AccountService/CreditAccount",
        Some(&auditor),
        None,
    )
    .await;
    let info = denied
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("caller").map(String::as_str),
        Some("auditor")
    );
    assert_eq!(
        info.metadata.get("rpc").map(String::as_str),
        Some("gongji.payment.v1.AccountService/CreditAccount")
    );
    // With the login provider's token, the WeChat backend acts for the person.
    let wechat = id.caller_token("wechat-backend", 600);
    let login = id.login_token(EMPLOYEE);
    let status = call(&env, GET_ACCOUNT, Some(&wechat), Some(&login)).await;
    assert!(
        !matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "{status:?}"
    );
    env.finish().await;
}

/// The RPCs each shipped role grants, as deploy/auth/roles.toml says.
fn granted(roles: &[&str]) -> BTreeSet<String> {
    let callers = Callers::parse(ROLES_TOML, &contract_rpcs()).expect("shipped roles");
    roles.iter().flat_map(|r| callers.role_rpcs(r)).collect()
}

async fn trust_each_role_is_allowed_exactly_its_rpcs(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let rpcs = contract_rpcs();
    assert_eq!(rpcs.len(), 48);
    // What the shipped roles must never do, whatever the file says.
    let writes = [
        "UpsertInsuredPerson",
        "BatchUpsertInsuredPersons",
        "OpenAccount",
        "CreditAccount",
        "CloseYear",
        "BatchUpsertDesignatedInstitutions",
    ];
    for (identity, roles, _) in DEMO_CALLERS.iter().chain([&PAYMENT_SERVICE]) {
        let allowed = granted(roles);
        assert!(!allowed.is_empty(), "{identity} may do something");
        if *identity != "core-system" {
            assert!(
                allowed
                    .iter()
                    .all(|r| !writes.iter().any(|w| r.ends_with(&format!("/{w}")))),
                "only the core system writes the registry and credits accounts: {identity}"
            );
        }
        if *identity == "auditor" {
            assert!(allowed.iter().all(|r| {
                let method = r.rsplit('/').next().unwrap_or_default();
                ["Get", "List", "Verify", "Watch"]
                    .iter()
                    .any(|p| method.starts_with(p))
            }));
        }
        let token = env.identity.caller_token(identity, 600);
        // A trusted channel names the person by ID; others with the login token.
        let login = env.identity.login_token(EMPLOYEE);
        for rpc in &rpcs {
            let status = call(&env, rpc, Some(&token), Some(&login)).await;
            if allowed.contains(rpc) {
                assert!(
                    !matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ) || !["CALLER_NOT_PERMITTED", "ACTING_PERSON_REQUIRED"]
                        .contains(&reason(&status).as_str()),
                    "{identity} may call {rpc}: {status:?}"
                );
            } else {
                assert_eq!(
                    (status.code(), reason(&status).as_str()),
                    (Code::PermissionDenied, "CALLER_NOT_PERMITTED"),
                    "{identity} may not call {rpc}"
                );
            }
        }
    }
    env.finish().await;
}

async fn trust_a_caller_past_its_rate_waits_as_told(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let token = env.identity.caller_token("slow-auditor", 600);
    let mut limited = None;
    for _ in 0..5 {
        let status = call(&env, GET_ACCOUNT, Some(&token), None).await;
        if status.code() == Code::ResourceExhausted {
            limited = Some(status);
            break;
        }
    }
    let status = limited.expect("a caller of 2 requests per second is limited within 5 calls");
    assert_eq!(reason(&status), "RATE_LIMITED");
    let retry = status
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo");
    let delay = retry.retry_delay.expect("a delay");
    assert!(delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(1));
    // Another caller is not slowed by it.
    let other = env.identity.caller_token("auditor", 600);
    assert_ne!(
        call(&env, GET_ACCOUNT, Some(&other), None).await.code(),
        Code::ResourceExhausted
    );
    tokio::time::sleep(delay).await;
    assert_ne!(
        call(&env, GET_ACCOUNT, Some(&token), None).await.code(),
        Code::ResourceExhausted
    );
    env.finish().await;
}

/// The attacks a port open to anyone allowed: with no credentials, or as a caller whose
/// roles do not grant the RPC, each is refused and nothing changes.
async fn trust_a_stranger_moves_no_money_and_rewrites_nothing(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1200.00").await;
    let hospital = env.identity.caller_token("hospital-h340500001", 600);
    let stranger = env.identity.caller_token("stranger", 600);
    for token in [None, Some(hospital.as_str()), Some(stranger.as_str())] {
        for rpc in [
            "gongji.payment.v1.AccountService/CreditAccount",
            "gongji.payment.v1.PremiumService/PayPremium",
            "gongji.binding.v1.BindingService/RevokeBinding",
            "gongji.binding.v1.BindingService/ApproveBinding",
            "gongji.binding.v1.RegistryService/UpsertInsuredPerson",
            "gongji.binding.v1.BindingService/WatchBindingEvents",
            "gongji.binding.v1.BindingService/GetBinding",
            "gongji.binding.v1.BindingService/ListBindings",
            "gongji.binding.v1.RegistryService/GetInsuredPerson",
        ] {
            let status = call(&env, rpc, token, None).await;
            assert!(
                matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ),
                "{rpc} as {token:?}: {status:?}"
            );
        }
    }
    // Even a well-formed credit, as a caller without the role, moves nothing.
    let mut credit = tonic::Request::new(CreditAccountRequest {
        request_id: fixtures::opaque("steal"),
        holder_id_number: EMPLOYEE.into(),
        amount: "100000000.00".into(),
        bucket: gongji_proto::payment::v1::Bucket::PriorYears as i32,
        memo: String::new(),
    });
    credit.metadata_mut().insert(
        "authorization",
        format!("Bearer {hospital}").parse().expect("metadata"),
    );
    let mut accounts =
        gongji_proto::payment::v1::account_service_client::AccountServiceClient::connect(
            env.stack.payment_url(),
        )
        .await
        .expect("connect");
    assert_error(
        accounts.credit_account(credit).await,
        Code::PermissionDenied,
        "CALLER_NOT_PERMITTED",
        "payment.gongji",
    );
    // A hospital settles for its own institution, not an invented one.
    let mut hospital_clients = as_caller(&env, "hospital-h340500001").await;
    let mut invented = medical("m-invented", CHILD, EMPLOYEE, "100.00");
    invented.institution_code = "H340599999".into();
    assert_error(
        hospital_clients.medical.pay_medical_expense(invented).await,
        Code::PermissionDenied,
        "INSTITUTION_NOT_CALLERS",
        "payment.gongji",
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "1200.00");
    hospital_clients
        .medical
        .pay_medical_expense(medical("m-own", CHILD, EMPLOYEE, "100.00"))
        .await
        .expect("at its own institution");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "1100.00");
    env.finish().await;
}

/// The clients of `env` as `identity` (a shipped demo caller).
async fn as_caller(env: &TestEnv, identity: &str) -> Clients {
    let token = env.identity.caller_token(identity, 600);
    clients(&env.stack, PeerInterceptor::with_token(&token)).await
}

/// A request acting for `person` with the login provider's token for them.
fn logged_in<T>(env: &TestEnv, person: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let token = env.identity.login_token(person);
    request.metadata_mut().insert(
        ACTING_PERSON_HEADER,
        token.parse().expect("a token is valid metadata"),
    );
    request
}

/// The acting person must be the authorizer to bind or to pay or quote from an account, a
/// party to revoke or read a binding, the payer or beneficiary to read a payment, and the
/// holder to read an account. The WeChat backend acts with the login provider's tokens.
async fn trust_a_citizen_channel_touches_only_its_person_s_accounts_and_bindings(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "1200.00").await;
    let stranger = fixtures::id_number("19700101", 9);
    fixtures::register(
        &mut c,
        fixtures::person(&stranger, "王五", Some("340500"), None),
    )
    .await;
    let mut wechat = as_caller(&env, "wechat-backend").await;
    let not_party = |r: Result<_, Status>| {
        assert_error(
            r,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            "binding.gongji",
        )
    };

    // Binding: only the authorizer applies.
    not_party(
        wechat
            .bindings
            .create_binding(logged_in(&env, &stranger, fixtures::bind_request("b-1")))
            .await
            .map(|_| ()),
    );
    let binding = wechat
        .bindings
        .create_binding(logged_in(&env, EMPLOYEE, fixtures::bind_request("b-2")))
        .await
        .expect("the authorizer binds")
        .into_inner()
        .binding
        .expect("binding");
    let get = |id: &str| GetBindingRequest {
        binding_id: id.to_owned(),
    };
    not_party(
        wechat
            .bindings
            .get_binding(logged_in(&env, &stranger, get(&binding.binding_id)))
            .await
            .map(|_| ()),
    );
    wechat
        .bindings
        .get_binding(logged_in(&env, CHILD, get(&binding.binding_id)))
        .await
        .expect("the beneficiary reads it");
    not_party(
        wechat
            .bindings
            .list_bindings(logged_in(
                &env,
                &stranger,
                ListBindingsRequest {
                    authorizer_id_number: EMPLOYEE.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
    );

    // Money: only the payer quotes and pays; only the holder reads the account.
    let payment_denied = |r: Result<_, Status>| {
        assert_error(
            r,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            "payment.gongji",
        )
    };
    payment_denied(
        wechat
            .premiums
            .pay_premium(logged_in(
                &env,
                &stranger,
                pay("p-1", EMPLOYEE, CHILD, 2025),
            ))
            .await
            .map(|_| ()),
    );
    payment_denied(
        wechat
            .accounts
            .get_account(logged_in(
                &env,
                &stranger,
                GetAccountRequest {
                    holder_id_number: EMPLOYEE.into(),
                },
            ))
            .await
            .map(|_| ()),
    );
    payment_denied(
        wechat
            .premiums
            .quote_premium(logged_in(
                &env,
                &stranger,
                gongji_proto::payment::v1::QuotePremiumRequest {
                    payer_id_number: EMPLOYEE.into(),
                    beneficiary_id_number: CHILD.into(),
                    coverage_year: 2025,
                    back_payment: false,
                },
            ))
            .await
            .map(|_| ()),
    );
    payment_denied(
        wechat
            .accounts
            .list_account_entries(logged_in(
                &env,
                &stranger,
                gongji_proto::payment::v1::ListAccountEntriesRequest {
                    holder_id_number: EMPLOYEE.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
    );
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "1200.00",
        "nothing moved"
    );
    let paid = wechat
        .premiums
        .pay_premium(logged_in(&env, EMPLOYEE, pay("p-2", EMPLOYEE, CHILD, 2025)))
        .await
        .expect("the payer pays")
        .into_inner()
        .payment
        .expect("payment");
    let read = |id: &str| GetPremiumPaymentRequest {
        payment_id: id.to_owned(),
    };
    for person in [EMPLOYEE, CHILD] {
        wechat
            .premiums
            .get_premium_payment(logged_in(&env, person, read(&paid.payment_id)))
            .await
            .expect("payer and beneficiary read the payment");
    }
    payment_denied(
        wechat
            .premiums
            .get_premium_payment(logged_in(&env, &stranger, read(&paid.payment_id)))
            .await
            .map(|_| ()),
    );

    // A medical payment is read by its beneficiary or the family account's holder only.
    let spent = c
        .medical
        .pay_medical_expense(medical("m-1", CHILD, EMPLOYEE, "10.00"))
        .await
        .expect("medical")
        .into_inner()
        .payment
        .expect("payment");
    let read_medical = |id: &str| gongji_proto::payment::v1::GetMedicalExpensePaymentRequest {
        payment_id: id.to_owned(),
    };
    wechat
        .medical
        .get_medical_expense_payment(logged_in(&env, EMPLOYEE, read_medical(&spent.payment_id)))
        .await
        .expect("the family holder reads it");
    payment_denied(
        wechat
            .medical
            .get_medical_expense_payment(logged_in(
                &env,
                &stranger,
                read_medical(&spent.payment_id),
            ))
            .await
            .map(|_| ()),
    );

    // Revocation: a party, never anyone else; nobody at all is refused too.
    let revoke = |person: Option<&str>| {
        let message = RevokeBindingRequest {
            request_id: fixtures::opaque("revoke"),
            binding_id: binding.binding_id.clone(),
            reason: "no longer".into(),
            ..Default::default()
        };
        match person {
            Some(person) => logged_in(&env, person, message),
            None => tonic::Request::new(message),
        }
    };
    assert_error(
        c.bindings.revoke_binding(revoke(None)).await,
        Code::PermissionDenied,
        "ACTING_PERSON_REQUIRED",
        "binding.gongji",
    );
    not_party(
        wechat
            .bindings
            .revoke_binding(revoke(Some(&stranger)))
            .await
            .map(|_| ()),
    );
    let revoked = wechat
        .bindings
        .revoke_binding(revoke(Some(CHILD)))
        .await
        .expect("the beneficiary revokes")
        .into_inner()
        .binding
        .expect("binding");
    assert_eq!(revoked.state, BindingState::Revoked as i32);
    env.finish().await;
}

/// The deprecated fields that used to say who asks are not read: the request cannot name
/// someone else as requester or reviewer.
async fn trust_who_asks_comes_from_the_caller_not_the_request(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "100.00").await;
    let stranger = fixtures::id_number("19700101", 9);
    let mut app = as_caller(&env, "gov-app").await;
    // The stranger, logged in, names the authorizer as requester in the body.
    #[allow(deprecated)]
    let forged = RevokeBindingRequest {
        request_id: fixtures::opaque("revoke"),
        binding_id: binding.binding_id.clone(),
        revoked_by: Party::Authorizer as i32,
        requester_id_number: EMPLOYEE.into(),
        reason: "forged".into(),
    };
    assert_error(
        app.bindings
            .revoke_binding(acting_for(&stranger, forged))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_NOT_PARTY",
        "binding.gongji",
    );
    // A reviewer's decision is recorded under the reviewer's own identity.
    let mut reviewer = as_caller(&env, "reviewer").await;
    let r = reviewer
        .bindings
        .reject_binding(RejectBindingRequest {
            request_id: fixtures::opaque("reject"),
            binding_id: binding.binding_id.clone(),
            reason: "not pending".into(),
            ..Default::default()
        })
        .await;
    assert_error(
        r,
        Code::FailedPrecondition,
        "BINDING_NOT_PENDING",
        "binding.gongji",
    );
    env.finish().await;
}

/// GetInsuredPerson gives a whole name only to the roles that need it (the core system,
/// auditors); a citizen channel reads only its own person's record, masked.
async fn trust_names_are_whole_only_for_roles_that_need_them(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    let read = |id: &str| GetInsuredPersonRequest {
        id_number: id.to_owned(),
    };
    let name = |r: Result<tonic::Response<GetInsuredPersonResponse>, Status>| {
        r.expect("read").into_inner().person.expect("person").name
    };
    let mut core = as_caller(&env, "core-system").await;
    assert_eq!(
        name(core.registry.get_insured_person(read(CHILD)).await),
        CHILD_NAME
    );
    let mut auditor = as_caller(&env, "auditor").await;
    assert_eq!(
        name(auditor.registry.get_insured_person(read(CHILD)).await),
        CHILD_NAME
    );
    let mut wechat = as_caller(&env, "wechat-backend").await;
    let own = name(
        wechat
            .registry
            .get_insured_person(logged_in(&env, EMPLOYEE, read(EMPLOYEE)))
            .await,
    );
    assert_ne!(own, fixtures::EMPLOYEE_NAME);
    assert!(own.contains('*'), "{own}");
    assert_error(
        wechat
            .registry
            .get_insured_person(logged_in(&env, EMPLOYEE, read(CHILD)))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_NOT_PARTY",
        "binding.gongji",
    );
    // CheckAuthorization carries enrollments, not names.
    let answer = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: CHILD.into(),
            purpose: Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner();
    let beneficiary = answer.beneficiary.expect("record");
    assert_ne!(beneficiary.name, CHILD_NAME);
    env.finish().await;
}

/// Request IDs are the caller's own: another caller's same ID is another request, neither
/// a reuse nor a way to read the first answer.
async fn trust_request_ids_are_scoped_to_their_caller(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "100.00").await;
    let credit = |amount: &str| CreditAccountRequest {
        request_id: "shared-id".into(),
        holder_id_number: EMPLOYEE.into(),
        amount: amount.into(),
        bucket: gongji_proto::payment::v1::Bucket::PriorYears as i32,
        memo: String::new(),
    };
    let mut core = as_caller(&env, "core-system").await;
    let first = core
        .accounts
        .credit_account(credit("10.00"))
        .await
        .expect("the core system's credit")
        .into_inner();
    // The same ID from the contract caller is its own request, not a reuse or a replay.
    let other = c
        .accounts
        .credit_account(credit("20.00"))
        .await
        .expect("another caller's credit")
        .into_inner();
    assert_ne!(other.entry, first.entry);
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "130.00");
    // Each caller's retry replays its own first answer.
    let again = core
        .accounts
        .credit_account(credit("10.00"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(again, first);
    assert_error(
        core.accounts.credit_account(credit("30.00")).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        "payment.gongji",
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "130.00");
    env.finish().await;
}

/// One caller holds at most 16 event streams; the others' slots stay free, and a closed
/// stream gives its slot back.
async fn trust_no_caller_holds_every_watcher_slot(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut auditor = as_caller(&env, "auditor").await;
    let watch = || WatchBindingEventsRequest { after_sequence: 0 };
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(
            auditor
                .bindings
                .watch_binding_events(watch())
                .await
                .expect("a slot")
                .into_inner(),
        );
    }
    assert_error(
        auditor.bindings.watch_binding_events(watch()).await,
        Code::ResourceExhausted,
        "TOO_MANY_WATCHERS_FOR_CALLER",
        "binding.gongji",
    );
    let mut peer = as_caller(&env, "payment-service").await;
    let _other = peer
        .bindings
        .watch_binding_events(watch())
        .await
        .expect("another caller still gets a slot");
    drop(held.pop());
    let mut freed = false;
    for _ in 0..100 {
        if auditor.bindings.watch_binding_events(watch()).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed stream gives its slot back");
    drop(held);
    env.finish().await;
}

/// Idle connections cannot pile up: one that makes no call within the first-call timeout
/// is closed, whether it sent nothing or only the HTTP/2 preface; one that calls stays.
async fn trust_a_connection_that_makes_no_call_is_closed(backend: Backend) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let addr = env.stack.config.payment_addr;
    let mut silent = Vec::new();
    for n in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if n % 2 == 0 {
            tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .expect("preface");
        }
        silent.push(tcp);
    }
    let started = std::time::Instant::now();
    for mut tcp in silent {
        let mut buf = [0_u8; 1024];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    // The server's SETTINGS frame, then nothing more.
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a connection that makes no call is closed");
    }
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(FIRST_CALL_TIMEOUT_MS / 2),
        "closed at the deadline, not at once: {waited:?}"
    );
    // A connection that calls outlives the deadline.
    let mut c = env.clients_owned();
    let health = || tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    let channel = tonic::transport::Endpoint::from_shared(env.stack.payment_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut probe = tonic_health::pb::health_client::HealthClient::new(channel);
    probe.check(health()).await.expect("a call");
    tokio::time::sleep(std::time::Duration::from_millis(FIRST_CALL_TIMEOUT_MS * 2)).await;
    probe
        .check(health())
        .await
        .expect("still served on the same channel");
    verify_clean(&mut c).await;
    env.finish().await;
}

/// Who made each change is recorded with it: the binding's audit trail and the ledger say
/// which caller, and for which logged-in person.
async fn trust_every_state_change_records_its_caller_and_acting_person(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::parent_and_child(&mut c).await;
    let mut core = as_caller(&env, "core-system").await;
    core.accounts
        .open_account(gongji_proto::payment::v1::OpenAccountRequest {
            request_id: fixtures::opaque("open"),
            holder_id_number: EMPLOYEE.into(),
            region_code: "340500".into(),
        })
        .await
        .expect("open");
    core.accounts
        .credit_account(CreditAccountRequest {
            request_id: fixtures::opaque("credit"),
            holder_id_number: EMPLOYEE.into(),
            amount: "1000.00".into(),
            bucket: gongji_proto::payment::v1::Bucket::PriorYears as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
    let mut wechat = as_caller(&env, "wechat-backend").await;
    let binding = wechat
        .bindings
        .create_binding(logged_in(&env, EMPLOYEE, fixtures::bind_request("b")))
        .await
        .expect("bind")
        .into_inner()
        .binding
        .expect("binding");
    let history = c
        .bindings
        .get_binding(GetBindingRequest {
            binding_id: binding.binding_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .binding
        .expect("binding")
        .history;
    let event = history.first().cloned().expect("an event");
    assert_eq!(event.caller, "wechat-backend");
    let masked = gongji_shared::IdNumber::parse(EMPLOYEE)
        .expect("id")
        .masked();
    assert_eq!(event.acting_person_id_number, masked);
    let paid = wechat
        .premiums
        .pay_premium(logged_in(&env, EMPLOYEE, pay("p", EMPLOYEE, CHILD, 2025)))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    let entries = c
        .accounts
        .list_account_entries(gongji_proto::payment::v1::ListAccountEntriesRequest {
            holder_id_number: EMPLOYEE.into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    let callers: Vec<&str> = entries.iter().map(|e| e.caller.as_str()).collect();
    assert_eq!(callers, ["wechat-backend", "core-system"], "newest first");
    // The ledger row, the payment row and the call's record hold the acting person too,
    // sealed: whoever holds payment-service's keys opens it (issue 11 seals personal data at
    // rest; this test once read it in plain text).
    let vault = env.payment_vault();
    let recorded = payment_rows(
        &env,
        &format!(
            "SELECT caller, acting_person FROM movements WHERE movement_id = '{}' \
             UNION ALL SELECT caller, acting_person FROM premium_payments WHERE payment_id = '{}' \
             UNION ALL SELECT scope, acting_person FROM idempotency WHERE request_id = 'p'",
            paid.movement_id, paid.payment_id
        ),
    )
    .await;
    assert!(
        recorded.iter().all(|(_, p)| p.as_deref() != Some(EMPLOYEE)),
        "never in plain text: {recorded:?}"
    );
    let recorded: Vec<(String, Option<String>)> = recorded
        .into_iter()
        .map(|(caller, sealed)| (caller, sealed.map(|p| vault.open(&p).expect("opens"))))
        .collect();
    assert_eq!(
        recorded,
        vec![("wechat-backend".to_owned(), Some(EMPLOYEE.to_owned())); 3],
        "the movement, the payment and the call's record"
    );
    env.finish().await;
}

/// Rows of payment-service's own database, read directly: what an auditor with database
/// access sees.
pub async fn payment_rows(env: &TestEnv, sql: &str) -> Vec<(String, Option<String>)> {
    use sqlx::Connection as _;
    match env.payment_database() {
        ServiceDatabase::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open");
            sqlx::query_as(sql).fetch_all(&mut db).await.expect("rows")
        }
        ServiceDatabase::Postgres { admin_url, name } => {
            let url = gongji_shared::testing::database_url(&admin_url, &name);
            let mut db = sqlx::PgConnection::connect(&url).await.expect("open");
            sqlx::query_as(sql).fetch_all(&mut db).await.expect("rows")
        }
    }
}

/// Both services serve TLS and check client certificates against the CA: a hospital known
/// by its certificate alone pays a medical expense whose family part binding-service, called
/// over mutual TLS as itself, authorizes; a certificate of another CA is refused at the
/// handshake, and no certificate and no token is CREDENTIALS_MISSING.
async fn trust_mutual_tls_names_the_caller_and_the_peers(backend: Backend) {
    let pki = TestPki::new();
    let Some(env) = TestEnv::start_tls(backend, IN_WINDOW, &pki).await else {
        return;
    };
    assert!(env.stack.payment_url().starts_with("https://"));
    let mut c = env.clients_owned();
    let binding = fixtures::family(&mut c, "500.00").await;
    let hospital = clients_with(
        &env.stack,
        PeerInterceptor::default(),
        Some(pki.client_tls(Some("hospital"))),
    )
    .await;
    let paid = hospital
        .medical
        .clone()
        .pay_medical_expense(medical("m-tls", CHILD, EMPLOYEE, "120.00"))
        .await
        .expect("the hospital, by its certificate, pays")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        paid.binding_id, binding.binding_id,
        "binding-service authorized over mTLS"
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "380.00");
    // The certificate names a caller whose roles allow only medical settlement.
    assert_error(
        hospital
            .accounts
            .clone()
            .get_account(GetAccountRequest {
                holder_id_number: EMPLOYEE.into(),
            })
            .await,
        Code::PermissionDenied,
        "CALLER_NOT_PERMITTED",
        "payment.gongji",
    );
    // Neither certificate nor token.
    let anonymous = clients_with(
        &env.stack,
        PeerInterceptor::default(),
        Some(pki.client_tls(None)),
    )
    .await;
    assert_error(
        anonymous
            .accounts
            .clone()
            .get_account(GetAccountRequest {
                holder_id_number: EMPLOYEE.into(),
            })
            .await,
        Code::Unauthenticated,
        "CREDENTIALS_MISSING",
        "payment.gongji",
    );
    // A certificate the CA did not issue does not get through the handshake.
    let stranger = TestPki::new();
    let mut forged_tls = pki.client_tls(None);
    let (cert, key) = stranger.client("hospital");
    forged_tls = forged_tls.identity(tonic::transport::Identity::from_pem(
        std::fs::read(cert).expect("cert"),
        std::fs::read(key).expect("key"),
    ));
    let forged = tonic::transport::Endpoint::from_shared(env.stack.payment_url())
        .expect("url")
        .tls_config(forged_tls)
        .expect("tls");
    let refused = match forged.connect().await {
        Err(_) => true,
        Ok(channel) => gongji_proto::payment::v1::medical_expense_service_client::MedicalExpenseServiceClient::new(channel)
            .get_medical_expense_payment(gongji_proto::payment::v1::GetMedicalExpensePaymentRequest {
                payment_id: paid.payment_id.clone(),
            })
            .await
            .is_err(),
    };
    assert!(refused, "a forged certificate is refused");
    verify_clean(&mut c).await;
    env.finish().await;
}
