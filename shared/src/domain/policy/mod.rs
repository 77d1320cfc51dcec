//! The policy model: every rule that varies by year or region, loaded from a TOML file.
//!
//! The Anhui default (`deploy/policy/anhui.toml`) is compiled in. A file that is malformed
//! or inconsistent is refused with a message naming its line, so a bad policy stops start-up
//! instead of moving money by wrong rules.

mod file;

use std::{collections::BTreeMap, fmt, path::Path};

use chrono::NaiveDate;

use crate::domain::{CoverageYear, Money, RegionCode, Relationship};

pub use file::PolicyError;

/// The default policy's source, compiled in.
pub const ANHUI_DEFAULT_TOML: &str = include_str!("../../../../deploy/policy/anhui.toml");

/// A policy: binding rules by date, premiums by coverage year and region, waiting periods.
#[derive(Debug, Clone)]
pub struct Policy {
    province_code: String,
    /// Sorted by `effective_from`, strictly increasing.
    rules: Vec<BindingRules>,
    premiums: BTreeMap<CoverageYear, PremiumYear>,
    waiting_period: WaitingPeriod,
    pooling: Pooling,
    continuity_incentive: Option<ContinuityIncentive>,
    family_limits: FamilyLimitPolicy,
}

/// What the policy says of authorizer limits: the largest monthly and yearly cap an
/// authorizer may set, and the overall caps of a binding whose authorizer set none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyLimitPolicy {
    pub max_monthly: Option<Money>,
    pub max_yearly: Option<Money>,
    pub defaults: crate::domain::limits::FamilyLimits,
}

impl FamilyLimitPolicy {
    /// The largest cap the policy allows over `period`, if it sets one.
    pub fn maximum(&self, period: crate::domain::limits::LimitPeriod) -> Option<Money> {
        match period {
            crate::domain::limits::LimitPeriod::Month => self.max_monthly,
            crate::domain::limits::LimitPeriod::Year => self.max_yearly,
        }
    }
}

/// The continuity incentive (连续参保激励, U3): after `qualifying_years` continuous years of
/// resident insurance, each further continuous year raises the critical-illness cap by
/// `raise_per_year`; a year without cover loses what was accumulated. Figures with their
/// source; `unconfirmed` when no official source confirms them yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuityIncentive {
    pub qualifying_years: u32,
    pub raise_per_year: Money,
    pub source: String,
    pub unconfirmed: bool,
}

/// How region codes map to pooling regions (统筹区, P2): the city (its first four digits
/// and "00"), unless the policy lists an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pooling {
    pub(crate) province: String,
    pub(crate) exceptions: BTreeMap<RegionCode, RegionCode>,
}

impl Pooling {
    /// The pooling region of `region`; `None` outside the policy's province.
    pub(crate) fn pool_of(&self, region: &RegionCode) -> Option<RegionCode> {
        if region.province() != self.province {
            return None;
        }
        if let Some(pool) = self.exceptions.get(region) {
            return Some(pool.clone());
        }
        RegionCode::parse(&format!("{}00", region.city())).ok()
    }
}

/// The binding rules of one policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRules {
    pub effective_from: NaiveDate,
    pub allowed_relationships: Vec<Relationship>,
    pub cross_province_funds_sharing: bool,
    /// Buckets family may use, in drawing order; never empty, no repeats.
    pub usable_buckets: Vec<Bucket>,
    pub max_beneficiaries: u32,
    pub review_mode: ReviewMode,
    pub purposes: Vec<Purpose>,
    /// Two-party consent (B5, national notice of 2026): when set, a binding to a beneficiary of
    /// this age or older waits for the beneficiary to accept it.
    pub consent: Option<ConsentRule>,
    /// The cross-province family wallet (U4): when set, an authorizer may transfer money into
    /// the wallet of a relative insured in another province, within these figures.
    pub wallet: Option<WalletRule>,
}

/// The figures of the cross-province family wallet (U2, U4); every one UNCONFIRMED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletRule {
    /// Most one transfer moves.
    pub max_per_transfer: Money,
    /// Most transfers an authorizer makes in one day (Asia/Shanghai).
    pub max_transfers_per_day: u32,
    /// Transfers are taken from this time of day (Asia/Shanghai), inclusive...
    pub open_from: chrono::NaiveTime,
    /// ...until this one, exclusive.
    pub open_until: chrono::NaiveTime,
    /// A transfer the receiving province has not confirmed within this many hours goes back.
    pub confirm_within_hours: u32,
}

impl WalletRule {
    /// Whether transfers are taken at `time` of day.
    pub fn is_open(&self, time: chrono::NaiveTime) -> bool {
        self.open_from <= time && time < self.open_until
    }
}

/// When a beneficiary must accept a binding, and how long the request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentRule {
    /// Beneficiaries of this age (whole years) or older accept; younger ones are bound by
    /// their parent as guardian.
    pub from_age: u32,
    /// A request not answered within this many days expires.
    pub expiry_days: u32,
}

/// A part of a personal account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// 当年: credited this year.
    CurrentYear,
    /// 历年结余: surplus of earlier years.
    PriorYears,
}

/// How binding applications are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewMode {
    /// All checks pass: ACTIVE at once.
    Automatic,
    /// PENDING_REVIEW until an operator approves or rejects.
    Manual,
}

/// What a funds-sharing binding may pay for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    Premium,
    MedicalExpense,
    /// A transfer into a relative's family mutual-aid wallet in another province (U4).
    FamilyWallet,
}

/// Inclusive range of Asia/Shanghai dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The premium of one coverage year: a province default and city overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PremiumYear {
    default: PremiumRate,
    overrides: BTreeMap<RegionCode, PremiumRate>,
}

/// What a beneficiary of one region pays for one coverage year, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PremiumRate {
    pub amount: Money,
    pub window: DateWindow,
}

/// Waiting-period parameters (P7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingPeriod {
    pub fixed_months: u32,
    pub variable_months_per_gap_year: u32,
    pub first_gap_year_counts: bool,
    pub months_removed_per_back_paid_year: u32,
    pub newborn_grace_days: u32,
    /// A back-payment (补缴) reaches at most this many years before the current one.
    pub max_back_payment_years: u32,
}

impl Policy {
    /// The compiled-in Anhui default.
    pub fn anhui_default() -> Result<Self, PolicyError> {
        Self::parse(ANHUI_DEFAULT_TOML, "deploy/policy/anhui.toml")
    }

    /// The policy file named at start-up, or the compiled-in default when none is.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, PolicyError> {
        match path {
            Some(path) => Self::load(path),
            None => Self::anhui_default(),
        }
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::unreadable(&origin, &e.to_string()))?;
        Self::parse(&source, &origin)
    }

    /// Parses and validates policy text; `origin` names it in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Self, PolicyError> {
        file::parse(source, origin)
    }

    /// The province whose employee insurance may lend accounts ("34").
    pub fn province_code(&self) -> &str {
        &self.province_code
    }

    /// The binding rules in force on `date`, if any version is.
    pub fn rules_on(&self, date: NaiveDate) -> Option<&BindingRules> {
        self.rules.iter().rev().find(|r| r.effective_from <= date)
    }

    /// The premium terms of `region` for `year`: its city override, else the province default.
    pub fn premium_rate(&self, year: CoverageYear, region: &RegionCode) -> Option<PremiumRate> {
        let pool = self.pooling_region(region)?;
        let premium_year = self.premiums.get(&year)?;
        Some(
            premium_year
                .overrides
                .get(&pool)
                .copied()
                .unwrap_or(premium_year.default),
        )
    }

    /// The pooling region (统筹区) whose figures apply to `region` (P2): its city unless the
    /// policy says otherwise; `None` for a region outside the policy's province, which
    /// never gets this province's figures.
    pub fn pooling_region(&self, region: &RegionCode) -> Option<RegionCode> {
        self.pooling.pool_of(region)
    }

    /// The first coverage year the policy has a premium for.
    pub fn first_coverage_year(&self) -> Option<CoverageYear> {
        self.premiums.keys().next().copied()
    }

    /// Waiting-period parameters.
    pub fn waiting_period(&self) -> WaitingPeriod {
        self.waiting_period
    }

    /// Authorizer limits: maxima and defaults.
    pub fn family_limits(&self) -> &FamilyLimitPolicy {
        &self.family_limits
    }

    /// The continuity incentive, when the policy states one.
    pub fn continuity_incentive(&self) -> Option<&ContinuityIncentive> {
        self.continuity_incentive.as_ref()
    }
}

impl DateWindow {
    /// Whether `date` falls inside, both ends included.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl Bucket {
    /// The UPPER_SNAKE name used in policy files and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CurrentYear => "CURRENT_YEAR",
            Self::PriorYears => "PRIOR_YEARS",
        }
    }

    /// Parses the UPPER_SNAKE name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "CURRENT_YEAR" => Some(Self::CurrentYear),
            "PRIOR_YEARS" => Some(Self::PriorYears),
            _ => None,
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Purpose {
    /// The UPPER_SNAKE name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Premium => "PREMIUM",
            Self::MedicalExpense => "MEDICAL_EXPENSE",
            Self::FamilyWallet => "FAMILY_WALLET",
        }
    }

    /// The purpose of an UPPER_SNAKE name, as stored.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Premium, Self::MedicalExpense, Self::FamilyWallet]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn region(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn the_default_policy_loads() {
        let policy = Policy::anhui_default().unwrap();
        assert_eq!(policy.province_code(), "34");
    }

    #[test]
    fn siblings_are_refused_in_2025_and_allowed_from_2026() {
        let policy = Policy::anhui_default().unwrap();
        let in_2025 = policy.rules_on(date("2025-06-01")).unwrap();
        let in_2026 = policy.rules_on(date("2026-01-01")).unwrap();
        assert!(
            !in_2025
                .allowed_relationships
                .contains(&Relationship::Sibling)
        );
        assert!(
            in_2026
                .allowed_relationships
                .contains(&Relationship::Sibling)
        );
        assert!(policy.rules_on(date("2023-12-31")).is_none());
    }

    #[test]
    fn maanshan_has_its_own_2025_window_and_other_cities_the_province_one() {
        let policy = Policy::anhui_default().unwrap();
        let year = CoverageYear::parse(2025).unwrap();
        let maanshan = policy.premium_rate(year, &region("340500")).unwrap();
        assert_eq!(maanshan.amount.to_string(), "400.00");
        assert_eq!(maanshan.window.start, date("2024-09-05"));
        assert_eq!(maanshan.window.end, date("2024-12-31"));
        let hefei = policy.premium_rate(year, &region("340100")).unwrap();
        assert_eq!(hefei.window.end, date("2025-02-28"));
    }

    #[test]
    fn a_county_gets_its_city_s_figures_and_another_province_none() {
        let policy = Policy::anhui_default().unwrap();
        let year = CoverageYear::parse(2025).unwrap();
        let county = policy.premium_rate(year, &region("340521")).unwrap();
        assert_eq!(county.window.end, date("2024-12-31"), "Ma'anshan's window");
        assert_eq!(
            policy.pooling_region(&region("340521")),
            Some(region("340500"))
        );
        assert_eq!(policy.pooling_region(&region("110105")), None);
        assert!(policy.premium_rate(year, &region("110105")).is_none());
    }

    #[test]
    fn exceptions_and_figures_follow_pooling_regions() {
        let text = ANHUI_DEFAULT_TOML.replace(
            "exceptions = []",
            "[[pooling.exceptions]]\nregion_code = \"340521\"\npooling_region = \"340521\"",
        );
        let policy = Policy::parse(&text, "test").unwrap();
        assert_eq!(
            policy.pooling_region(&region("340521")),
            Some(region("340521"))
        );
        let year = CoverageYear::parse(2025).unwrap();
        let own = policy.premium_rate(year, &region("340521")).unwrap();
        assert_eq!(
            own.window.end,
            date("2025-02-28"),
            "the province default, not Ma'anshan's"
        );
        let county_figures =
            ANHUI_DEFAULT_TOML.replacen("region_code = \"340500\"", "region_code = \"340521\"", 1);
        let error = Policy::parse(&county_figures, "test")
            .unwrap_err()
            .to_string();
        assert!(error.contains("pools with 340500"), "{error}");
    }

    #[test]
    fn years_without_a_premium_have_no_terms() {
        let policy = Policy::anhui_default().unwrap();
        let year = CoverageYear::parse(2030).unwrap();
        assert!(policy.premium_rate(year, &region("340500")).is_none());
    }

    #[test]
    fn the_usable_buckets_of_the_default_are_prior_years_only() {
        let policy = Policy::anhui_default().unwrap();
        let rules = policy.rules_on(date("2025-01-01")).unwrap();
        assert_eq!(rules.usable_buckets, vec![Bucket::PriorYears]);
    }

    #[test]
    fn windows_include_both_ends() {
        let w = DateWindow {
            start: date("2024-09-05"),
            end: date("2024-12-31"),
        };
        assert!(w.contains(date("2024-09-05")));
        assert!(w.contains(date("2024-12-31")));
        assert!(!w.contains(date("2025-01-01")));
        assert!(!w.contains(date("2024-09-04")));
    }
}
