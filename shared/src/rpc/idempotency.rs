//! Idempotency (AIP-155): a state-changing call stores its response under its request ID,
//! in the same transaction as its effect; a retry gets that response back.

use prost::Message;
use sha2::{Digest, Sha256};

use super::ApiError;

/// The record a state-changing call writes with its effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub request_id: String,
    /// The RPC's name: the same ID on another RPC is a reuse.
    pub operation: &'static str,
    /// SHA-256 of the request's canonical encoding.
    pub fingerprint: String,
}

/// A response recorded under a request ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub operation: String,
    pub fingerprint: String,
    pub response: Vec<u8>,
}

impl Idempotency {
    /// The record for `request` on `operation`.
    pub fn of(request_id: &str, operation: &'static str, request: &impl Message) -> Self {
        Self {
            request_id: request_id.to_owned(),
            operation,
            fingerprint: hex::encode(Sha256::digest(request.encode_to_vec())),
        }
    }

    /// The first answer if `saved` is this request's; REQUEST_ID_REUSED if the ID was used
    /// for something else; `None` if the ID is new.
    pub fn replay<R: Message + Default>(
        &self,
        saved: Option<SavedResponse>,
    ) -> Result<Option<R>, ApiError> {
        let Some(saved) = saved else { return Ok(None) };
        if saved.operation != self.operation || saved.fingerprint != self.fingerprint {
            return Err(ApiError::invalid_argument(
                "REQUEST_ID_REUSED",
                "request_id",
                "request_id was used before for a different request; use a new one",
            )
            .with_metadata("request_id", &self.request_id)
            .with_metadata("first_operation", &saved.operation));
        }
        tracing::info!(request_id = %self.request_id, operation = self.operation, "replaying the first answer");
        R::decode(saved.response.as_slice())
            .map(Some)
            .map_err(|error| {
                tracing::error!(%error, "stored response does not decode");
                ApiError::internal()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(op: &str, fp: &str, response: Vec<u8>) -> Option<SavedResponse> {
        Some(SavedResponse {
            operation: op.to_owned(),
            fingerprint: fp.to_owned(),
            response,
        })
    }

    #[test]
    fn a_new_id_has_nothing_to_replay() {
        let idem = Idempotency::of("r1", "Op", &String::from("a"));
        assert_eq!(idem.replay::<String>(None).unwrap(), None);
    }

    #[test]
    fn the_same_request_gets_the_first_answer() {
        let idem = Idempotency::of("r1", "Op", &String::from("a"));
        let first = String::from("first answer").encode_to_vec();
        let got = idem
            .replay::<String>(saved("Op", &idem.fingerprint, first))
            .unwrap();
        assert_eq!(got.as_deref(), Some("first answer"));
    }

    #[test]
    fn other_content_or_another_operation_is_a_reuse() {
        let idem = Idempotency::of("r1", "Op", &String::from("a"));
        let other = Idempotency::of("r1", "Op", &String::from("b"));
        assert_ne!(idem.fingerprint, other.fingerprint);
        let err = idem
            .replay::<String>(saved("Op", &other.fingerprint, vec![]))
            .unwrap_err();
        assert_eq!(err.reason(), "REQUEST_ID_REUSED");
        let err = idem
            .replay::<String>(saved("Other", &idem.fingerprint, vec![]))
            .unwrap_err();
        assert_eq!(err.reason(), "REQUEST_ID_REUSED");
    }
}
