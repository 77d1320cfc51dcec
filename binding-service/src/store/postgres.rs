//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so every writer of binding
//! events takes one transaction advisory lock, and event sequence numbers become visible in
//! commit order; other writers lock only the rows they rely on. A round trip costs more
//! than the statement it carries, so authorizations read at the same moment are read
//! together, in one statement (`gongji_shared::db::coalesce`).

use std::sync::Arc;

use gongji_shared::{
    IdNumber,
    db::{
        coalesce::Coalescer,
        warm::{self, Warm},
    },
    vault::Vault,
};
use sqlx::{
    Postgres,
    pool::PoolConnection,
    postgres::{PgConnection, PgPool},
};

use super::{
    StoreError,
    bindings::{
        BatchFactsRow, Facts, FactsKey, FactsRow, authorization_facts_batch_sql,
        authorization_facts_sql, facts_of, rows_of_batch,
    },
};
use crate::domain::BindingKind;

/// Serializes writers of binding events, so sequence order is commit order.
const EVENT_LOCK: &str = "SELECT pg_advisory_xact_lock(7402031)";
/// Row locking inside a transaction, to write the row.
const FOR_UPDATE: &str = " FOR UPDATE";
/// Row locking inside a transaction, to rely on the row.
const FOR_SHARE: &str = " FOR SHARE";
/// The position of a new use.
const NEXT_USE_SEQ: &str = "nextval('binding_uses_seq')";
/// Statements reading authorizations at once. While they read, the checks that arrive queue
/// for the next, so batches grow with the load. Measured on 2 cores (3,000 families, runs
/// alternated): at 32 clients one lane served 10,000 to 11,500 checks/s and two 9,900 to
/// 11,300, against 6,300 to 7,000 reading each alone. Two, so that one slow statement does
/// not hold every check.
const FACTS_LANES: usize = 2;
/// Most authorizations one statement reads: a bound on its rows (one per pair).
const MAX_FACTS_BATCH: usize = 64;
/// How long a lane keeps its connection once no check comes: as long as a connection is
/// kept warm for the next call (`warm`), for the same reasons: long enough to span the gaps
/// between batches under load and between one caller's checks (each give-back is a round
/// trip, sqlx's test), short enough that an idle service holds none.
const FACTS_LINGER_MS: u64 = warm::KEEP_LINGER_MS;

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Reads outside transactions: the same pool (PostgreSQL readers never wait on writers).
    reads: PgPool,
    /// Seals personal data and indexes ID numbers.
    vault: Vault,
    /// The pool with a few connections kept warm for the calls every payment makes here
    /// (its use, request IDs; see `warm`); reads and writes share it, as they share the pool.
    warm: Warm<sqlx::Postgres>,
    warm_reads: Warm<sqlx::Postgres>,
    /// Reads the facts of authorizations asked at the same moment together.
    facts: Arc<Coalescer<FactsKey, FactsRow, StoreError>>,
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
        let facts = Coalescer::spawn_holding(FACTS_LANES, MAX_FACTS_BATCH, FACTS_LINGER_MS, {
            let pool = pool.clone();
            move |held, keys| read_facts_batch(pool.clone(), held, keys)
        });
        Ok(Self {
            reads: pool.clone(),
            warm: warm.clone(),
            warm_reads: warm,
            pool,
            vault,
            facts: Arc::new(facts),
        })
    }

    /// `Bindings::authorization_facts`: read in a batch with those asked at the same moment.
    async fn read_facts(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        kind: BindingKind,
    ) -> Result<Facts, StoreError> {
        let row = self
            .facts
            .read(FactsKey {
                authorizer: self.vault.index(authorizer),
                beneficiary: self.vault.index(beneficiary),
                kind,
            })
            .await?;
        facts_of(row, &self.vault, authorizer, beneficiary)
    }
}

/// The row of each key, in order, in one statement, on the lane's `held` connection if it
/// has one (kept from its last batch), else on one from the pool; the connection is kept
/// for the lane's next batch unless the read failed. A held connection that turns out lost
/// (the server restarted, or ended it) is given up and the read made once more on one from
/// the pool, which tests every connection it hands out for a while after that outage
/// (`gongji_shared::db::liveness`): reads change nothing, and the first call after an
/// outage succeeds.
async fn read_facts_batch(
    pool: PgPool,
    mut held: Option<PoolConnection<Postgres>>,
    keys: Vec<FactsKey>,
) -> (
    Option<PoolConnection<Postgres>>,
    Result<Vec<FactsRow>, StoreError>,
) {
    loop {
        let was_held = held.is_some();
        let mut connection = match held.take() {
            Some(c) => c,
            None => match pool.acquire().await {
                Ok(c) => c,
                Err(e) => return (None, Err(e.into())),
            },
        };
        match read_facts_on(&mut connection, &keys).await {
            Ok(rows) => return (Some(connection), Ok(rows)),
            // Lost while held: once more, on one from the pool (held is now empty).
            Err(e) if was_held && e.is_outage() => continue,
            Err(e) => return (None, Err(e)),
        }
    }
}

/// The row of each key, in order, in one statement on `connection`. A key alone is read
/// with the one-pair statement, which has no arrays to unpack (before the batch statement
/// hid its arrays' lengths from the planner, it was planned anew at every call, and for
/// one pair that doubled PostgreSQL's CPU per check: 370 µs against 180 at 1 client).
async fn read_facts_on(
    connection: &mut PgConnection,
    keys: &[FactsKey],
) -> Result<Vec<FactsRow>, StoreError> {
    if let [k] = keys {
        let row: FactsRow = sqlx::query_as(authorization_facts_sql())
            .bind(&k.authorizer)
            .bind(&k.beneficiary)
            .bind(k.kind.as_str())
            .fetch_one(&mut *connection)
            .await?;
        return Ok(vec![row]);
    }
    let mut authorizers = Vec::with_capacity(keys.len());
    let mut beneficiaries = Vec::with_capacity(keys.len());
    let mut kinds = Vec::with_capacity(keys.len());
    for k in keys {
        authorizers.push(k.authorizer.as_str());
        beneficiaries.push(k.beneficiary.as_str());
        kinds.push(k.kind.as_str());
    }
    let rows: Vec<BatchFactsRow> = sqlx::query_as(authorization_facts_batch_sql())
        .bind(&authorizers)
        .bind(&beneficiaries)
        .bind(&kinds)
        .fetch_all(&mut *connection)
        .await?;
    rows_of_batch(rows, keys.len())
}

gongji_shared::database_sql!(
    PgStore,
    sqlx::Postgres,
    "./migrations/postgres",
    super::Conflict,
    super::Conflict::RequestIdTaken,
    super::PLAINTEXT_PROBE
);
events_sql!(PgStore, sqlx::Postgres);
bindings_sql!(PgStore, sqlx::Postgres, EVENT_LOCK, FOR_SHARE);
persons_sql!(PgStore, EVENT_LOCK, FOR_UPDATE);
uses_sql!(PgStore, FOR_UPDATE, NEXT_USE_SEQ);
gongji_shared::reseal_sql_postgres!(PgStore, super::SEALED);
plaintext_sql!(
    PgStore,
    sqlx::Postgres,
    ["VACUUM FULL persons, bindings, binding_events, idempotency"]
);

#[cfg(test)]
mod tests {
    use gongji_shared::db::Database as _;

    use super::*;

    /// The server process behind `connection`.
    async fn backend_of(connection: &mut PgConnection) -> i32 {
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(connection)
            .await
            .unwrap();
        pid
    }

    fn keys(n: usize) -> Vec<FactsKey> {
        (0..n)
            .map(|i| FactsKey {
                authorizer: format!("a{i}"),
                beneficiary: format!("b{i}"),
                kind: BindingKind::FundsSharing,
            })
            .collect()
    }

    /// A store on a fresh database of its own with `connections` connections, when
    /// PostgreSQL tests run.
    async fn migrated_store(name: &str, connections: u32) -> Option<(Vec<String>, PgStore)> {
        let names = gongji_shared::testing::create_databases(&[name]).await?;
        let admin = gongji_shared::testing::admin_url();
        let url = gongji_shared::testing::database_url(&admin, &names[0]);
        let store = PgStore::connect(&url, connections, Vault::generate())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Some((names, store))
    }

    #[tokio::test]
    async fn a_batch_statement_is_planned_once_per_connection_whatever_its_size() {
        let Some((names, store)) = migrated_store("generic", 2).await else {
            return;
        };
        let mut connection = store.pool.acquire().await.unwrap();
        // Small batches, as at light load: PostgreSQL's custom plans of them, estimated on
        // the arrays' lengths, would look cheaper than the generic one and be made anew at
        // every call (planning cost more than reading).
        for n in (0..20).map(|i| 2 + i % 3) {
            assert_eq!(
                read_facts_on(&mut connection, &keys(n))
                    .await
                    .unwrap()
                    .len(),
                n
            );
        }
        let (custom, generic): (i64, i64) = sqlx::query_as(
            "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1",
        )
        .bind(authorization_facts_batch_sql())
        .fetch_one(&mut *connection)
        .await
        .unwrap();
        // PostgreSQL makes five custom plans before it compares them with the generic one.
        assert!(custom <= 5, "{custom} custom plans, {generic} generic");
        assert!(generic >= 15, "{custom} custom plans, {generic} generic");
        drop(connection);
        drop(store);
        gongji_shared::testing::drop_databases(&names).await;
    }

    #[tokio::test]
    async fn a_lane_reads_on_its_held_connection_and_once_more_on_a_tested_one_when_it_was_lost() {
        let Some((names, store)) = migrated_store("held", 3).await else {
            return;
        };
        let pool = store.pool.clone();
        for n in [1, 3] {
            // A live held connection reads and is kept.
            let mut held = pool.acquire().await.unwrap();
            let pid = backend_of(&mut held).await;
            let (kept, rows) = read_facts_batch(pool.clone(), Some(held), keys(n)).await;
            assert_eq!(rows.unwrap().len(), n);
            let mut kept = kept.expect("a connection that read is kept");
            assert_eq!(backend_of(&mut kept).await, pid);

            // The server ends it while the lane holds it (waiting until its process has exited):
            // the read is made again, on another.
            let ended: (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1, 5000)")
                .bind(pid)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(ended.0);
            let (kept, rows) = read_facts_batch(pool.clone(), Some(kept), keys(n)).await;
            assert_eq!(rows.unwrap().len(), n);
            let mut kept = kept.expect("the connection the read succeeded on is kept");
            assert_ne!(backend_of(&mut kept).await, pid);
        }
        drop(store);
        pool.close().await;
        gongji_shared::testing::drop_databases(&names).await;
    }
}
