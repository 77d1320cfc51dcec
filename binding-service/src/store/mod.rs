//! Persistence: one trait, implemented for SQLite (embedded default) and PostgreSQL.
//!
//! Both implementations share their SQL through the `sql_store!` macro (the statements are
//! portable); each has its own connection set-up and its own migrations, whose column
//! types differ (TEXT times in SQLite, TIMESTAMPTZ in PostgreSQL).

#[macro_use]
mod sql;
mod postgres;
mod sqlite;

use std::future::Future;

use gongji_shared::IdNumber;
pub use gongji_shared::rpc::{Idempotency, SavedResponse};

use crate::domain::{Binding, BindingEvent, BindingKind, BindingState, Person, lifecycle::Change};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Most bindings one query returns: a bound on memory per call.
pub const MAX_ROWS: i64 = 1_000;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request ID was stored by a concurrent call first.
    #[error("request id already used")]
    RequestIdTaken,
    /// A live binding of the same kind exists for the pair.
    #[error("a live binding exists for the pair")]
    LiveBindingExists,
    /// The authorizer reached the beneficiary cap (checked again under the write lock).
    #[error("beneficiary cap reached")]
    LimitReached,
    /// The binding changed since it was read.
    #[error("binding changed concurrently")]
    Conflict,
    /// Stored data does not decode into the domain (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// What binding-service keeps.
pub trait Store: Clone + Send + Sync + 'static {
    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The response recorded under `request_id`, if any.
    fn saved_response(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<SavedResponse>, StoreError>> + Send;

    /// Creates or replaces a registry record and, in the same transaction, ends the live
    /// bindings `decide` picks from those involving the person. `respond(created, ended)`
    /// builds the response recorded with it. Returns that response.
    fn upsert_person(
        &self,
        person: &Person,
        idempotency: &Idempotency,
        decide: impl FnOnce(&[Binding]) -> Vec<(Binding, Change)> + Send,
        respond: impl FnOnce(bool, &[Binding]) -> Vec<u8> + Send,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// One registry record.
    fn person(
        &self,
        id: &IdNumber,
    ) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;

    /// Every live binding the person authorized.
    fn live_bindings_of(
        &self,
        authorizer: &IdNumber,
    ) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send;

    /// The pair's binding of `kind`: the live one, else the latest.
    fn pair_binding(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        kind: BindingKind,
    ) -> impl Future<Output = Result<Option<Binding>, StoreError>> + Send;

    /// Stores a new binding with its first audit event and the response, atomically. With
    /// `max_beneficiaries`, the cap is checked again under the write lock.
    fn insert_binding(
        &self,
        binding: &Binding,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
        max_beneficiaries: Option<u32>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces a binding by its next version, if it is still at `expected_version`, with
    /// its audit event and the response, atomically.
    fn transition(
        &self,
        next: &Binding,
        expected_version: i64,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of a person's bindings, oldest first, after position `after`; each with its
    /// position, the page token of the next page.
    fn list_bindings(
        &self,
        filter: &ListFilter,
    ) -> impl Future<Output = Result<Vec<(i64, Binding)>, StoreError>> + Send;

    /// Audit events after `sequence`, in commit order.
    fn events_after(
        &self,
        sequence: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<BindingEvent>, StoreError>> + Send;

    /// One binding with its history, oldest first.
    fn binding(
        &self,
        binding_id: &str,
    ) -> impl Future<Output = Result<Option<(Binding, Vec<BindingEvent>)>, StoreError>> + Send;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Which bindings to list.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// True: bindings the person authorized; false: bindings where they benefit.
    pub as_authorizer: bool,
    pub person: IdNumber,
    /// Empty means every state.
    pub states: Vec<BindingState>,
    pub after: i64,
    pub limit: u32,
}

/// Opens the store named by a `sqlite://` or `postgres://` URL and runs `f` with it.
/// A generic continuation keeps the handlers monomorphic over one concrete store.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to the URL's database (creating a SQLite file and its folder if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if gongji_shared::db::is_postgres(url) {
            Ok(Self::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        } else {
            Ok(Self::Sqlite(SqliteStore::connect(url).await?))
        }
    }
}
