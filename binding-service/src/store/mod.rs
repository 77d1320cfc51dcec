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

use crate::domain::{Binding, BindingEvent, BindingKind, Person};

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

    /// Creates or replaces a registry record; `respond(created)` builds the response
    /// recorded with it. Returns that response.
    fn upsert_person(
        &self,
        person: &Person,
        idempotency: &Idempotency,
        respond: impl FnOnce(bool) -> Vec<u8> + Send,
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

    /// Stores a new binding with its first audit event and the response, atomically.
    fn insert_binding(
        &self,
        binding: &Binding,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One binding with its history, oldest first.
    fn binding(
        &self,
        binding_id: &str,
    ) -> impl Future<Output = Result<Option<(Binding, Vec<BindingEvent>)>, StoreError>> + Send;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
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
