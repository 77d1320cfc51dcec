//! The one error every use case of binding-service returns.
//!
//! Business refusals are variants carrying the data a client needs to act; infrastructure
//! failures (the database, payment-service) sit apart in [`Infra`]. `api::error` turns an
//! `AppError` into an AIP-193 status, in one function.

use gongji_shared::IdNumber;

use super::PeerError;
use crate::{
    domain::{BindingState, lifecycle::ChangeRefusal, rules::Failure},
    store::{Conflict, StoreError},
};

/// Why a use case gave no result.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An application broke these rules (at least one; the first is the main reason).
    #[error("binding refused: {failures:?}")]
    BindingRefused { failures: Vec<Failure> },
    #[error("no such binding")]
    BindingNotFound { binding_id: String },
    #[error("the binding cannot change: {refusal:?}")]
    ChangeRefused {
        refusal: ChangeRefusal,
        binding_id: String,
        state: BindingState,
    },
    /// The binding changed since it was read: read it again and retry.
    #[error("the binding changed meanwhile")]
    BindingChanged,
    /// The movement has a use recorded under another request ID.
    #[error("the movement has a use already")]
    UseRecorded { movement_id: String },
    /// A party's registry record changed while the application was decided: retry.
    #[error("the registry changed meanwhile")]
    RegistryChanged,
    #[error("no registry record")]
    PersonNotFound { id: IdNumber },
    /// A concurrent call with the same request ID stored its answer first.
    #[error("request id taken by a concurrent call")]
    RequestIdTaken,
    #[error(transparent)]
    Infra(#[from] Infra),
}

/// A failure of what the use cases rely on, the database or payment-service: nothing
/// changed.
pub type Infra = gongji_shared::command::Infra<StoreError, PeerError>;

impl From<StoreError> for AppError {
    /// A conflict no use case expected is a fault of ours, like any store failure.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(Conflict::RequestIdTaken) => Self::RequestIdTaken,
            other => Infra::Store(other).into(),
        }
    }
}

impl From<PeerError> for AppError {
    fn from(error: PeerError) -> Self {
        Infra::Peer(error).into()
    }
}
