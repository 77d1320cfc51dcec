//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so a row read to decide a
//! write is locked (`FOR NO KEY UPDATE`), a business day is locked against its settlement
//! (advisory locks), VerifyLedger reads in REPEATABLE READ (READ COMMITTED statements would
//! each see another moment), and a premium payment's position comes from a sequence.

use gongji_shared::{
    db::warm::{self, Warm},
    vault::Vault,
};
use sqlx::postgres::PgPool;

use super::StoreError;

/// Row locking inside a transaction. NO KEY: the lock an update of balances takes, which does
/// not stop the inserts whose foreign keys name the row (entries, holds) from going ahead.
const FOR_UPDATE: &str = " FOR NO KEY UPDATE";
/// A business day's lock (keyed by its day number): writers of movements take it shared,
/// its settlement alone, so a settlement never misses a movement committing meanwhile.
const DAY_LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared(7402032, $1)";
/// The BEGIN of a transaction that writes a movement on `day`, with the day's shared lock
/// (`DAY_LOCK_SHARED`'s) in the same round trip: every statement after it has a snapshot
/// taken under the lock, so it sees any settlement of the day that committed before.
fn day_begin(day: chrono::NaiveDate) -> Option<String> {
    let day_number = chrono::Datelike::num_days_from_ce(&day);
    Some(format!(
        "BEGIN; SELECT pg_advisory_xact_lock_shared(7402032, {day_number})"
    ))
}
/// The account feed's sequencer runs on one instance at a time; another finds the lock
/// taken and leaves the numbering to it.
const SEQUENCER_LOCK: &str = "SELECT pg_try_advisory_xact_lock(7402033)";
/// The order rows were written in: movements (the feed's sequencer numbers them so) and
/// medical payments (listed newest first by it).
const WRITTEN_ORDER: &str = "written_no";
const DAY_LOCK: &str = "SELECT pg_advisory_xact_lock(7402032, $1)";
/// VerifyLedger's one snapshot: every statement of its transaction sees the same moment.
const VERIFY_SNAPSHOT: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// A hold's transaction commits without waiting for its WAL to reach the disk, set in the
/// same round trip as its BEGIN, which also takes the account's lock (so the statement after
/// it reads holds under the lock). A hold only reserves: the payment that posts it commits
/// durably, and that flush carries the hold's earlier commit with it. A hold lost to a crash
/// before then belongs to a payment nobody was told succeeded, and counts as expired.
/// (PostgreSQL's driver rolls back a custom BEGIN whose call is cancelled before it returns.)
/// The holder's stored index is hex (`Vault::index`), so it stands between quotes as it is.
fn hold_begin(holder: &str) -> Option<String> {
    assert!(
        !holder.is_empty() && holder.bytes().all(|b| b.is_ascii_hexdigit()),
        "a stored holder index is hex"
    );
    Some(format!(
        "BEGIN; SET LOCAL synchronous_commit TO OFF; \
         SELECT holder FROM accounts WHERE holder = '{holder}'{FOR_UPDATE}"
    ))
}
/// The column numbering accounts in the order they were opened (VerifyLedger pages by it).
const ACCOUNT_NO: &str = "account_no";
/// The position of a new premium payment.
const NEXT_PREMIUM_SEQ: &str = "nextval('premium_payments_seq')";

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Reads outside transactions: the same pool (PostgreSQL readers never wait on writers).
    reads: PgPool,
    /// Seals personal data and indexes ID numbers.
    vault: Vault,
    /// The pool with a few connections kept warm for the calls of every payment (see
    /// `warm`); reads and writes share it, as they share the pool.
    warm: Warm<sqlx::Postgres>,
    warm_reads: Warm<sqlx::Postgres>,
}

impl PgStore {
    /// Connects with at most `max_connections` connections.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        vault: Vault,
    ) -> Result<Self, StoreError> {
        let pool = gongji_shared::db::postgres_pool(url, max_connections).await?;
        let warm = Warm::new(
            pool.clone(),
            warm::max_kept(max_connections),
            warm::KEEP_LINGER_MS,
        );
        Ok(Self {
            reads: pool.clone(),
            warm: warm.clone(),
            warm_reads: warm,
            pool,
            vault,
        })
    }
}

#[cfg(test)]
impl PgStore {
    /// How many connections are kept warm now.
    pub(crate) fn kept_connections(&self) -> usize {
        self.warm.kept()
    }
}

gongji_shared::database_sql!(
    PgStore,
    sqlx::Postgres,
    "./migrations/postgres",
    super::Conflict,
    super::Conflict::RequestIdTaken,
    super::PLAINTEXT_PROBE
);
accounts_sql!(
    PgStore,
    sqlx::Postgres,
    FOR_UPDATE,
    DAY_LOCK_SHARED,
    day_begin,
    ACCOUNT_NO
);
holds_sql!(PgStore, sqlx::Postgres, hold_begin);
premiums_sql!(PgStore, NEXT_PREMIUM_SEQ, FOR_UPDATE);
medical_sql!(PgStore, WRITTEN_ORDER, FOR_UPDATE);
institutions_sql!(PgStore);
wallet_sql!(PgStore, FOR_UPDATE);
wallet_statement_sql!(PgStore, sqlx::Postgres);
usage_sql!(PgStore, sqlx::Postgres);
feed_sql!(PgStore, sqlx::Postgres, SEQUENCER_LOCK, WRITTEN_ORDER);
statement_sql!(PgStore);
settlement_sql!(
    PgStore,
    sqlx::Postgres,
    DAY_LOCK,
    VERIFY_SNAPSHOT,
    ACCOUNT_NO
);
gongji_shared::reseal_sql_postgres!(PgStore, super::SEALED);
plaintext_sql!(
    PgStore,
    sqlx::Postgres,
    ["ALTER TABLE entries DISABLE TRIGGER entries_no_change"],
    ["ALTER TABLE entries ENABLE TRIGGER entries_no_change"],
    // One statement: foreign keys are checked at its end, once every row refers to the new key.
    [
        "WITH a AS (UPDATE accounts SET holder = $2, holder_sealed = $3 WHERE holder = $1), \
      e AS (UPDATE entries SET holder = $2 WHERE holder = $1), \
      h AS (UPDATE holds SET holder = $2 WHERE holder = $1) \
      UPDATE year_closings SET holder = $2 WHERE holder = $1"
    ],
    [
        "VACUUM FULL accounts, entries, holds, year_closings, premium_payments, medical_payments, movements, idempotency"
    ]
);
