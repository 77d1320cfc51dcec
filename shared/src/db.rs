//! Database connections both services open the same way.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

/// How long a call waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT_MS: u64 = 5_000;
/// How long SQLite waits on a lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

/// Whether the URL names PostgreSQL (anything else is taken as SQLite).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens (creating it and its folder if missing) the SQLite database of a `sqlite://PATH`
/// URL. One connection: SQLite takes one writer at a time, and a single connection
/// serializes transactions without busy errors.
pub async fn sqlite_pool(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .foreign_keys(true);
    if let Some(parent) = Path::new(options.get_filename()).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        .connect_with(options)
        .await
}

/// Connects to PostgreSQL with at most `max_connections` connections.
pub async fn postgres_pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        .connect(url)
        .await
}

/// Whether an error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Defines, for one sqlx database, the two statements of idempotency (AIP-155) every store
/// runs against its `idempotency` table: `save_response` (inside the effect's transaction;
/// a request ID stored before becomes `$taken`) and `saved_response_of`.
#[macro_export]
macro_rules! idempotency_sql {
    ($db:ty, $error:ty, $taken:expr) => {
        /// Records the response under its request ID inside the effect's transaction.
        async fn save_response(
            tx: &mut sqlx::Transaction<'_, $db>,
            idempotency: &$crate::rpc::Idempotency,
            response: &[u8],
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), $error> {
            sqlx::query(
                "INSERT INTO idempotency (request_id, operation, fingerprint, response, create_time) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&idempotency.request_id)
            .bind(idempotency.operation)
            .bind(&idempotency.fingerprint)
            .bind(response)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if $crate::db::is_unique_violation(&e) {
                    $taken
                } else {
                    <$error>::from(e)
                }
            })?;
            Ok(())
        }

        /// The response recorded under a request ID, if any.
        async fn saved_response_of(
            pool: &sqlx::Pool<$db>,
            request_id: &str,
        ) -> Result<Option<$crate::rpc::SavedResponse>, $error> {
            let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT operation, fingerprint, response FROM idempotency WHERE request_id = $1",
            )
            .bind(request_id)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(operation, fingerprint, response)| $crate::rpc::SavedResponse {
                operation,
                fingerprint,
                response,
            }))
        }
    };
}
