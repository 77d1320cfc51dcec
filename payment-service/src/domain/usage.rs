//! The usage record of family mutual aid (共济使用明细): every family debit, and every refund
//! of one, as the authorizer and the beneficiary see it; what a listing may ask for, and the
//! totals it gives.

use chrono::{DateTime, Months, NaiveDate, Utc};
use gongji_shared::{IdNumber, policy::Purpose};

/// Most days a listing's range covers: three years, so a listing's totals read a bounded
/// number of rows. The channels' filters are 3, 6 and 12 months.
pub const MAX_RANGE_DAYS: i64 = 3 * 366;
/// The range a listing covers when it names no start: the 12 months up to its end.
pub const DEFAULT_RANGE_MONTHS: u32 = 12;

/// Whether money left the authorizer's account for the family member, or came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UseKind {
    Debit,
    Refund,
}

impl UseKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "DEBIT",
            Self::Refund => "REFUND",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Debit, Self::Refund]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A family use about to be recorded, in its movement's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUse {
    pub movement_id: String,
    pub kind: UseKind,
    pub payment_id: String,
    pub purpose: Purpose,
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub binding_id: String,
    /// What left the authorizer's account, or came back to it: positive.
    pub amount_fen: i64,
    pub institution_code: Option<String>,
    pub business_date: NaiveDate,
    pub create_time: DateTime<Utc>,
}

/// A recorded family use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUse {
    /// Its position: later uses have higher ones.
    pub use_id: i64,
    pub new: NewUse,
}

/// Whose uses a listing asks for: an authorizer's (optionally for one beneficiary), or a
/// beneficiary's (optionally from one authorizer). At least one side is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseParties {
    authorizer: Option<IdNumber>,
    beneficiary: Option<IdNumber>,
}

impl UseParties {
    /// `None` when neither side is named.
    pub fn parse(authorizer: Option<IdNumber>, beneficiary: Option<IdNumber>) -> Option<Self> {
        (authorizer.is_some() || beneficiary.is_some()).then_some(Self {
            authorizer,
            beneficiary,
        })
    }

    pub fn authorizer(&self) -> Option<&IdNumber> {
        self.authorizer.as_ref()
    }

    pub fn beneficiary(&self) -> Option<&IdNumber> {
        self.beneficiary.as_ref()
    }

    /// The named sides: an acting person must be one of them.
    pub fn named(&self) -> Vec<&IdNumber> {
        self.authorizer.iter().chain(&self.beneficiary).collect()
    }
}

/// An inclusive range of business days, at most [`MAX_RANGE_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

/// Why a range is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("the range ends before it starts")]
    Reversed,
    #[error("the range covers more than {MAX_RANGE_DAYS} days")]
    TooLong,
}

impl DateRange {
    /// From `start` to `end`; an absent end is `today`, an absent start the
    /// [`DEFAULT_RANGE_MONTHS`] up to the end.
    pub fn parse(
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, RangeError> {
        let end = end.unwrap_or(today);
        let start = match start {
            Some(start) => start,
            None => end
                .checked_sub_months(Months::new(DEFAULT_RANGE_MONTHS))
                .and_then(|d| d.succ_opt())
                .unwrap_or(NaiveDate::MIN),
        };
        if end < start {
            return Err(RangeError::Reversed);
        }
        if (end - start).num_days() >= MAX_RANGE_DAYS {
            return Err(RangeError::TooLong);
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> NaiveDate {
        self.start
    }

    pub fn end(&self) -> NaiveDate {
        self.end
    }
}

/// What a listing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseFilter {
    pub parties: UseParties,
    pub range: DateRange,
    /// `None`: both purposes.
    pub purpose: Option<Purpose>,
}

/// The uses of one beneficiary for one purpose over a listing's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseTotal {
    pub beneficiary: IdNumber,
    pub purpose: Purpose,
    pub debited_fen: i64,
    pub refunded_fen: i64,
    pub debit_count: i64,
}

impl UseTotal {
    /// What the family member used, refunds deducted.
    pub fn net_fen(&self) -> i64 {
        self.debited_fen - self.refunded_fen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_defaults_to_the_twelve_months_up_to_today() {
        let range = DateRange::parse(None, None, date("2025-03-31")).unwrap();
        assert_eq!(
            (range.start(), range.end()),
            (date("2024-04-01"), date("2025-03-31"))
        );
        let range = DateRange::parse(None, Some(date("2024-12-31")), date("2025-03-31")).unwrap();
        assert_eq!(range.start(), date("2024-01-01"));
    }

    #[test]
    fn a_range_is_ordered_and_bounded() {
        let today = date("2025-03-31");
        assert_eq!(
            DateRange::parse(Some(date("2025-02-01")), Some(date("2025-01-31")), today),
            Err(RangeError::Reversed)
        );
        assert!(
            DateRange::parse(Some(date("2025-01-31")), Some(date("2025-01-31")), today).is_ok()
        );
        assert!(DateRange::parse(Some(date("2022-04-01")), None, today).is_ok());
        assert_eq!(
            DateRange::parse(Some(date("2020-01-01")), None, today),
            Err(RangeError::TooLong)
        );
    }

    #[test]
    fn a_listing_names_at_least_one_side() {
        let a = IdNumber::parse("34052419800101001X").unwrap();
        assert!(UseParties::parse(None, None).is_none());
        let parties = UseParties::parse(Some(a.clone()), None).unwrap();
        assert_eq!(parties.named(), vec![&a]);
    }

    #[test]
    fn a_total_nets_refunds() {
        let total = UseTotal {
            beneficiary: IdNumber::parse("34052419800101001X").unwrap(),
            purpose: Purpose::Premium,
            debited_fen: 40_000,
            refunded_fen: 40_000,
            debit_count: 1,
        };
        assert_eq!(total.net_fen(), 0);
    }
}
