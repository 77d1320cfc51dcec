//! The idempotent command (AIP-155) as use cases and stores see it: a state-changing call
//! stores its response under its request ID, in the same transaction as its effect, and a
//! retry gets that response back.
//!
//! This module knows neither tonic nor prost: a use case holds a [`Command`], asks it for
//! the bytes of its answer, and hands them to the store with the effect. The gRPC side
//! (`rpc::command`) builds the command, replays first answers and decodes them.

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The record a state-changing call writes with its effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// Whose request IDs these are: the authenticated caller's identity. Request IDs are
    /// scoped to their caller, so no caller can claim or probe another's.
    pub scope: String,
    /// The person the caller acts for, if any: recorded with the effect, like the caller.
    pub acting_person: Option<String>,
    pub request_id: String,
    /// The RPC's name: the same ID on another RPC is a reuse.
    pub operation: &'static str,
    /// SHA-256 of the request's canonical encoding.
    pub fingerprint: String,
}

impl Idempotency {
    /// The record of a request whose canonical encoding is `request`.
    pub fn new(request_id: &str, operation: &'static str, request: &[u8]) -> Self {
        Self {
            scope: String::new(),
            acting_person: None,
            request_id: request_id.to_owned(),
            operation,
            fingerprint: hex::encode(Sha256::digest(request)),
        }
    }

    /// The same record, for `caller` (the scope of its request IDs) acting for
    /// `acting_person`.
    pub fn scoped(self, caller: &str, acting_person: Option<&str>) -> Self {
        Self {
            scope: caller.to_owned(),
            acting_person: acting_person.map(str::to_owned),
            ..self
        }
    }

    /// Whether `saved` was stored by this very request (same operation, same content).
    pub fn is_same_request(&self, saved: &SavedResponse) -> bool {
        saved.operation == self.operation && saved.fingerprint == self.fingerprint
    }
}

/// A response recorded under a request ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub operation: String,
    /// Empty once the record is past its retention window.
    pub fingerprint: String,
    pub response: Vec<u8>,
}

impl SavedResponse {
    /// The record of a request ID whose answer was dropped after its retention window: the
    /// ID stays taken, but nothing is left to replay or to compare a retry with.
    pub fn expired(operation: String) -> Self {
        Self {
            operation,
            fingerprint: String::new(),
            response: Vec::new(),
        }
    }

    /// Whether the answer was dropped after the retention window (a fingerprint is never
    /// empty: it is a SHA-256 in hex).
    pub fn is_expired(&self) -> bool {
        self.fingerprint.is_empty()
    }
}

/// Turns a use case's outcome into the bytes recorded as its answer.
type Encoder<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// One state-changing call on its way through a use case: its idempotency record, and how
/// its outcome `T` is encoded as the answer the store records with the effect.
pub struct Command<T> {
    idempotency: Idempotency,
    encode: Encoder<T>,
}

impl<T> Command<T> {
    /// A command whose answer to `outcome` is `encode(outcome)`.
    pub fn new(
        idempotency: Idempotency,
        encode: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self {
            idempotency,
            encode: Arc::new(encode),
        }
    }

    /// The record to store with the effect.
    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    /// The request ID, which the effect's ledger rows carry too.
    pub fn request_id(&self) -> &str {
        &self.idempotency.request_id
    }

    /// The answer to record with the effect.
    pub fn response(&self, outcome: &T) -> Vec<u8> {
        (self.encode)(outcome)
    }
}

/// A failure of what a service's use cases rely on, its store `S` or its peer service `P`,
/// kept apart from the business refusals: nothing changed, and the caller may retry.
#[derive(Debug, thiserror::Error)]
pub enum Infra<S, P> {
    #[error("store: {0}")]
    Store(S),
    #[error("peer: {0}")]
    Peer(P),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_tells_requests_apart() {
        let a = Idempotency::new("r1", "Op", b"a");
        let b = Idempotency::new("r1", "Op", b"b");
        assert_ne!(a.fingerprint, b.fingerprint);
        let saved = SavedResponse {
            operation: "Op".to_owned(),
            fingerprint: a.fingerprint.clone(),
            response: Vec::new(),
        };
        assert!(a.is_same_request(&saved));
        assert!(!b.is_same_request(&saved));
        let other_op = Idempotency::new("r1", "Other", b"a");
        assert!(!other_op.is_same_request(&saved));
    }

    #[test]
    fn a_command_encodes_its_outcome() {
        let command = Command::new(Idempotency::new("r1", "Op", b"a"), |n: &u32| {
            n.to_be_bytes().to_vec()
        });
        assert_eq!(command.request_id(), "r1");
        assert_eq!(command.response(&7), vec![0, 0, 0, 7]);
    }
}
