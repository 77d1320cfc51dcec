//! Money: yuan with at most two decimal places, stored as integer fen.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;

/// The largest single amount accepted on input: 100 million yuan. Far above any payment
/// or credit this system sees.
pub const MAX_FEN: i64 = 10_000_000_000;
/// The largest value a balance (a sum of amounts) may reach: 10 trillion yuan. Far above
/// [`MAX_FEN`], so no sequence of valid amounts makes a balance unreadable, and far below
/// where `i64` fen could overflow when a few are summed. Stores refuse a write past it.
pub const MAX_BALANCE_FEN: i64 = 1_000_000_000_000_000;
/// Longest decimal string accepted on input.
const MAX_INPUT_LEN: usize = 16;

/// A non-negative amount of yuan with at most two decimal places: at most [`MAX_FEN`] fen
/// when it comes from input, at most [`MAX_BALANCE_FEN`] when it is a balance.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a value is not an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "an amount is written as digits with an optional point and at most two decimals, e.g. \"400.00\""
    )]
    Format,
    #[error("an amount has at most two decimal places")]
    Precision,
    #[error("an amount must not be negative")]
    Negative,
    #[error("an amount must not exceed 100000000.00")]
    TooLarge,
}

impl Money {
    /// Zero yuan.
    pub const ZERO: Self = Self(0);

    /// Parses a decimal string in yuan: `"400"`, `"400.5"`, `"400.00"`. No sign, no exponent,
    /// no white space, no grouping.
    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        if input.is_empty() || input.len() > MAX_INPUT_LEN {
            return Err(MoneyError::Format);
        }
        if input.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || (input.contains('.') && fraction.is_empty())
        {
            return Err(MoneyError::Format);
        }
        if fraction.len() > 2 {
            return Err(MoneyError::Precision);
        }
        let decimal = Decimal::from_str(input).map_err(|_| MoneyError::TooLarge)?;
        Self::from_decimal(decimal)
    }

    /// From a decimal; rejects negatives, more than two places and overflow.
    pub fn from_decimal(value: Decimal) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let fen = value * Decimal::ONE_HUNDRED;
        if !fen.fract().is_zero() {
            return Err(MoneyError::Precision);
        }
        let fen: i64 = fen.try_into().map_err(|_| MoneyError::TooLarge)?;
        if fen > MAX_FEN {
            return Err(MoneyError::TooLarge);
        }
        Self::from_fen(fen)
    }

    /// From integer fen, as stored: an amount or a balance.
    pub fn from_fen(fen: i64) -> Result<Self, MoneyError> {
        match fen {
            ..0 => Err(MoneyError::Negative),
            0..=MAX_BALANCE_FEN => Ok(Self(fen)),
            _ => Err(MoneyError::TooLarge),
        }
    }

    /// Integer fen, as stored.
    pub fn fen(self) -> i64 {
        self.0
    }

    /// The value in yuan.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// Sum, or `None` past [`MAX_BALANCE_FEN`].
    pub fn checked_add(self, other: Self) -> Option<Self> {
        Self::from_fen(self.0.checked_add(other.0)?).ok()
    }

    /// Difference, or `None` below zero.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        Self::from_fen(self.0.checked_sub(other.0)?).ok()
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Money {
    /// Always two places: `400.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// Formats signed fen (a ledger entry) as yuan with two places: `-400.00`.
pub fn format_signed_fen(fen: i64) -> String {
    Decimal::new(fen, 2).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_into_fen() {
        assert_eq!(Money::parse("400").unwrap().fen(), 40_000);
        assert_eq!(Money::parse("400.5").unwrap().fen(), 40_050);
        assert_eq!(Money::parse("400.05").unwrap().fen(), 40_005);
        assert_eq!(Money::parse("0.01").unwrap().fen(), 1);
        assert_eq!(Money::parse("0").unwrap(), Money::ZERO);
    }

    #[test]
    fn display_always_shows_two_places() {
        assert_eq!(Money::parse("400").unwrap().to_string(), "400.00");
        assert_eq!(Money::parse("7.5").unwrap().to_string(), "7.50");
        assert_eq!(Money::ZERO.to_string(), "0.00");
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for bad in [
            "", ".5", "5.", "1e3", "+5", " 5", "5 ", "1,000", "abc", "5..0", "0x10",
        ] {
            assert_eq!(Money::parse(bad), Err(MoneyError::Format), "{bad:?}");
        }
    }

    #[test]
    fn negatives_and_extra_places_are_rejected() {
        assert_eq!(Money::parse("-1.00"), Err(MoneyError::Negative));
        assert_eq!(Money::parse("1.001"), Err(MoneyError::Precision));
        assert_eq!(Money::from_fen(-1), Err(MoneyError::Negative));
    }

    #[test]
    fn the_limit_is_enforced_without_overflow() {
        assert_eq!(Money::parse("100000000.00").unwrap().fen(), MAX_FEN);
        assert_eq!(Money::parse("100000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse("9999999999999999"), Err(MoneyError::TooLarge));
        assert_eq!(Money::from_fen(i64::MAX), Err(MoneyError::TooLarge));
        let max = Money::from_fen(MAX_BALANCE_FEN).unwrap();
        assert_eq!(max.checked_add(Money::from_fen(1).unwrap()), None);
    }

    #[test]
    fn a_balance_may_pass_the_input_cap_and_stays_readable() {
        let cap = Money::from_fen(MAX_FEN).unwrap();
        let above = cap.checked_add(Money::parse("400.00").unwrap()).unwrap();
        assert_eq!(above.to_string(), "100000400.00");
        assert_eq!(Money::from_fen(above.fen()), Ok(above));
        assert_eq!(Money::parse(&above.to_string()), Err(MoneyError::TooLarge));
    }

    #[test]
    fn subtraction_never_goes_below_zero() {
        let a = Money::parse("1.00").unwrap();
        let b = Money::parse("1.01").unwrap();
        assert_eq!(a.checked_sub(b), None);
        assert_eq!(b.checked_sub(a).unwrap().fen(), 1);
    }

    #[test]
    fn decimals_round_trip() {
        let d = Decimal::new(12345, 2);
        assert_eq!(Money::from_decimal(d).unwrap().to_decimal(), d);
        assert_eq!(
            Money::from_decimal(Decimal::new(1, 3)),
            Err(MoneyError::Precision)
        );
    }

    #[test]
    fn signed_fen_formats_with_sign() {
        assert_eq!(format_signed_fen(-40_000), "-400.00");
        assert_eq!(format_signed_fen(5), "0.05");
    }
}
