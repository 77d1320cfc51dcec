//! A database an earlier version wrote, with ID numbers and names in plain text, sealed in
//! place at start-up: ID-number columns become keyed indexes beside their sealed values,
//! names and acting persons are sealed, and the old pages are then rewritten, so the plain
//! text is gone from the files too (SQLite's free pages, PostgreSQL's dead rows and indexes).

/// Implements `migrate_plaintext` for `$store` over `$db`: one transaction, read a bounded
/// page at a time; then `$vacuum` (statements run outside any transaction).
macro_rules! plaintext_sql {
    ($store:ident, $db:ty, $vacuum:expr) => {
        impl $store {
            /// Seals every plain value an earlier version stored; returns how many rows.
            async fn migrate_plaintext(&self) -> Result<u64, $crate::store::StoreError> {
                let vault = &self.vault;
                let page = gongji_shared::db::PLAINTEXT_PAGE;
                let mut tx = self.pool.begin().await?;
                let mut sealed = 0;
                loop {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT id_number, name FROM persons WHERE id_sealed IS NULL LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (id, name) in rows {
                        sqlx::query(
                            "UPDATE persons SET id_number = $1, id_sealed = $2, name = $3 WHERE id_number = $4",
                        )
                        .bind(vault.index_text(&id))
                        .bind(vault.seal(&id))
                        .bind(vault.seal_plain(&name))
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                        sealed += 1;
                    }
                }
                loop {
                    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                        "SELECT binding_id, authorizer, beneficiary, beneficiary_name FROM bindings \
                         WHERE authorizer_sealed IS NULL LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (binding_id, authorizer, beneficiary, name) in rows {
                        sqlx::query(
                            "UPDATE bindings SET authorizer = $1, beneficiary = $2, authorizer_sealed = $3, \
                             beneficiary_sealed = $4, beneficiary_name = $5 WHERE binding_id = $6",
                        )
                        .bind(vault.index_text(&authorizer))
                        .bind(vault.index_text(&beneficiary))
                        .bind(vault.seal(&authorizer))
                        .bind(vault.seal(&beneficiary))
                        .bind(vault.seal_plain(&name))
                        .bind(&binding_id)
                        .execute(&mut *tx)
                        .await?;
                        sealed += 1;
                    }
                }
                loop {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT sequence, acting_person FROM binding_events \
                         WHERE acting_person IS NOT NULL AND acting_person NOT LIKE 'v%:%' LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (sequence, acting_person) in rows {
                        sqlx::query("UPDATE binding_events SET acting_person = $1 WHERE sequence = $2")
                            .bind(vault.seal(&acting_person))
                            .bind(sequence)
                            .execute(&mut *tx)
                            .await?;
                        sealed += 1;
                    }
                }
                sealed += seal_plain_answers(&mut tx, vault).await?;
                tx.commit().await?;
                for statement in $vacuum {
                    sqlx::raw_sql(statement).execute(&self.pool).await?;
                }
                tracing::info!(rows = sealed, "personal data an earlier version stored in plain text is sealed");
                Ok(sealed)
            }
        }
    };
}

/// A database as the version before sealing left it, with every kind of row that held
/// personal data in plain text, is sealed at start-up on both databases: every row kept and
/// readable through the store, no ID number or name left in the files or a dump.
#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use gongji_shared::{IdNumber, testing, vault::Vault};

    use crate::store::{Database, ListFilter, PgStore, SqliteStore, Store};

    const EMPLOYEE: &str = "34052419800101001X";
    const CHILD: &str = "340504201801100012";
    const NAMES: [&str; 2] = ["李娜", "李子轩"];
    /// Tables and their rows in the fixture.
    const ROWS: [(&str, i64); 4] = [
        ("persons", 2),
        ("bindings", 1),
        ("binding_events", 1),
        ("idempotency", 1),
    ];

    /// The rows the earlier version wrote: the registry, a binding with its event (acting
    /// for the employee) and the call's record, its answer naming the child.
    async fn earlier_rows<'c, E>(db: E)
    where
        E: sqlx::Executor<'c> + Copy,
        E::Database: sqlx::Database,
        for<'q> <E::Database as sqlx::Database>::Arguments<'q>:
            sqlx::IntoArguments<'q, E::Database>,
        for<'q> &'q str: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
        for<'q> Option<&'q str>: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
        for<'q> i64: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
        for<'q> &'q [u8]: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
        for<'q> chrono::DateTime<Utc>: sqlx::Encode<'q, E::Database> + sqlx::Type<E::Database>,
    {
        let at = Utc.with_ymd_and_hms(2024, 11, 15, 2, 0, 0).unwrap();
        for (id, name, employee, resident) in [
            (EMPLOYEE, NAMES[0], Some("340500"), None),
            (CHILD, NAMES[1], None, Some("340500")),
        ] {
            sqlx::query(
                "INSERT INTO persons (id_number, name, employee_region, employee_status, resident_region, \
                 resident_status, update_time, resident_paid_years) VALUES ($1, $2, $3, $4, $5, $6, $7, '')",
            )
            .bind(id)
            .bind(name)
            .bind(employee)
            .bind(employee.map(|_| "NORMAL"))
            .bind(resident)
            .bind(resident.map(|_| "NORMAL"))
            .bind(at)
            .execute(db)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO bindings (binding_id, authorizer, beneficiary, beneficiary_name, relationship, kind, \
             state, version, create_time, update_time, state_reason, seq) \
             VALUES ('b-1', $1, $2, $3, 'CHILD', 'FUNDS_SHARING', 'ACTIVE', 1, $4, $4, '', 1)",
        )
        .bind(EMPLOYEE)
        .bind(CHILD)
        .bind(NAMES[1])
        .bind(at)
        .execute(db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO binding_events (binding_id, from_state, to_state, actor, reason, request_id, \
             event_time, binding_version, caller, acting_person) \
             VALUES ('b-1', NULL, 'ACTIVE', 'authorizer', '', 'bind', $1, 1, 'gov-app', $2)",
        )
        .bind(at)
        .bind(EMPLOYEE)
        .execute(db)
        .await
        .unwrap();
        let answer = format!("{CHILD} {}", NAMES[1]);
        sqlx::query(
            "INSERT INTO idempotency (scope, request_id, operation, fingerprint, response, create_time, acting_person) \
             VALUES ('gov-app', 'bind', 'CreateBinding', 'ab12', $1, $2, $3)",
        )
        .bind(answer.as_bytes())
        .bind(at)
        .bind(EMPLOYEE)
        .execute(db)
        .await
        .unwrap();
    }

    /// Every row kept and readable through the store.
    async fn everything_reads<S: Store>(store: &S) {
        let id = |s: &str| IdNumber::parse(s).unwrap();
        let employee = store.person(&id(EMPLOYEE)).await.unwrap().unwrap();
        assert_eq!(employee.name.as_str(), NAMES[0]);
        let bindings = store
            .list_bindings(&ListFilter {
                as_authorizer: true,
                person: id(EMPLOYEE),
                states: Vec::new(),
                after: 0,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].1.beneficiary, id(CHILD));
        assert_eq!(bindings[0].1.beneficiary_name.as_str(), NAMES[1]);
        let (_, events) = store.binding("b-1").await.unwrap().unwrap();
        assert_eq!(events[0].acting_person.as_deref(), Some(EMPLOYEE));
        let saved = store
            .saved_response("gov-app", "bind")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(saved.fingerprint, "ab12");
        assert_eq!(saved.response, format!("{CHILD} {}", NAMES[1]).into_bytes());
    }

    fn assert_no_plain_text(bytes: &[u8], what: &str) {
        assert!(
            testing::contains(bytes, b"FUNDS_SHARING"),
            "{what} holds the data"
        );
        for secret in [EMPLOYEE, CHILD, NAMES[0], NAMES[1]] {
            assert!(
                !testing::contains(bytes, secret.as_bytes()),
                "{what} holds {secret}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_an_earlier_database_is_sealed_in_place_and_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binding.db");
        let url = format!("sqlite://{}", path.display());
        let pools = gongji_shared::db::sqlite_pools(&url).await.unwrap();
        let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        testing::earlier_schema(&migrations, 8, &pools.writer).await;
        earlier_rows(&pools.writer).await;
        assert!(testing::contains(
            &testing::sqlite_bytes(&path),
            NAMES[1].as_bytes()
        ));
        pools.writer.close().await;
        let store = SqliteStore::connect(&url, Vault::generate()).await.unwrap();
        store.migrate().await.unwrap();
        everything_reads(&store).await;
        for (table, rows) in ROWS {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(n, rows, "{table}");
        }
        assert_no_plain_text(&testing::sqlite_bytes(&path), "the SQLite files");
        // Started again: nothing left to do, and all still reads.
        store.migrate().await.unwrap();
        everything_reads(&store).await;
    }

    #[tokio::test]
    async fn postgres_an_earlier_database_is_sealed_in_place_and_keeps_every_row() {
        let Some(names) = testing::create_databases(&["earlier"]).await else {
            return;
        };
        let url = testing::database_url(&testing::admin_url(), &names[0]);
        let pool = gongji_shared::db::postgres_pool(&url, 2).await.unwrap();
        let migrations =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        testing::earlier_schema(&migrations, 8, &pool).await;
        earlier_rows(&pool).await;
        pool.close().await;
        let store = PgStore::connect(&url, 2, Vault::generate()).await.unwrap();
        store.migrate().await.unwrap();
        everything_reads(&store).await;
        for (table, rows) in ROWS {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(n, rows, "{table}");
        }
        assert_no_plain_text(&testing::pg_dump(&url), "a pg_dump");
        drop(store);
        testing::drop_databases(&names).await;
    }
}
