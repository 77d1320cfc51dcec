//! Accounts and the double-entry ledger.
//!
//! Every movement writes entries that sum to zero: the personal-account side (per bucket)
//! and, for money entering or leaving the accounts, a fund side (the region's contribution
//! source, resident premium fund, designated institutions). A bucket's balance is the sum
//! of its entries; the stored balance is a cache the store keeps equal in the same
//! transaction, with a CHECK that it never goes below zero. Fund totals come from the
//! entries only: there is no fund-balance row for every payment to update.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{IdNumber, Money, RegionCode, policy::Bucket};

/// A personal account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub holder: IdNumber,
    pub region: RegionCode,
    pub current_year: Money,
    pub prior_years: Money,
    pub open_time: DateTime<Utc>,
}

impl Account {
    /// A bucket's balance.
    pub fn balance(&self, bucket: Bucket) -> Money {
        match bucket {
            Bucket::CurrentYear => self.current_year,
            Bucket::PriorYears => self.prior_years,
        }
    }

    /// The sum of the given buckets.
    pub fn usable(&self, buckets: &[Bucket]) -> Money {
        buckets.iter().fold(Money::ZERO, |sum, b| {
            sum.checked_add(self.balance(*b)).unwrap_or(sum)
        })
    }

    /// The book of one of its buckets.
    pub fn book(&self, bucket: Bucket) -> Book {
        Book::Personal {
            holder: self.holder.clone(),
            bucket,
            region: self.region.clone(),
        }
    }
}

/// What a movement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    Credit,
    Premium,
    MedicalExpense,
    Refund,
    CloseYear,
}

impl MovementKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "CREDIT",
            Self::Premium => "PREMIUM",
            Self::MedicalExpense => "MEDICAL_EXPENSE",
            Self::Refund => "REFUND",
            Self::CloseYear => "CLOSE_YEAR",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Credit,
            Self::Premium,
            Self::MedicalExpense,
            Self::Refund,
            Self::CloseYear,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What settled money was for (S1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettlementPurpose {
    /// Into the resident fund of the beneficiary's region.
    Premium,
    /// To institutions in the beneficiary's region.
    MedicalExpense,
}

impl SettlementPurpose {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Premium => "PREMIUM",
            Self::MedicalExpense => "MEDICAL_EXPENSE",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PREMIUM" => Some(Self::Premium),
            "MEDICAL_EXPENSE" => Some(Self::MedicalExpense),
            _ => None,
        }
    }
}

/// One side of one movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Book {
    /// A personal account's bucket, in the account's region.
    Personal {
        holder: IdNumber,
        bucket: Bucket,
        region: RegionCode,
    },
    /// A fund of a region: [`EMPLOYEE_CONTRIBUTIONS`], [`RESIDENT_PREMIUMS`], [`INSTITUTIONS`].
    Fund {
        fund: &'static str,
        region: RegionCode,
    },
}

/// Where contributions come from (the employee fund of the holder's region).
pub const EMPLOYEE_CONTRIBUTIONS: &str = "EMPLOYEE_CONTRIBUTIONS";
/// Where resident premiums go (the beneficiary's region).
pub const RESIDENT_PREMIUMS: &str = "RESIDENT_PREMIUMS";
/// Where medical expenses go (designated institutions of the beneficiary's region).
pub const INSTITUTIONS: &str = "INSTITUTIONS";

/// A ledger entry about to be written: signed fen (positive in, negative out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub book: Book,
    pub amount_fen: i64,
}

/// A balanced set of postings with what they were for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub movement_id: String,
    pub kind: MovementKind,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    /// Asia/Shanghai business day.
    pub business_date: NaiveDate,
    /// What it settles as; `None` for money that stays inside the accounts' fund.
    pub purpose: Option<SettlementPurpose>,
    /// The region money goes to (the beneficiary's), for settlement.
    pub destination: Option<RegionCode>,
    /// What the caller said it was for (credits); empty otherwise.
    pub memo: String,
    pub postings: Vec<Posting>,
}

impl Movement {
    /// Whether the postings sum to zero (double entry).
    pub fn is_balanced(&self) -> bool {
        self.postings
            .iter()
            .map(|p| i128::from(p.amount_fen))
            .sum::<i128>()
            == 0
    }
}

/// An account-side entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    pub entry_id: i64,
    pub movement_id: String,
    pub kind: MovementKind,
    pub bucket: Bucket,
    pub amount_fen: i64,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    pub business_date: NaiveDate,
    /// What the caller said the movement was for (credits); empty otherwise.
    pub memo: String,
}

/// A credit into one bucket, balanced by the contribution fund of the holder's region.
pub fn credit(account: &Account, bucket: Bucket, amount: Money, base: Movement) -> Movement {
    Movement {
        postings: vec![
            Posting {
                book: account.book(bucket),
                amount_fen: amount.fen(),
            },
            Posting {
                book: Book::Fund {
                    fund: EMPLOYEE_CONTRIBUTIONS,
                    region: account.region.clone(),
                },
                amount_fen: -amount.fen(),
            },
        ],
        purpose: None,
        destination: None,
        ..base
    }
}

/// Closing a year: the whole current-year balance moves into prior-years; `None` when
/// there is nothing to move.
pub fn close_year(account: &Account, base: Movement) -> Option<Movement> {
    let amount = account.current_year.fen();
    (amount > 0).then(|| Movement {
        postings: vec![
            Posting {
                book: account.book(Bucket::CurrentYear),
                amount_fen: -amount,
            },
            Posting {
                book: account.book(Bucket::PriorYears),
                amount_fen: amount,
            },
        ],
        purpose: None,
        destination: None,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            holder: IdNumber::parse("34052419800101001X").unwrap(),
            region: RegionCode::parse("340500").unwrap(),
            current_year: Money::parse("10.00").unwrap(),
            prior_years: Money::parse("500.00").unwrap(),
            open_time: Utc::now(),
        }
    }

    pub(crate) fn base(kind: MovementKind) -> Movement {
        Movement {
            movement_id: "m".into(),
            kind,
            request_id: "r".into(),
            create_time: Utc::now(),
            business_date: "2024-11-15".parse().unwrap(),
            purpose: None,
            destination: None,
            memo: String::new(),
            postings: vec![],
        }
    }

    #[test]
    fn usable_sums_only_the_named_buckets() {
        let a = account();
        assert_eq!(a.usable(&[Bucket::PriorYears]).to_string(), "500.00");
        assert_eq!(
            a.usable(&[Bucket::PriorYears, Bucket::CurrentYear])
                .to_string(),
            "510.00"
        );
    }

    #[test]
    fn a_credit_is_balanced() {
        let m = credit(
            &account(),
            Bucket::PriorYears,
            Money::parse("1.23").unwrap(),
            base(MovementKind::Credit),
        );
        assert!(m.is_balanced());
        assert_eq!(m.postings[0].amount_fen, 123);
    }

    #[test]
    fn closing_a_year_moves_current_into_prior_and_stays_balanced() {
        let m = close_year(&account(), base(MovementKind::CloseYear)).unwrap();
        assert!(m.is_balanced());
        assert_eq!(m.postings[0].amount_fen, -1000);
        assert_eq!(m.postings[1].amount_fen, 1000);
        let mut empty = account();
        empty.current_year = Money::ZERO;
        assert_eq!(close_year(&empty, base(MovementKind::CloseYear)), None);
    }
}
