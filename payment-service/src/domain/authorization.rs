//! What binding-service tells payment-service, in payment-service's own terms: the
//! registry facts about a person, and the answer to "may this account pay for that person".

use gongji_shared::{CoverageYear, RegionCode};

/// One enrollment as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub region: RegionCode,
    /// A terminated enrollment insures nobody; a suspended one still exists.
    pub terminated: bool,
}

impl Enrollment {
    /// Whether the enrollment has not ended.
    pub fn is_live(&self) -> bool {
        !self.terminated
    }
}

/// A person's enrollments, as the registry holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsuredPerson {
    /// The name the registry holds; `None` when it gave none this service can show (a
    /// masked one, where the callers file does not let this service see names).
    pub name: Option<gongji_shared::PersonName>,
    pub employee: Option<Enrollment>,
    pub resident: Option<Enrollment>,
    /// Resident-insurance years paid through any channel, as the core system syncs them
    /// (P5): paid whoever paid them.
    pub paid_years: Vec<CoverageYear>,
}

impl InsuredPerson {
    /// The employee enrollment, if it has not ended.
    pub fn live_employee(&self) -> Option<&Enrollment> {
        self.employee.as_ref().filter(|e| e.is_live())
    }
}

/// Why binding-service said no; reasons are its own (B1 to B6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: String,
    pub message: String,
}

/// binding-service's answer to "may the authorizer's account pay for the beneficiary".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Empty when the binding authorizes; otherwise every reason it does not.
    pub denials: Vec<Denial>,
    /// The funds-sharing binding the answer is about (empty when there is none).
    pub binding_id: String,
    pub binding_version: i64,
    pub authorizer_region: Option<RegionCode>,
    /// Where the beneficiary is insured: their premium and institutions are paid there.
    pub beneficiary_region: Option<RegionCode>,
    /// The beneficiary's registry record, if the registry knows them.
    pub beneficiary: Option<InsuredPerson>,
    /// The caps the debit must keep within (the binding's, or the policy's defaults).
    pub limits: gongji_shared::domain::limits::FamilyLimits,
}

impl Authorization {
    /// Whether money may move.
    pub fn is_authorized(&self) -> bool {
        self.denials.is_empty()
    }
}
