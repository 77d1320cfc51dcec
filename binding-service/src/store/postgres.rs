//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so every writer of binding
//! events takes one transaction advisory lock, and event sequence numbers become visible in
//! commit order.

use sqlx::postgres::PgPool;

use super::StoreError;

/// Serializes writers of binding events, so sequence order is commit order.
const EVENT_LOCK: &str = "SELECT pg_advisory_xact_lock(7402031)";

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
events_sql!(PgStore, sqlx::Postgres);
bindings_sql!(PgStore, sqlx::Postgres, EVENT_LOCK);
persons_sql!(PgStore, EVENT_LOCK);
uses_sql!(PgStore, EVENT_LOCK);
