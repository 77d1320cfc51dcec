//! The calendar year a resident premium buys cover for.

use std::fmt;

use chrono::NaiveDate;

/// First and last coverage years this system accepts: a sanity bound, not policy.
const MIN_YEAR: i32 = 2000;
const MAX_YEAR: i32 = 2100;

/// A coverage year (e.g. 2025: cover from 2025-01-01 to 2025-12-31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoverageYear(i32);

/// The number is not a plausible coverage year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a coverage year is between {MIN_YEAR} and {MAX_YEAR}")]
pub struct CoverageYearError;

impl CoverageYear {
    /// Validates the year.
    pub fn parse(year: i32) -> Result<Self, CoverageYearError> {
        if (MIN_YEAR..=MAX_YEAR).contains(&year) {
            Ok(Self(year))
        } else {
            Err(CoverageYearError)
        }
    }

    /// The year as a number.
    pub fn get(self) -> i32 {
        self.0
    }

    /// 1 January of the year.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0, 1, 1).unwrap_or(NaiveDate::MIN)
    }

    /// 31 December of the year.
    pub fn last_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0, 12, 31).unwrap_or(NaiveDate::MAX)
    }
}

impl fmt::Display for CoverageYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_spans_january_to_december() {
        let y = CoverageYear::parse(2025).unwrap();
        assert_eq!(y.first_day().to_string(), "2025-01-01");
        assert_eq!(y.last_day().to_string(), "2025-12-31");
    }

    #[test]
    fn implausible_years_are_rejected() {
        assert!(CoverageYear::parse(0).is_err());
        assert!(CoverageYear::parse(1999).is_err());
        assert!(CoverageYear::parse(2101).is_err());
        assert!(CoverageYear::parse(2000).is_ok());
    }
}
