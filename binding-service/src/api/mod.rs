//! gRPC handlers: translate and validate, then hand over to `domain` and `store`.

mod binding;
mod convert;
mod registry;

use std::sync::Arc;

use tokio::sync::{Notify, Semaphore, watch};

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
    /// Woken after every committed binding change, so event streams need not wait for
    /// their next poll.
    pub events: Arc<Notify>,
    /// Turns true when the server begins to shut down: event streams end then.
    pub stopping: watch::Receiver<bool>,
    /// Bounds the event streams open at once.
    pub watchers: Arc<Semaphore>,
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
