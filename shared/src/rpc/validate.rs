//! Request-field parsing shared by both services: each turns a wire value into a domain
//! type or an INVALID_ARGUMENT error naming the field. Error metadata never carries a
//! whole ID number or name.

use crate::domain::{CoverageYear, IdNumber, Money, PersonName, RegionCode, RequestId};

use super::ApiError;

/// Largest page a list call returns, and the size of a page when the caller says 0.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Longest free-text reason or memo.
pub const MAX_REASON_CHARS: usize = 256;

/// An ID number field, born by `today`.
pub fn id_number(value: &str, field: &str, today: chrono::NaiveDate) -> Result<IdNumber, ApiError> {
    IdNumber::parse_on(value, today).map_err(|e| {
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

/// A batch of `len` items in `field`: 1 to `limit` of them (`items` names them, e.g.
/// "records"). Checked before any item is read, so the work per call stays bounded.
pub fn batch_size(len: usize, limit: usize, field: &str, items: &str) -> Result<(), ApiError> {
    if (1..=limit).contains(&len) {
        return Ok(());
    }
    Err(batch_size_error(len, limit, field, items))
}

/// A requested batch size: `limit` when 0, else 1 to `limit` (INVALID_BATCH_SIZE otherwise).
pub fn batch_size_or_limit(
    requested: i32,
    limit: usize,
    field: &str,
    items: &str,
) -> Result<usize, ApiError> {
    if requested == 0 {
        return Ok(limit);
    }
    let size = usize::try_from(requested).unwrap_or(usize::MAX);
    batch_size(size, limit, field, items).map(|()| size)
}

/// The error of a batch of `len` items that is empty or over `limit`.
pub fn batch_size_error(len: usize, limit: usize, field: &str, items: &str) -> ApiError {
    ApiError::invalid_argument(
        "INVALID_BATCH_SIZE",
        field,
        format!("a batch holds 1 to {limit} {items}"),
    )
    .with_metadata("size", len)
    .with_metadata("limit", limit)
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

/// A date field: exactly `YYYY-MM-DD`, a real day, in a year a coverage year may be (no
/// signs, no spaces, no missing zeros).
pub fn date(value: &str, field: &str, reason: &str) -> Result<chrono::NaiveDate, ApiError> {
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let parsed = shaped
        .then(|| chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| CoverageYear::parse(chrono::Datelike::year(d)).is_ok());
    parsed.ok_or_else(|| {
        ApiError::invalid_argument(
            reason,
            field,
            format!("{field} is a date written YYYY-MM-DD, e.g. 2024-11-15, from 2000 to 2100"),
        )
        .with_metadata("field", field)
        .with_metadata(field, truncate(value, 16))
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

/// An identifier this system issued (a binding or payment ID): 1 to `max_len` printable
/// ASCII characters.
pub fn identifier(
    value: &str,
    field: &str,
    reason: &str,
    max_len: usize,
) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > max_len || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_argument(
            reason,
            field,
            format!("{field} has 1 to {max_len} printable ASCII characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A list filter naming exactly one of two people: `(true, id)` when it is the first.
pub fn one_of_two_people(
    first: (&str, &str),
    second: (&str, &str),
    today: chrono::NaiveDate,
) -> Result<(bool, IdNumber), ApiError> {
    let ((first_value, first_field), (second_value, second_field)) = (first, second);
    match (first_value.is_empty(), second_value.is_empty()) {
        (false, true) => Ok((true, id_number(first_value, first_field, today)?)),
        (true, false) => Ok((false, id_number(second_value, second_field, today)?)),
        _ => Err(ApiError::invalid_argument(
            "INVALID_FILTER",
            first_field,
            format!("set exactly one of {first_field} and {second_field}"),
        )),
    }
}

/// Cuts one page from rows read with a limit of `page_size + 1` (one more tells whether
/// another page follows); the token is the position of the page's last row, or empty on
/// the last page.
pub fn page<T>(mut rows: Vec<T>, page_size: u32, position: impl Fn(&T) -> i64) -> (Vec<T>, String) {
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let token = match rows.last() {
        Some(last) if more => position(last).to_string(),
        _ => String::new(),
    };
    (rows, token)
}

fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        "2024-11-15".parse().unwrap()
    }

    #[test]
    fn a_date_is_exactly_yyyy_mm_dd() {
        assert_eq!(
            date("2024-11-14", "d", "INVALID_DATE").unwrap().to_string(),
            "2024-11-14"
        );
        for bad in [
            "2024-1-5",
            " 2024-11-14",
            "2024-11-14 ",
            "-0044-01-01",
            "2024-02-30",
            "1999-12-31",
            "+2024-11-1",
            "２０２４-11-14",
        ] {
            let error = date(bad, "d", "INVALID_DATE").unwrap_err();
            assert_eq!(error.reason(), "INVALID_DATE", "{bad:?}");
        }
    }

    #[test]
    fn a_bad_id_number_names_the_field_but_not_the_value() {
        let err = id_number("34052419800101001Y", "beneficiary_id_number", today()).unwrap_err();
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
    fn a_filter_names_exactly_one_person() {
        let id = "34052419800101001X";
        assert!(one_of_two_people((id, "a"), ("", "b"), today()).unwrap().0);
        assert!(!one_of_two_people(("", "a"), (id, "b"), today()).unwrap().0);
        assert_eq!(
            one_of_two_people(("", "a"), ("", "b"), today())
                .unwrap_err()
                .reason(),
            "INVALID_FILTER"
        );
        assert_eq!(
            one_of_two_people((id, "a"), (id, "b"), today())
                .unwrap_err()
                .reason(),
            "INVALID_FILTER"
        );
    }

    #[test]
    fn a_page_says_where_the_next_begins() {
        let (rows, token) = page(vec![5, 7, 9], 2, |r| *r);
        assert_eq!((rows, token.as_str()), (vec![5, 7], "7"));
        let (rows, token) = page(vec![5, 7], 2, |r| *r);
        assert_eq!((rows, token.as_str()), (vec![5, 7], ""));
    }

    #[test]
    fn identifiers_are_short_printable_ascii() {
        assert!(identifier("7f1c1f5e-2b0e", "payment_id", "INVALID_PAYMENT_ID", 64).is_ok());
        assert!(identifier("", "payment_id", "INVALID_PAYMENT_ID", 64).is_err());
        assert!(identifier("a b", "payment_id", "INVALID_PAYMENT_ID", 64).is_err());
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(reason("  moved away ", "reason").unwrap(), "moved away");
        assert!(reason("  ", "reason").is_err());
        assert!(reason(&"x".repeat(257), "reason").is_err());
    }
}
