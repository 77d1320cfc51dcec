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

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{
    Account, AccountEntry, Movement,
    medical::MedicalPayment,
    payment::{OtherMeans, PremiumPayment},
    premium::PaidYear,
    settlement::{LedgerFacts, SettledEntry, Settlement},
};

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
    #[error("the payment is already refunded")]
    AlreadyRefunded,
    #[error("the year is already closed for this account")]
    YearClosed,
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

    /// One page of premium payments by payer (or beneficiary), newest first, before
    /// position `before`; each with its position.
    fn premium_payments(
        &self,
        person: &IdNumber,
        as_payer: bool,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, PremiumPayment)>, StoreError>> + Send;

    /// Marks a paid premium refunded, writes the refund movement of its account part (if
    /// any) and the other-means part owed back (if any), with the response, atomically.
    fn refund_premium(
        &self,
        refunded: &PremiumPayment,
        movement: Option<&Movement>,
        owed_back: Option<&OtherMeans>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Closes `year` for the holder: `plan` sees the account as locked in the transaction
    /// and returns the movement (none when nothing moves); `respond(account_after, moved_fen)`
    /// builds the response. `YearClosed` when the year was closed before.
    fn close_year(
        &self,
        holder: &IdNumber,
        year: i32,
        at: DateTime<Utc>,
        plan: impl FnOnce(&Account) -> Option<Movement> + Send,
        idempotency: &Idempotency,
        respond: impl FnOnce(&Account, i64) -> Vec<u8> + Send,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Records a medical-expense payment and its movement (if any account paid), atomically.
    fn insert_medical(
        &self,
        payment: &MedicalPayment,
        movement: Option<&Movement>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One medical-expense payment.
    fn medical_payment(
        &self,
        payment_id: &str,
    ) -> impl Future<Output = Result<Option<MedicalPayment>, StoreError>> + Send;

    /// Settles `date` once: `compute` turns the account-side entries of the day's unsettled
    /// payment and refund movements into the settlement, which is stored with its lines and
    /// the movements it covers. A day settled before returns its stored settlement.
    fn settle(
        &self,
        date: NaiveDate,
        at: DateTime<Utc>,
        compute: impl FnOnce(&[SettledEntry]) -> Settlement + Send,
        idempotency: &Idempotency,
        respond: impl FnOnce(&Settlement, DateTime<Utc>) -> Vec<u8> + Send,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// The stored settlement of a day, with when it was made.
    fn settlement(
        &self,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<(Settlement, DateTime<Utc>)>, StoreError>> + Send;

    /// Everything VerifyLedger checks, measured in one transaction, and the settled entries
    /// of each settled day (at most `MAX_ROWS` days) for recomputing digests.
    #[allow(clippy::type_complexity)]
    fn ledger_facts(
        &self,
    ) -> impl Future<
        Output = Result<(LedgerFacts, Vec<(Settlement, Vec<SettledEntry>)>), StoreError>,
    > + Send;
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
