//! gRPC handlers: translate and validate, then hand over to `domain` and `store`.

mod account;
mod convert;
mod medical;
mod premium;
mod settlement;

use std::sync::Arc;

use gongji_shared::{
    Clock, Policy,
    rpc::{ApiError, Idempotency},
};
use prost::Message;
use tonic::Status;

use crate::{
    ERROR_DOMAIN,
    peer::BindingPeer,
    store::{Store, StoreError},
};

pub use account::AccountApi;
pub use medical::MedicalExpenseApi;
pub use premium::PremiumApi;
pub use settlement::SettlementApi;

/// What every handler needs.
#[derive(Clone)]
pub struct Context<S> {
    pub store: S,
    pub policy: Arc<Policy>,
    pub clock: Clock,
    pub binding: BindingPeer,
}

/// An API error under this service's domain.
fn status(error: ApiError) -> Status {
    error.into_status(ERROR_DOMAIN)
}

/// A store failure: logged with its cause, answered without it.
fn store_failure(error: StoreError) -> Status {
    tracing::error!(%error, "store failure");
    status(ApiError::internal())
}

/// The first answer to a request ID, if this is a retry.
async fn replay<S: Store, R: Message + Default>(
    store: &S,
    idempotency: &Idempotency,
) -> Result<Option<R>, Status> {
    let saved = store
        .saved_response(&idempotency.request_id)
        .await
        .map_err(store_failure)?;
    idempotency.replay(saved).map_err(status)
}

/// After a concurrent call with the same request ID stored first: its answer.
async fn replay_after_race<S: Store, R: Message + Default>(
    store: &S,
    idempotency: &Idempotency,
) -> Result<R, Status> {
    replay(store, idempotency).await?.ok_or_else(|| {
        status(ApiError::aborted(
            "CONCURRENT_UPDATE",
            "retry with the same request_id",
        ))
    })
}

/// A page token is the position the next page starts below (newest-first listings).
fn page_token(token: &str) -> Result<Option<i64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            status(ApiError::invalid_argument(
                "INVALID_PAGE_TOKEN",
                "page_token",
                "page_token must come from a previous response",
            ))
        })
}

/// binding-service could not answer: nothing moved (fail closed).
fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "binding-service did not answer; nothing changes");
    status(
        ApiError::unavailable(
            "DEPENDENCY_UNAVAILABLE",
            "binding-service could not be asked; nothing changed, retry later",
        )
        .with_metadata("dependency", "binding-service"),
    )
}
