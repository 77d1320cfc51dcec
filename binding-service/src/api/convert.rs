//! Wire <-> domain conversions.

use gongji_proto::binding::v1 as pb;
use gongji_shared::{
    CoverageYear, IdNumber, Relationship,
    policy::Purpose,
    rpc::{ApiError, auth::Caller, timestamp, validate},
};

use crate::domain::{
    Binding, BindingEvent, BindingKind, BindingState, BindingUse, Enrollment, EnrollmentStatus,
    Person, VerificationMethod,
};

/// A registry record as `caller` may see it: the name whole only for roles that need it.
pub fn person_to_pb(p: &Person, caller: &Caller) -> pb::InsuredPerson {
    let enrollment = |e: &Enrollment| pb::Enrollment {
        region_code: e.region.as_str().to_owned(),
        status: status_to_pb(e.status) as i32,
    };
    pb::InsuredPerson {
        id_number: p.id_number.as_str().to_owned(),
        name: caller.name(&p.name),
        employee_enrollment: p.employee.as_ref().map(enrollment),
        resident_enrollment: p.resident.as_ref().map(enrollment),
        update_time: Some(timestamp(p.update_time)),
        resident_paid_years: p.resident_paid_years.iter().map(|y| y.get()).collect(),
    }
}

pub fn use_to_pb(u: &BindingUse) -> pb::BindingUse {
    pb::BindingUse {
        movement_id: u.movement_id.clone(),
        binding_id: u.binding_id.clone(),
        binding_version: u.binding_version,
        purpose: purpose_to_pb(u.purpose) as i32,
        amount: u.amount.to_string(),
        use_time: Some(timestamp(u.use_time)),
    }
}

/// Most paid years one record carries.
const MAX_PAID_YEARS: usize = 100;

/// The paid years of a registry record: valid coverage years, each once, at most
/// [`MAX_PAID_YEARS`], kept ascending.
pub fn paid_years_from_pb(years: &[i32], field: &str) -> Result<Vec<CoverageYear>, ApiError> {
    if years.len() > MAX_PAID_YEARS {
        return Err(ApiError::invalid_argument(
            "INVALID_COVERAGE_YEAR",
            field,
            format!("at most {MAX_PAID_YEARS} paid years"),
        ));
    }
    let mut parsed = years
        .iter()
        .map(|y| validate::coverage_year(*y, field))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort_unstable();
    let before = parsed.len();
    parsed.dedup();
    if parsed.len() != before {
        return Err(ApiError::invalid_argument(
            "INVALID_COVERAGE_YEAR",
            field,
            "each paid year is given once",
        ));
    }
    Ok(parsed)
}

pub fn enrollment_from_pb(
    e: Option<&pb::Enrollment>,
    field: &str,
) -> Result<Option<Enrollment>, ApiError> {
    let Some(e) = e else { return Ok(None) };
    let status = match pb::EnrollmentStatus::try_from(e.status) {
        Ok(pb::EnrollmentStatus::Normal) => Some(EnrollmentStatus::Normal),
        Ok(pb::EnrollmentStatus::Suspended) => Some(EnrollmentStatus::Suspended),
        Ok(pb::EnrollmentStatus::Terminated) => Some(EnrollmentStatus::Terminated),
        _ => None,
    };
    Ok(Some(Enrollment {
        region: validate::region_code(&e.region_code, &format!("{field}.region_code"))?,
        status: validate::known_enum(
            status,
            e.status,
            "INVALID_ENROLLMENT_STATUS",
            &format!("{field}.status"),
        )?,
    }))
}

fn status_to_pb(s: EnrollmentStatus) -> pb::EnrollmentStatus {
    match s {
        EnrollmentStatus::Normal => pb::EnrollmentStatus::Normal,
        EnrollmentStatus::Suspended => pb::EnrollmentStatus::Suspended,
        EnrollmentStatus::Terminated => pb::EnrollmentStatus::Terminated,
    }
}

pub fn relationship_from_pb(raw: i32) -> Result<Relationship, ApiError> {
    let parsed = match pb::Relationship::try_from(raw) {
        Ok(pb::Relationship::Spouse) => Some(Relationship::Spouse),
        Ok(pb::Relationship::Parent) => Some(Relationship::Parent),
        Ok(pb::Relationship::Child) => Some(Relationship::Child),
        Ok(pb::Relationship::Sibling) => Some(Relationship::Sibling),
        Ok(pb::Relationship::Grandparent) => Some(Relationship::Grandparent),
        Ok(pb::Relationship::Grandchild) => Some(Relationship::Grandchild),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_RELATIONSHIP", "relationship")
}

fn relationship_to_pb(r: Relationship) -> pb::Relationship {
    match r {
        Relationship::Spouse => pb::Relationship::Spouse,
        Relationship::Parent => pb::Relationship::Parent,
        Relationship::Child => pb::Relationship::Child,
        Relationship::Sibling => pb::Relationship::Sibling,
        Relationship::Grandparent => pb::Relationship::Grandparent,
        Relationship::Grandchild => pb::Relationship::Grandchild,
    }
}

pub fn kind_from_pb(raw: i32) -> Result<BindingKind, ApiError> {
    let parsed = match pb::BindingKind::try_from(raw) {
        Ok(pb::BindingKind::FundsSharing) => Some(BindingKind::FundsSharing),
        Ok(pb::BindingKind::Proxy) => Some(BindingKind::Proxy),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_BINDING_KIND", "kind")
}

pub fn purpose_from_pb(raw: i32) -> Result<Purpose, ApiError> {
    let parsed = match pb::Purpose::try_from(raw) {
        Ok(pb::Purpose::Premium) => Some(Purpose::Premium),
        Ok(pb::Purpose::MedicalExpense) => Some(Purpose::MedicalExpense),
        Ok(pb::Purpose::FamilyWallet) => Some(Purpose::FamilyWallet),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_PURPOSE", "purpose")
}

pub fn purpose_to_pb(p: Purpose) -> pb::Purpose {
    match p {
        Purpose::Premium => pb::Purpose::Premium,
        Purpose::MedicalExpense => pb::Purpose::MedicalExpense,
        Purpose::FamilyWallet => pb::Purpose::FamilyWallet,
    }
}

pub fn state_from_pb(raw: i32) -> Result<BindingState, ApiError> {
    let parsed = match pb::BindingState::try_from(raw) {
        Ok(pb::BindingState::PendingReview) => Some(BindingState::PendingReview),
        Ok(pb::BindingState::PendingConsent) => Some(BindingState::PendingConsent),
        Ok(pb::BindingState::Active) => Some(BindingState::Active),
        Ok(pb::BindingState::Rejected) => Some(BindingState::Rejected),
        Ok(pb::BindingState::Revoked) => Some(BindingState::Revoked),
        Ok(pb::BindingState::Ended) => Some(BindingState::Ended),
        Ok(pb::BindingState::Declined) => Some(BindingState::Declined),
        Ok(pb::BindingState::Expired) => Some(BindingState::Expired),
        _ => None,
    };
    validate::known_enum(parsed, raw, "INVALID_FILTER", "states")
}

fn state_to_pb(s: BindingState) -> pb::BindingState {
    match s {
        BindingState::PendingReview => pb::BindingState::PendingReview,
        BindingState::PendingConsent => pb::BindingState::PendingConsent,
        BindingState::Active => pb::BindingState::Active,
        BindingState::Rejected => pb::BindingState::Rejected,
        BindingState::Revoked => pb::BindingState::Revoked,
        BindingState::Ended => pb::BindingState::Ended,
        BindingState::Declined => pb::BindingState::Declined,
        BindingState::Expired => pb::BindingState::Expired,
    }
}

/// A verification method the channel reports; `None` when it reports none.
pub fn verification_from_pb(raw: i32) -> Result<Option<VerificationMethod>, ApiError> {
    let parsed = match pb::VerificationMethod::try_from(raw) {
        Ok(pb::VerificationMethod::Unspecified) => return Ok(None),
        Ok(pb::VerificationMethod::FaceRecognition) => Some(VerificationMethod::FaceRecognition),
        Ok(pb::VerificationMethod::SmsCode) => Some(VerificationMethod::SmsCode),
        Ok(pb::VerificationMethod::Password) => Some(VerificationMethod::Password),
        Ok(pb::VerificationMethod::BirthCertificate) => Some(VerificationMethod::BirthCertificate),
        Ok(pb::VerificationMethod::InPerson) => Some(VerificationMethod::InPerson),
        Err(_) => None,
    };
    validate::known_enum(
        parsed,
        raw,
        "INVALID_VERIFICATION_METHOD",
        "verification_method",
    )
    .map(Some)
}

fn verification_to_pb(v: Option<VerificationMethod>) -> pb::VerificationMethod {
    match v {
        None => pb::VerificationMethod::Unspecified,
        Some(VerificationMethod::FaceRecognition) => pb::VerificationMethod::FaceRecognition,
        Some(VerificationMethod::SmsCode) => pb::VerificationMethod::SmsCode,
        Some(VerificationMethod::Password) => pb::VerificationMethod::Password,
        Some(VerificationMethod::BirthCertificate) => pb::VerificationMethod::BirthCertificate,
        Some(VerificationMethod::InPerson) => pb::VerificationMethod::InPerson,
    }
}

pub fn binding_to_pb(b: &Binding, history: &[BindingEvent]) -> pb::Binding {
    pb::Binding {
        binding_id: b.binding_id.clone(),
        authorizer_id_number: b.authorizer.as_str().to_owned(),
        beneficiary_id_number: b.beneficiary.as_str().to_owned(),
        beneficiary_name: b.beneficiary_name.as_str().to_owned(),
        relationship: relationship_to_pb(b.relationship) as i32,
        kind: match b.kind {
            BindingKind::FundsSharing => pb::BindingKind::FundsSharing,
            BindingKind::Proxy => pb::BindingKind::Proxy,
        } as i32,
        state: state_to_pb(b.state) as i32,
        version: b.version,
        create_time: Some(timestamp(b.create_time)),
        update_time: Some(timestamp(b.update_time)),
        state_reason: b.state_reason.clone(),
        history: history.iter().map(event_to_pb).collect(),
        limits: gongji_shared::rpc::limits::limits_to_pb(&b.limits),
        consent_expire_time: b.consent_expire_time.map(timestamp),
    }
}

pub fn event_to_pb(e: &BindingEvent) -> pb::BindingEvent {
    pb::BindingEvent {
        sequence: e.sequence,
        binding_id: e.binding_id.clone(),
        from_state: e
            .from_state
            .map_or(pb::BindingState::Unspecified, state_to_pb) as i32,
        to_state: state_to_pb(e.to_state) as i32,
        actor: e.actor.clone(),
        reason: e.reason.clone(),
        request_id: e.request_id.clone(),
        event_time: Some(timestamp(e.event_time)),
        binding_version: e.binding_version,
        caller: e.caller.clone(),
        acting_person_id_number: e
            .acting_person
            .as_deref()
            .and_then(|p| IdNumber::parse(p).ok())
            .map(|p| p.masked())
            .unwrap_or_default(),
        verification_method: verification_to_pb(e.verification) as i32,
    }
}
