//! Request-field parsing shared by both services: each turns a wire value into a domain
//! type or an INVALID_ARGUMENT error naming the field. Error metadata never carries a
//! whole ID number or name.

use crate::{CoverageYear, IdNumber, Money, PersonName, RegionCode, RequestId};

use super::ApiError;

/// Largest page a list call returns, and the size of a page when the caller says 0.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Longest free-text reason or memo.
pub const MAX_REASON_CHARS: usize = 256;

/// An ID number field.
pub fn id_number(value: &str, field: &str) -> Result<IdNumber, ApiError> {
    IdNumber::parse(value).map_err(|e| {
        ApiError::invalid_argument("INVALID_ID_NUMBER", field, format!("{field}: {e}"))
            .with_metadata("field", field)
            .with_metadata("length", value.chars().count())
    })
}

/// A name field.
pub fn person_name(value: &str, field: &str) -> Result<PersonName, ApiError> {
    PersonName::parse(value).map_err(|e| {
        ApiError::invalid_argument("INVALID_NAME", field, format!("{field}: {e}"))
            .with_metadata("field", field)
    })
}

/// A region code field.
pub fn region_code(value: &str, field: &str) -> Result<RegionCode, ApiError> {
    RegionCode::parse(value).map_err(|e| {
        ApiError::invalid_argument("INVALID_REGION_CODE", field, format!("{field}: {e}"))
            .with_metadata("field", field)
            .with_metadata("region_code", truncate(value, 16))
    })
}

/// A money field that must be above zero.
pub fn positive_money(value: &str, field: &str) -> Result<Money, ApiError> {
    let money = money(value, field)?;
    if money.is_zero() {
        return Err(invalid_amount(value, field, "must be above zero"));
    }
    Ok(money)
}

/// A money field (zero allowed).
pub fn money(value: &str, field: &str) -> Result<Money, ApiError> {
    Money::parse(value).map_err(|e| invalid_amount(value, field, &e.to_string()))
}

fn invalid_amount(value: &str, field: &str, why: &str) -> ApiError {
    ApiError::invalid_argument("INVALID_AMOUNT", field, format!("{field}: {why}"))
        .with_metadata("field", field)
        .with_metadata("amount", truncate(value, 32))
}

/// The request_id field (AIP-155).
pub fn request_id(value: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(value).map_err(|e| {
        ApiError::invalid_argument("INVALID_REQUEST_ID", "request_id", e.to_string())
            .with_metadata("field", "request_id")
    })
}

/// A coverage year field.
pub fn coverage_year(value: i32, field: &str) -> Result<CoverageYear, ApiError> {
    CoverageYear::parse(value).map_err(|e| {
        ApiError::invalid_argument("INVALID_COVERAGE_YEAR", field, format!("{field}: {e}"))
            .with_metadata("field", field)
            .with_metadata("coverage_year", value)
    })
}

/// A page_size field: 0 means the default, above the maximum is refused.
pub fn page_size(value: i32) -> Result<u32, ApiError> {
    match u32::try_from(value) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) if n <= MAX_PAGE_SIZE => Ok(n),
        _ => Err(ApiError::invalid_argument(
            "INVALID_PAGE_SIZE",
            "page_size",
            format!("page_size must be from 0 to {MAX_PAGE_SIZE}"),
        )
        .with_metadata("page_size", value)),
    }
}

/// A required free-text reason.
pub fn reason(value: &str, field: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_REASON_CHARS
        || trimmed.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_argument(
            "INVALID_REASON",
            field,
            format!("{field} must have 1 to {MAX_REASON_CHARS} characters, no control characters"),
        )
        .with_metadata("field", field));
    }
    Ok(trimmed.to_owned())
}

/// An enum field that must be set to a known, non-zero value.
pub fn known_enum<T>(
    parsed: Option<T>,
    raw: i32,
    reason: &str,
    field: &str,
) -> Result<T, ApiError> {
    parsed.ok_or_else(|| {
        ApiError::invalid_argument(
            reason,
            field,
            format!("{field} must be set to a known value"),
        )
        .with_metadata("field", field)
        .with_metadata("value", raw)
    })
}

fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_id_number_names_the_field_but_not_the_value() {
        let err = id_number("34052419800101001Y", "beneficiary_id_number").unwrap_err();
        assert_eq!(err.reason(), "INVALID_ID_NUMBER");
        let status = err.into_status("test.gongji");
        assert!(!status.message().contains("34052419800101001Y"));
    }

    #[test]
    fn zero_is_not_a_positive_amount() {
        assert_eq!(
            positive_money("0.00", "amount").unwrap_err().reason(),
            "INVALID_AMOUNT"
        );
        assert_eq!(positive_money("0.01", "amount").unwrap().fen(), 1);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100).unwrap(), 100);
        assert!(page_size(101).is_err());
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(reason("  moved away ", "reason").unwrap(), "moved away");
        assert!(reason("  ", "reason").is_err());
        assert!(reason(&"x".repeat(257), "reason").is_err());
    }
}
