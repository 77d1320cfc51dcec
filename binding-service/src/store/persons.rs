//! The insured-person registry. A registry change ends, in the same transaction, the live
//! bindings it makes ineligible.

use std::future::Future;

use chrono::{DateTime, Utc};
use gongji_shared::{CoverageYear, IdNumber, command::Command, vault::Vault};

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{Binding, Enrollment, EnrollmentStatus, Person, lifecycle::Change};

/// The registry.
pub trait Persons: Database<Conflict = super::Conflict> {
    /// Creates or replaces registry records, all in one transaction, and ends the live bindings
    /// `decide(person, live)` picks from those involving each person. Records are written in
    /// ID-number order, so that concurrent batches lock rows in one order; a binding that two
    /// records would end is ended by the first. `make` builds the outcome from each record's
    /// `(created, ended)`, in the order given; its answer is recorded with the effect.
    fn upsert_persons<T: Send>(
        &self,
        persons: &[Person],
        command: &Command<T>,
        decide: impl Fn(&Person, &[Binding]) -> Vec<(Binding, Change)> + Send + Sync,
        make: impl FnOnce(Vec<(bool, Vec<Binding>)>) -> T + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// One registry record.
    fn person(
        &self,
        id: &IdNumber,
    ) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    /// The ID number, sealed (`id_number` holds its keyed index).
    pub(super) id_sealed: String,
    /// Sealed.
    pub(super) name: String,
    pub(super) employee_region: Option<String>,
    pub(super) employee_status: Option<String>,
    pub(super) resident_region: Option<String>,
    pub(super) resident_status: Option<String>,
    pub(super) resident_paid_years: String,
    pub(super) update_time: DateTime<Utc>,
}

fn enrollment(
    region: Option<String>,
    status: Option<String>,
) -> Result<Option<Enrollment>, StoreError> {
    match (region, status) {
        (Some(region), Some(status)) => Ok(Some(Enrollment {
            region: decode::region(&region, "persons.region")?,
            status: EnrollmentStatus::parse(&status).ok_or_else(|| corrupt("persons.status"))?,
        })),
        (None, None) => Ok(None),
        _ => Err(corrupt("persons enrollment half set")),
    }
}

pub(super) fn enrollment_columns(e: Option<&Enrollment>) -> (Option<&str>, Option<&'static str>) {
    (e.map(|e| e.region.as_str()), e.map(|e| e.status.as_str()))
}

/// Paid years as stored: ascending, comma-separated ("2023,2024"), empty for none.
pub(super) fn paid_years_column(years: &[CoverageYear]) -> String {
    years
        .iter()
        .map(|y| y.get().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn paid_years(column: &str) -> Result<Vec<CoverageYear>, StoreError> {
    column
        .split(',')
        .filter(|y| !y.is_empty())
        .map(|y| {
            y.parse::<i32>()
                .ok()
                .and_then(|y| CoverageYear::parse(y).ok())
                .ok_or_else(|| corrupt("persons.resident_paid_years"))
        })
        .collect()
}

/// The columns of a [`PersonRow`].
pub(super) const PERSON_COLUMNS: &str = "id_sealed, name, employee_region, employee_status, \
     resident_region, resident_status, resident_paid_years, update_time";

/// The live bindings a person is a party of ($1), by position, at most $2: two lookups, each on
/// an index that leads with its column, whatever the planner's statistics (an OR of the two
/// columns can turn into a scan of the whole table, and so can the one-live-per-pair index,
/// which does not lead with the beneficiary; migration 0008 gives the beneficiary its own).
pub(super) fn live_bindings_of_person_sql() -> &'static str {
    // Built once: every registry upsert runs it, once per record.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {} FROM bindings WHERE binding_id IN ( \
             SELECT binding_id FROM bindings WHERE authorizer = $1 AND {live} \
             UNION ALL SELECT binding_id FROM bindings WHERE beneficiary = $1 AND {live}) \
             ORDER BY seq LIMIT $2",
            super::bindings::BINDING_COLUMNS,
            live = super::bindings::LIVE
        )
    });
    &SQL
}

/// The positions of `persons` in the order of `key` (what their rows are stored under): the
/// order a batch writes and locks them.
pub(crate) fn write_order(persons: &[Person], key: impl Fn(&IdNumber) -> String) -> Vec<usize> {
    let keys: Vec<String> = persons.iter().map(|p| key(&p.id_number)).collect();
    let mut order: Vec<usize> = (0..persons.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    order
}

/// `$1, $2, ... $n`.
pub(super) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Two persons' records from the rows of `WHERE id_number IN (first, second)`.
pub(super) fn pair_of(
    rows: Vec<PersonRow>,
    vault: &Vault,
    first: &IdNumber,
    second: &IdNumber,
) -> Result<(Option<Person>, Option<Person>), StoreError> {
    let people = rows
        .into_iter()
        .map(|r| r.open(vault))
        .collect::<Result<Vec<Person>, _>>()?;
    let find = |id: &IdNumber| people.iter().find(|p| &p.id_number == id).cloned();
    Ok((find(first), find(second)))
}

impl PersonRow {
    /// The record from the columns of an outer join: none when the join found no record
    /// (its key, the ID number, is NULL), corrupt when a required column alone is.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn of_columns(
        id_sealed: Option<String>,
        name: Option<String>,
        employee_region: Option<String>,
        employee_status: Option<String>,
        resident_region: Option<String>,
        resident_status: Option<String>,
        resident_paid_years: Option<String>,
        update_time: Option<DateTime<Utc>>,
    ) -> Result<Option<Self>, StoreError> {
        match (id_sealed, name, resident_paid_years, update_time) {
            (Some(id_sealed), Some(name), Some(resident_paid_years), Some(update_time)) => {
                Ok(Some(Self {
                    id_sealed,
                    name,
                    employee_region,
                    employee_status,
                    resident_region,
                    resident_status,
                    resident_paid_years,
                    update_time,
                }))
            }
            (None, None, None, None) => Ok(None),
            _ => Err(corrupt("persons: a required column is NULL")),
        }
    }

    /// The record, its sealed columns opened.
    pub(super) fn open(self, vault: &Vault) -> Result<Person, StoreError> {
        let r = self;
        Ok(Person {
            id_number: decode::sealed_id(vault, &r.id_sealed, "persons.id_sealed")?,
            name: decode::sealed_name(vault, &r.name, "persons.name")?,
            employee: enrollment(r.employee_region, r.employee_status)?,
            resident: enrollment(r.resident_region, r.resident_status)?,
            resident_paid_years: paid_years(&r.resident_paid_years)?,
            update_time: r.update_time,
        })
    }
}

/// Implements `Persons` for `$store`; `$event_lock` serializes writers of binding events, and
/// an upsert takes it only when it ends bindings; `$for_update` locks the records it replaces.
/// Uses `save_response` and `write_transition` of the other aggregates.
macro_rules! persons_sql {
    ($store:ident, $event_lock:expr, $for_update:expr) => {
        impl $crate::store::Persons for $store {
            async fn upsert_persons<T: Send>(
                &self,
                persons: &[$crate::domain::Person],
                command: &gongji_shared::command::Command<T>,
                decide: impl Fn(&$crate::domain::Person, &[$crate::domain::Binding]) -> Vec<($crate::domain::Binding, $crate::domain::lifecycle::Change)> + Send + Sync,
                make: impl FnOnce(Vec<(bool, Vec<$crate::domain::Binding>)>) -> T + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let Some(at) = persons.iter().map(|p| p.update_time).max() else {
                    // Nothing to write (the API refuses empty batches before they get here).
                    return Ok(make(Vec::new()));
                };
                let order = $crate::store::persons::write_order(persons, |id| self.vault.index(id));
                let mut tx = self.pool.begin().await?;
                // No global lock: each record's row lock is what a new binding of theirs waits
                // on (it reads the row FOR SHARE), so each read of live bindings below sees
                // every binding that committed first. Existing rows are locked here, in
                // ID-number order.
                let existing_sql = format!(
                    "SELECT id_number FROM persons WHERE id_number IN ({}) ORDER BY id_number{}",
                    $crate::store::persons::placeholders(persons.len()),
                    $for_update
                );
                let mut existing_query = sqlx::query_as::<_, (String,)>(&existing_sql);
                let indexes: Vec<String> = persons.iter().map(|p| self.vault.index(&p.id_number)).collect();
                for &i in &order {
                    existing_query = existing_query.bind(&indexes[i]);
                }
                let existing: std::collections::HashSet<String> =
                    existing_query.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id).collect();
                let mut results = vec![(false, Vec::new()); persons.len()];
                let mut event_locked = false;
                for &i in &order {
                    let person = &persons[i];
                    let (employee_region, employee_status) = $crate::store::persons::enrollment_columns(person.employee.as_ref());
                    let (resident_region, resident_status) = $crate::store::persons::enrollment_columns(person.resident.as_ref());
                    sqlx::query(
                        "INSERT INTO persons (id_number, name, employee_region, employee_status, resident_region, resident_status, update_time, resident_paid_years, id_sealed) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (id_number) DO UPDATE SET name = $2, employee_region = $3, employee_status = $4, \
                         resident_region = $5, resident_status = $6, update_time = $7, resident_paid_years = $8, id_sealed = $9",
                    )
                    .bind(&indexes[i])
                    .bind(self.vault.seal_name(&person.name))
                    .bind(employee_region)
                    .bind(employee_status)
                    .bind(resident_region)
                    .bind(resident_status)
                    .bind(person.update_time)
                    .bind($crate::store::persons::paid_years_column(&person.resident_paid_years))
                    .bind(self.vault.seal_id(&person.id_number))
                    .execute(&mut *tx)
                    .await?;
                    let rows: Vec<$crate::store::bindings::BindingRow> = sqlx::query_as(
                        $crate::store::persons::live_bindings_of_person_sql(),
                    )
                    .bind(&indexes[i])
                    .bind($crate::store::MAX_ROWS)
                    .fetch_all(&mut *tx)
                    .await?;
                    let live = rows.into_iter().map(|r| r.open(&self.vault)).collect::<Result<Vec<_>, _>>()?;
                    let changes = decide(person, &live);
                    if !changes.is_empty() && !event_locked {
                        // Ending bindings writes events: their sequence must be commit order.
                        sqlx::query($event_lock).execute(&mut *tx).await?;
                        event_locked = true;
                    }
                    let mut ended = Vec::with_capacity(changes.len());
                    for (binding, change) in changes {
                        let (next, event) = $crate::domain::lifecycle::apply(
                            &binding,
                            &change,
                            command.request_id(),
                            person.update_time,
                        );
                        write_transition(&mut tx, &self.vault, &next, binding.version, &event, command.idempotency()).await?;
                        ended.push(next);
                    }
                    results[i] = (!existing.contains(&indexes[i]), ended);
                }
                let outcome = make(results);
                save_response(&mut tx, &self.vault, command.idempotency(), &command.response(&outcome), at).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn person(
                &self,
                id: &gongji_shared::IdNumber,
            ) -> Result<Option<$crate::domain::Person>, $crate::store::StoreError> {
                let row: Option<$crate::store::persons::PersonRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM persons WHERE id_number = $1",
                    $crate::store::persons::PERSON_COLUMNS
                ))
                .bind(self.vault.index(id))
                .fetch_optional(&self.reads)
                .await?;
                row.map(|r| r.open(&self.vault)).transpose()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::store::PgStore;

    /// Bindings in the table the plan is read over: enough that a scan of a whole index costs
    /// far more than a lookup, never analyzed (as on a host with autovacuum off).
    const ROWS: i64 = 200_000;

    /// A fresh database holding [`ROWS`] bindings, `A<i>` to `B<i>`, never analyzed.
    async fn never_analyzed_bindings(
        name: &str,
    ) -> Option<(Vec<String>, PgStore, sqlx::PgConnection)> {
        let names = gongji_shared::testing::create_databases(&[name]).await?;
        let admin = gongji_shared::testing::admin_url();
        let url = gongji_shared::testing::database_url(&admin, &names[0]);
        let store = PgStore::connect(&url, 2, gongji_shared::vault::Vault::generate())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO bindings (binding_id, authorizer, beneficiary, beneficiary_name, relationship, kind, \
             state, version, create_time, update_time, state_reason, seq) \
             SELECT 'b' || i, 'A' || i, 'B' || i, 'x', 'CHILD', 'FUNDS_SHARING', 'ACTIVE', 1, now(), now(), '', i \
             FROM generate_series(1, $1) AS i",
        )
        .bind(ROWS)
        .execute(&mut conn)
        .await
        .unwrap();
        Some((names, store, conn))
    }

    async fn plan_of(conn: &mut sqlx::PgConnection, sql: &str) -> Vec<String> {
        let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
            .fetch_all(conn)
            .await
            .unwrap();
        plan.into_iter().map(|(line,)| line).collect()
    }

    #[tokio::test]
    async fn a_persons_live_bindings_are_found_through_indexes_that_lead_with_them() {
        let Some((names, store, mut conn)) = never_analyzed_bindings("plan").await else {
            return;
        };
        let plan = plan_of(
            &mut conn,
            &live_bindings_of_person_sql()
                .replace("$1", "'B77'")
                .replace("$2", "1000"),
        )
        .await;
        let text = plan.join("\n");
        // Every index condition of the plan names the index's first column: no index is
        // scanned whole for a later one.
        for (i, line) in plan.iter().enumerate() {
            let Some(cond) = plan.get(i + 1).filter(|_| line.contains("Index")) else {
                continue;
            };
            if line.contains("bindings_one_live_per_pair") {
                assert!(cond.contains("(authorizer ="), "{text}");
            }
        }
        assert!(text.contains("bindings_live_by_beneficiary"), "{text}");
        assert!(!text.contains("Seq Scan"), "{text}");
        drop(conn);
        drop(store);
        gongji_shared::testing::drop_databases(&names).await;
    }

    #[tokio::test]
    async fn a_batch_of_pairs_reads_each_pairs_binding_through_the_pair_index() {
        let Some((names, store, mut conn)) = never_analyzed_bindings("batchplan").await else {
            return;
        };
        let plan = plan_of(
            &mut conn,
            &crate::store::bindings::authorization_facts_batch_sql()
                .replace("$1", "ARRAY['A77', 'A78', 'A79']")
                .replace("$2", "ARRAY['B77', 'B78', 'B79']")
                .replace(
                    "$3",
                    "ARRAY['FUNDS_SHARING', 'FUNDS_SHARING', 'FUNDS_SHARING']",
                ),
        )
        .await;
        let text = plan.join("\n");
        // A lookup of the pair's own index per pair, a lookup of the registry per party: no
        // scan, no intersection, no hash of a whole table.
        assert!(text.contains("bindings_by_pair"), "{text}");
        assert!(!text.contains("BitmapAnd"), "{text}");
        assert!(!text.contains("Seq Scan"), "{text}");
        assert!(!text.contains("Hash"), "{text}");
        drop(conn);
        drop(store);
        gongji_shared::testing::drop_databases(&names).await;
    }

    #[tokio::test]
    async fn a_pairs_binding_is_read_through_the_pair_index_not_an_intersection() {
        let Some((names, store, mut conn)) = never_analyzed_bindings("pairplan").await else {
            return;
        };
        let plan = plan_of(
            &mut conn,
            &crate::store::bindings::authorization_facts_sql()
                .replace("$1", "'A77'")
                .replace("$2", "'B77'")
                .replace("$3", "'FUNDS_SHARING'"),
        )
        .await;
        let text = plan.join("\n");
        // One range of the pair's own index: no intersection of the two parties' indexes,
        // no scan.
        assert!(text.contains("bindings_by_pair"), "{text}");
        assert!(!text.contains("BitmapAnd"), "{text}");
        assert!(!text.contains("Seq Scan"), "{text}");
        drop(conn);
        drop(store);
        gongji_shared::testing::drop_databases(&names).await;
    }
}
