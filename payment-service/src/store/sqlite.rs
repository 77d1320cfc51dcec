//! The embedded default: one SQLite file, created on first start.

use sqlx::sqlite::SqlitePool;

use super::StoreError;

/// SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database of a `sqlite://PATH` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pool: gongji_shared::db::sqlite_pool(url).await?,
        })
    }
}

// SQLite has one writer: rows need no lock; positions come from the highest so far.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    "./migrations/sqlite",
    "",
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM premium_payments)"
);
