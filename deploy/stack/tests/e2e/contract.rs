//! The contract's error surface: one malformed request per RPC, binding refusals with every
//! reason.

use gongji_proto::{binding::v1 as b, payment::v1 as p};
use tonic::Code;

use crate::{
    both_backends, fixtures,
    support::{Backend, IN_WINDOW, TestEnv, acting_for, assert_error},
};

both_backends!(
    every_rpc_refuses_malformed_input,
    a_refused_binding_lists_every_failed_rule,
    a_bad_registry_record_changes_nothing,
);

const B: &str = "binding.gongji";
const P: &str = "payment.gongji";
const BAD_ID: &str = "340504198707200021";

async fn every_rpc_refuses_malformed_input(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let invalid = Code::InvalidArgument;

    // binding-service
    let r = c
        .registry
        .upsert_insured_person(b::UpsertInsuredPersonRequest {
            request_id: "u1".into(),
            person: Some(fixtures::person(BAD_ID, "李娜", Some("340500"), None)),
        })
        .await;
    assert_error(r, invalid, "INVALID_ID_NUMBER", B);
    let r = c
        .registry
        .get_insured_person(b::GetInsuredPersonRequest {
            id_number: "123".into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_ID_NUMBER", B);
    let mut create = fixtures::bind_request("c1");
    create.relationship = b::Relationship::Unspecified as i32;
    assert_error(
        c.bindings.create_binding(create).await,
        invalid,
        "INVALID_RELATIONSHIP",
        B,
    );
    let r = c
        .bindings
        .get_binding(b::GetBindingRequest {
            binding_id: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_BINDING_ID", B);
    let r = c
        .bindings
        .list_bindings(b::ListBindingsRequest {
            authorizer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            ..Default::default()
        })
        .await;
    assert_error(r, invalid, "INVALID_FILTER", B);
    let r = c
        .bindings
        .revoke_binding(acting_for(
            fixtures::EMPLOYEE,
            b::RevokeBindingRequest {
                request_id: "r1".into(),
                binding_id: "x".into(),
                reason: "   ".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_error(r, invalid, "INVALID_REASON", B);
    let r = c
        .bindings
        .reject_binding(b::RejectBindingRequest {
            request_id: "j1".into(),
            binding_id: "x".into(),
            reason: String::new(),
            ..Default::default()
        })
        .await;
    assert_error(r, invalid, "INVALID_REASON", B);
    let r = c
        .bindings
        .check_authorization(b::CheckAuthorizationRequest {
            authorizer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            purpose: b::Purpose::Unspecified as i32,
        })
        .await;
    assert_error(r, invalid, "INVALID_PURPOSE", B);
    let r = c
        .bindings
        .watch_binding_events(b::WatchBindingEventsRequest { after_sequence: -1 })
        .await;
    assert_error(r.map(drop), invalid, "INVALID_CURSOR", B);

    // payment-service
    let r = c
        .accounts
        .open_account(p::OpenAccountRequest {
            request_id: "o1".into(),
            holder_id_number: fixtures::EMPLOYEE.into(),
            region_code: "3405".into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_REGION_CODE", P);
    let r = c
        .accounts
        .credit_account(p::CreditAccountRequest {
            request_id: "k1".into(),
            holder_id_number: fixtures::EMPLOYEE.into(),
            amount: "1.001".into(),
            bucket: p::Bucket::PriorYears as i32,
            memo: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_AMOUNT", P);
    let r = c
        .accounts
        .get_account(p::GetAccountRequest {
            holder_id_number: BAD_ID.into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_ID_NUMBER", P);
    let r = c
        .accounts
        .list_account_entries(p::ListAccountEntriesRequest {
            holder_id_number: fixtures::EMPLOYEE.into(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_PAGE_SIZE", P);
    let r = c
        .accounts
        .close_year(p::CloseYearRequest {
            request_id: "y1".into(),
            holder_id_number: fixtures::EMPLOYEE.into(),
            year: 0,
        })
        .await;
    assert_error(r, invalid, "INVALID_YEAR", P);
    let r = c
        .premiums
        .quote_premium(p::QuotePremiumRequest {
            payer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            coverage_year: 1999,
            back_payment: false,
        })
        .await;
    assert_error(r, invalid, "INVALID_COVERAGE_YEAR", P);
    let r = c
        .premiums
        .pay_premium(p::PayPremiumRequest {
            request_id: String::new(),
            payer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            coverage_year: 2025,
            expected_amount: "400.00".into(),
            other_means: None,
            back_payment: false,
        })
        .await;
    assert_error(r, invalid, "INVALID_REQUEST_ID", P);
    let r = c
        .premiums
        .get_premium_payment(p::GetPremiumPaymentRequest {
            payment_id: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_PAYMENT_ID", P);
    let r = c
        .premiums
        .list_premium_payments(p::ListPremiumPaymentsRequest::default())
        .await;
    assert_error(r, invalid, "INVALID_FILTER", P);
    let r = c
        .premiums
        .refund_premium_payment(p::RefundPremiumPaymentRequest {
            request_id: "f1".into(),
            payment_id: "x".into(),
            reason: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_REASON", P);
    let r = c
        .medical
        .pay_medical_expense(p::PayMedicalExpenseRequest {
            request_id: "m1".into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            family_account_holder_id_number: fixtures::EMPLOYEE.into(),
            institution_code: "H340500001".into(),
            institution_kind: p::InstitutionKind::Unspecified as i32,
            amount: "12.00".into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_INSTITUTION", P);
    let r = c
        .medical
        .get_medical_expense_payment(p::GetMedicalExpensePaymentRequest {
            payment_id: String::new(),
        })
        .await;
    assert_error(r, invalid, "INVALID_PAYMENT_ID", P);
    let r = c
        .settlement
        .settle_business_day(p::SettleBusinessDayRequest {
            request_id: "s1".into(),
            business_date: "2024-13-01".into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_DATE", P);
    let r = c
        .settlement
        .get_settlement(p::GetSettlementRequest {
            business_date: "yesterday".into(),
        })
        .await;
    assert_error(r, invalid, "INVALID_DATE", P);
    env.finish().await;
}

async fn a_refused_binding_lists_every_failed_rule(backend: Backend) {
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
    // Insured in Jiangsu: out of scope for funds sharing in 2025.
    fixtures::register(
        &mut c,
        fixtures::person(fixtures::CHILD, fixtures::CHILD_NAME, None, Some("320500")),
    )
    .await;
    fixtures::fund(&mut c, fixtures::EMPLOYEE, "100.00").await;
    let mut request = fixtures::bind_request("bind-refused");
    request.beneficiary_name = "王五".into();
    request.relationship = b::Relationship::Sibling as i32;
    let status = assert_error(
        c.bindings.create_binding(request).await,
        Code::FailedPrecondition,
        "NAME_MISMATCH",
        B,
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    let kinds: Vec<_> = details
        .precondition_failure()
        .expect("violations")
        .violations
        .iter()
        .map(|v| v.r#type.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "NAME_MISMATCH",
            "REGION_NOT_ALLOWED",
            "RELATIONSHIP_NOT_ALLOWED"
        ]
    );
    assert!(
        !status.message().contains(fixtures::CHILD),
        "no ID number in messages"
    );
    let list = c
        .bindings
        .check_authorization(b::CheckAuthorizationRequest {
            authorizer_id_number: fixtures::EMPLOYEE.into(),
            beneficiary_id_number: fixtures::CHILD.into(),
            purpose: b::Purpose::Premium as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(!list.authorized);
    assert!(list.binding_id.is_empty(), "nothing was stored");
    env.finish().await;
}

async fn a_bad_registry_record_changes_nothing(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let mut person = fixtures::person(
        fixtures::EMPLOYEE,
        fixtures::EMPLOYEE_NAME,
        Some("340500"),
        None,
    );
    person
        .employee_enrollment
        .as_mut()
        .expect("enrollment")
        .status = b::EnrollmentStatus::Unspecified as i32;
    let r = c
        .registry
        .upsert_insured_person(b::UpsertInsuredPersonRequest {
            request_id: "bad-status".into(),
            person: Some(person),
        })
        .await;
    assert_error(r, Code::InvalidArgument, "INVALID_ENROLLMENT_STATUS", B);
    let r = c
        .registry
        .get_insured_person(b::GetInsuredPersonRequest {
            id_number: fixtures::EMPLOYEE.into(),
        })
        .await;
    assert_error(r, Code::NotFound, "PERSON_NOT_FOUND", B);
    env.finish().await;
}
