//! The SQL both stores share, and the rows it reads.

use chrono::{DateTime, Utc};
use gongji_shared::{IdNumber, PersonName, RegionCode};

use super::StoreError;
use crate::domain::{
    Binding, BindingEvent, BindingKind, BindingState, Enrollment, EnrollmentStatus, Person,
};

pub(super) const BINDING_COLUMNS: &str = "binding_id, authorizer, beneficiary, beneficiary_name, relationship, kind, state, version, create_time, update_time, state_reason";

#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    id_number: String,
    name: String,
    employee_region: Option<String>,
    employee_status: Option<String>,
    resident_region: Option<String>,
    resident_status: Option<String>,
    update_time: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct BindingRow {
    binding_id: String,
    authorizer: String,
    beneficiary: String,
    beneficiary_name: String,
    relationship: String,
    kind: String,
    state: String,
    version: i64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    state_reason: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct PositionedRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub binding: BindingRow,
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    sequence: i64,
    binding_id: String,
    from_state: Option<String>,
    to_state: String,
    actor: String,
    reason: String,
    request_id: String,
    event_time: DateTime<Utc>,
    binding_version: i64,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn enrollment(
    region: Option<String>,
    status: Option<String>,
) -> Result<Option<Enrollment>, StoreError> {
    match (region, status) {
        (Some(region), Some(status)) => Ok(Some(Enrollment {
            region: RegionCode::parse(&region).map_err(|_| corrupt("persons.region"))?,
            status: EnrollmentStatus::parse(&status).ok_or_else(|| corrupt("persons.status"))?,
        })),
        (None, None) => Ok(None),
        _ => Err(corrupt("persons enrollment half set")),
    }
}

pub(super) fn split(e: Option<&Enrollment>) -> (Option<&str>, Option<&'static str>) {
    (e.map(|e| e.region.as_str()), e.map(|e| e.status.as_str()))
}

impl TryFrom<PersonRow> for Person {
    type Error = StoreError;

    fn try_from(r: PersonRow) -> Result<Self, Self::Error> {
        Ok(Person {
            id_number: IdNumber::parse(&r.id_number).map_err(|_| corrupt("persons.id_number"))?,
            name: PersonName::parse(&r.name).map_err(|_| corrupt("persons.name"))?,
            employee: enrollment(r.employee_region, r.employee_status)?,
            resident: enrollment(r.resident_region, r.resident_status)?,
            update_time: r.update_time,
        })
    }
}

impl TryFrom<BindingRow> for Binding {
    type Error = StoreError;

    fn try_from(r: BindingRow) -> Result<Self, Self::Error> {
        Ok(Binding {
            binding_id: r.binding_id,
            authorizer: IdNumber::parse(&r.authorizer)
                .map_err(|_| corrupt("bindings.authorizer"))?,
            beneficiary: IdNumber::parse(&r.beneficiary)
                .map_err(|_| corrupt("bindings.beneficiary"))?,
            beneficiary_name: PersonName::parse(&r.beneficiary_name)
                .map_err(|_| corrupt("bindings.name"))?,
            relationship: r
                .relationship
                .parse()
                .map_err(|_| corrupt("bindings.relationship"))?,
            kind: BindingKind::parse(&r.kind).ok_or_else(|| corrupt("bindings.kind"))?,
            state: BindingState::parse(&r.state).ok_or_else(|| corrupt("bindings.state"))?,
            version: r.version,
            create_time: r.create_time,
            update_time: r.update_time,
            state_reason: r.state_reason,
        })
    }
}

impl TryFrom<EventRow> for BindingEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, Self::Error> {
        let state = |s: &str| BindingState::parse(s).ok_or_else(|| corrupt("binding_events.state"));
        Ok(BindingEvent {
            sequence: r.sequence,
            binding_id: r.binding_id,
            from_state: r.from_state.as_deref().map(state).transpose()?,
            to_state: state(&r.to_state)?,
            actor: r.actor,
            reason: r.reason,
            request_id: r.request_id,
            event_time: r.event_time,
            binding_version: r.binding_version,
        })
    }
}

/// Maps a unique violation to `taken`, anything else to a database error.
pub(super) fn unique_or(error: sqlx::Error, taken: StoreError) -> StoreError {
    if gongji_shared::db::is_unique_violation(&error) {
        taken
    } else {
        StoreError::Database(error)
    }
}

/// The live-state filter of every query that looks for live bindings.
pub(super) const LIVE: &str = "state IN ('PENDING_REVIEW', 'ACTIVE')";

/// `state IN (...)` for a filter; the names are fixed strings, never input.
pub(super) fn states_clause(states: &[BindingState]) -> String {
    if states.is_empty() {
        return "1 = 1".to_owned();
    }
    let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("state IN ({})", names.join(", "))
}

/// Implements `Store` for a pool-holding struct over one sqlx database. `$lock` is the
/// statement that serializes writers of binding events, so that event sequence numbers
/// become visible in commit order (PostgreSQL: a transaction advisory lock; SQLite has a
/// single writer already).
macro_rules! sql_store {
    ($store:ident, $db:ty, $migrations:literal, $lock:literal) => {
        impl $crate::store::Store for $store {
            async fn migrate(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::migrate!($migrations).run(&self.pool).await?;
                Ok(())
            }

            async fn saved_response(
                &self,
                request_id: &str,
            ) -> Result<Option<gongji_shared::rpc::SavedResponse>, $crate::store::StoreError> {
                saved_response_of(&self.pool, request_id).await
            }

            async fn upsert_person(
                &self,
                person: &$crate::domain::Person,
                idempotency: &gongji_shared::rpc::Idempotency,
                decide: impl FnOnce(&[$crate::domain::Binding]) -> Vec<($crate::domain::Binding, $crate::domain::lifecycle::Change)> + Send,
                respond: impl FnOnce(bool, &[$crate::domain::Binding]) -> Vec<u8> + Send,
            ) -> Result<Vec<u8>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT id_number FROM persons WHERE id_number = $1")
                        .bind(person.id_number.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let (employee_region, employee_status) = $crate::store::sql::split(person.employee.as_ref());
                let (resident_region, resident_status) = $crate::store::sql::split(person.resident.as_ref());
                sqlx::query(
                    "INSERT INTO persons (id_number, name, employee_region, employee_status, resident_region, resident_status, update_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id_number) DO UPDATE SET name = $2, employee_region = $3, employee_status = $4, \
                     resident_region = $5, resident_status = $6, update_time = $7",
                )
                .bind(person.id_number.as_str())
                .bind(person.name.as_str())
                .bind(employee_region)
                .bind(employee_status)
                .bind(resident_region)
                .bind(resident_status)
                .bind(person.update_time)
                .execute(&mut *tx)
                .await?;
                let rows: Vec<$crate::store::sql::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE (authorizer = $1 OR beneficiary = $1) AND {} ORDER BY seq LIMIT $2",
                    $crate::store::sql::BINDING_COLUMNS,
                    $crate::store::sql::LIVE
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
                        &idempotency.request_id,
                        person.update_time,
                    );
                    write_transition(&mut tx, &next, binding.version, &event).await?;
                    ended.push(next);
                }
                let response = respond(existing.is_none(), &ended);
                save_response(&mut tx, idempotency, &response, person.update_time).await?;
                tx.commit().await?;
                Ok(response)
            }

            async fn person(
                &self,
                id: &gongji_shared::IdNumber,
            ) -> Result<Option<$crate::domain::Person>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::PersonRow> = sqlx::query_as(
                    "SELECT id_number, name, employee_region, employee_status, resident_region, resident_status, update_time \
                     FROM persons WHERE id_number = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn live_bindings_of(
                &self,
                authorizer: &gongji_shared::IdNumber,
            ) -> Result<Vec<$crate::domain::Binding>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::sql::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE authorizer = $1 AND {} ORDER BY seq LIMIT $2",
                    $crate::store::sql::BINDING_COLUMNS,
                    $crate::store::sql::LIVE
                ))
                .bind(authorizer.as_str())
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn pair_binding(
                &self,
                authorizer: &gongji_shared::IdNumber,
                beneficiary: &gongji_shared::IdNumber,
                kind: $crate::domain::BindingKind,
            ) -> Result<Option<$crate::domain::Binding>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE authorizer = $1 AND beneficiary = $2 AND kind = $3 \
                     ORDER BY CASE WHEN {} THEN 0 ELSE 1 END, seq DESC LIMIT 1",
                    $crate::store::sql::BINDING_COLUMNS,
                    $crate::store::sql::LIVE
                ))
                .bind(authorizer.as_str())
                .bind(beneficiary.as_str())
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn insert_binding(
                &self,
                binding: &$crate::domain::Binding,
                event: &$crate::domain::BindingEvent,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
                max_beneficiaries: Option<u32>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                save_response(&mut tx, idempotency, response, binding.create_time).await?;
                if let Some(max) = max_beneficiaries {
                    let (others,): (i64,) = sqlx::query_as(&format!(
                        "SELECT COUNT(DISTINCT beneficiary) FROM bindings \
                         WHERE authorizer = $1 AND kind = 'FUNDS_SHARING' AND beneficiary <> $2 AND {}",
                        $crate::store::sql::LIVE
                    ))
                    .bind(binding.authorizer.as_str())
                    .bind(binding.beneficiary.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    if others >= i64::from(max) {
                        return Err($crate::store::StoreError::LimitReached);
                    }
                }
                sqlx::query(&format!(
                    "INSERT INTO bindings ({}, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM bindings))",
                    $crate::store::sql::BINDING_COLUMNS
                ))
                .bind(&binding.binding_id)
                .bind(binding.authorizer.as_str())
                .bind(binding.beneficiary.as_str())
                .bind(binding.beneficiary_name.as_str())
                .bind(binding.relationship.as_str())
                .bind(binding.kind.as_str())
                .bind(binding.state.as_str())
                .bind(binding.version)
                .bind(binding.create_time)
                .bind(binding.update_time)
                .bind(&binding.state_reason)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::unique_or(e, $crate::store::StoreError::LiveBindingExists))?;
                write_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn transition(
                &self,
                next: &$crate::domain::Binding,
                expected_version: i64,
                event: &$crate::domain::BindingEvent,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($lock).execute(&mut *tx).await?;
                save_response(&mut tx, idempotency, response, next.update_time).await?;
                write_transition(&mut tx, next, expected_version, event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_bindings(
                &self,
                filter: &$crate::store::ListFilter,
            ) -> Result<Vec<(i64, $crate::domain::Binding)>, $crate::store::StoreError> {
                let column = if filter.as_authorizer { "authorizer" } else { "beneficiary" };
                let rows: Vec<$crate::store::sql::PositionedRow> = sqlx::query_as(&format!(
                    "SELECT seq, {} FROM bindings WHERE {column} = $1 AND seq > $2 AND {} ORDER BY seq LIMIT $3",
                    $crate::store::sql::BINDING_COLUMNS,
                    $crate::store::sql::states_clause(&filter.states)
                ))
                .bind(filter.person.as_str())
                .bind(filter.after)
                .bind(i64::from(filter.limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| Ok((r.seq, r.binding.try_into()?)))
                    .collect()
            }

            async fn events_after(
                &self,
                sequence: i64,
                limit: u32,
            ) -> Result<Vec<$crate::domain::BindingEvent>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::sql::EventRow> = sqlx::query_as(
                    "SELECT sequence, binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version \
                     FROM binding_events WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                )
                .bind(sequence)
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn binding(
                &self,
                binding_id: &str,
            ) -> Result<Option<($crate::domain::Binding, Vec<$crate::domain::BindingEvent>)>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE binding_id = $1",
                    $crate::store::sql::BINDING_COLUMNS
                ))
                .bind(binding_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let events: Vec<$crate::store::sql::EventRow> = sqlx::query_as(
                    "SELECT sequence, binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version \
                     FROM binding_events WHERE binding_id = $1 ORDER BY sequence LIMIT $2",
                )
                .bind(binding_id)
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&self.pool)
                .await?;
                let events = events.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?;
                Ok(Some((row.try_into()?, events)))
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }

        /// Moves a binding to its next version if nobody changed it meanwhile, with its event.
        async fn write_transition(
            tx: &mut sqlx::Transaction<'_, $db>,
            next: &$crate::domain::Binding,
            expected_version: i64,
            event: &$crate::domain::BindingEvent,
        ) -> Result<(), $crate::store::StoreError> {
            let updated = sqlx::query(
                "UPDATE bindings SET state = $1, version = $2, update_time = $3, state_reason = $4 \
                 WHERE binding_id = $5 AND version = $6",
            )
            .bind(next.state.as_str())
            .bind(next.version)
            .bind(next.update_time)
            .bind(&next.state_reason)
            .bind(&next.binding_id)
            .bind(expected_version)
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err($crate::store::StoreError::Conflict);
            }
            write_event(tx, event).await
        }

        /// Appends one audit event.
        async fn write_event(
            tx: &mut sqlx::Transaction<'_, $db>,
            event: &$crate::domain::BindingEvent,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO binding_events (binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&event.binding_id)
            .bind(event.from_state.map(|s| s.as_str()))
            .bind(event.to_state.as_str())
            .bind(&event.actor)
            .bind(&event.reason)
            .bind(&event.request_id)
            .bind(event.event_time)
            .bind(event.binding_version)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        gongji_shared::idempotency_sql!(
            $db,
            $crate::store::StoreError,
            $crate::store::StoreError::RequestIdTaken
        );
    };
}
