//! The checks of CreateBinding and CheckAuthorization. Each returns every failed rule, in a
//! fixed order, so a caller can report them all at once.

use gongji_shared::{
    IdNumber, PersonName, Relationship,
    policy::{BindingRules, Purpose},
};

use super::{Binding, BindingKind, BindingState, EnrollmentStatus, Person};

/// One failed rule. `reason()` is its UPPER_SNAKE code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No policy version is in force today.
    NoPolicyInForce,
    AuthorizerNotFound,
    AuthorizerNotEmployeeInsured,
    AuthorizerStatusAbnormal,
    AuthorizerNoBalance,
    BeneficiaryNotFound,
    NameMismatch,
    BeneficiaryNotInsured,
    RegionNotAllowed,
    RelationshipNotAllowed,
    PurposeNotAllowed,
    SelfBinding,
    BindingAlreadyExists,
    BindingLimitReached,
    BindingNotFound,
    BindingNotActive,
}

impl Failure {
    /// The reason code (AIP-193 ErrorInfo reason, PreconditionFailure violation type).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoPolicyInForce => "NO_POLICY_IN_FORCE",
            Self::AuthorizerNotFound | Self::BeneficiaryNotFound => "PERSON_NOT_FOUND",
            Self::AuthorizerNotEmployeeInsured => "AUTHORIZER_NOT_EMPLOYEE_INSURED",
            Self::AuthorizerStatusAbnormal => "AUTHORIZER_STATUS_ABNORMAL",
            Self::AuthorizerNoBalance => "AUTHORIZER_NO_BALANCE",
            Self::NameMismatch => "NAME_MISMATCH",
            Self::BeneficiaryNotInsured => "BENEFICIARY_NOT_INSURED",
            Self::RegionNotAllowed => "REGION_NOT_ALLOWED",
            Self::RelationshipNotAllowed => "RELATIONSHIP_NOT_ALLOWED",
            Self::PurposeNotAllowed => "PURPOSE_NOT_ALLOWED",
            Self::SelfBinding => "SELF_BINDING",
            Self::BindingAlreadyExists => "BINDING_ALREADY_EXISTS",
            Self::BindingLimitReached => "BINDING_LIMIT_REACHED",
            Self::BindingNotFound => "BINDING_NOT_FOUND",
            Self::BindingNotActive => "BINDING_NOT_ACTIVE",
        }
    }

    /// Which party the rule is about.
    pub fn subject(self) -> &'static str {
        match self {
            Self::AuthorizerNotFound
            | Self::AuthorizerNotEmployeeInsured
            | Self::AuthorizerStatusAbnormal
            | Self::AuthorizerNoBalance
            | Self::BindingLimitReached => "authorizer",
            Self::BeneficiaryNotFound
            | Self::NameMismatch
            | Self::BeneficiaryNotInsured
            | Self::RegionNotAllowed => "beneficiary",
            Self::RelationshipNotAllowed => "relationship",
            Self::PurposeNotAllowed => "purpose",
            Self::NoPolicyInForce => "policy",
            Self::SelfBinding
            | Self::BindingAlreadyExists
            | Self::BindingNotFound
            | Self::BindingNotActive => "binding",
        }
    }

    /// A sentence for operators; never personal data.
    pub fn description(self) -> &'static str {
        match self {
            Self::NoPolicyInForce => "no policy version is in force today",
            Self::AuthorizerNotFound => "the authorizer is not in the registry",
            Self::AuthorizerNotEmployeeInsured => {
                "the authorizer has no employee insurance in the policy's province"
            }
            Self::AuthorizerStatusAbnormal => "the authorizer's employee insurance is not NORMAL",
            Self::AuthorizerNoBalance => "the authorizer's personal account has no usable balance",
            Self::BeneficiaryNotFound => "the beneficiary is not in the registry",
            Self::NameMismatch => "the beneficiary's name does not match the registry",
            Self::BeneficiaryNotInsured => {
                "the beneficiary has no resident or employee insurance in force"
            }
            Self::RegionNotAllowed => {
                "the beneficiary is insured outside the scope the policy allows"
            }
            Self::RelationshipNotAllowed => "the policy in force does not allow this relationship",
            Self::PurposeNotAllowed => {
                "the policy in force does not allow funds sharing for this purpose"
            }
            Self::SelfBinding => "a person cannot bind to themselves",
            Self::BindingAlreadyExists => "a live binding of this kind already exists for the pair",
            Self::BindingLimitReached => "the authorizer has reached the policy's beneficiary cap",
            Self::BindingNotFound => "there is no funds-sharing binding for the pair",
            Self::BindingNotActive => "the funds-sharing binding for the pair is not ACTIVE",
        }
    }
}

/// What CreateBinding decides on.
pub struct CreateFacts<'a> {
    pub rules: Option<&'a BindingRules>,
    pub province: &'a str,
    pub authorizer_id: &'a IdNumber,
    pub authorizer: Option<&'a Person>,
    /// The authorizer's usable balance in fen; asked only for FUNDS_SHARING.
    pub authorizer_usable_fen: Option<i64>,
    pub beneficiary_id: &'a IdNumber,
    pub beneficiary: Option<&'a Person>,
    pub beneficiary_name: &'a PersonName,
    pub relationship: Relationship,
    pub kind: BindingKind,
    /// Every live binding of the authorizer.
    pub authorizer_live_bindings: &'a [Binding],
}

/// Every rule a new binding fails, in a fixed order.
pub fn check_create(f: &CreateFacts<'_>) -> Vec<Failure> {
    let mut failures = Vec::new();
    let funds = f.kind == BindingKind::FundsSharing;
    let Some(rules) = f.rules else {
        return vec![Failure::NoPolicyInForce];
    };
    match f.authorizer {
        None => failures.push(Failure::AuthorizerNotFound),
        Some(authorizer) if funds => failures.extend(authorizer_failures(authorizer, f.province)),
        Some(_) => {}
    }
    if funds && f.authorizer_usable_fen.unwrap_or(0) <= 0 {
        failures.push(Failure::AuthorizerNoBalance);
    }
    match f.beneficiary {
        None => failures.push(Failure::BeneficiaryNotFound),
        Some(beneficiary) => {
            if beneficiary.name != *f.beneficiary_name {
                failures.push(Failure::NameMismatch);
            }
            failures.extend(beneficiary_failures(beneficiary, rules, f.province, f.kind));
        }
    }
    if funds && !rules.allowed_relationships.contains(&f.relationship) {
        failures.push(Failure::RelationshipNotAllowed);
    }
    if f.authorizer_id == f.beneficiary_id {
        failures.push(Failure::SelfBinding);
    }
    let live = f.authorizer_live_bindings;
    if live
        .iter()
        .any(|b| b.beneficiary == *f.beneficiary_id && b.kind == f.kind)
    {
        failures.push(Failure::BindingAlreadyExists);
    }
    if funds {
        let mut others: Vec<&IdNumber> = live
            .iter()
            .filter(|b| b.kind == BindingKind::FundsSharing && b.beneficiary != *f.beneficiary_id)
            .map(|b| &b.beneficiary)
            .collect();
        others.sort();
        others.dedup();
        if others.len() >= rules.max_beneficiaries as usize {
            failures.push(Failure::BindingLimitReached);
        }
    }
    failures
}

/// What CheckAuthorization decides on.
pub struct AuthorizationFacts<'a> {
    pub rules: Option<&'a BindingRules>,
    pub province: &'a str,
    pub purpose: Purpose,
    pub authorizer: Option<&'a Person>,
    pub beneficiary: Option<&'a Person>,
    /// The pair's FUNDS_SHARING binding: the live one, else the latest.
    pub binding: Option<&'a Binding>,
}

/// Every reason the authorizer's account may not pay for the beneficiary now; empty when it may.
pub fn check_authorization(f: &AuthorizationFacts<'_>) -> Vec<Failure> {
    let mut failures = Vec::new();
    let Some(rules) = f.rules else {
        return vec![Failure::NoPolicyInForce];
    };
    match f.binding {
        None => failures.push(Failure::BindingNotFound),
        Some(b) if b.state != BindingState::Active => failures.push(Failure::BindingNotActive),
        Some(b) if !rules.allowed_relationships.contains(&b.relationship) => {
            failures.push(Failure::RelationshipNotAllowed)
        }
        Some(_) => {}
    }
    match f.authorizer {
        None => failures.push(Failure::AuthorizerNotFound),
        Some(a) => failures.extend(authorizer_failures(a, f.province)),
    }
    match f.beneficiary {
        None => failures.push(Failure::BeneficiaryNotFound),
        Some(b) => failures.extend(beneficiary_failures(
            b,
            rules,
            f.province,
            BindingKind::FundsSharing,
        )),
    }
    // U4: a beneficiary insured in another province is served by the family wallet only, and
    // the wallet serves only such a beneficiary.
    let elsewhere = f
        .beneficiary
        .and_then(|b| b.insured_region(f.province))
        .is_some_and(|r| r.province() != f.province);
    let wallet = f.purpose == Purpose::FamilyWallet;
    if !rules.purposes.contains(&f.purpose)
        || (elsewhere != wallet && !failures.contains(&Failure::RegionNotAllowed))
    {
        failures.push(Failure::PurposeNotAllowed);
    }
    failures
}

/// B1: employee insurance in the province, status NORMAL.
fn authorizer_failures(authorizer: &Person, province: &str) -> Option<Failure> {
    match &authorizer.employee {
        Some(e) if e.region.province() == province && e.status == EnrollmentStatus::Normal => None,
        Some(e) if e.region.province() == province && e.status == EnrollmentStatus::Suspended => {
            Some(Failure::AuthorizerStatusAbnormal)
        }
        _ => Some(Failure::AuthorizerNotEmployeeInsured),
    }
}

/// B3: enrolled (not terminated), inside the allowed scope for funds sharing.
fn beneficiary_failures(
    beneficiary: &Person,
    rules: &BindingRules,
    province: &str,
    kind: BindingKind,
) -> Option<Failure> {
    let Some(region) = beneficiary.insured_region(province) else {
        return Some(Failure::BeneficiaryNotInsured);
    };
    let cross_province_ok = kind == BindingKind::Proxy || rules.cross_province_funds_sharing;
    (region.province() != province && !cross_province_ok).then_some(Failure::RegionNotAllowed)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use gongji_shared::{Policy, RegionCode};

    use super::*;
    use crate::domain::Enrollment;

    const EMPLOYEE: &str = "34052419800101001X";
    const CHILD: &str = "11010519491231002X";

    fn person(
        id: &str,
        name: &str,
        employee: Option<(&str, EnrollmentStatus)>,
        resident: Option<&str>,
    ) -> Person {
        let enrollment = |region: &str, status| Enrollment {
            region: RegionCode::parse(region).unwrap(),
            status,
        };
        Person {
            id_number: IdNumber::parse(id).unwrap(),
            name: PersonName::parse(name).unwrap(),
            employee: employee.map(|(r, s)| enrollment(r, s)),
            resident: resident.map(|r| enrollment(r, EnrollmentStatus::Normal)),
            resident_paid_years: Vec::new(),
            update_time: Utc::now(),
        }
    }

    fn rules_2025() -> BindingRules {
        Policy::anhui_default()
            .unwrap()
            .rules_on("2025-01-01".parse().unwrap())
            .unwrap()
            .clone()
    }

    fn create(
        authorizer: &Person,
        beneficiary: &Person,
        name: &str,
        relationship: Relationship,
        balance: i64,
    ) -> Vec<Failure> {
        let rules = rules_2025();
        let name = PersonName::parse(name).unwrap();
        check_create(&CreateFacts {
            rules: Some(&rules),
            province: "34",
            authorizer_id: &authorizer.id_number,
            authorizer: Some(authorizer),
            authorizer_usable_fen: Some(balance),
            beneficiary_id: &beneficiary.id_number,
            beneficiary: Some(beneficiary),
            beneficiary_name: &name,
            relationship,
            kind: BindingKind::FundsSharing,
            authorizer_live_bindings: &[],
        })
    }

    #[test]
    fn the_seed_family_passes() {
        let parent = person(
            EMPLOYEE,
            "张伟",
            Some(("340500", EnrollmentStatus::Normal)),
            None,
        );
        let child = person(CHILD, "张小明", None, Some("340100"));
        assert_eq!(
            create(&parent, &child, "张小明", Relationship::Child, 100),
            vec![]
        );
    }

    #[test]
    fn every_failure_is_reported_at_once() {
        let parent = person(
            EMPLOYEE,
            "张伟",
            Some(("340500", EnrollmentStatus::Suspended)),
            None,
        );
        let child = person(CHILD, "张小明", None, Some("320500"));
        assert_eq!(
            create(&parent, &child, "李四", Relationship::Sibling, 0),
            vec![
                Failure::AuthorizerStatusAbnormal,
                Failure::AuthorizerNoBalance,
                Failure::NameMismatch,
                Failure::RegionNotAllowed,
                Failure::RelationshipNotAllowed,
            ]
        );
    }

    #[test]
    fn an_employee_outside_anhui_cannot_lend() {
        let parent = person(
            EMPLOYEE,
            "张伟",
            Some(("320500", EnrollmentStatus::Normal)),
            None,
        );
        let child = person(CHILD, "张小明", None, Some("340500"));
        assert_eq!(
            create(&parent, &child, "张小明", Relationship::Child, 100),
            vec![Failure::AuthorizerNotEmployeeInsured]
        );
    }

    #[test]
    fn a_terminated_beneficiary_is_not_insured() {
        let parent = person(
            EMPLOYEE,
            "张伟",
            Some(("340500", EnrollmentStatus::Normal)),
            None,
        );
        let mut child = person(CHILD, "张小明", None, Some("340500"));
        child.resident.as_mut().unwrap().status = EnrollmentStatus::Terminated;
        assert_eq!(
            create(&parent, &child, "张小明", Relationship::Child, 100),
            vec![Failure::BeneficiaryNotInsured]
        );
    }

    #[test]
    fn binding_to_oneself_is_refused() {
        let parent = person(
            EMPLOYEE,
            "张伟",
            Some(("340500", EnrollmentStatus::Normal)),
            None,
        );
        assert!(
            create(&parent, &parent, "张伟", Relationship::Spouse, 100)
                .contains(&Failure::SelfBinding)
        );
    }
}
