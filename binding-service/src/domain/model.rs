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
    Active,
    Rejected,
    Revoked,
    Ended,
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
            Self::Active => "ACTIVE",
            Self::Rejected => "REJECTED",
            Self::Revoked => "REVOKED",
            Self::Ended => "ENDED",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING_REVIEW" => Some(Self::PendingReview),
            "ACTIVE" => Some(Self::Active),
            "REJECTED" => Some(Self::Rejected),
            "REVOKED" => Some(Self::Revoked),
            "ENDED" => Some(Self::Ended),
            _ => None,
        }
    }

    /// Live bindings count against duplicates and the cap.
    pub fn is_live(self) -> bool {
        matches!(self, Self::PendingReview | Self::Active)
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
