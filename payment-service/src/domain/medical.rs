//! Medical expenses (门诊共济, M1 and M2): the beneficiary's own account first, then the named
//! family account, then other means for the rest.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{IdNumber, Money, RegionCode, policy::Bucket};

use super::{
    Account, Book, INSTITUTIONS, Movement, MovementKind, Posting, SettlementPurpose,
    split::{Draw, Split, split},
};

/// The order a person's own account pays their own costs: this year's money first, then
/// the surplus of earlier years (the surplus is what family may also use, so it is kept
/// longest).
pub const OWN_ACCOUNT_ORDER: [Bucket; 2] = [Bucket::CurrentYear, Bucket::PriorYears];

/// Where the cost arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionKind {
    Hospital,
    Pharmacy,
}

impl InstitutionKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hospital => "HOSPITAL",
            Self::Pharmacy => "PHARMACY",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HOSPITAL" => Some(Self::Hospital),
            "PHARMACY" => Some(Self::Pharmacy),
            _ => None,
        }
    }
}

/// How a cost is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalPlan {
    pub own: Split,
    pub family: Split,
    /// Left to pay by other means.
    pub other_part: Money,
}

/// M2: the own account (all its buckets) first, then the family account's usable buckets.
pub fn plan(
    amount: Money,
    own: Option<&Account>,
    family: Option<&Account>,
    family_buckets: &[Bucket],
    family_cap: Option<Money>,
) -> MedicalPlan {
    let own = split(amount, own, &OWN_ACCOUNT_ORDER);
    // What the authorizer's limits leave: the family account pays that much at most.
    let family = super::split::capped(split(own.other_part, family, family_buckets), family_cap);
    let other_part = family.other_part;
    MedicalPlan {
        own,
        family,
        other_part,
    }
}

/// Which medical-expense payments a listing asks for: of a beneficiary, of a family account,
/// at an institution (any together, at least one), paid on the days of `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalFilter {
    pub beneficiary: Option<IdNumber>,
    pub family_holder: Option<IdNumber>,
    pub institution_code: Option<String>,
    pub range: super::usage::DateRange,
}

/// A medical-expense payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalPayment {
    pub payment_id: String,
    pub request_id: String,
    /// The ledger movement; `None` when no account paid anything.
    pub movement_id: Option<String>,
    pub beneficiary: IdNumber,
    pub family_holder: Option<IdNumber>,
    pub institution_code: String,
    pub institution_kind: InstitutionKind,
    pub amount: Money,
    pub own_draws: Vec<Draw>,
    pub family_draws: Vec<Draw>,
    pub other_part: Money,
    /// What refunds have returned of it so far.
    pub refunded: Money,
    /// The binding the family part relied on (empty without a family part).
    pub binding_id: String,
    pub binding_version: i64,
    /// The beneficiary's region: where the institution is paid.
    pub destination: Option<RegionCode>,
    pub pay_time: DateTime<Utc>,
    pub business_date: NaiveDate,
}

/// The movement of a medical expense: each account's draws out, the institutions of the
/// beneficiary's region in. `None` when no account pays anything.
pub fn medical_movement(
    payment: &MedicalPayment,
    own: Option<&Account>,
    family: Option<&Account>,
) -> Option<Movement> {
    let mut postings = Vec::new();
    for (account, draws) in [(own, &payment.own_draws), (family, &payment.family_draws)] {
        let Some(account) = account else { continue };
        for d in draws {
            postings.push(Posting {
                book: account.book(d.bucket),
                amount_fen: -d.amount.fen(),
            });
        }
    }
    institutions_movement(Movement {
        movement_id: payment.movement_id.clone()?,
        kind: MovementKind::MedicalExpense,
        request_id: payment.request_id.clone(),
        create_time: payment.pay_time,
        business_date: payment.business_date,
        purpose: Some(SettlementPurpose::MedicalExpense),
        destination: payment.destination.clone(),
        memo: String::new(),
        postings,
    })
}

/// `movement` (of accounts' postings only) with the institutions of its destination taking
/// the other side. `None` without a destination, or when the accounts' postings sum to zero.
pub(super) fn institutions_movement(mut movement: Movement) -> Option<Movement> {
    let destination = movement.destination.clone()?;
    let accounts_fen: i64 = movement.postings.iter().map(|p| p.amount_fen).sum();
    if accounts_fen == 0 {
        return None;
    }
    movement.postings.push(Posting {
        book: Book::Fund {
            fund: INSTITUTIONS,
            region: destination,
        },
        amount_fen: -accounts_fen,
    });
    Some(movement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn account(id: &str, current: &str, prior: &str) -> Account {
        Account {
            holder: IdNumber::parse(id).unwrap(),
            region: RegionCode::parse("340500").unwrap(),
            current_year: m(current),
            prior_years: m(prior),
            open_time: Utc::now(),
        }
    }

    #[test]
    fn own_account_first_then_family_then_other_means() {
        let own = account("11010519491231002X", "20", "10");
        let family = account("34052419800101001X", "999", "50");
        let p = plan(
            m("100"),
            Some(&own),
            Some(&family),
            &[Bucket::PriorYears],
            None,
        );
        assert_eq!(p.own.account_part, m("30"));
        assert_eq!(
            p.own.draws.iter().map(|d| d.bucket).collect::<Vec<_>>(),
            [Bucket::CurrentYear, Bucket::PriorYears]
        );
        assert_eq!(
            p.family.account_part,
            m("50"),
            "only the family account's usable buckets"
        );
        assert_eq!(p.other_part, m("20"));
    }

    #[test]
    fn an_own_account_that_covers_all_leaves_the_family_account_alone() {
        let own = account("11010519491231002X", "500", "0");
        let family = account("34052419800101001X", "0", "500");
        let p = plan(
            m("100"),
            Some(&own),
            Some(&family),
            &[Bucket::PriorYears],
            None,
        );
        assert!(p.family.draws.is_empty());
        assert_eq!(p.other_part, Money::ZERO);
    }
}
