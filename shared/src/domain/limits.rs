//! Authorizer limits on a funds-sharing binding (U2's generalization): monthly and yearly
//! caps on what the binding may take from the authorizer's account, per purpose or overall.
//! binding-service keeps them (setting them is an audited binding event); payment-service
//! enforces them in the transaction that reserves a family debit.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::{Money, policy::Purpose};

/// Most limits one binding holds: every scope and period once.
pub const MAX_LIMITS: usize = 6;

/// The stretch of days a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitPeriod {
    /// The calendar month (Asia/Shanghai business days).
    Month,
    /// The calendar year.
    Year,
}

impl LimitPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "MONTH",
            Self::Year => "YEAR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Month, Self::Year]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// The first and last day of the period holding `day`.
    pub fn bounds(self, day: NaiveDate) -> (NaiveDate, NaiveDate) {
        let first = match self {
            Self::Month => day.with_day(1),
            Self::Year => day.with_ordinal(1),
        }
        .unwrap_or(day);
        let next = match self {
            Self::Month => first.checked_add_months(chrono::Months::new(1)),
            Self::Year => first.with_year(first.year() + 1),
        };
        let last = next.and_then(|n| n.pred_opt()).unwrap_or(day);
        (first, last)
    }
}

/// One cap: on one purpose (`None`: on both together) over one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyLimit {
    pub purpose: Option<Purpose>,
    pub period: LimitPeriod,
    pub amount: Money,
}

impl FamilyLimit {
    /// Whether a debit for `purpose` counts against it.
    pub fn applies_to(&self, purpose: Purpose) -> bool {
        self.purpose.is_none_or(|p| p == purpose)
    }
}

/// A binding's limits: each scope and period at most once, each amount positive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyLimits(Vec<FamilyLimit>);

/// Why limits are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("a limit's amount must be positive")]
    NotPositive,
    #[error("each purpose and period is limited at most once")]
    Duplicate,
    #[error("at most {MAX_LIMITS} limits")]
    TooMany,
}

impl FamilyLimits {
    /// Validated limits, in a fixed order (overall first, then by purpose, month before year).
    pub fn parse(mut limits: Vec<FamilyLimit>) -> Result<Self, LimitsError> {
        if limits.len() > MAX_LIMITS {
            return Err(LimitsError::TooMany);
        }
        if limits.iter().any(|l| l.amount.is_zero()) {
            return Err(LimitsError::NotPositive);
        }
        limits.sort_by_key(|l| (l.purpose.map(Purpose::as_str), l.period));
        if limits
            .windows(2)
            .any(|w| (w[0].purpose, w[0].period) == (w[1].purpose, w[1].period))
        {
            return Err(LimitsError::Duplicate);
        }
        Ok(Self(limits))
    }

    pub fn none() -> Self {
        Self(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FamilyLimit> {
        self.0.iter()
    }

    /// What a debit for `purpose` on `today` may still take, given what each limit has
    /// counted so far (`used_fen(limit)`); `None` when no limit applies.
    pub fn remaining(
        &self,
        purpose: Purpose,
        used_fen: impl Fn(&FamilyLimit) -> i64,
    ) -> Option<Money> {
        self.0
            .iter()
            .filter(|l| l.applies_to(purpose))
            .map(|l| {
                let left = l.amount.fen().saturating_sub(used_fen(l)).max(0);
                Money::from_fen(left).unwrap_or(Money::ZERO)
            })
            .min()
    }

    /// The stored form: `SCOPE:PERIOD:FEN` joined by `;` (SCOPE is ALL or a purpose).
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|l| {
                format!(
                    "{}:{}:{}",
                    l.purpose.map_or("ALL", Purpose::as_str),
                    l.period.as_str(),
                    l.amount.fen()
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The inverse of [`FamilyLimits::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Some(Self::none());
        }
        let limits = text
            .split(';')
            .map(|part| {
                let mut fields = part.split(':');
                let scope = fields.next()?;
                let purpose = match scope {
                    "ALL" => None,
                    other => Some(Purpose::parse(other)?),
                };
                let period = LimitPeriod::parse(fields.next()?)?;
                let amount = Money::from_fen(fields.next()?.parse().ok()?).ok()?;
                fields.next().is_none().then_some(FamilyLimit {
                    purpose,
                    period,
                    amount,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Self::parse(limits).ok()
    }
}

impl fmt::Display for FamilyLimits {
    /// For audit events: "ALL MONTH 500.00, MEDICAL_EXPENSE YEAR 3000.00", or "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let text = self
            .0
            .iter()
            .map(|l| {
                format!(
                    "{} {} {}",
                    l.purpose.map_or("ALL", Purpose::as_str),
                    l.period.as_str(),
                    l.amount
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(purpose: Option<Purpose>, period: LimitPeriod, amount: &str) -> FamilyLimit {
        FamilyLimit {
            purpose,
            period,
            amount: Money::parse(amount).unwrap(),
        }
    }

    #[test]
    fn limits_are_checked_ordered_and_stored_as_text() {
        let limits = FamilyLimits::parse(vec![
            limit(Some(Purpose::MedicalExpense), LimitPeriod::Year, "3000.00"),
            limit(None, LimitPeriod::Month, "500.00"),
        ])
        .unwrap();
        assert_eq!(
            limits.encode(),
            "ALL:MONTH:50000;MEDICAL_EXPENSE:YEAR:300000"
        );
        assert_eq!(FamilyLimits::decode(&limits.encode()), Some(limits.clone()));
        assert_eq!(
            limits.to_string(),
            "ALL MONTH 500.00, MEDICAL_EXPENSE YEAR 3000.00"
        );
        assert_eq!(FamilyLimits::decode(""), Some(FamilyLimits::none()));
        assert_eq!(FamilyLimits::decode("ALL:WEEK:1"), None);
        assert_eq!(
            FamilyLimits::parse(vec![
                limit(None, LimitPeriod::Month, "1.00"),
                limit(None, LimitPeriod::Month, "2.00"),
            ]),
            Err(LimitsError::Duplicate)
        );
        assert_eq!(
            FamilyLimits::parse(vec![limit(None, LimitPeriod::Year, "0.00")]),
            Err(LimitsError::NotPositive)
        );
    }

    #[test]
    fn the_tightest_applicable_limit_decides() {
        let limits = FamilyLimits::parse(vec![
            limit(None, LimitPeriod::Month, "500.00"),
            limit(Some(Purpose::Premium), LimitPeriod::Year, "400.00"),
        ])
        .unwrap();
        let used = |l: &FamilyLimit| match l.period {
            LimitPeriod::Month => 45_000,
            LimitPeriod::Year => 0,
        };
        assert_eq!(
            limits.remaining(Purpose::MedicalExpense, used),
            Some(Money::parse("50.00").unwrap())
        );
        assert_eq!(
            limits.remaining(Purpose::Premium, |_| 100_000),
            Some(Money::ZERO),
            "never below zero"
        );
        assert_eq!(
            FamilyLimits::none().remaining(Purpose::Premium, |_| 0),
            None
        );
    }

    #[test]
    fn periods_are_calendar_months_and_years() {
        let day = NaiveDate::from_ymd_opt(2024, 2, 15).unwrap();
        let d = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
        assert_eq!(LimitPeriod::Month.bounds(day), (d(2, 1), d(2, 29)));
        assert_eq!(LimitPeriod::Year.bounds(day), (d(1, 1), d(12, 31)));
    }
}
