//! gRPC handlers: translate and validate, then hand over to `domain` and `store`.

mod binding;
mod convert;
mod registry;

use std::sync::Arc;

use gongji_shared::{Clock, Policy, rpc::ApiError};
use prost::Message;
use tonic::Status;

use crate::{
    ERROR_DOMAIN,
    peer::PaymentPeer,
    store::{Idempotency, Store, StoreError},
};

pub use binding::BindingApi;
pub use registry::RegistryApi;

/// What every handler needs.
#[derive(Clone)]
pub struct Context<S> {
    pub store: S,
    pub policy: Arc<Policy>,
    pub clock: Clock,
    pub payment: PaymentPeer,
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

/// The first answer to a request ID, if this is a retry. A reused ID with different
/// content is REQUEST_ID_REUSED.
async fn replay<S: Store, R: Message + Default>(store: &S, idempotency: &Idempotency) -> Result<Option<R>, Status> {
    let Some(saved) = store.saved_response(&idempotency.request_id).await.map_err(store_failure)? else {
        return Ok(None);
    };
    if saved.operation != idempotency.operation || saved.fingerprint != idempotency.fingerprint {
        return Err(status(
            ApiError::invalid_argument(
                "REQUEST_ID_REUSED",
                "request_id",
                "request_id was used before for a different request; use a new one",
            )
            .with_metadata("request_id", &idempotency.request_id)
            .with_metadata("first_operation", &saved.operation),
        ));
    }
    tracing::info!(request_id = %idempotency.request_id, "replaying the first answer");
    R::decode(saved.response.as_slice()).map(Some).map_err(|error| {
        tracing::error!(%error, "stored response does not decode");
        status(ApiError::internal())
    })
}
