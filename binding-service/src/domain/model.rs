//! The registry and binding model.

use chrono::{DateTime, Utc};
use gongji_shared::{
    CoverageYear, IdNumber, PersonName, RegionCode, Relationship, policy::Purpose,
};

/// The state of one enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentStatus {
    Normal,
    Suspended,
    Terminated,
}

/// One enrollment: region and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub region: RegionCode,
    pub status: EnrollmentStatus,
}

/// A registry record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id_number: IdNumber,
    pub name: PersonName,
    pub employee: Option<Enrollment>,
    pub resident: Option<Enrollment>,
    /// Resident-insurance years already paid, through this system or any other channel (the
    /// tax bureau, a counter), as the core insurance system syncs them (P5).
    pub resident_paid_years: Vec<CoverageYear>,
    pub update_time: DateTime<Utc>,
}

/// FUNDS_SHARING (家庭共济) or PROXY (亲情账户, never money).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingKind {
    FundsSharing,
    Proxy,
}

/// The lifecycle of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingState {
    PendingReview,
    /// Waiting for the beneficiary to accept (B5, two-party consent).
    PendingConsent,
    Active,
    Rejected,
    Revoked,
    Ended,
    /// The beneficiary declined it.
    Declined,
    /// The beneficiary did not answer in time.
    Expired,
}

/// How a channel verified the person who consented (the channel verifies; this system keeps
/// what it reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationMethod {
    FaceRecognition,
    SmsCode,
    Password,
    /// A guardian's proof of a child's birth.
    BirthCertificate,
    /// At a counter, with the identity card.
    InPerson,
}

/// A binding between an authorizer and a beneficiary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub binding_id: String,
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub beneficiary_name: PersonName,
    pub relationship: Relationship,
    pub kind: BindingKind,
    pub state: BindingState,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub state_reason: String,
    /// The authorizer's caps on what the binding may take (funds sharing only).
    pub limits: gongji_shared::domain::limits::FamilyLimits,
    /// Until when a binding waiting for the beneficiary's consent may be accepted.
    pub consent_expire_time: Option<DateTime<Utc>>,
}

/// A family debit a binding authorized (P1), recorded with the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingUse {
    /// payment-service's movement of the debit: one use each.
    pub movement_id: String,
    pub binding_id: String,
    /// The binding's version when the use was recorded.
    pub binding_version: i64,
    pub purpose: Purpose,
    pub amount: gongji_shared::Money,
    pub use_time: DateTime<Utc>,
}

/// One append-only audit record of a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingEvent {
    /// Assigned by the store on commit (0 before).
    pub sequence: i64,
    pub binding_id: String,
    pub from_state: Option<BindingState>,
    pub to_state: BindingState,
    pub actor: String,
    pub reason: String,
    pub request_id: String,
    pub event_time: DateTime<Utc>,
    pub binding_version: i64,
    /// Who caused it, as the store recorded it: the authenticated caller (empty before it
    /// is written) and the person it acted for.
    pub caller: String,
    pub acting_person: Option<String>,
    /// How the channel verified the person acting, as it reported (a consent's evidence).
    pub verification: Option<VerificationMethod>,
}

impl Person {
    /// The region a person is insured in (B3): an enrollment inside `province` first, so
    /// that someone with employee insurance in Anhui and resident insurance elsewhere is
    /// insured in Anhui; among equals, resident enrollment before employee. Only enrollments
    /// that have not terminated count.
    pub fn insured_region(&self, province: &str) -> Option<&RegionCode> {
        let live = || {
            [&self.resident, &self.employee]
                .into_iter()
                .flatten()
                .filter(|e| e.status != EnrollmentStatus::Terminated)
        };
        live()
            .find(|e| e.region.province() == province)
            .or_else(|| live().next())
            .map(|e| &e.region)
    }
}

impl EnrollmentStatus {
    /// Storage and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Suspended => "SUSPENDED",
            Self::Terminated => "TERMINATED",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NORMAL" => Some(Self::Normal),
            "SUSPENDED" => Some(Self::Suspended),
            "TERMINATED" => Some(Self::Terminated),
            _ => None,
        }
    }
}

impl BindingKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FundsSharing => "FUNDS_SHARING",
            Self::Proxy => "PROXY",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FUNDS_SHARING" => Some(Self::FundsSharing),
            "PROXY" => Some(Self::Proxy),
            _ => None,
        }
    }
}

impl BindingState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingReview => "PENDING_REVIEW",
            Self::PendingConsent => "PENDING_CONSENT",
            Self::Active => "ACTIVE",
            Self::Rejected => "REJECTED",
            Self::Revoked => "REVOKED",
            Self::Ended => "ENDED",
            Self::Declined => "DECLINED",
            Self::Expired => "EXPIRED",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING_REVIEW" => Some(Self::PendingReview),
            "PENDING_CONSENT" => Some(Self::PendingConsent),
            "ACTIVE" => Some(Self::Active),
            "REJECTED" => Some(Self::Rejected),
            "REVOKED" => Some(Self::Revoked),
            "ENDED" => Some(Self::Ended),
            "DECLINED" => Some(Self::Declined),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }

    /// Live bindings count against duplicates and the cap.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::PendingReview | Self::PendingConsent | Self::Active
        )
    }
}

impl VerificationMethod {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FaceRecognition => "FACE_RECOGNITION",
            Self::SmsCode => "SMS_CODE",
            Self::Password => "PASSWORD",
            Self::BirthCertificate => "BIRTH_CERTIFICATE",
            Self::InPerson => "IN_PERSON",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FACE_RECOGNITION" => Some(Self::FaceRecognition),
            "SMS_CODE" => Some(Self::SmsCode),
            "PASSWORD" => Some(Self::Password),
            "BIRTH_CERTIFICATE" => Some(Self::BirthCertificate),
            "IN_PERSON" => Some(Self::InPerson),
            _ => None,
        }
    }
}

/// What a purpose is called in denials.
pub fn purpose_name(purpose: Purpose) -> &'static str {
    purpose.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(region: &str, status: EnrollmentStatus) -> Option<Enrollment> {
        Some(Enrollment {
            region: RegionCode::parse(region).unwrap(),
            status,
        })
    }

    fn person(employee: Option<Enrollment>, resident: Option<Enrollment>) -> Person {
        Person {
            id_number: IdNumber::parse("34052419800101001X").unwrap(),
            name: PersonName::parse("王芳").unwrap(),
            employee,
            resident,
            resident_paid_years: Vec::new(),
            update_time: Utc::now(),
        }
    }

    #[test]
    fn an_enrollment_in_the_province_decides_the_insured_region() {
        let both = person(
            enrollment("340500", EnrollmentStatus::Normal),
            enrollment("110105", EnrollmentStatus::Normal),
        );
        assert_eq!(both.insured_region("34").unwrap().as_str(), "340500");
        assert_eq!(both.insured_region("11").unwrap().as_str(), "110105");
        let resident_first = person(
            enrollment("340500", EnrollmentStatus::Normal),
            enrollment("340100", EnrollmentStatus::Normal),
        );
        assert_eq!(
            resident_first.insured_region("34").unwrap().as_str(),
            "340100"
        );
        let elsewhere = person(None, enrollment("110105", EnrollmentStatus::Normal));
        assert_eq!(elsewhere.insured_region("34").unwrap().as_str(), "110105");
        let ended = person(enrollment("340500", EnrollmentStatus::Terminated), None);
        assert_eq!(ended.insured_region("34"), None);
    }
}
