//! The use cases of binding-service: one method per use case, on [`App`], grouped by
//! aggregate (`registry`, `bindings`).
//!
//! A use case takes domain types and returns domain types or [`AppError`]. It asks the
//! store and payment-service ([`Balances`]), applies the rules of `domain`, and writes the
//! effect with its recorded answer in one transaction. No tonic, no prost and no SQL here:
//! `api` translates the wire, `peer` speaks to payment-service, `store` holds the SQL.

mod bindings;
mod error;
#[cfg(test)]
mod fakes;
mod registry;

use std::{future::Future, sync::Arc};

use gongji_shared::{Clock, IdNumber, Money, Policy, command::SavedResponse};
use tokio::sync::Notify;

use crate::store::Database;

pub use bindings::{Application, Applied, AuthorizationAnswer, UseAnswer, UseOrder};
pub use error::{AppError, Infra};
pub use registry::{BatchError, MAX_BATCH_RECORDS, RegistryBatch, RegistryRecord, Upserted};

/// payment-service, as the use cases need it.
pub trait Balances: Clone + Send + Sync + 'static {
    /// The balance the holder's family may use; zero when the holder has no account.
    fn usable_balance(
        &self,
        holder: &IdNumber,
    ) -> impl Future<Output = Result<Money, PeerError>> + Send;
}

/// payment-service could not give an answer: nothing is stored.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("payment-service unavailable: {0}")]
    Unavailable(String),
    #[error("payment-service sent a malformed answer: {0}")]
    Malformed(String),
    /// payment-service answered with an error that is no outage: a fault to look into.
    #[error("payment-service failed: {0}")]
    Failed(String),
}

/// What every use case works with.
#[derive(Clone)]
pub struct App<S, P> {
    store: S,
    payment: P,
    policy: Arc<Policy>,
    clock: Clock,
    /// Woken after every committed binding change, so event streams need not wait for
    /// their next poll.
    events: Arc<Notify>,
}

impl<S, P> App<S, P> {
    pub fn new(store: S, payment: P, policy: Arc<Policy>, clock: Clock) -> Self {
        Self {
            store,
            payment,
            policy,
            clock,
            events: Arc::new(Notify::new()),
        }
    }

    /// Today's Asia/Shanghai date on the service's clock: input is checked against it too
    /// (nobody is born after it).
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }

    /// Woken after every committed binding change.
    pub fn events(&self) -> Arc<Notify> {
        Arc::clone(&self.events)
    }
}

impl<S: Database<Conflict = crate::store::Conflict>, P> App<S, P> {
    /// The answer recorded under `request_id` in `scope` (the caller's), if any (AIP-155).
    pub async fn saved_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> Result<Option<SavedResponse>, AppError> {
        Ok(self.store.saved_response(scope, request_id).await?)
    }
}
