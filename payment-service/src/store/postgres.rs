//! PostgreSQL, for production.

use sqlx::postgres::PgPool;

use super::StoreError;

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

sql_store!(
    PgStore,
    sqlx::Postgres,
    "./migrations/postgres",
    " FOR UPDATE",
    "nextval('premium_payments_seq')"
);
