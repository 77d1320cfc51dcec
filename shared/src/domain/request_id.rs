//! Idempotency keys (AIP-155).

use std::fmt;

/// Longest request ID accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// A caller-chosen key, 1 to 64 printable ASCII characters, that makes a state-changing
/// call safe to retry: the same key returns the first answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

/// Why a string is not a request ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request_id has 1 to {MAX_REQUEST_ID_LEN} printable ASCII characters (a UUID fits)")]
pub struct RequestIdError;

impl RequestId {
    /// Validates the key.
    pub fn parse(input: &str) -> Result<Self, RequestIdError> {
        let ok = !input.is_empty()
            && input.len() <= MAX_REQUEST_ID_LEN
            && input.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(RequestIdError)
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_accepted() {
        assert!(RequestId::parse("7f1c1f5e-2b0e-4e4f-9a43-0d2f1b9c8e11").is_ok());
    }

    #[test]
    fn empty_long_and_blank_keys_are_rejected() {
        assert_eq!(RequestId::parse(""), Err(RequestIdError));
        assert_eq!(RequestId::parse(&"a".repeat(65)), Err(RequestIdError));
        assert_eq!(RequestId::parse("a b"), Err(RequestIdError));
        assert_eq!(RequestId::parse("请求"), Err(RequestIdError));
    }
}
