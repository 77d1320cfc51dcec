//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so a row read to decide a
//! write is locked (`FOR UPDATE`), and a premium payment's position comes from a sequence.

use sqlx::postgres::PgPool;

use super::StoreError;

/// Row locking inside a transaction.
const FOR_UPDATE: &str = " FOR UPDATE";
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
accounts_sql!(PgStore, sqlx::Postgres, FOR_UPDATE);
premiums_sql!(PgStore, NEXT_PREMIUM_SEQ, FOR_UPDATE);
medical_sql!(PgStore);
settlement_sql!(PgStore, sqlx::Postgres);
