//! A database an earlier version wrote, with ID numbers in plain text, sealed in place at
//! start-up: each account's holder becomes its keyed index, in the account and in every row
//! that refers to it (entries, holds, year closings), beside the sealed number; payments'
//! parties likewise; acting persons are sealed. The old pages are then rewritten, so the
//! plain text is gone from the files too.

/// Implements `migrate_plaintext` for `$store` over `$db`: one transaction, read a bounded
/// page at a time, between `$unlock` and `$relock` (the statements that let an entry's
/// holder, append-only otherwise, and the accounts' keys be rewritten, and that restore
/// the guards after); `$rekey` the statements moving an account and its rows from `$1` (the
/// number) to `$2` (its index), `$3` the sealed number; then `$vacuum`, outside any
/// transaction.
macro_rules! plaintext_sql {
    ($store:ident, $db:ty, $unlock:expr, $relock:expr, $rekey:expr, $vacuum:expr) => {
        impl $store {
            /// Seals every plain value an earlier version stored; returns how many rows.
            async fn migrate_plaintext(&self) -> Result<u64, $crate::store::StoreError> {
                let vault = &self.vault;
                let page = gongji_shared::db::PLAINTEXT_PAGE;
                let seal = |value: Option<String>| value.map(|v| vault.seal_plain(&v));
                let mut tx = self.pool.begin().await?;
                for statement in $unlock {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                let mut sealed = 0;
                loop {
                    let rows: Vec<(String,)> =
                        sqlx::query_as("SELECT holder FROM accounts WHERE holder_sealed IS NULL LIMIT $1")
                            .bind(page)
                            .fetch_all(&mut *tx)
                            .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (holder,) in rows {
                        for statement in $rekey {
                            sqlx::query(statement)
                                .bind(&holder)
                                .bind(vault.index_text(&holder))
                                .bind(vault.seal(&holder))
                                .execute(&mut *tx)
                                .await?;
                        }
                        sealed += 1;
                    }
                }
                loop {
                    let rows: Vec<(String, String, String, Option<String>, Option<String>)> = sqlx::query_as(
                        "SELECT payment_id, payer, beneficiary, acting_person, refund_acting_person \
                         FROM premium_payments WHERE payer_sealed IS NULL LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (payment_id, payer, beneficiary, acting, refund_acting) in rows {
                        sqlx::query(
                            "UPDATE premium_payments SET payer = $1, beneficiary = $2, payer_sealed = $3, \
                             beneficiary_sealed = $4, acting_person = $5, refund_acting_person = $6 WHERE payment_id = $7",
                        )
                        .bind(vault.index_text(&payer))
                        .bind(vault.index_text(&beneficiary))
                        .bind(vault.seal(&payer))
                        .bind(vault.seal(&beneficiary))
                        .bind(seal(acting))
                        .bind(seal(refund_acting))
                        .bind(&payment_id)
                        .execute(&mut *tx)
                        .await?;
                        sealed += 1;
                    }
                }
                loop {
                    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
                        "SELECT payment_id, beneficiary, family_holder, acting_person \
                         FROM medical_payments WHERE beneficiary_sealed IS NULL LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (payment_id, beneficiary, family_holder, acting) in rows {
                        sqlx::query(
                            "UPDATE medical_payments SET beneficiary = $1, family_holder = $2, beneficiary_sealed = $3, \
                             family_holder_sealed = $4, acting_person = $5 WHERE payment_id = $6",
                        )
                        .bind(vault.index_text(&beneficiary))
                        .bind(family_holder.as_deref().map(|h| vault.index_text(h)))
                        .bind(vault.seal(&beneficiary))
                        .bind(family_holder.as_deref().map(|h| vault.seal(h)))
                        .bind(seal(acting))
                        .bind(&payment_id)
                        .execute(&mut *tx)
                        .await?;
                        sealed += 1;
                    }
                }
                loop {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT movement_id, acting_person FROM movements \
                         WHERE acting_person IS NOT NULL AND acting_person NOT LIKE 'v%:%' LIMIT $1",
                    )
                    .bind(page)
                    .fetch_all(&mut *tx)
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for (movement_id, acting) in rows {
                        sqlx::query("UPDATE movements SET acting_person = $1 WHERE movement_id = $2")
                            .bind(vault.seal(&acting))
                            .bind(&movement_id)
                            .execute(&mut *tx)
                            .await?;
                        sealed += 1;
                    }
                }
                // The usage record, filled from those payments by the migration that made it,
                // takes their parties' indexes.
                for statement in [
                    "UPDATE family_uses SET authorizer = (SELECT p.payer FROM premium_payments p WHERE p.payment_id = family_uses.payment_id), \
                     beneficiary = (SELECT p.beneficiary FROM premium_payments p WHERE p.payment_id = family_uses.payment_id) \
                     WHERE purpose = 'PREMIUM'",
                    "UPDATE family_uses SET authorizer = (SELECT d.family_holder FROM medical_payments d WHERE d.payment_id = family_uses.payment_id), \
                     beneficiary = (SELECT d.beneficiary FROM medical_payments d WHERE d.payment_id = family_uses.payment_id) \
                     WHERE purpose = 'MEDICAL_EXPENSE'",
                ] {
                    sealed += sqlx::query(statement).execute(&mut *tx).await?.rows_affected();
                }
                sealed += seal_plain_answers(&mut tx, vault).await?;
                for statement in $relock {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
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

/// A database as the version before sealing left it, with every kind of row that held an ID
/// number in plain text, is sealed at start-up on both databases: every row kept and
/// readable through the store, the balances and entries still the account's, no ID number
/// left in the files or a dump.
#[cfg(test)]
mod tests {
    use gongji_shared::{IdNumber, testing, vault::Vault};

    use crate::store::{Database, PgStore, SqliteStore, Store};

    const PAYER: &str = "34052419800101001X";
    const CHILD: &str = "340504201801100012";
    /// Tables and their rows in the fixture.
    const ROWS: [(&str, i64); 10] = [
        ("accounts", 1),
        ("movements", 3),
        ("entries", 6),
        ("holds", 1),
        ("year_closings", 1),
        ("premium_payments", 1),
        ("medical_payments", 1),
        ("idempotency", 1),
        ("vault_checks", 2),
        ("family_uses", 2),
    ];

    /// The statements of the rows the earlier version wrote: an account credited, a premium
    /// paid from it for the child (acting for the payer) through a hold, a medical expense of
    /// the child's paid from it, a year closed, and the premium call's record.
    fn earlier_rows() -> Vec<String> {
        let t = "'2024-11-15 02:00:00+00:00'";
        let d = "'2024-11-15'";
        vec![
            format!(
                "INSERT INTO accounts (holder, region, current_fen, prior_fen, open_time) VALUES ('{PAYER}', '340500', 0, 50000, {t})"
            ),
            format!(
                "INSERT INTO movements (movement_id, kind, request_id, create_time, business_date, purpose, destination, memo, caller, acting_person) VALUES \
                ('m-credit', 'CREDIT', 'credit', {t}, {d}, NULL, NULL, '', 'core', NULL), \
                ('m-premium', 'PREMIUM', 'p', {t}, {d}, 'PREMIUM', '340500', '', 'gov-app', '{PAYER}'), \
                ('m-medical', 'MEDICAL_EXPENSE', 'm', {t}, {d}, 'MEDICAL_EXPENSE', '340500', '', 'hospital', NULL)"
            ),
            format!(
                "INSERT INTO entries (movement_id, holder, bucket, fund, region, amount_fen) VALUES \
                ('m-credit', '{PAYER}', 'PRIOR_YEARS', NULL, '340500', 100000), ('m-credit', NULL, NULL, 'CONTRIBUTION', '340500', -100000), \
                ('m-premium', '{PAYER}', 'PRIOR_YEARS', NULL, '340500', -40000), ('m-premium', NULL, NULL, 'RESIDENT_PREMIUM', '340500', 40000), \
                ('m-medical', '{PAYER}', 'PRIOR_YEARS', NULL, '340500', -10000), ('m-medical', NULL, NULL, 'INSTITUTION', '340500', 10000)"
            ),
            format!(
                "INSERT INTO holds (movement_id, holder, current_fen, prior_fen, purpose, request_id, state, create_ms, expire_ms, close_ms, binding_id, binding_version) \
                VALUES ('m-premium', '{PAYER}', 0, 40000, 'PREMIUM', 'p', 'POSTED', 1, 30001, 2, 'b-1', 1)"
            ),
            format!(
                "INSERT INTO year_closings (holder, year, moved_fen, movement_id, create_time) VALUES ('{PAYER}', 2023, 0, NULL, {t})"
            ),
            format!(
                "INSERT INTO premium_payments (payment_id, request_id, movement_id, payer, beneficiary, coverage_year, state, premium_fen, \
                account_fen, other_fen, draws, other_channel, other_reference, binding_id, binding_version, payer_region, beneficiary_region, \
                back_payment, in_window, window_start, window_end, waiting_months, benefit_start, benefit_end, payment_date, pay_time, \
                refund_time, refund_reason, caller, acting_person, seq) VALUES ('pay-1', 'p', 'm-premium', '{PAYER}', '{CHILD}', 2025, 'PAID', \
                40000, 40000, 0, 'PRIOR_YEARS:40000', NULL, NULL, 'b-1', 1, '340500', '340500', false, true, '2024-09-01', '2024-12-31', 0, \
                '2025-01-01', '2025-12-31', {d}, {t}, NULL, NULL, 'gov-app', '{PAYER}', 1)"
            ),
            format!(
                "INSERT INTO medical_payments (payment_id, request_id, movement_id, beneficiary, family_holder, institution_code, \
                institution_kind, amount_fen, own_draws, family_draws, other_fen, binding_id, binding_version, destination, pay_time, \
                business_date, caller, acting_person) VALUES ('med-1', 'm', 'm-medical', '{CHILD}', '{PAYER}', 'H340500001', 'HOSPITAL', \
                10000, '', 'PRIOR_YEARS:10000', 0, 'b-1', 1, '340500', {t}, {d}, 'hospital', NULL)"
            ),
            format!(
                "INSERT INTO idempotency (scope, request_id, operation, fingerprint, response, create_time, acting_person) \
                VALUES ('gov-app', 'p', 'PayPremium', 'ab12', CAST('{CHILD}' AS BLOB), {t}, '{PAYER}')"
            ),
        ]
    }

    /// Every row kept and readable through the store.
    async fn everything_reads<S: Store>(store: &S) {
        let id = |s: &str| IdNumber::parse(s).unwrap();
        let account = store.account(&id(PAYER)).await.unwrap().unwrap();
        assert_eq!(account.prior_years.to_string(), "500.00");
        let entries = store.entries(&id(PAYER), None, 10).await.unwrap();
        assert_eq!(entries.len(), 3, "the account's entries follow it");
        let (facts, paid) = store.premium_facts(&id(PAYER), &id(CHILD)).await.unwrap();
        assert_eq!(facts.unwrap().holder, id(PAYER));
        assert_eq!(paid.len(), 1, "the child's year is still paid");
        let payments = store
            .premium_payments(&id(PAYER), true, None, 10)
            .await
            .unwrap();
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].1.beneficiary, id(CHILD));
        let medical = store.medical_payment("med-1").await.unwrap().unwrap();
        assert_eq!(medical.beneficiary, id(CHILD));
        assert_eq!(medical.family_holder, Some(id(PAYER)));
        let filter = crate::domain::usage::UseFilter {
            parties: crate::domain::usage::UseParties::parse(Some(id(PAYER)), None).unwrap(),
            range: crate::domain::usage::DateRange::parse(
                None,
                Some("2024-12-31".parse().unwrap()),
                "2025-01-01".parse().unwrap(),
            )
            .unwrap(),
            purpose: None,
        };
        let uses = store.uses(&filter, None, 10).await.unwrap();
        assert_eq!(uses.len(), 2, "the payments' family uses are recorded");
        assert!(uses.iter().all(|u| u.new.beneficiary == id(CHILD)));
        let saved = store.saved_response("gov-app", "p").await.unwrap().unwrap();
        assert_eq!(
            (saved.fingerprint.as_str(), saved.response),
            ("ab12", CHILD.as_bytes().to_vec())
        );
    }

    fn assert_no_plain_text(bytes: &[u8], what: &str) {
        assert!(
            testing::contains(bytes, b"PRIOR_YEARS:40000"),
            "{what} holds the data"
        );
        for secret in [PAYER, CHILD] {
            assert!(
                !testing::contains(bytes, secret.as_bytes()),
                "{what} holds {secret}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_an_earlier_database_is_sealed_in_place_and_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payment.db");
        let url = format!("sqlite://{}", path.display());
        let pools = gongji_shared::db::sqlite_pools(&url).await.unwrap();
        let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        testing::earlier_schema(&migrations, 8, &pools.writer).await;
        for statement in earlier_rows() {
            sqlx::query(&statement)
                .execute(&pools.writer)
                .await
                .unwrap();
        }
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
        // The guards are back: an entry is append-only again.
        let changed = sqlx::query("UPDATE entries SET amount_fen = 1")
            .execute(&store.pool)
            .await;
        assert!(changed.is_err(), "entries are append-only");
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
        for statement in earlier_rows() {
            sqlx::query(
                &statement
                    .replace("CAST('", "convert_to('")
                    .replace("' AS BLOB)", "', 'UTF8')"),
            )
            .execute(&pool)
            .await
            .unwrap();
        }
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
        let changed = sqlx::query("UPDATE entries SET amount_fen = 1")
            .execute(&store.pool)
            .await;
        assert!(changed.is_err(), "entries are append-only");
        drop(store);
        testing::drop_databases(&names).await;
    }
}
