//! Pooling region (统筹区) codes.

use std::fmt;

/// A 6-digit administrative region code whose first two digits are a province (11 to 82).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RegionCode(String);

/// Why a string is not a region code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("a region code has exactly 6 digits")]
    Format,
    #[error("a region code starts with a province code from 11 to 82")]
    Province,
}

impl RegionCode {
    /// Parses a 6-digit code.
    pub fn parse(input: &str) -> Result<Self, RegionCodeError> {
        if input.len() != 6 || !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::Format);
        }
        let province: u8 = input[..2].parse().map_err(|_| RegionCodeError::Format)?;
        if !(11..=82).contains(&province) {
            return Err(RegionCodeError::Province);
        }
        Ok(Self(input.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-digit province prefix ("34" for Anhui).
    pub fn province(&self) -> &str {
        &self.0[..2]
    }

    /// The four-digit city prefix ("3405" for Ma'anshan).
    pub fn city(&self) -> &str {
        &self.0[..4]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maanshan_is_in_anhui() {
        let code = RegionCode::parse("340500").unwrap();
        assert_eq!(code.province(), "34");
        assert_eq!(code.city(), "3405");
    }

    #[test]
    fn malformed_codes_are_rejected() {
        for bad in ["", "34050", "3405000", "34O500", " 34050"] {
            assert_eq!(
                RegionCode::parse(bad),
                Err(RegionCodeError::Format),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_provinces_are_rejected() {
        assert_eq!(RegionCode::parse("000000"), Err(RegionCodeError::Province));
        assert_eq!(RegionCode::parse("990100"), Err(RegionCodeError::Province));
    }
}
