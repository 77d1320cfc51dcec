//! The embedded default: one SQLite file, created on first start.
//!
//! What differs from PostgreSQL, all of it here: SQLite has one writer already, so writers
//! of binding events need no lock of their own, and no row is locked. Reads outside
//! transactions go to read-only connections (WAL), so they never queue behind the writer.
//! A read's round trip stays in the process, so each authorization is read on its own.

use gongji_shared::{IdNumber, db::warm::Warm, vault::Vault};
use sqlx::sqlite::SqlitePool;

use super::{
    StoreError,
    bindings::{Facts, FactsRow, authorization_facts_sql, facts_of},
};
use crate::domain::BindingKind;

/// Serializes writers of binding events, so sequence order is commit order.
const EVENT_LOCK: &str = "SELECT 1";
/// The position of a new use: the single writer makes the highest so far plus one safe.
const NEXT_USE_SEQ: &str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM binding_uses)";

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

impl SqliteStore {
    /// `Bindings::authorization_facts`: one statement of its own (the reads are in this
    /// process, so a round trip costs little).
    async fn read_facts(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        kind: BindingKind,
    ) -> Result<Facts, StoreError> {
        let row: FactsRow = sqlx::query_as(authorization_facts_sql())
            .bind(self.vault.index(authorizer))
            .bind(self.vault.index(beneficiary))
            .bind(kind.as_str())
            .fetch_one(&self.reads)
            .await?;
        facts_of(row, &self.vault, authorizer, beneficiary)
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
events_sql!(SqliteStore, sqlx::Sqlite);
bindings_sql!(SqliteStore, sqlx::Sqlite, EVENT_LOCK, "");
persons_sql!(SqliteStore, EVENT_LOCK, "");
uses_sql!(SqliteStore, "", NEXT_USE_SEQ);
gongji_shared::reseal_sql_sqlite!(SqliteStore, super::SEALED);
plaintext_sql!(
    SqliteStore,
    sqlx::Sqlite,
    ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
);
