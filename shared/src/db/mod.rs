//! Database plumbing both services share: connections, the store failure type, decoders of
//! stored values, and the idempotency table (AIP-155) with the `Database` trait over it.

pub mod batch;
pub mod coalesce;
pub mod liveness;
pub mod reseal;
pub mod warm;

use std::{future::Future, path::Path, str::FromStr, time::Duration};

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

/// A pool's connections at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolConnections {
    pub in_use: u32,
    pub idle: u32,
}

/// Longest database URL file read: a URL, not a document.
pub const MAX_DATABASE_URL_FILE_BYTES: u64 = 4 * 1024;

/// Why the database URL file could not be used. Never carries the file's content: it holds
/// a password.
#[derive(Debug, thiserror::Error)]
pub enum UrlFileError {
    #[error("cannot read the database URL file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the database URL file {path} is empty, longer than {MAX_DATABASE_URL_FILE_BYTES} bytes or not UTF-8"
    )]
    Invalid { path: String },
}

/// The database URL: the content of `file` (trimmed) when one is named, else `url`.
pub fn database_url(url: &str, file: Option<&std::path::Path>) -> Result<String, UrlFileError> {
    let Some(file) = file else {
        return Ok(url.to_owned());
    };
    let path = file.display().to_string();
    let read = |source| UrlFileError::Read {
        path: path.clone(),
        source,
    };
    let size = std::fs::metadata(file).map_err(read)?.len();
    if size > MAX_DATABASE_URL_FILE_BYTES {
        return Err(UrlFileError::Invalid { path });
    }
    let bytes = std::fs::read(file).map_err(read)?;
    match String::from_utf8(bytes) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        _ => Err(UrlFileError::Invalid { path }),
    }
}

/// Most connections a PostgreSQL pool may be given.
pub const MAX_DB_CONNECTIONS: u32 = 200;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A database URL of neither kind. It names only the scheme: the rest may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the database URL must start with sqlite:// or postgres:// (got one starting with {scheme:?})"
)]
pub struct UnknownDatabase {
    scheme: String,
}

impl DatabaseKind {
    /// The kind of `url`: `sqlite:` or `postgres:`/`postgresql:`; anything else is refused,
    /// so a typo never becomes a local file name.
    pub fn of(url: &str) -> Result<Self, UnknownDatabase> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(UnknownDatabase {
                scheme: scheme.chars().take(16).collect(),
            })
        }
    }
}

/// Why a store could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    UnknownDatabase(#[from] UnknownDatabase),
    #[error("{0}")]
    Config(String),
    #[error("cannot connect: {0}")]
    Connect(String),
}

/// Checks a pool size given on the command line.
pub fn check_max_connections(n: u32) -> Result<u32, String> {
    if (1..=MAX_DB_CONNECTIONS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "the most database connections must be from 1 to {MAX_DB_CONNECTIONS}, not {n}"
        ))
    }
}

/// Read-only connections beside SQLite's one writer: in WAL mode they read while it writes.
pub const SQLITE_READERS: u32 = 4;

/// The connections to one SQLite database: its single writer, and its readers.
#[derive(Debug, Clone)]
pub struct SqlitePools {
    /// Every write and every transaction: one connection, so SQLite's one writer never
    /// answers busy, and a commit is durable before it returns (synchronous FULL).
    pub writer: SqlitePool,
    /// Reads outside transactions, so they never queue behind the writer.
    pub readers: SqlitePool,
}

/// Opens (creating it and its folder if missing) the SQLite database of a `sqlite://PATH`
/// URL: one writer connection, and up to [`SQLITE_READERS`] read-only connections opened
/// when first needed (after the writer has created the file). An in-memory database has no
/// file to share, so there its readers are its writer.
pub async fn sqlite_pools(url: &str) -> Result<SqlitePools, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .foreign_keys(true);
    let in_memory = options.get_filename() == Path::new(":memory:");
    if let Some(parent) = Path::new(options.get_filename()).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        .connect_with(options.clone())
        .await?;
    if in_memory {
        return Ok(SqlitePools {
            readers: writer.clone(),
            writer,
        });
    }
    let readers = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        .connect_lazy_with(options.create_if_missing(false).read_only(true));
    Ok(SqlitePools { writer, readers })
}

/// Connects to PostgreSQL with at most `max_connections` connections.
pub async fn postgres_pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
        // Tested only when idle a while or soon after an outage (see `liveness`).
        .test_before_acquire(false)
        .before_acquire(liveness::before_acquire)
        .connect(url)
        .await
}

/// A store failure; `C` is what a constraint of one service's store can refuse (a business
/// outcome its use cases turn into refusals).
#[derive(Debug, thiserror::Error)]
pub enum StoreError<C> {
    /// A constraint refused the write. Nothing was written.
    #[error("{0}")]
    Conflict(C),
    /// Stored data does not decode into the domain (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data keys do not fit the database (missing or wrong), or it holds personal data
    /// in plain text: start-up stops here.
    #[error("{0}")]
    Keys(String),
}

impl<C> From<sqlx::Error> for StoreError<C> {
    /// Every database error a store meets comes through here: a lost connection is noted as
    /// an outage, so that pooled connections are tested again for a while (`liveness`).
    fn from(error: sqlx::Error) -> Self {
        if is_lost_connection(&error) {
            liveness::note_outage();
        }
        Self::Database(error)
    }
}

impl<C> StoreError<C> {
    /// Whether the database could not be reached or could not serve (its connections are
    /// gone, refused, exhausted, or it is shutting down): a retry later may succeed, and the
    /// caller is told UNAVAILABLE rather than INTERNAL.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Database(error) => is_outage(error),
            _ => false,
        }
    }
}

/// Whether `error` says a connection to PostgreSQL was lost or could not be made (not a pool
/// exhausted under load, nor SQLite busy): pooled connections may be dead.
fn is_lost_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
                && db.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                })
        }
        _ => false,
    }
}

/// Whether `error` says the database could not be reached or could not serve: a connection
/// lost, or the pool, a worker or the server unable to take the call.
fn is_outage(error: &sqlx::Error) -> bool {
    if is_lost_connection(error) {
        return true;
    }
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN,
                // by their primary code.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff);
                return matches!(primary, Some(5 | 6 | 10 | 13 | 14));
            }
            // PostgreSQL, beside a lost connection: too many connections (53300), a database
            // not accepting connections (55000).
            db.code()
                .is_some_and(|code| matches!(code.as_ref(), "53300" | "55000"))
        }
        _ => false,
    }
}

impl<C: Clone> coalesce::BatchError for StoreError<C> {
    /// sqlx's errors are not `Clone`: a copy keeps what callers act on (an outage stays one,
    /// and is told UNAVAILABLE) and the message.
    fn copy(&self) -> Self {
        match self {
            Self::Conflict(c) => Self::Conflict(c.clone()),
            Self::Corrupt(s) => Self::Corrupt(s.clone()),
            Self::Keys(s) => Self::Keys(s.clone()),
            Self::Migrate(e) => Self::Corrupt(e.to_string()),
            Self::Database(sqlx::Error::PoolTimedOut) => Self::Database(sqlx::Error::PoolTimedOut),
            Self::Database(sqlx::Error::PoolClosed) => Self::Database(sqlx::Error::PoolClosed),
            Self::Database(e) if self.is_outage() => {
                Self::Database(sqlx::Error::Io(std::io::Error::other(e.to_string())))
            }
            Self::Database(e) => Self::Database(sqlx::Error::Protocol(e.to_string())),
        }
    }

    fn lanes_gone() -> Self {
        Self::Database(sqlx::Error::WorkerCrashed)
    }
}

/// What every store does whatever it keeps: migrations, liveness, and the first answers of
/// state-changing calls, which every write records in its own transaction.
pub trait Database: Clone + Send + Sync + 'static {
    /// What the store's constraints can refuse.
    type Conflict: std::fmt::Display + Send;

    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError<Self::Conflict>>> + Send;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError<Self::Conflict>>> + Send;

    /// The connections of the pool writes and transactions use (PostgreSQL's only pool;
    /// SQLite's single writer): in use and idle. None for a store without a pool.
    fn pool_connections(&self) -> PoolConnections {
        PoolConnections::default()
    }

    /// Drops the answers and fingerprints of up to `limit` records made before `before`:
    /// their request IDs stay taken (a late retry is told so, and runs nothing). Returns how
    /// many were dropped.
    fn expire_responses(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> impl Future<Output = Result<u64, StoreError<Self::Conflict>>> + Send;

    /// The response recorded under `request_id` in `scope` (its caller), if any.
    fn saved_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> impl Future<
        Output = Result<Option<crate::command::SavedResponse>, StoreError<Self::Conflict>>,
    > + Send;

    /// Records `response` as the answer to `idempotency` on its own, for a use case whose
    /// changes each committed in a transaction of their own (a batch): a retry then gets it.
    fn record_answer(
        &self,
        idempotency: &crate::command::Idempotency,
        response: &[u8],
        at: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<(), StoreError<Self::Conflict>>> + Send;
}

/// Rows read per page when a database an earlier version wrote is sealed in place: a bound
/// on memory.
pub const PLAINTEXT_PAGE: i64 = 1_000;

/// Records dropped per statement when answers expire: a bound on one statement's work.
pub const EXPIRE_BATCH: i64 = 1_000;
/// Statements per pass: a bound on one pass's work (the next pass takes the rest).
pub const EXPIRE_BATCHES_PER_PASS: usize = 100;
/// How often a service drops the answers past its retention window.
pub const EXPIRE_INTERVAL_MS: u64 = 3_600_000;
/// The pause between passes while expiry is behind: the database serves calls meanwhile.
pub const EXPIRE_CATCH_UP_PAUSE_MS: u64 = 1_000;

/// One pass of expiry: drops, in bounded batches, the stored answers of calls made more than
/// `retention_days` before `now`. Returns how many were dropped.
pub async fn expire_answers<D: Database>(
    store: &D,
    now: chrono::DateTime<chrono::Utc>,
    retention_days: u32,
) -> Result<u64, StoreError<D::Conflict>> {
    let before = now - chrono::Duration::days(i64::from(retention_days));
    let mut dropped = 0;
    for _ in 0..EXPIRE_BATCHES_PER_PASS {
        let done = store.expire_responses(before, EXPIRE_BATCH).await?;
        dropped += done;
        if done < EXPIRE_BATCH.unsigned_abs() {
            break;
        }
    }
    if dropped > 0 {
        tracing::info!(dropped, %before, "first answers past their retention dropped");
    }
    Ok(dropped)
}

/// Expires answers every [`EXPIRE_INTERVAL_MS`] until the task is aborted; a failed pass is
/// logged and tried again at the next.
pub async fn expire_answers_forever<D: Database>(store: D, clock: crate::Clock, retention_days: u32)
where
    D::Conflict: std::fmt::Display,
{
    let full_pass = EXPIRE_BATCH.unsigned_abs() * EXPIRE_BATCHES_PER_PASS as u64;
    // Start-up has just made a pass; if it was full, more are due at once.
    let mut behind = true;
    loop {
        let pause_ms = if behind {
            EXPIRE_CATCH_UP_PAUSE_MS
        } else {
            EXPIRE_INTERVAL_MS
        };
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        behind = match expire_answers(&store, clock.now(), retention_days).await {
            // A full pass leaves more behind: a busy service writes more answers an hour
            // than one pass drops, so passes follow each other until one is not full.
            Ok(dropped) => dropped >= full_pass,
            Err(error) => {
                tracing::warn!(%error, "first answers not expired; trying again later");
                false
            }
        };
    }
}

/// Decoders of stored values: a value that does not parse is a corrupt row.
pub mod decode {
    use super::StoreError;
    use crate::{
        domain::{IdNumber, Money, PersonName, RegionCode},
        vault::Vault,
    };

    /// A corrupt row, naming the column.
    pub fn corrupt<C>(what: &str) -> StoreError<C> {
        StoreError::Corrupt(what.to_owned())
    }

    pub fn id<C>(s: &str, what: &str) -> Result<IdNumber, StoreError<C>> {
        IdNumber::parse(s).map_err(|_| corrupt(what))
    }

    pub fn name<C>(s: &str, what: &str) -> Result<PersonName, StoreError<C>> {
        PersonName::parse(s).map_err(|_| corrupt(what))
    }

    /// The text a sealed column holds; a value that does not open is a corrupt row (or a
    /// key that went missing after start-up checked it, which cannot happen in-process).
    pub fn opened<C>(vault: &Vault, sealed: &str, what: &str) -> Result<String, StoreError<C>> {
        vault
            .open(sealed)
            .map_err(|e| corrupt(&format!("{what}: {e}")))
    }

    /// An ID number from its sealed column.
    pub fn sealed_id<C>(
        vault: &Vault,
        sealed: &str,
        what: &str,
    ) -> Result<IdNumber, StoreError<C>> {
        id(&opened(vault, sealed, what)?, what)
    }

    /// A name from its sealed column.
    pub fn sealed_name<C>(
        vault: &Vault,
        sealed: &str,
        what: &str,
    ) -> Result<PersonName, StoreError<C>> {
        name(&opened(vault, sealed, what)?, what)
    }

    pub fn region<C>(s: &str, what: &str) -> Result<RegionCode, StoreError<C>> {
        RegionCode::parse(s).map_err(|_| corrupt(what))
    }

    pub fn money<C>(fen: i64, what: &str) -> Result<Money, StoreError<C>> {
        Money::from_fen(fen).map_err(|_| corrupt(what))
    }

    /// Maps a unique violation to the conflict `taken`, anything else to a database error.
    pub fn unique_or<C>(error: sqlx::Error, taken: C) -> StoreError<C> {
        if super::is_unique_violation(&error) {
            StoreError::Conflict(taken)
        } else {
            error.into()
        }
    }
}

/// Whether an error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The table of first answers (AIP-155).
pub const IDEMPOTENCY_TABLE: &str = "idempotency";

/// The statement that records a first answer under its request ID, with who made the call:
/// the caller (the request ID's scope) and its acting person. Alone (`save_response`) or in a
/// batch with the effect's other writes; a request ID stored before fails it as a unique
/// violation of [`IDEMPOTENCY_TABLE`].
pub fn response_part(
    vault: &crate::vault::Vault,
    idempotency: &crate::command::Idempotency,
    response: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> batch::Part {
    batch::Part::new(
        IDEMPOTENCY_TABLE,
        "INSERT INTO idempotency (scope, request_id, operation, fingerprint, response, create_time, acting_person) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            idempotency.scope.as_str().into(),
            idempotency.request_id.as_str().into(),
            idempotency.operation.into(),
            // The fingerprint hashes a request that names persons: sealed, like the answer.
            vault.seal(&idempotency.fingerprint).into(),
            vault.seal_bytes(response).into_bytes().into(),
            at.into(),
            idempotency
                .acting_person
                .as_deref()
                .map(|p| vault.seal(p))
                .into(),
        ],
    )
}

/// Defines, for one sqlx database, the two statements of idempotency (AIP-155) every store
/// runs against its `idempotency` table: `save_response` (inside the effect's transaction;
/// a request ID stored before becomes `$taken`) and `saved_response_of`.
#[macro_export]
macro_rules! idempotency_sql {
    ($db:ty, $error:ty, $taken:expr) => {
        /// Records the response under its request ID inside the effect's transaction, with
        /// who made the call: the caller (the request ID's scope) and its acting person.
        async fn save_response(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &$crate::vault::Vault,
            idempotency: &$crate::command::Idempotency,
            response: &[u8],
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), $error> {
            let part = $crate::db::response_part(vault, idempotency, response, at);
            $crate::db::batch::BindValues::bind_values(sqlx::query(part.sql()), part.values())
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

        /// Seals, inside `tx`, the first answers an earlier version stored in plain text
        /// (their fingerprint is bare hex), a bounded page at a time; returns how many.
        #[allow(dead_code)]
        async fn seal_plain_answers(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &$crate::vault::Vault,
        ) -> Result<u64, $error> {
            let mut sealed = 0;
            loop {
                let rows: Vec<(String, String, String, Vec<u8>, Option<String>)> = sqlx::query_as(
                    "SELECT scope, request_id, fingerprint, response, acting_person FROM idempotency \
                     WHERE fingerprint <> '' AND fingerprint NOT LIKE 'v%:%' LIMIT $1",
                )
                .bind($crate::db::PLAINTEXT_PAGE)
                .fetch_all(&mut **tx)
                .await?;
                if rows.is_empty() {
                    return Ok(sealed);
                }
                for (scope, request_id, fingerprint, response, acting_person) in rows {
                    sqlx::query(
                        "UPDATE idempotency SET fingerprint = $1, response = $2, acting_person = $3 \
                         WHERE scope = $4 AND request_id = $5",
                    )
                    .bind(vault.seal(&fingerprint))
                    .bind(vault.seal_bytes(&response).into_bytes())
                    .bind(acting_person.as_deref().map(|p| vault.seal_plain(p)))
                    .bind(&scope)
                    .bind(&request_id)
                    .execute(&mut **tx)
                    .await?;
                    sealed += 1;
                }
            }
        }

        /// The response recorded under a request ID in a scope, if any.
        async fn saved_response_of<'c>(
            executor: impl sqlx::Executor<'c, Database = $db>,
            vault: &$crate::vault::Vault,
            scope: &str,
            request_id: &str,
        ) -> Result<Option<$crate::command::SavedResponse>, $error> {
            let row: Option<(String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT operation, fingerprint, response FROM idempotency WHERE scope = $1 AND request_id = $2",
            )
            .bind(scope)
            .bind(request_id)
            .fetch_optional(executor)
            .await?;
            let Some((operation, fingerprint, response)) = row else {
                return Ok(None);
            };
            if fingerprint.is_empty() {
                return Ok(Some($crate::command::SavedResponse::expired(operation)));
            }
            let response = String::from_utf8(response)
                .map_err(|_| $crate::db::decode::corrupt("idempotency.response"))?;
            Ok(Some($crate::command::SavedResponse {
                operation,
                fingerprint: $crate::db::decode::opened(vault, &fingerprint, "idempotency.fingerprint")?,
                response: vault
                    .open_bytes(&response)
                    .map_err(|e| $crate::db::decode::corrupt(&format!("idempotency.response: {e}")))?,
            }))
        }
    };
}

/// Implements [`Database`] for `$store` (a struct with a `pool` of `$db` for writes and
/// transactions, `reads` for reads outside them, and its `vault`), with migrations
/// from `$migrations` (relative to the expanding crate) and `$taken` the conflict of a
/// request ID stored first; defines `save_response` for the store's other writes.
/// `$plaintext` finds a row an earlier version wrote in plain text: the store's
/// `migrate_plaintext` then seals them in place, and if any is left the store refuses to
/// start.
#[macro_export]
macro_rules! database_sql {
    ($store:ident, $db:ty, $migrations:literal, $conflict:ty, $taken:expr, $plaintext:expr) => {
        impl $crate::db::Database for $store {
            type Conflict = $conflict;

            fn pool_connections(&self) -> $crate::db::PoolConnections {
                let (size, idle) = (self.pool.size(), self.pool.num_idle());
                // A connection kept warm (see `warm`) is out of the pool but idle.
                let idle = idle.saturating_add(self.warm.kept());
                let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
                $crate::db::PoolConnections {
                    in_use: size - idle,
                    idle,
                }
            }

            async fn migrate(&self) -> Result<(), $crate::db::StoreError<$conflict>> {
                sqlx::migrate!($migrations).run(&self.pool).await?;
                // The keys must be the ones the data was written with: checked now, before
                // the first call, against the check values the database keeps.
                // Twice: instances starting together on a new database may both add check
                // values, and the second pass checks this one's keys against whichever won.
                for _ in 0..2 {
                    let stored: Vec<(i64, String)> =
                        sqlx::query_as("SELECT version, check_value FROM vault_checks ORDER BY version")
                            .fetch_all(&self.pool)
                            .await?;
                    let missing = $crate::vault::check_keys(&self.vault, &stored)
                        .map_err(|e| $crate::db::StoreError::Keys(e.to_string()))?;
                    if missing.is_empty() {
                        break;
                    }
                    // In one transaction, so that one instance's check values all win or
                    // all lose: a concurrent insert of the same version waits for it.
                    let mut tx = self.pool.begin().await?;
                    for (version, check) in missing {
                        sqlx::query(
                            "INSERT INTO vault_checks (version, check_value) VALUES ($1, $2) \
                             ON CONFLICT (version) DO NOTHING",
                        )
                        .bind(version)
                        .bind(check)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                }
                // Once per database (the tables are scanned): a database an earlier version
                // wrote has its personal data sealed in place.
                let sealed: Option<(String,)> =
                    sqlx::query_as("SELECT value FROM vault_state WHERE name = 'plaintext_sealed'")
                        .fetch_optional(&self.pool)
                        .await?;
                if sealed.is_some() {
                    return Ok(());
                }
                if sqlx::query_as::<_, (i64,)>($plaintext).fetch_optional(&self.pool).await?.is_some() {
                    self.migrate_plaintext().await?;
                }
                let plain: Option<(i64,)> = sqlx::query_as($plaintext).fetch_optional(&self.pool).await?;
                if plain.is_some() {
                    return Err($crate::db::StoreError::Keys(
                        "this database still holds personal data in plain text after its migration"
                            .to_owned(),
                    ));
                }
                sqlx::query("INSERT INTO vault_state (name, value) VALUES ('plaintext_sealed', 'yes') ON CONFLICT (name) DO NOTHING")
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), $crate::db::StoreError<$conflict>> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn expire_responses(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> Result<u64, $crate::db::StoreError<$conflict>> {
                let done = sqlx::query(
                    "UPDATE idempotency SET response = $1, fingerprint = '', acting_person = NULL WHERE (scope, request_id) IN \
                     (SELECT scope, request_id FROM idempotency WHERE create_time < $2 AND fingerprint <> '' LIMIT $3)",
                )
                .bind(Vec::<u8>::new())
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn saved_response(
                &self,
                scope: &str,
                request_id: &str,
            ) -> Result<Option<$crate::command::SavedResponse>, $crate::db::StoreError<$conflict>>
            {
                // Looked up before almost every write: on a kept connection (see `warm`).
                let mut connection = self.warm_reads.acquire().await?;
                let saved = saved_response_of(&mut *connection, &self.vault, scope, request_id).await?;
                self.warm_reads.keep(connection);
                Ok(saved)
            }

            async fn record_answer(
                &self,
                idempotency: &$crate::command::Idempotency,
                response: &[u8],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::db::StoreError<$conflict>> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, &self.vault, idempotency, response, at).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        $crate::idempotency_sql!(
            $db,
            $crate::db::StoreError<$conflict>,
            $crate::db::StoreError::Conflict($taken)
        );
    };
}

/// The test server's admin URL and a pool of `max_connections` on it, as the services make
/// their pools; `None` (with a loud warning) when it cannot be reached and is not required,
/// as `testing` does for the services' tests (that module is behind a feature; these are
/// this crate's own tests).
#[cfg(test)]
pub(crate) async fn test_server(max_connections: u32) -> Option<(String, PgPool)> {
    let admin = std::env::var("GONGJI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let required = std::env::var("GONGJI_TEST_POSTGRES").is_ok_and(|v| v == "require");
    match postgres_pool(&admin, max_connections).await {
        Ok(pool) => Some((admin, pool)),
        Err(error) if required => panic!("GONGJI_TEST_POSTGRES=require: {error}"),
        Err(_) => {
            eprintln!("!!! SKIPPED a PostgreSQL test: no server");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_file_takes_the_place_of_the_url_and_its_content_is_never_told() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            database_url("sqlite://a.db", None).unwrap(),
            "sqlite://a.db"
        );
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://u:secret@db:5432/x\n").unwrap();
        assert_eq!(
            database_url("sqlite://a.db", Some(&file)).unwrap(),
            "postgres://u:secret@db:5432/x"
        );
        std::fs::write(&file, "  \n").unwrap();
        let empty = database_url("sqlite://a.db", Some(&file)).unwrap_err();
        assert!(matches!(empty, UrlFileError::Invalid { .. }), "{empty}");
        std::fs::write(&file, "postgres://u:secret@".repeat(400)).unwrap();
        let long = database_url("sqlite://a.db", Some(&file)).unwrap_err();
        assert!(!long.to_string().contains("secret"), "{long}");
        let missing = database_url("sqlite://a.db", Some(&dir.path().join("none"))).unwrap_err();
        assert!(matches!(missing, UrlFileError::Read { .. }), "{missing}");
    }

    /// A store with `rows` answers past the window, dropped `limit` at a time.
    #[derive(Clone)]
    struct Backlog(std::sync::Arc<std::sync::Mutex<(u64, u64)>>);

    impl Database for Backlog {
        type Conflict = String;

        async fn migrate(&self) -> Result<(), StoreError<String>> {
            Ok(())
        }

        async fn ping(&self) -> Result<(), StoreError<String>> {
            Ok(())
        }

        async fn expire_responses(
            &self,
            _before: chrono::DateTime<chrono::Utc>,
            limit: i64,
        ) -> Result<u64, StoreError<String>> {
            let mut state = self.0.lock().unwrap();
            let dropped = state.0.min(limit.unsigned_abs());
            *state = (state.0 - dropped, state.1 + 1);
            Ok(dropped)
        }

        async fn saved_response(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<crate::command::SavedResponse>, StoreError<String>> {
            Ok(None)
        }

        async fn record_answer(
            &self,
            _: &crate::command::Idempotency,
            _: &[u8],
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StoreError<String>> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_catches_up_pass_after_pass_then_waits_its_interval() {
        let store = Backlog(Default::default());
        store.0.lock().unwrap().0 = 250_000;
        let clock = crate::Clock::parse("2025-01-01T00:00:00+08:00").unwrap();
        let task = tokio::spawn(expire_answers_forever(store.clone(), clock, 30));
        // Three passes of at most 100,000, a second apart.
        tokio::time::sleep(Duration::from_millis(5 * EXPIRE_CATCH_UP_PAUSE_MS)).await;
        let (left, calls) = *store.0.lock().unwrap();
        assert_eq!(left, 0, "caught up within seconds, not hours");
        // Then, with nothing left, the next pass waits the interval.
        tokio::time::sleep(Duration::from_millis(EXPIRE_INTERVAL_MS / 2)).await;
        assert_eq!(
            store.0.lock().unwrap().1,
            calls,
            "no pass before the interval"
        );
        tokio::time::sleep(Duration::from_millis(EXPIRE_INTERVAL_MS)).await;
        assert!(store.0.lock().unwrap().1 > calls, "a pass every interval");
        task.abort();
    }

    #[tokio::test]
    async fn sqlite_reads_go_on_beside_an_open_write_and_commits_stay_durable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let pools = sqlite_pools(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pools.writer)
            .await
            .unwrap();
        let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&pools.writer)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL: a commit is on disk when it returns");
        let mut write = pools.writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *write)
            .await
            .unwrap();
        // The writer is busy in its transaction; a read neither waits for it nor sees it.
        let read = tokio::time::timeout(
            Duration::from_millis(1_000),
            sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM t").fetch_one(&pools.readers),
        )
        .await
        .expect("a read does not queue behind the writer")
        .unwrap();
        assert_eq!(read.0, 0);
        write.commit().await.unwrap();
        let (after,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
            .fetch_one(&pools.readers)
            .await
            .unwrap();
        assert_eq!(after, 1, "a committed write is seen by the next read");
        assert!(
            sqlx::query("INSERT INTO t VALUES (2)")
                .execute(&pools.readers)
                .await
                .is_err(),
            "readers are read-only"
        );
    }

    /// `sslmode=verify-full` with `sslrootcert` in a database URL: the connection is TLS, and
    /// a server whose certificate another CA signed is refused. Runs where the test server
    /// serves TLS with a self-signed certificate for `localhost` (Debian's snake-oil one).
    #[tokio::test]
    async fn postgres_connections_verify_the_server_certificate_when_asked() {
        use sqlx::postgres::PgConnectOptions;
        let Some((admin, plain)) = test_server(1).await else {
            return;
        };
        let (ssl, cert_file): (String, String) =
            sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
                .fetch_one(&plain)
                .await
                .unwrap();
        let Ok(cert) = std::fs::read(&cert_file) else {
            return eprintln!("!!! SKIPPED a TLS test: the server serves no readable certificate");
        };
        if ssl != "on" || x509_parser::pem::parse_x509_pem(&cert).is_err() {
            return eprintln!("!!! SKIPPED a TLS test: the server does not serve TLS");
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &cert).unwrap();
        let verified = |ca: &Path| {
            PgConnectOptions::from_str(&format!(
                "{admin}?sslmode=verify-full&sslrootcert={}",
                ca.display()
            ))
            .map(|o| o.host("localhost"))
        };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(verified(&ca).unwrap())
            .await
            .expect("verify-full against the server's CA");
        let (tls,): (bool,) =
            sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(tls, "the connection is TLS");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let wrong = dir.path().join("other-ca.pem");
        std::fs::write(&wrong, other.cert.pem()).unwrap();
        let refused = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(5_000))
            .connect_with(verified(&wrong).unwrap())
            .await;
        assert!(refused.is_err(), "a certificate of another CA is refused");
    }

    #[test]
    fn a_database_url_names_its_kind_or_is_refused_without_echoing_it() {
        assert_eq!(
            DatabaseKind::of("sqlite://data/x.db"),
            Ok(DatabaseKind::Sqlite)
        );
        assert_eq!(
            DatabaseKind::of("postgres://u@h/db"),
            Ok(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("postgresql://u@h/db"),
            Ok(DatabaseKind::Postgres)
        );
        let error = DatabaseKind::of("postgress://user:secret@host/db").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("\"postgress\""), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(DatabaseKind::of("data/payment.db").is_err());
    }

    #[test]
    fn lost_connections_are_outages_and_bad_rows_are_not() {
        let outage: StoreError<()> = StoreError::Database(sqlx::Error::PoolTimedOut);
        assert!(outage.is_outage());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::<()>::Database(sqlx::Error::Io(io)).is_outage());
        assert!(!StoreError::<()>::Corrupt("x".into()).is_outage());
        assert!(!StoreError::<()>::Database(sqlx::Error::RowNotFound).is_outage());
        assert!(!StoreError::Conflict(()).is_outage());
        // A lost connection turns the pools' tests back on; a pool exhausted under load does
        // not (testing more would only add load).
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_lost_connection(&sqlx::Error::Io(reset)));
        assert!(!is_lost_connection(&sqlx::Error::PoolTimedOut));
        assert!(!is_lost_connection(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn a_pool_has_at_least_one_connection_and_a_bound() {
        assert!(check_max_connections(0).is_err());
        assert_eq!(check_max_connections(1), Ok(1));
        assert!(check_max_connections(MAX_DB_CONNECTIONS + 1).is_err());
    }
}
