//! Persistence: one `Store`, made of one trait per aggregate, implemented for SQLite (the
//! embedded default) and PostgreSQL.
//!
//! Each aggregate has its own file holding its trait, the rows it reads and its SQL:
//! `persons` (the registry), `bindings`, `events` (the audit trail), `uses` (the debits
//! each binding authorized) and and, shared with payment-service through
//! `gongji_shared::db`, the `Database` trait and its idempotency table (migrations,
//! liveness and first answers).
//!
//! The SQL is portable, so each aggregate's file writes it once, inside a `macro_rules!`
//! that `sqlite.rs` and `postgres.rs` expand for their own pool type. A macro rather than
//! generic functions: sqlx's executor bounds over a generic `Database` are long and leak
//! into every signature, while the statements themselves are identical. What differs
//! between the two databases is small and stated in one place, the top of `sqlite.rs` and
//! `postgres.rs`: how writers of binding events are serialized; each also has its own
//! migrations, whose column types differ (TEXT times in SQLite, TIMESTAMPTZ in PostgreSQL).

#[macro_use]
mod events;
#[macro_use]
mod bindings;
#[macro_use]
mod persons;
#[macro_use]
mod uses;
#[macro_use]
mod plaintext;
mod postgres;
mod sqlite;

pub use bindings::{Bindings, ListFilter};
pub use events::Events;
pub use persons::Persons;
#[cfg(test)]
pub(crate) use persons::write_order;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use uses::Uses;

/// A row an earlier version wrote with personal data in plain text, if any: an ID number
/// where its keyed index belongs has no sealed twin, and an old first answer's fingerprint
/// is bare hex.
const PLAINTEXT_PROBE: &str = "SELECT CAST(1 AS BIGINT) FROM persons WHERE id_sealed IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM bindings WHERE authorizer_sealed IS NULL \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM binding_events WHERE acting_person NOT LIKE 'v%:%' \
     UNION ALL SELECT CAST(1 AS BIGINT) FROM idempotency WHERE fingerprint <> '' AND fingerprint NOT LIKE 'v%:%' LIMIT 1";

use gongji_shared::db::reseal::SealedTable;

/// The tables holding sealed values, for re-encryption.
const SEALED: &[SealedTable] = &[
    SealedTable::text("persons", &["id_sealed", "name"]),
    SealedTable::text(
        "bindings",
        &[
            "authorizer_sealed",
            "beneficiary_sealed",
            "beneficiary_name",
        ],
    ),
    SealedTable::text("binding_events", &["acting_person"]),
    gongji_shared::db::reseal::IDEMPOTENCY,
];

/// Most rows one query returns: a bound on memory per call.
pub const MAX_ROWS: i64 = 1_000;

/// Everything binding-service keeps.
pub trait Store:
    Database<Conflict = Conflict>
    + Persons
    + Bindings
    + Events
    + Uses
    + gongji_shared::db::reseal::Reseal
{
}

impl<
    T: Database<Conflict = Conflict>
        + Persons
        + Bindings
        + Events
        + Uses
        + gongji_shared::db::reseal::Reseal,
> Store for T
{
}

/// A store failure: a conflict of this store, or a fault of the database.
pub type StoreError = gongji_shared::db::StoreError<Conflict>;

pub use gongji_shared::db::Database;

/// What a constraint of the database refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The request ID was stored by a concurrent call first.
    #[error("request id already used")]
    RequestIdTaken,
    /// A live binding of the same kind exists for the pair.
    #[error("a live binding exists for the pair")]
    LiveBindingExists,
    /// The authorizer reached the beneficiary cap (checked again under the write lock).
    #[error("beneficiary cap reached")]
    LimitReached,
    /// The binding changed since it was read.
    #[error("binding changed concurrently")]
    VersionChanged,
    /// The movement has a use recorded already.
    #[error("use already recorded")]
    UseRecorded,
    /// A registry record changed since the rules read it.
    #[error("registry changed concurrently")]
    RegistryChanged,
}

/// Opens the store named by a `sqlite://` or `postgres://` URL and runs `f` with it.
/// A generic continuation keeps the handlers monomorphic over one concrete store.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects to the URL's database (creating a SQLite file and its folder if missing).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        vault: gongji_shared::vault::Vault,
    ) -> Result<Self, gongji_shared::db::OpenError> {
        gongji_shared::db::check_max_connections(max_connections)
            .map_err(gongji_shared::db::OpenError::Config)?;
        Ok(match gongji_shared::db::DatabaseKind::of(url)? {
            gongji_shared::db::DatabaseKind::Postgres => Self::Postgres(
                PgStore::connect(url, max_connections, vault)
                    .await
                    .map_err(|e| gongji_shared::db::OpenError::Connect(e.to_string()))?,
            ),
            gongji_shared::db::DatabaseKind::Sqlite => Self::Sqlite(
                SqliteStore::connect(url, vault)
                    .await
                    .map_err(|e| gongji_shared::db::OpenError::Connect(e.to_string()))?,
            ),
        })
    }
}

/// Instances starting together on a new database: with the same keys both start, with
/// different keys only the first does.
#[cfg(test)]
mod tests {
    use gongji_shared::vault::{KeyMaterial, Vault};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_starting_together_agree_on_the_keys_or_the_second_stops() {
        let Some(names) = gongji_shared::testing::create_databases(&["twins", "rivals"]).await
        else {
            return;
        };
        let admin = gongji_shared::testing::admin_url();
        let url = |i: usize| gongji_shared::testing::database_url(&admin, &names[i]);
        let keys = KeyMaterial::generate();
        let twin = |vault: Vault| {
            let url = url(0);
            async move { PgStore::connect(&url, 2, vault).await.unwrap() }
        };
        let (a, b) = (twin(Vault::new(&keys)).await, twin(Vault::new(&keys)).await);
        let (first, second) = tokio::join!(a.migrate(), b.migrate());
        first.unwrap();
        second.unwrap();
        let rival = |vault: Vault| {
            let url = url(1);
            async move { PgStore::connect(&url, 2, vault).await.unwrap() }
        };
        let (a, b) = (
            rival(Vault::generate()).await,
            rival(Vault::generate()).await,
        );
        let (first, second) = tokio::join!(a.migrate(), b.migrate());
        assert!(
            first.is_ok() != second.is_ok(),
            "exactly one starts: {first:?} {second:?}"
        );
        drop((a, b));
        gongji_shared::testing::drop_databases(&names).await;
    }
}
