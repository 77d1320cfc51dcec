//! The embedded default: one SQLite file, created on first start.
//!
//! What differs from PostgreSQL, all of it here: SQLite has one writer (one pooled
//! connection), so a row read in a transaction needs no lock, a business day needs no lock
//! against its settlement, VerifyLedger's transaction is one snapshot already, and a
//! premium payment's position is the highest so far plus one. Reads outside transactions go
//! to read-only connections (WAL), so they never queue behind the writer.

use gongji_shared::{db::warm::Warm, vault::Vault};
use sqlx::sqlite::SqlitePool;

use super::StoreError;

/// Row locking inside a transaction: none needed behind the single writer.
const FOR_UPDATE: &str = "";
/// A business day's lock, shared by its writers and taken alone by its settlement: the
/// single writer serializes them already (the day is bound and ignored).
const DAY_LOCK_SHARED: &str = "SELECT $1";
const DAY_LOCK: &str = "SELECT $1";
/// A transaction writing a movement begins as any other: nothing to lock (and no custom
/// BEGIN on SQLite: see `hold_begin`).
fn day_begin(_day: chrono::NaiveDate) -> Option<String> {
    None
}
/// VerifyLedger's one snapshot: behind the single connection nothing commits meanwhile.
const VERIFY_SNAPSHOT: &str = "SELECT 1";
/// The column numbering accounts in the order they were opened: SQLite's own row ID.
const ACCOUNT_NO: &str = "rowid";
/// A hold's transaction begins as any other. Never a custom BEGIN here: sqlx's SQLite driver
/// checks that a custom BEGIN took effect in a second step, after the BEGIN ran, and a call
/// cancelled between the two leaves the one writer connection inside a transaction nobody
/// owns. The next hold's BEGIN would then fail (INTERNAL).
fn hold_begin(_holder: &str) -> Option<String> {
    None
}
/// The account feed's sequencer runs alone: the single writer serializes it already.
const SEQUENCER_LOCK: &str = "SELECT 1 = 1";
/// The order rows were written in: movements (the feed's sequencer numbers them so) and
/// medical payments (listed newest first by it).
const WRITTEN_ORDER: &str = "rowid";
/// The position of a new premium payment.
const NEXT_PREMIUM_SEQ: &str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM premium_payments)";

/// SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    /// The single writer: writes and transactions.
    pub(super) pool: SqlitePool,
    /// Read-only connections: reads outside transactions.
    reads: SqlitePool,
    /// Seals personal data and indexes ID numbers.
    vault: Vault,
    /// The writer and the readers, keeping none warm: a test on giving a connection back is
    /// a call within this process, not a round trip.
    warm: Warm<sqlx::Sqlite>,
    warm_reads: Warm<sqlx::Sqlite>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database of a `sqlite://PATH` URL.
    pub async fn connect(url: &str, vault: Vault) -> Result<Self, StoreError> {
        let pools = gongji_shared::db::sqlite_pools(url).await?;
        Ok(Self {
            warm: Warm::new(pools.writer.clone(), 0, 0),
            warm_reads: Warm::new(pools.readers.clone(), 0, 0),
            pool: pools.writer,
            reads: pools.readers,
            vault,
        })
    }
}

gongji_shared::database_sql!(
    SqliteStore,
    sqlx::Sqlite,
    "./migrations/sqlite",
    super::Conflict,
    super::Conflict::RequestIdTaken,
    super::PLAINTEXT_PROBE
);
accounts_sql!(
    SqliteStore,
    sqlx::Sqlite,
    FOR_UPDATE,
    DAY_LOCK_SHARED,
    day_begin,
    ACCOUNT_NO
);
holds_sql!(SqliteStore, sqlx::Sqlite, hold_begin);
premiums_sql!(SqliteStore, NEXT_PREMIUM_SEQ, FOR_UPDATE);
medical_sql!(SqliteStore, WRITTEN_ORDER, FOR_UPDATE);
institutions_sql!(SqliteStore);
wallet_sql!(SqliteStore, FOR_UPDATE);
wallet_statement_sql!(SqliteStore, sqlx::Sqlite);
usage_sql!(SqliteStore, sqlx::Sqlite);
feed_sql!(SqliteStore, sqlx::Sqlite, SEQUENCER_LOCK, WRITTEN_ORDER);
statement_sql!(SqliteStore);
settlement_sql!(
    SqliteStore,
    sqlx::Sqlite,
    DAY_LOCK,
    VERIFY_SNAPSHOT,
    ACCOUNT_NO
);
gongji_shared::reseal_sql_sqlite!(SqliteStore, super::SEALED);
plaintext_sql!(
    SqliteStore,
    sqlx::Sqlite,
    [
        // Foreign keys checked at commit, once every row refers to the new key.
        "PRAGMA defer_foreign_keys = ON",
        "DROP TRIGGER entries_no_update",
    ],
    [
        "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END"
    ],
    [
        "UPDATE accounts SET holder = $2, holder_sealed = $3 WHERE holder = $1",
        "UPDATE entries SET holder = $2 WHERE holder = $1 AND $3 IS NOT NULL",
        "UPDATE holds SET holder = $2 WHERE holder = $1 AND $3 IS NOT NULL",
        "UPDATE year_closings SET holder = $2 WHERE holder = $1 AND $3 IS NOT NULL",
    ],
    ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
);
