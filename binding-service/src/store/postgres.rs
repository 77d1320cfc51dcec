//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so every writer of binding
//! events takes one transaction advisory lock, and event sequence numbers become visible in
//! commit order; other writers lock only the rows they rely on. A round trip costs more
//! than the statement it carries, so authorizations read at the same moment are read
//! together, in one statement (`gongji_shared::db::coalesce`).

use std::sync::Arc;

use gongji_shared::{IdNumber, db::coalesce::Coalescer, vault::Vault};
use sqlx::postgres::PgPool;

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
/// Most authorizations one statement reads: a bound on its rows (two per pair at most).
const MAX_FACTS_BATCH: usize = 64;

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Reads outside transactions: the same pool (PostgreSQL readers never wait on writers).
    reads: PgPool,
    /// Seals personal data and indexes ID numbers.
    vault: Vault,
    /// Reads the facts of authorizations asked at the same moment together.
    facts: Arc<Coalescer<FactsKey, Vec<FactsRow>, StoreError>>,
}

impl PgStore {
    /// Connects with at most `max_connections` connections.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        vault: Vault,
    ) -> Result<Self, StoreError> {
        let pool = gongji_shared::db::postgres_pool(url, max_connections).await?;
        let facts = Coalescer::spawn(FACTS_LANES, MAX_FACTS_BATCH, {
            let pool = pool.clone();
            move |keys| read_facts_batch(pool.clone(), keys)
        });
        Ok(Self {
            reads: pool.clone(),
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
        let rows = self
            .facts
            .read(FactsKey {
                authorizer: self.vault.index(authorizer),
                beneficiary: self.vault.index(beneficiary),
                kind,
            })
            .await?;
        facts_of(rows, &self.vault, authorizer, beneficiary)
    }
}

/// The rows of each key, in order, in one statement. A key alone is read with the one-pair
/// statement: PostgreSQL plans the batch's arrays again at each call, which for one pair
/// doubled its CPU per check (370 µs against 180 at 1 client).
async fn read_facts_batch(
    pool: PgPool,
    mut keys: Vec<FactsKey>,
) -> Result<Vec<Vec<FactsRow>>, StoreError> {
    if keys.len() == 1
        && let Some(k) = keys.pop()
    {
        let rows: Vec<FactsRow> = sqlx::query_as(authorization_facts_sql())
            .bind(k.authorizer)
            .bind(k.beneficiary)
            .bind(k.kind.as_str())
            .fetch_all(&pool)
            .await?;
        return Ok(vec![rows]);
    }
    let mut authorizers = Vec::with_capacity(keys.len());
    let mut beneficiaries = Vec::with_capacity(keys.len());
    let mut kinds = Vec::with_capacity(keys.len());
    for k in keys {
        authorizers.push(k.authorizer);
        beneficiaries.push(k.beneficiary);
        kinds.push(k.kind.as_str());
    }
    let rows: Vec<BatchFactsRow> = sqlx::query_as(authorization_facts_batch_sql())
        .bind(&authorizers)
        .bind(beneficiaries)
        .bind(kinds)
        .fetch_all(&pool)
        .await?;
    rows_of_batch(rows, authorizers.len())
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
