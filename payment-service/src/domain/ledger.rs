//! Accounts and the double-entry ledger.
//!
//! Every movement writes entries that sum to zero: the personal-account side (per bucket)
//! and a fund side (the region's contribution source, resident premium fund, ...). A
//! bucket's balance is the sum of its entries; the stored balance is a cache the store
//! keeps equal in the same transaction, with a CHECK that it never goes below zero.

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

/// One side of one movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Book {
    /// A personal account's bucket.
    Personal { holder: IdNumber, bucket: Bucket },
    /// A fund: e.g. `EMPLOYEE_CONTRIBUTIONS` or `RESIDENT_PREMIUMS` of a region.
    Fund {
        fund: &'static str,
        region: RegionCode,
    },
}

/// Fund that contributions come from (the employee fund of the holder's region).
pub const EMPLOYEE_CONTRIBUTIONS: &str = "EMPLOYEE_CONTRIBUTIONS";
/// Fund resident premiums go to (the beneficiary's region).
pub const RESIDENT_PREMIUMS: &str = "RESIDENT_PREMIUMS";

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
}

/// A credit into one bucket, balanced by the contribution fund of the holder's region.
pub fn credit(account: &Account, bucket: Bucket, amount: Money, base: Movement) -> Movement {
    Movement {
        postings: vec![
            Posting {
                book: Book::Personal {
                    holder: account.holder.clone(),
                    bucket,
                },
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
        ..base
    }
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
        let base = Movement {
            movement_id: "m".into(),
            kind: MovementKind::Credit,
            request_id: "r".into(),
            create_time: Utc::now(),
            business_date: "2024-11-15".parse().unwrap(),
            postings: vec![],
        };
        let m = credit(
            &account(),
            Bucket::PriorYears,
            Money::parse("1.23").unwrap(),
            base,
        );
        assert!(m.is_balanced());
        assert_eq!(m.postings[0].amount_fen, 123);
    }
}
