//! PostgreSQL, for production.
//!
//! What differs from SQLite, all of it here: concurrent writers, so every writer of binding
//! events takes one transaction advisory lock, and event sequence numbers become visible in
//! commit order; other writers lock only the rows they rely on.

use gongji_shared::vault::Vault;
use sqlx::postgres::PgPool;

use super::StoreError;

/// Serializes writers of binding events, so sequence order is commit order.
const EVENT_LOCK: &str = "SELECT pg_advisory_xact_lock(7402031)";
/// Row locking inside a transaction, to write the row.
const FOR_UPDATE: &str = " FOR UPDATE";
/// Row locking inside a transaction, to rely on the row.
const FOR_SHARE: &str = " FOR SHARE";
/// The position of a new use.
const NEXT_USE_SEQ: &str = "nextval('binding_uses_seq')";

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Reads outside transactions: the same pool (PostgreSQL readers never wait on writers).
    reads: PgPool,
    /// Seals personal data and indexes ID numbers.
    vault: Vault,
}

impl PgStore {
    /// Connects with at most `max_connections` connections.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        vault: Vault,
    ) -> Result<Self, StoreError> {
        let pool = gongji_shared::db::postgres_pool(url, max_connections).await?;
        Ok(Self {
            reads: pool.clone(),
            pool,
            vault,
        })
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
