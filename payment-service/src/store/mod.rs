//! Persistence: one `Store`, made of one trait per aggregate, implemented for SQLite (the
//! embedded default) and PostgreSQL.
//!
//! Each aggregate has its own file holding its trait, the rows it reads and its SQL:
//! `accounts` (accounts and the ledger), `holds` (the authorization fence), `premiums`, `medical` (payments and refunds), `institutions` (the designated ones), `wallet` (family wallet transfers), `wallet_statement` (their monthly statements), `settlement` (settlement and
//! verification), `usage` (family mutual aid's usage record), `feed` (the account event feed), `statement` (yearly statements) and, shared with binding-service through `gongji_shared::db`, the
//! `Database` trait and its idempotency table (migrations, liveness and first answers).
//!
//! The SQL is portable, so each aggregate's file writes it once, inside a `macro_rules!`
//! that `sqlite.rs` and `postgres.rs` expand for their own pool type. A macro rather than
//! generic functions: sqlx's executor bounds over a generic `Database` are long and leak
//! into every signature, while the statements themselves are identical. What differs
//! between the two databases is small and stated in one place, the top of `sqlite.rs` and
//! `postgres.rs`: row locking and how a premium payment gets its position; each also has
//! its own migrations. Amounts are integer fen in both.

#[macro_use]
mod accounts;
#[macro_use]
mod holds;
#[macro_use]
mod premiums;
#[macro_use]
mod medical;
#[macro_use]
mod institutions;
#[macro_use]
mod wallet;
#[macro_use]
mod wallet_statement;
#[macro_use]
mod settlement;
#[macro_use]
mod usage;
#[macro_use]
mod feed;
#[macro_use]
mod statement;
#[macro_use]
mod plaintext;
mod postgres;
mod sqlite;

pub use accounts::Accounts;
pub use feed::{AccountFeed, SEQUENCE_BATCH};
pub use holds::Holds;
pub use institutions::Institutions;
pub use medical::{MedicalPayments, PlannedRefund, RefundFacts};
pub use postgres::PgStore;
pub use premiums::Premiums;
pub use settlement::Settlements;
pub use sqlite::SqliteStore;
pub use statement::Statements;
pub use usage::FamilyUses;
pub use wallet::Wallets;
pub use wallet_statement::{MonthRefusal, WalletStatements};

/// A row an earlier version wrote with personal data in plain text, if any: an ID number
/// where its keyed index belongs has no sealed twin, and an old first answer's fingerprint
/// is bare hex.
const PLAINTEXT_PROBE: &str = "SELECT CAST(1 AS BIGINT) FROM accounts WHERE holder_sealed IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM premium_payments WHERE payer_sealed IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM medical_payments WHERE beneficiary_sealed IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM movements WHERE acting_person NOT LIKE 'v%:%' \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM idempotency WHERE fingerprint <> '' AND fingerprint NOT LIKE 'v%:%' LIMIT 1";

/// The tables holding sealed values, for re-encryption.
const SEALED: &[gongji_shared::db::reseal::SealedTable] = &[
    sealed("accounts", &["holder_sealed"]),
    sealed("movements", &["acting_person"]),
    sealed(
        "premium_payments",
        &[
            "payer_sealed",
            "beneficiary_sealed",
            "acting_person",
            "refund_acting_person",
        ],
    ),
    sealed(
        "medical_payments",
        &[
            "beneficiary_sealed",
            "family_holder_sealed",
            "acting_person",
        ],
    ),
    sealed("medical_refunds", &["acting_person"]),
    sealed(
        "wallet_transfers",
        &["authorizer_sealed", "beneficiary_sealed", "acting_person"],
    ),
    gongji_shared::db::reseal::SealedTable {
        table: "idempotency",
        text: &["fingerprint", "acting_person"],
        bytes: &["response"],
    },
];

const fn sealed(
    table: &'static str,
    text: &'static [&'static str],
) -> gongji_shared::db::reseal::SealedTable {
    gongji_shared::db::reseal::SealedTable {
        table,
        text,
        bytes: &[],
    }
}

/// Most rows one query returns: a bound on memory per call.
pub const MAX_ROWS: i64 = 1_000;
/// Most settled days a late movement skips to find its open day (S1); settlement runs for
/// ended days only, so in practice it skips one.
pub const MAX_SEALED_DAYS_SKIPPED: usize = 366;

/// Everything payment-service keeps.
pub trait Store:
    Database<Conflict = Conflict>
    + Accounts
    + Holds
    + Premiums
    + MedicalPayments
    + Institutions
    + Wallets
    + WalletStatements
    + Settlements
    + FamilyUses
    + AccountFeed
    + Statements
    + gongji_shared::db::reseal::Reseal
{
}

impl<
    T: Database<Conflict = Conflict>
        + Accounts
        + Holds
        + Premiums
        + MedicalPayments
        + Institutions
        + Wallets
        + WalletStatements
        + Settlements
        + FamilyUses
        + AccountFeed
        + Statements
        + gongji_shared::db::reseal::Reseal,
> Store for T
{
}

/// A store failure: a conflict of this store, or a fault of the database.
pub type StoreError = gongji_shared::db::StoreError<Conflict>;

pub use gongji_shared::db::Database;

/// What a constraint of the database refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("request id already used")]
    RequestIdTaken,
    #[error("account already exists")]
    AccountExists,
    #[error("a bucket would go below zero")]
    InsufficientBalance,
    #[error("a bucket would pass the largest balance")]
    BalanceLimit,
    #[error("the beneficiary's year is already paid")]
    AlreadyPaid,
    #[error("the payment is already refunded")]
    AlreadyRefunded,
    #[error("the year is already closed for this account")]
    YearClosed,
    /// A family debit would take more than the authorizer's limits leave.
    #[error("the authorizer's limit would be passed")]
    FamilyLimit,
    /// The hold to post expired or was voided: nothing may be debited on it.
    #[error("the hold is no longer live")]
    HoldGone,
    /// The authorizer's family wallet transfers of the day are used up.
    #[error("the day's wallet transfers are used up")]
    WalletDailyCount,
}

/// The store named by a database URL.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to a `sqlite://` (created if missing) or `postgres://` URL.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        vault: gongji_shared::vault::Vault,
    ) -> Result<Self, gongji_shared::db::OpenError> {
        gongji_shared::db::check_max_connections(max_connections)
            .map_err(gongji_shared::db::OpenError::Config)?;
        Ok(match gongji_shared::db::DatabaseKind::of(url)? {
            gongji_shared::db::DatabaseKind::Postgres => Self::Postgres(
                PgStore::connect(url, max_connections, vault)
                    .await
                    .map_err(|e| gongji_shared::db::OpenError::Connect(e.to_string()))?,
            ),
            gongji_shared::db::DatabaseKind::Sqlite => Self::Sqlite(
                SqliteStore::connect(url, vault)
                    .await
                    .map_err(|e| gongji_shared::db::OpenError::Connect(e.to_string()))?,
            ),
        })
    }
}
