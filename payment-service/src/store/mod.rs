//! Persistence: one trait, implemented for SQLite (embedded default) and PostgreSQL.
//!
//! Both implementations share their SQL through the `sql_store!` macro (the statements are
//! portable); each has its own connection set-up and its own migrations. Amounts are
//! integer fen in both.

#[macro_use]
mod sql;
mod postgres;
mod sqlite;

use std::future::Future;

use gongji_shared::IdNumber;

use crate::domain::{Account, AccountEntry, Movement, payment::PremiumPayment, premium::PaidYear};

pub use gongji_shared::rpc::{Idempotency, SavedResponse};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Most rows one query returns: a bound on memory per call.
pub const MAX_ROWS: i64 = 1_000;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("request id already used")]
    RequestIdTaken,
    #[error("account already exists")]
    AccountExists,
    #[error("a bucket would go below zero")]
    InsufficientBalance,
    #[error("the beneficiary's year is already paid")]
    AlreadyPaid,
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// What payment-service keeps.
pub trait Store: Clone + Send + Sync + 'static {
    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The response recorded under `request_id`, if any.
    fn saved_response(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<SavedResponse>, StoreError>> + Send;

    /// Opens an account with zero balances.
    fn open_account(
        &self,
        account: &Account,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One account.
    fn account(
        &self,
        holder: &IdNumber,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Writes a balanced movement touching `holder`'s account; `respond` gets the account
    /// after it and the entry IDs of the postings, in order, and builds the response
    /// recorded with it.
    fn post(
        &self,
        holder: &IdNumber,
        movement: &Movement,
        idempotency: &Idempotency,
        respond: impl FnOnce(&Account, &[i64]) -> Vec<u8> + Send,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// The holder's account-side entries, newest first, older than `before` if given.
    fn entries(
        &self,
        holder: &IdNumber,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AccountEntry>, StoreError>> + Send;

    /// The beneficiary's paid (not refunded) premium years.
    fn paid_years(
        &self,
        beneficiary: &IdNumber,
    ) -> impl Future<Output = Result<Vec<PaidYear>, StoreError>> + Send;

    /// Records a premium payment and its movement, atomically.
    fn insert_premium(
        &self,
        payment: &PremiumPayment,
        movement: &Movement,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One premium payment.
    fn premium_payment(
        &self,
        payment_id: &str,
    ) -> impl Future<Output = Result<Option<PremiumPayment>, StoreError>> + Send;
}

/// The store named by a database URL.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to a `sqlite://` (created if missing) or `postgres://` URL.
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
