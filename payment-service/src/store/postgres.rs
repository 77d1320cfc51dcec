//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so a row read to decide a
//! write is locked (`FOR UPDATE`), a business day is locked against its settlement
//! (advisory locks), VerifyLedger reads in REPEATABLE READ (READ COMMITTED statements would
//! each see another moment), and a premium payment's position comes from a sequence.

use sqlx::postgres::PgPool;

use super::StoreError;

/// Row locking inside a transaction.
const FOR_UPDATE: &str = " FOR UPDATE";
/// A business day's lock (keyed by its day number): writers of movements take it shared,
/// its settlement alone, so a settlement never misses a movement committing meanwhile.
const DAY_LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared(7402032, $1)";
const DAY_LOCK: &str = "SELECT pg_advisory_xact_lock(7402032, $1)";
/// VerifyLedger's one snapshot: every statement of its transaction sees the same moment.
const VERIFY_SNAPSHOT: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// The position of a new premium payment.
const NEXT_PREMIUM_SEQ: &str = "nextval('premium_payments_seq')";

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects with at most `max_connections` connections.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Self {
            pool: gongji_shared::db::postgres_pool(url, max_connections).await?,
        })
    }
}

gongji_shared::database_sql!(
    PgStore,
    sqlx::Postgres,
    "./migrations/postgres",
    super::Conflict,
    super::Conflict::RequestIdTaken
);
accounts_sql!(PgStore, sqlx::Postgres, FOR_UPDATE, DAY_LOCK_SHARED);
holds_sql!(PgStore, sqlx::Postgres, FOR_UPDATE);
premiums_sql!(PgStore, NEXT_PREMIUM_SEQ, FOR_UPDATE);
medical_sql!(PgStore);
settlement_sql!(PgStore, sqlx::Postgres, DAY_LOCK, VERIFY_SNAPSHOT);
