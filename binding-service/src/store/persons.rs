//! The insured-person registry. A registry change ends, in the same transaction, the live
//! bindings it makes ineligible.

use std::future::Future;

use chrono::{DateTime, Utc};
use gongji_shared::{CoverageYear, IdNumber, command::Command};

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{Binding, Enrollment, EnrollmentStatus, Person, lifecycle::Change};

/// The registry.
pub trait Persons: Database<Conflict = super::Conflict> {
    /// Creates or replaces a registry record and, in the same transaction, ends the live
    /// bindings `decide` picks from those involving the person. `make(created, ended)`
    /// builds the outcome whose answer is recorded with it.
    fn upsert_person<T: Send>(
        &self,
        person: &Person,
        command: &Command<T>,
        decide: impl FnOnce(&[Binding]) -> Vec<(Binding, Change)> + Send,
        make: impl FnOnce(bool, Vec<Binding>) -> T + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// One registry record.
    fn person(
        &self,
        id: &IdNumber,
    ) -> impl Future<Output = Result<Option<Person>, StoreError>> + Send;

    /// Two registry records in one round trip (an authorizer and a beneficiary).
    fn pair(
        &self,
        first: &IdNumber,
        second: &IdNumber,
    ) -> impl Future<Output = Result<(Option<Person>, Option<Person>), StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    id_number: String,
    name: String,
    employee_region: Option<String>,
    employee_status: Option<String>,
    resident_region: Option<String>,
    resident_status: Option<String>,
    resident_paid_years: String,
    update_time: DateTime<Utc>,
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

impl TryFrom<PersonRow> for Person {
    type Error = StoreError;

    fn try_from(r: PersonRow) -> Result<Self, Self::Error> {
        Ok(Person {
            id_number: decode::id(&r.id_number, "persons.id_number")?,
            name: decode::name(&r.name, "persons.name")?,
            employee: enrollment(r.employee_region, r.employee_status)?,
            resident: enrollment(r.resident_region, r.resident_status)?,
            resident_paid_years: paid_years(&r.resident_paid_years)?,
            update_time: r.update_time,
        })
    }
}

/// Implements `Persons` for `$store`; `$event_lock` serializes writers of binding events.
/// Uses `save_response` and `write_transition` of the other aggregates.
macro_rules! persons_sql {
    ($store:ident, $event_lock:expr) => {
        impl $crate::store::Persons for $store {
            async fn upsert_person<T: Send>(
                &self,
                person: &$crate::domain::Person,
                command: &gongji_shared::command::Command<T>,
                decide: impl FnOnce(&[$crate::domain::Binding]) -> Vec<($crate::domain::Binding, $crate::domain::lifecycle::Change)> + Send,
                make: impl FnOnce(bool, Vec<$crate::domain::Binding>) -> T + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($event_lock).execute(&mut *tx).await?;
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT id_number FROM persons WHERE id_number = $1")
                        .bind(person.id_number.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let (employee_region, employee_status) = $crate::store::persons::enrollment_columns(person.employee.as_ref());
                let (resident_region, resident_status) = $crate::store::persons::enrollment_columns(person.resident.as_ref());
                sqlx::query(
                    "INSERT INTO persons (id_number, name, employee_region, employee_status, resident_region, resident_status, update_time, resident_paid_years) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (id_number) DO UPDATE SET name = $2, employee_region = $3, employee_status = $4, \
                     resident_region = $5, resident_status = $6, update_time = $7, resident_paid_years = $8",
                )
                .bind(person.id_number.as_str())
                .bind(person.name.as_str())
                .bind(employee_region)
                .bind(employee_status)
                .bind(resident_region)
                .bind(resident_status)
                .bind(person.update_time)
                .bind($crate::store::persons::paid_years_column(&person.resident_paid_years))
                .execute(&mut *tx)
                .await?;
                let rows: Vec<$crate::store::bindings::BindingRow> = sqlx::query_as(&format!(
                    // Two lookups, each on its own index, whatever the planner's statistics
                    // (an OR of the two columns can turn into a scan of the whole table).
                    "SELECT {} FROM bindings WHERE binding_id IN ( \
                     SELECT binding_id FROM bindings WHERE authorizer = $1 AND {live} \
                     UNION ALL SELECT binding_id FROM bindings WHERE beneficiary = $1 AND {live}) \
                     ORDER BY seq LIMIT $2",
                    $crate::store::bindings::BINDING_COLUMNS,
                    live = $crate::store::bindings::LIVE
                ))
                .bind(person.id_number.as_str())
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&mut *tx)
                .await?;
                let live = rows.into_iter().map(TryInto::try_into).collect::<Result<Vec<_>, _>>()?;
                let mut ended = Vec::new();
                for (binding, change) in decide(&live) {
                    let (next, event) = $crate::domain::lifecycle::apply(
                        &binding,
                        &change,
                        command.request_id(),
                        person.update_time,
                    );
                    write_transition(&mut tx, &next, binding.version, &event, command.idempotency()).await?;
                    ended.push(next);
                }
                let outcome = make(existing.is_none(), ended);
                save_response(&mut tx, command.idempotency(), &command.response(&outcome), person.update_time).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn person(
                &self,
                id: &gongji_shared::IdNumber,
            ) -> Result<Option<$crate::domain::Person>, $crate::store::StoreError> {
                let row: Option<$crate::store::persons::PersonRow> = sqlx::query_as(
                    "SELECT id_number, name, employee_region, employee_status, resident_region, resident_status, resident_paid_years, update_time \
                     FROM persons WHERE id_number = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn pair(
                &self,
                first: &gongji_shared::IdNumber,
                second: &gongji_shared::IdNumber,
            ) -> Result<(Option<$crate::domain::Person>, Option<$crate::domain::Person>), $crate::store::StoreError> {
                let rows: Vec<$crate::store::persons::PersonRow> = sqlx::query_as(
                    "SELECT id_number, name, employee_region, employee_status, resident_region, resident_status, resident_paid_years, update_time \
                     FROM persons WHERE id_number IN ($1, $2)",
                )
                .bind(first.as_str())
                .bind(second.as_str())
                .fetch_all(&self.pool)
                .await?;
                let people = rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<Result<Vec<$crate::domain::Person>, _>>()?;
                let find = |id: &gongji_shared::IdNumber| people.iter().find(|p| &p.id_number == id).cloned();
                Ok((find(first), find(second)))
            }
        }
    };
}
