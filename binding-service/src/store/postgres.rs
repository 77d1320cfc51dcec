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
    bindings::{BatchFactsRow, Facts, FactsKey, authorization_facts_batch_sql, facts_of_batch},
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
/// Statements reading authorizations at once. One: while it reads, the checks that arrive
/// queue for the next, so batches grow with the load. Measured at 32 clients on 2 cores, one
/// lane served 8,700 to 11,900 checks/s, two 7,900 to 9,500 and four 8,600: smaller batches
/// spend more per check on round trips than they save in waiting.
const FACTS_LANES: usize = 1;
/// Most authorizations one statement reads: a bound on its rows (three per pair at most).
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
    facts: Arc<Coalescer<FactsKey, Facts, StoreError>>,
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
            let (pool, vault) = (pool.clone(), vault.clone());
            move |keys| read_facts_batch(pool.clone(), vault.clone(), keys)
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
        self.facts
            .read(FactsKey {
                authorizer: authorizer.clone(),
                beneficiary: beneficiary.clone(),
                kind,
            })
            .await
    }
}

/// The facts of each key, in order, in one statement.
async fn read_facts_batch(
    pool: PgPool,
    vault: Vault,
    keys: Vec<FactsKey>,
) -> Result<Vec<Facts>, StoreError> {
    let mut authorizers = Vec::with_capacity(keys.len());
    let mut beneficiaries = Vec::with_capacity(keys.len());
    let mut kinds = Vec::with_capacity(keys.len());
    for k in &keys {
        authorizers.push(vault.index(&k.authorizer));
        beneficiaries.push(vault.index(&k.beneficiary));
        kinds.push(k.kind.as_str());
    }
    let rows: Vec<BatchFactsRow> = sqlx::query_as(authorization_facts_batch_sql())
        .bind(authorizers)
        .bind(beneficiaries)
        .bind(kinds)
        .fetch_all(&pool)
        .await?;
    facts_of_batch(rows, &vault, &keys)
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
