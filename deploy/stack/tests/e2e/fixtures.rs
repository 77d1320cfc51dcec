//! The seed's family and the calls that set it up.

use gongji_proto::{
    binding::v1::{
        Binding, BindingKind, CreateBindingRequest, Enrollment, EnrollmentStatus, InsuredPerson,
        Relationship, UpsertInsuredPersonRequest,
    },
    payment::v1::{Bucket, CreditAccountRequest, OpenAccountRequest},
};

use crate::support::Clients;

/// 李娜: Ma'anshan employee insurance.
pub const EMPLOYEE: &str = "340504198707200020";
pub const EMPLOYEE_NAME: &str = "李娜";
/// 李子轩: her son, Ma'anshan resident insurance.
pub const CHILD: &str = "340504201801100012";
pub const CHILD_NAME: &str = "李子轩";

/// A fresh request ID that carries no personal data (request IDs end up in logs).
pub fn opaque(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

pub fn enrollment(region: &str) -> Option<Enrollment> {
    Some(Enrollment {
        region_code: region.to_owned(),
        status: EnrollmentStatus::Normal as i32,
    })
}

pub fn person(
    id: &str,
    name: &str,
    employee: Option<&str>,
    resident: Option<&str>,
) -> InsuredPerson {
    InsuredPerson {
        id_number: id.to_owned(),
        name: name.to_owned(),
        employee_enrollment: employee.and_then(enrollment),
        resident_enrollment: resident.and_then(enrollment),
        update_time: None,
        resident_paid_years: Vec::new(),
    }
}

pub async fn register(c: &mut Clients, p: InsuredPerson) {
    c.registry
        .upsert_insured_person(UpsertInsuredPersonRequest {
            request_id: opaque("register"),
            person: Some(p),
        })
        .await
        .expect("register");
}

/// The employee's record with her employee enrollment in `status`.
pub fn employee_with(status: EnrollmentStatus) -> InsuredPerson {
    let mut employee = person(EMPLOYEE, EMPLOYEE_NAME, Some("340500"), None);
    if let Some(enrollment) = employee.employee_enrollment.as_mut() {
        enrollment.status = status as i32;
    }
    employee
}

/// Registers the employee (Ma'anshan employee insurance).
pub async fn employee(c: &mut Clients) {
    register(c, person(EMPLOYEE, EMPLOYEE_NAME, Some("340500"), None)).await;
}

/// Registers the employee and her son (Ma'anshan resident insurance); no account, no binding.
pub async fn parent_and_child(c: &mut Clients) {
    employee(c).await;
    register(c, person(CHILD, CHILD_NAME, None, Some("340500"))).await;
}

/// Opens the employee's account and credits `prior_years` into prior-years.
pub async fn fund(c: &mut Clients, holder: &str, prior_years: &str) {
    fund_bucket(c, holder, prior_years, Bucket::PriorYears).await;
}

/// Opens `holder`'s account and credits `amount` into `bucket`.
pub async fn fund_bucket(c: &mut Clients, holder: &str, amount: &str, bucket: Bucket) {
    c.accounts
        .open_account(OpenAccountRequest {
            request_id: opaque("open"),
            holder_id_number: holder.to_owned(),
            region_code: "340500".to_owned(),
        })
        .await
        .expect("open account");
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: opaque("credit"),
            holder_id_number: holder.to_owned(),
            amount: amount.to_owned(),
            bucket: bucket as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
}

pub fn bind_request(request_id: &str) -> CreateBindingRequest {
    CreateBindingRequest {
        request_id: request_id.to_owned(),
        authorizer_id_number: EMPLOYEE.to_owned(),
        beneficiary_id_number: CHILD.to_owned(),
        beneficiary_name: CHILD_NAME.to_owned(),
        relationship: Relationship::Child as i32,
        kind: BindingKind::FundsSharing as i32,
        verification_method: 0,
    }
}

/// Registers the family, funds the employee's account with `prior_years`, binds the child.
pub async fn family(c: &mut Clients, prior_years: &str) -> Binding {
    parent_and_child(c).await;
    fund(c, EMPLOYEE, prior_years).await;
    c.bindings
        .create_binding(bind_request("bind-family"))
        .await
        .expect("bind")
        .into_inner()
        .binding
        .expect("binding")
}

/// A valid ID number issued in Ma'anshan for a birth date (YYYYMMDD) and sequence.
pub fn id_number(birth: &str, sequence: u32) -> String {
    let body = format!("340504{birth}{sequence:03}");
    let check = gongji_shared::IdNumber::check_char_of(&body).expect("17 digits");
    format!("{body}{check}")
}

/// Registers the employee with a funded account, and a child of `name` insured in `region`.
pub async fn employee_and(c: &mut Clients, child: &str, name: &str, region: &str) {
    employee(c).await;
    register(c, person(child, name, None, Some(region))).await;
    fund(c, EMPLOYEE, "500.00").await;
}

/// A FUNDS_SHARING application by the employee for `child`.
pub fn bind_child(request_id: &str, child: &str, name: &str) -> CreateBindingRequest {
    CreateBindingRequest {
        beneficiary_id_number: child.to_owned(),
        beneficiary_name: name.to_owned(),
        ..bind_request(request_id)
    }
}

/// The employee's husband (赵刚): employee-insured, registered, bound to her FUNDS_SHARING;
/// his ID number and the binding.
pub async fn spouse(c: &mut Clients) -> (String, Binding) {
    let spouse = id_number("19850505", 7);
    register(c, person(&spouse, SPOUSE_NAME, Some("340500"), None)).await;
    let mut bind = bind_child("bind-spouse", &spouse, SPOUSE_NAME);
    bind.relationship = Relationship::Spouse as i32;
    let binding = c
        .bindings
        .create_binding(bind)
        .await
        .expect("bind spouse")
        .into_inner()
        .binding
        .expect("binding");
    (spouse, binding)
}

/// The spouse's name.
pub const SPOUSE_NAME: &str = "赵刚";

/// Fen of a signed amount string.
pub fn fen(amount: &str) -> i64 {
    let (yuan, cents) = amount.split_once('.').expect("two places");
    let sign = if yuan.starts_with('-') { -1 } else { 1 };
    sign * (yuan.trim_start_matches('-').parse::<i64>().expect("yuan") * 100
        + cents.parse::<i64>().expect("fen"))
}
