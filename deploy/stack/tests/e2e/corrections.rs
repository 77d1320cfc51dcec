//! Medical expenses that can be corrected (issue 13): listing them.

use gongji_proto::payment::v1::{
    InstitutionKind, ListMedicalExpensePaymentsRequest, ListMedicalExpensePaymentsResponse,
};
use gongji_shared::{Clock, rpc::peer::PeerInterceptor};
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, EMPLOYEE},
    payment::medical,
    support::{Backend, Clients, IN_WINDOW, TestEnv, acting_for, assert_error, clients_with},
};

const P: &str = "payment.gongji";
const HOSPITAL: &str = "H340500001";
const PHARMACY: &str = "P340500009";

both_backends!(medical_payments_are_listed_by_beneficiary_family_account_and_institution);

fn by(beneficiary: &str, family: &str, institution: &str) -> ListMedicalExpensePaymentsRequest {
    ListMedicalExpensePaymentsRequest {
        beneficiary_id_number: beneficiary.into(),
        family_account_holder_id_number: family.into(),
        institution_code: institution.into(),
        start_date: "2024-01-01".into(),
        end_date: "2025-12-31".into(),
        page_size: 0,
        page_token: String::new(),
    }
}

async fn listed(c: &mut Clients, request: ListMedicalExpensePaymentsRequest) -> Vec<String> {
    let r: ListMedicalExpensePaymentsResponse = c
        .medical
        .list_medical_expense_payments(request)
        .await
        .expect("list")
        .into_inner();
    r.payments.into_iter().map(|p| p.request_id).collect()
}

/// The spouse pays at the hospital (partly from her account) and at a pharmacy (from his own),
/// she pays at the hospital from her own, and on a later day he pays at the hospital again.
/// Each filter, alone and together, with a date range and in pages, lists what it should,
/// newest first; a person's channel and a hospital see only theirs.
async fn medical_payments_are_listed_by_beneficiary_family_account_and_institution(
    backend: Backend,
) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let (spouse, _) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    let pay = |request_id: &str, who: &str, family: &str, institution: &str, amount: &str| {
        let mut r = medical(request_id, who, family, amount);
        r.institution_code = institution.into();
        if institution == PHARMACY {
            r.institution_kind = InstitutionKind::Pharmacy as i32;
        }
        r
    };
    for request in [
        pay("m1", &spouse, EMPLOYEE, HOSPITAL, "100.00"),
        pay("m2", &spouse, "", PHARMACY, "20.00"),
        pay("m3", EMPLOYEE, "", HOSPITAL, "50.00"),
    ] {
        c.medical.pay_medical_expense(request).await.expect("pay");
    }
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("a later day");
    c.medical
        .pay_medical_expense(pay("m4", &spouse, EMPLOYEE, HOSPITAL, "80.00"))
        .await
        .expect("pay later");

    assert_eq!(
        listed(&mut c, by(&spouse, "", "")).await,
        ["m4", "m2", "m1"]
    );
    assert_eq!(listed(&mut c, by("", EMPLOYEE, "")).await, ["m4", "m1"]);
    assert_eq!(
        listed(&mut c, by("", "", HOSPITAL)).await,
        ["m4", "m3", "m1"]
    );
    assert_eq!(
        listed(&mut c, by(&spouse, "", HOSPITAL)).await,
        ["m4", "m1"]
    );
    let mut last_year = by(&spouse, "", "");
    last_year.end_date = "2024-12-31".into();
    assert_eq!(listed(&mut c, last_year).await, ["m2", "m1"]);
    let mut default_range = by(&spouse, "", "");
    (default_range.start_date, default_range.end_date) = (String::new(), String::new());
    assert_eq!(listed(&mut c, default_range).await, ["m4", "m2", "m1"]);
    // Pages of one.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..4 {
        let mut request = by(&spouse, "", "");
        request.page_size = 1;
        request.page_token = token;
        let page = c
            .medical
            .list_medical_expense_payments(request)
            .await
            .expect("page")
            .into_inner();
        paged.extend(page.payments.into_iter().map(|p| p.request_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, ["m4", "m2", "m1"]);

    // His channel sees his payments, not hers, nor an institution's.
    let token = env.identity.caller_token("gov-app", 600);
    let mut channel = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let his = channel
        .medical
        .list_medical_expense_payments(acting_for(&spouse, by(&spouse, "", "")))
        .await
        .expect("his")
        .into_inner();
    assert_eq!(his.payments.len(), 3);
    for request in [by("", EMPLOYEE, ""), by("", "", HOSPITAL)] {
        assert_error(
            channel
                .medical
                .list_medical_expense_payments(acting_for(&spouse, request))
                .await,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            P,
        );
    }
    // The hospital lists its own institution's payments only.
    let token = env.identity.caller_token("hospital-h340500001", 600);
    let mut hospital = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    assert_eq!(
        listed(&mut hospital, by("", "", HOSPITAL)).await,
        ["m4", "m3", "m1"]
    );
    for request in [by("", "", PHARMACY), by(&spouse, "", "")] {
        assert_error(
            hospital
                .medical
                .list_medical_expense_payments(request)
                .await,
            Code::PermissionDenied,
            "INSTITUTION_NOT_CALLERS",
            P,
        );
    }
    // Bad listings.
    let invalid = Code::InvalidArgument;
    let mut reversed = by(&spouse, "", "");
    reversed.start_date = "2025-02-01".into();
    reversed.end_date = "2025-01-31".into();
    let mut bad_token = by(&spouse, "", "");
    bad_token.page_token = "x".into();
    for (request, reason) in [
        (by("", "", ""), "FILTER_REQUIRED"),
        (by("", "", "H-1"), "INVALID_INSTITUTION"),
        (by("123", "", ""), "INVALID_ID_NUMBER"),
        (reversed, "INVALID_DATE_RANGE"),
        (bad_token, "INVALID_PAGE_TOKEN"),
    ] {
        assert_error(
            c.medical.list_medical_expense_payments(request).await,
            invalid,
            reason,
            P,
        );
    }
    env.finish().await;
}
