//! The use cases of payment-service: one method per use case, on [`App`], grouped by
//! aggregate (`accounts`, `premiums`, `medical`, `settlement`).
//!
//! A use case takes domain types and returns domain types or [`AppError`]. It asks the
//! registry ([`Registry`], binding-service behind it) and the store, applies the rules of
//! `domain`, and writes the effect with its recorded answer in one transaction. No tonic,
//! no prost and no SQL here: `api` translates the wire, `peer` speaks to binding-service,
//! `store` holds the SQL.

mod accounts;
mod error;
#[cfg(test)]
mod fakes;
mod feed;
mod fence;
mod institutions;
mod medical;
mod medical_refunds;
mod premiums;
mod reminders;
mod settlement;
mod statement;
mod usage;
mod wallet;
mod wallet_statement;

use std::{future::Future, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    Clock, IdNumber, Policy,
    policy::{Bucket, Purpose},
};

use crate::domain::{
    authorization::{Authorization, InsuredPerson},
    fence::RecordedUse,
};

pub use accounts::{AccountView, Credited, YearBatch, YearClosed};
pub use error::{AccountRole, AppError, Infra, PaymentKind};
pub use feed::SEQUENCE_INTERVAL_MS;
pub use fence::{DEFAULT_HOLD_TIMEOUT_MS, MAX_RECONCILED_USES};
pub use medical::MedicalOrder;
pub use medical_refunds::{RefundOrder, RefundOutcome};
pub use premiums::{PaymentOrder, PremiumOrder, Quote};
pub use reminders::Reminder;
pub use settlement::LedgerReport;
pub use statement::YearStatement;
pub use usage::FamilyUsage;
pub use wallet::TransferOrder;
pub use wallet_statement::StatedMonth;

/// The registry and authority of bindings (binding-service), as the use cases need it.
/// Every answer is fresh: money of someone else moves only on a yes given for this call.
pub trait Registry: Clone + Send + Sync + 'static {
    /// Whether `authorizer`'s account may pay for `beneficiary` for `purpose`.
    fn authorize(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        purpose: Purpose,
    ) -> impl Future<Output = Result<Authorization, PeerError>> + Send;

    /// Authorizes one family debit and has binding-service record its use (P1's fence),
    /// under the lock its revocation takes. The use is recorded only when authorized.
    fn authorize_use(
        &self,
        request: &UseRequest,
    ) -> impl Future<Output = Result<Authorization, PeerError>> + Send;

    /// One page of the uses recorded for a binding, oldest first, and the token of the
    /// next page (empty on the last); `None` when binding-service knows no such binding.
    fn binding_uses(
        &self,
        binding_id: &str,
        page_token: &str,
    ) -> impl Future<Output = Result<Option<(Vec<RecordedUse>, String)>, PeerError>> + Send;

    /// The beneficiaries of `authorizer`'s ACTIVE funds-sharing bindings, oldest binding first,
    /// at most [`MAX_BOUND_BENEFICIARIES`].
    fn bound_beneficiaries(
        &self,
        authorizer: &IdNumber,
    ) -> impl Future<Output = Result<Vec<BoundBeneficiary>, PeerError>> + Send;

    /// The person's registry record; `None` when the registry does not know them.
    fn person(
        &self,
        id: &IdNumber,
    ) -> impl Future<Output = Result<Option<InsuredPerson>, PeerError>> + Send;
}

/// Most bound beneficiaries one authorizer's reminders cover: a family, with room to spare.
pub const MAX_BOUND_BENEFICIARIES: usize = 100;

/// A family member an authorizer's account is bound to pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundBeneficiary {
    pub binding_id: String,
    pub beneficiary: IdNumber,
    /// As the binding records it; `None` when binding-service gave none this service can show.
    pub name: Option<gongji_shared::PersonName>,
}

/// One family debit to authorize: binding-service records it under `movement_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRequest {
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub purpose: Purpose,
    pub amount: gongji_shared::Money,
    pub movement_id: String,
}

/// binding-service could not give an answer: no money may move (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("binding-service unavailable: {0}")]
    Unavailable(String),
    #[error("binding-service sent a malformed answer: {0}")]
    Malformed(String),
    /// binding-service answered with an error that is no outage: a fault to look into.
    #[error("binding-service failed: {0}")]
    Failed(String),
}

/// What every use case works with.
#[derive(Clone)]
pub struct App<S, R> {
    store: S,
    registry: R,
    policy: Arc<Policy>,
    clock: Clock,
    hold_timeout_ms: u64,
    /// Woken after the sequencer numbers movements for the account event feed.
    feed: Arc<tokio::sync::Notify>,
    /// Where family debits, holds and settlement runs are counted, when metrics are served.
    metrics: Option<gongji_shared::metrics::Metrics>,
}

impl<S, R> App<S, R> {
    pub fn new(store: S, registry: R, policy: Arc<Policy>, clock: Clock) -> Self {
        Self {
            store,
            registry,
            policy,
            clock,
            hold_timeout_ms: fence::DEFAULT_HOLD_TIMEOUT_MS,
            feed: Arc::default(),
            metrics: None,
        }
    }

    /// Counts family debits, holds and settlement runs in `metrics`.
    pub fn with_metrics(self, metrics: Option<gongji_shared::metrics::Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// How long a family debit's hold lasts unless posted or voided.
    pub fn with_hold_timeout_ms(self, hold_timeout_ms: u64) -> Self {
        Self {
            hold_timeout_ms,
            ..self
        }
    }

    /// Today's Asia/Shanghai date on the service's clock: input is checked against it too
    /// (nobody is born after it).
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }

    /// The buckets family may use on `date`, in drawing order (none when no policy is in
    /// force).
    fn usable_buckets(&self, date: NaiveDate) -> Vec<Bucket> {
        self.policy
            .rules_on(date)
            .map(|r| r.usable_buckets.clone())
            .unwrap_or_default()
    }

    /// Now, and its Asia/Shanghai date.
    fn now(&self) -> (DateTime<Utc>, NaiveDate) {
        let now = self.clock.now();
        (now, gongji_shared::domain::clock::shanghai_date(now))
    }
}

/// A new identifier for a payment or a movement.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl<S: crate::store::Database<Conflict = crate::store::Conflict>, R> App<S, R> {
    /// The answer recorded under `request_id` in `scope` (the caller's), if any (AIP-155).
    pub async fn saved_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> Result<Option<gongji_shared::command::SavedResponse>, AppError> {
        Ok(self.store.saved_response(scope, request_id).await?)
    }
}
