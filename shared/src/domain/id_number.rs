//! Resident ID number (居民身份证号码, GB 11643-1999).

use std::fmt;

use chrono::NaiveDate;

/// Weights of the first 17 digits in the check-digit sum.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters indexed by the weighted sum modulo 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";
const LENGTH: usize = 18;

/// A valid 18-character resident ID number, upper-case `X` check character.
///
/// `Display` masks it (`3405**********001X`); use [`IdNumber::as_str`] only where the full
/// number must leave the process (storage, responses to trusted platforms).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdNumber(String);

/// Why a string is not an ID number. Carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("an ID number has 18 characters")]
    Length,
    #[error("an ID number has 17 digits and a digit or X")]
    Characters,
    #[error("the birth date inside the ID number is not a real date")]
    BirthDate,
    #[error("the birth date inside the ID number is before 1880-01-01")]
    BornTooEarly,
    #[error("the birth date inside the ID number is after today")]
    BornAfterToday,
    #[error("the check character of the ID number does not match")]
    CheckDigit,
}

/// The earliest birth date an ID number may carry: GB 11643's own sample
/// (440524188001010014) is born on it.
fn earliest_birth_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The GB 11643 check character of 17 ASCII digits.
fn check_char(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit.wrapping_sub(b'0')) * weight)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

impl IdNumber {
    /// The ID number of 17 digits (region, birth date, sequence) with its check character
    /// appended, for generated test and benchmark data; `None` if it does not parse.
    pub fn with_check_char(body: &str) -> Option<Self> {
        Self::parse(&format!("{body}{}", Self::check_char_of(body)?)).ok()
    }

    /// The GB 11643 check character of a 17-digit body, whatever the date in it (tests build
    /// implausible numbers with it); `None` if it is not 17 digits.
    pub fn check_char_of(body: &str) -> Option<char> {
        if body.len() != LENGTH - 1 || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(check_char(body.as_bytes()) as char)
    }

    /// Parses and validates; accepts a lower-case `x` and stores `X`.
    pub fn parse(input: &str) -> Result<Self, IdNumberError> {
        let bytes = input.as_bytes();
        if bytes.len() != LENGTH {
            return Err(IdNumberError::Length);
        }
        let (body, last) = bytes.split_at(LENGTH - 1);
        if !body.iter().all(u8::is_ascii_digit) {
            return Err(IdNumberError::Characters);
        }
        let last = last[0].to_ascii_uppercase();
        if !(last.is_ascii_digit() || last == b'X') {
            return Err(IdNumberError::Characters);
        }
        if check_char(body) != last {
            return Err(IdNumberError::CheckDigit);
        }
        let mut normalized = input.to_owned();
        normalized.make_ascii_uppercase();
        let id = Self(normalized);
        match id.birth_date_checked() {
            None => return Err(IdNumberError::BirthDate),
            Some(born) if born < earliest_birth_date() => return Err(IdNumberError::BornTooEarly),
            Some(_) => {}
        }
        Ok(id)
    }

    /// Parses and validates as [`IdNumber::parse`], and refuses a birth date after `today`:
    /// nobody insured is born tomorrow.
    pub fn parse_on(input: &str, today: NaiveDate) -> Result<Self, IdNumberError> {
        let id = Self::parse(input)?;
        if id.birth_date() > today {
            return Err(IdNumberError::BornAfterToday);
        }
        Ok(id)
    }

    /// The full number. Never log it: log the value itself, whose `Display` masks.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The birth date written in the number (characters 7 to 14).
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date_checked().unwrap_or(NaiveDate::MIN) // unreachable: parse checked it
    }

    /// The masked form, safe for logs and error messages.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..4], "*".repeat(10), &self.0[14..])
    }

    fn birth_date_checked(&self) -> Option<NaiveDate> {
        let digits = &self.0[6..14];
        let year = digits[..4].parse().ok()?;
        let month = digits[4..6].parse().ok()?;
        let day = digits[6..8].parse().ok()?;
        NaiveDate::from_ymd_opt(year, month, day)
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_samples_are_valid() {
        for sample in [
            "11010519491231002X",
            "440524188001010014",
            "34052419800101001X",
        ] {
            assert!(IdNumber::parse(sample).is_ok(), "{sample}");
        }
    }

    #[test]
    fn a_lower_case_x_is_stored_upper_case() {
        let id = IdNumber::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn a_wrong_check_digit_is_rejected() {
        assert_eq!(
            IdNumber::parse("110105194912310021"),
            Err(IdNumberError::CheckDigit)
        );
    }

    #[test]
    fn wrong_lengths_and_characters_are_rejected() {
        assert_eq!(IdNumber::parse(""), Err(IdNumberError::Length));
        assert_eq!(
            IdNumber::parse("1101051949123100"),
            Err(IdNumberError::Length)
        );
        assert_eq!(
            IdNumber::parse("1101051949123100AX"),
            Err(IdNumberError::Characters)
        );
        assert_eq!(
            IdNumber::parse("11010519491231002Y"),
            Err(IdNumberError::Characters)
        );
    }

    #[test]
    fn an_impossible_birth_date_is_rejected_even_with_a_right_check_digit() {
        // 1981-02-30 with its correct check character.
        let body = "34052419810230001";
        let sum: u32 = body
            .bytes()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let id = format!("{body}{}", CHECK_CHARS[(sum % 11) as usize] as char);
        assert_eq!(IdNumber::parse(&id), Err(IdNumberError::BirthDate));
    }

    #[test]
    fn display_and_debug_mask_the_middle() {
        let id = IdNumber::parse("34052419800101001X").unwrap();
        assert_eq!(id.to_string(), "3405**********001X");
        assert_eq!(format!("{id:?}"), "IdNumber(3405**********001X)");
    }

    #[test]
    fn a_birth_date_is_plausible() {
        let with_check = |body: &str| {
            let sum: u32 = body
                .bytes()
                .zip(WEIGHTS)
                .map(|(d, w)| u32::from(d - b'0') * w)
                .sum();
            format!("{body}{}", CHECK_CHARS[(sum % 11) as usize] as char)
        };
        assert!(
            IdNumber::parse("440524188001010014").is_ok(),
            "GB 11643's sample, 1880"
        );
        let too_early = with_check("44052418791231001");
        assert_eq!(
            IdNumber::parse(&too_early),
            Err(IdNumberError::BornTooEarly)
        );
        let today: NaiveDate = "2024-11-15".parse().unwrap();
        assert!(IdNumber::parse_on("340504201801100012", today).is_ok());
        let born_today = with_check("34050420241115001");
        assert!(IdNumber::parse_on(&born_today, today).is_ok());
        let born_tomorrow = with_check("34050420241116001");
        assert!(IdNumber::parse(&born_tomorrow).is_ok());
        assert_eq!(
            IdNumber::parse_on(&born_tomorrow, today),
            Err(IdNumberError::BornAfterToday)
        );
    }

    #[test]
    fn the_birth_date_is_read_from_the_number() {
        let id = IdNumber::parse("34052419800101001X").unwrap();
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1980, 1, 1).unwrap()
        );
    }
}
