//! Bindings: who may use whose account, for what; their creation, transitions, listing.

use std::future::Future;

use chrono::{DateTime, Utc};
use gongji_shared::{IdNumber, command::Idempotency, vault::Vault};

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{Binding, BindingEvent, BindingKind, BindingState, Person};

/// Bindings.
pub trait Bindings: Database<Conflict = super::Conflict> {
    /// Every live binding the person authorized.
    fn live_bindings_of(
        &self,
        authorizer: &IdNumber,
    ) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send;

    /// What an authorization is decided on, in one round trip: both parties' registry
    /// records, and the pair's binding of `kind` (the live one, else the latest that was ever
    /// granted; a REJECTED application never was a binding). On PostgreSQL the round trip is
    /// shared with the lookups asked at the same moment; each still sees every commit made
    /// before it was asked.
    #[allow(clippy::type_complexity)]
    fn authorization_facts(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        kind: BindingKind,
    ) -> impl Future<Output = Result<(Option<Person>, Option<Person>, Option<Binding>), StoreError>> + Send;

    /// Stores a new binding with its first audit event and the response, atomically. With
    /// `max_beneficiaries`, the cap is checked again under the write lock
    /// (`Conflict::LimitReached`); a live binding of the pair and kind is
    /// `Conflict::LiveBindingExists`. Each registry record in `registry_seen` must still be
    /// as the rules saw it (the same record, or absent), else `Conflict::RegistryChanged`.
    /// The whole record is compared, not its update time: two writes can share an instant.
    fn insert_binding(
        &self,
        binding: &Binding,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
        max_beneficiaries: Option<u32>,
        registry_seen: &[(&IdNumber, Option<&Person>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces a binding by its next version, if it is still at `expected_version`
    /// (`Conflict::VersionChanged` otherwise), with its audit event and the response,
    /// atomically.
    fn transition(
        &self,
        next: &Binding,
        expected_version: i64,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces a binding by its next version as the system's own change (no request, no
    /// answer kept), if it is still at `expected_version` (`Conflict::VersionChanged`
    /// otherwise), with its audit event, atomically.
    fn system_transition(
        &self,
        next: &Binding,
        expected_version: i64,
        event: &BindingEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Up to `limit` bindings waiting for consent whose time ran out before `now`, oldest
    /// deadline first.
    fn consents_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send;
    /// One page of a person's bindings, oldest first, after position `after`; each with its
    /// position, the page token of the next page.
    fn list_bindings(
        &self,
        filter: &ListFilter,
    ) -> impl Future<Output = Result<Vec<(i64, Binding)>, StoreError>> + Send;

    /// One binding with its history, oldest first.
    fn binding(
        &self,
        binding_id: &str,
    ) -> impl Future<Output = Result<Option<(Binding, Vec<BindingEvent>)>, StoreError>> + Send;
}

/// Which bindings to list.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// True: bindings the person authorized; false: bindings where they benefit.
    pub as_authorizer: bool,
    pub person: IdNumber,
    /// Empty means every state.
    pub states: Vec<BindingState>,
    pub after: i64,
    pub limit: u32,
}

/// The columns a binding is read from: the parties sealed (`authorizer` and `beneficiary`
/// hold their keyed indexes, which lookups compare), the name sealed.
pub(super) const BINDING_COLUMNS: &str = "binding_id, authorizer_sealed, beneficiary_sealed, beneficiary_name, relationship, kind, state, version, create_time, update_time, state_reason, limits, consent_expire_time";
/// The columns a new binding is written to: [`BINDING_COLUMNS`] and the two indexes.
const INSERT_COLUMNS: &str = "binding_id, authorizer_sealed, beneficiary_sealed, beneficiary_name, relationship, kind, state, version, create_time, update_time, state_reason, limits, consent_expire_time, authorizer, beneficiary";

/// The insert of a new binding, with its position.
pub(super) fn insert_binding_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO bindings ({INSERT_COLUMNS}, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM bindings))"
        )
    });
    &SQL
}

#[derive(sqlx::FromRow)]
pub(super) struct BindingRow {
    binding_id: String,
    authorizer_sealed: String,
    beneficiary_sealed: String,
    beneficiary_name: String,
    relationship: String,
    kind: String,
    state: String,
    version: i64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    state_reason: String,
    limits: String,
    consent_expire_time: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PositionedRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub binding: BindingRow,
}

impl BindingRow {
    /// The binding, its sealed columns opened.
    pub(super) fn open(self, vault: &Vault) -> Result<Binding, StoreError> {
        let r = self;
        Ok(Binding {
            binding_id: r.binding_id,
            authorizer: decode::sealed_id(vault, &r.authorizer_sealed, "bindings.authorizer")?,
            beneficiary: decode::sealed_id(vault, &r.beneficiary_sealed, "bindings.beneficiary")?,
            beneficiary_name: decode::sealed_name(vault, &r.beneficiary_name, "bindings.name")?,
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
            limits: gongji_shared::domain::limits::FamilyLimits::decode(&r.limits)
                .ok_or_else(|| corrupt("bindings.limits"))?,
            consent_expire_time: r.consent_expire_time,
        })
    }
}

/// The row of `authorization_facts_sql`: the authorizer's record (`a_`) and the beneficiary's
/// (`z_`), each if registered, beside the pair's binding, if any.
#[derive(sqlx::FromRow)]
#[cfg_attr(test, derive(Default))]
pub(super) struct FactsRow {
    a_id_sealed: Option<String>,
    a_name: Option<String>,
    a_employee_region: Option<String>,
    a_employee_status: Option<String>,
    a_resident_region: Option<String>,
    a_resident_status: Option<String>,
    a_resident_paid_years: Option<String>,
    a_update_time: Option<DateTime<Utc>>,
    z_id_sealed: Option<String>,
    z_name: Option<String>,
    z_employee_region: Option<String>,
    z_employee_status: Option<String>,
    z_resident_region: Option<String>,
    z_resident_status: Option<String>,
    z_resident_paid_years: Option<String>,
    z_update_time: Option<DateTime<Utc>>,
    binding_id: Option<String>,
    authorizer_sealed: Option<String>,
    beneficiary_sealed: Option<String>,
    beneficiary_name: Option<String>,
    relationship: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    version: Option<i64>,
    create_time: Option<DateTime<Utc>>,
    update_time: Option<DateTime<Utc>>,
    state_reason: Option<String>,
    limits: Option<String>,
    consent_expire_time: Option<DateTime<Utc>>,
}

/// Both parties' records ($1, $2) and the pair's binding of kind $3, in one statement of
/// exactly one row: one party per side, so the binding's columns come once.
pub(super) fn authorization_facts_sql() -> &'static str {
    // Built once: CheckAuthorization is the hottest read.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {a}, {z}, b.* FROM (SELECT 1 AS one) k \
             LEFT JOIN persons a ON a.id_number = $1 \
             LEFT JOIN persons z ON z.id_number = $2 \
             LEFT JOIN ({binding}) b ON 1 = 1",
            a = party_columns("a"),
            z = party_columns("z"),
            binding = pair_binding_sql("$1", "$2", "$3"),
        )
    });
    &SQL
}

/// A party's columns, from the table aliased `side`, each as `<side>_<column>`.
fn party_columns(side: &str) -> String {
    super::persons::PERSON_COLUMNS
        .split(',')
        .map(|c| format!("{side}.{c} AS {side}_{c}", c = c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pair's binding of a kind: the live one, else the latest that was ever granted.
fn pair_binding_sql(authorizer: &str, beneficiary: &str, kind: &str) -> String {
    format!(
        "SELECT {BINDING_COLUMNS} FROM bindings \
         WHERE authorizer = {authorizer} AND beneficiary = {beneficiary} AND kind = {kind} \
         AND state <> 'REJECTED' \
         ORDER BY CASE WHEN {LIVE} THEN 0 ELSE 1 END, seq DESC LIMIT 1"
    )
}

/// What one authorization is decided on: both parties' records and the pair's binding.
pub(super) type Facts = (Option<Person>, Option<Person>, Option<Binding>);

/// One pair's lookup in a batch of `authorization_facts_batch_sql`: the parties' keyed
/// indexes and the binding's kind.
pub(super) struct FactsKey {
    pub authorizer: String,
    pub beneficiary: String,
    pub kind: BindingKind,
}

/// One row of `authorization_facts_batch_sql`: the row of `authorization_facts_sql` of the
/// lookup at position `i` (from 1).
#[derive(sqlx::FromRow)]
pub(super) struct BatchFactsRow {
    i: i64,
    #[sqlx(flatten)]
    facts: FactsRow,
}

/// `authorization_facts_sql` for many pairs in one statement (PostgreSQL): the keyed indexes
/// of the authorizers ($1), the beneficiaries ($2) and the kinds ($3), as arrays of one
/// length; one row per pair, carrying its position. Each party and binding is a lookup of
/// its own per pair (a `LATERAL` with a limit is never turned into a join), so the plan is a
/// walk of the primary key and the pair index whatever the statistics say. The arrays are
/// read through sub-selects so that the planner cannot see their lengths: a plan made for
/// the arrays at hand (a custom plan) then costs what the generic one does, and PostgreSQL
/// keeps the generic plan after its first five calls on a connection. With the lengths in
/// sight, small batches looked cheaper planned anew, and were, at every call; the planning
/// cost PostgreSQL more than the reading (at 32 clients, 58 to 74 µs per check against 38).
pub(super) fn authorization_facts_batch_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let party = |side: &str, key: &str| {
            format!(
                "LEFT JOIN LATERAL (SELECT {columns} FROM persons WHERE id_number = {key} LIMIT 1) \
                 {side} ON TRUE",
                columns = super::persons::PERSON_COLUMNS,
            )
        };
        format!(
            "SELECT k.i, {a}, {z}, b.* \
             FROM unnest((SELECT $1::text[]), (SELECT $2::text[]), (SELECT $3::text[])) \
             WITH ORDINALITY AS k(a, z, wanted, i) \
             {join_a} {join_z} \
             LEFT JOIN LATERAL ({binding}) b ON TRUE",
            a = party_columns("a"),
            z = party_columns("z"),
            join_a = party("a", "k.a"),
            join_z = party("z", "k.z"),
            binding = pair_binding_sql("k.a", "k.z", "k.wanted"),
        )
    });
    &SQL
}

/// The row of each of `keys` lookups, in order, from the rows of
/// `authorization_facts_batch_sql`: exactly one each. Each caller opens its own row
/// (`facts_of`): the batch's reader only sorts them.
pub(super) fn rows_of_batch(
    rows: Vec<BatchFactsRow>,
    keys: usize,
) -> Result<Vec<FactsRow>, StoreError> {
    let mut slots: Vec<Option<FactsRow>> = (0..keys).map(|_| None).collect();
    for row in rows {
        let slot = usize::try_from(row.i)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| slots.get_mut(i))
            .ok_or_else(|| corrupt("authorization facts: a row of no lookup"))?;
        if slot.replace(row.facts).is_some() {
            return Err(corrupt("authorization facts: two rows of one lookup"));
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.ok_or_else(|| corrupt("authorization facts: a lookup without its row")))
        .collect()
}

/// The records and binding of the row of `authorization_facts_sql`. Each record was found by
/// its party's keyed index; one whose sealed ID number is another's is corrupt.
pub(super) fn facts_of(
    r: FactsRow,
    vault: &Vault,
    authorizer: &IdNumber,
    beneficiary: &IdNumber,
) -> Result<Facts, StoreError> {
    let binding = match (
        r.binding_id,
        r.authorizer_sealed,
        r.beneficiary_sealed,
        r.beneficiary_name,
        r.relationship,
        r.kind,
        r.state,
        r.version,
        r.create_time,
        r.update_time,
        r.state_reason,
        r.limits,
    ) {
        (
            Some(binding_id),
            Some(authorizer_sealed),
            Some(beneficiary_sealed),
            Some(beneficiary_name),
            Some(relationship),
            Some(kind),
            Some(state),
            Some(version),
            Some(create_time),
            Some(update_time),
            Some(state_reason),
            Some(limits),
        ) => Some(
            BindingRow {
                binding_id,
                authorizer_sealed,
                beneficiary_sealed,
                beneficiary_name,
                relationship,
                kind,
                state,
                version,
                create_time,
                update_time,
                state_reason,
                limits,
                consent_expire_time: r.consent_expire_time,
            }
            .open(vault)?,
        ),
        (None, ..) => None,
        _ => return Err(corrupt("bindings: a required column is NULL")),
    };
    let party = |row: Option<super::persons::PersonRow>, id: &IdNumber, side: &'static str| {
        row.map(|row| row.open(vault))
            .transpose()?
            .map(|person| {
                if &person.id_number == id {
                    Ok(person)
                } else {
                    Err(corrupt(side))
                }
            })
            .transpose()
    };
    let first = super::persons::PersonRow::of_columns(
        r.a_id_sealed,
        r.a_name,
        r.a_employee_region,
        r.a_employee_status,
        r.a_resident_region,
        r.a_resident_status,
        r.a_resident_paid_years,
        r.a_update_time,
    )?;
    let second = super::persons::PersonRow::of_columns(
        r.z_id_sealed,
        r.z_name,
        r.z_employee_region,
        r.z_employee_status,
        r.z_resident_region,
        r.z_resident_status,
        r.z_resident_paid_years,
        r.z_update_time,
    )?;
    Ok((
        party(
            first,
            authorizer,
            "persons: the authorizer's record is another's",
        )?,
        party(
            second,
            beneficiary,
            "persons: the beneficiary's record is another's",
        )?,
        binding,
    ))
}

/// Who the system's own changes (expiring a request for consent) are recorded as made by.
pub(super) const SYSTEM: &str = "system";

/// The live-state filter of every query that looks for live bindings.
pub(super) const LIVE: &str = "state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE')";

/// `state IN (...)` for a filter; the names are fixed strings, never input.
pub(super) fn states_clause(states: &[BindingState]) -> String {
    if states.is_empty() {
        return "1 = 1".to_owned();
    }
    let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("state IN ({})", names.join(", "))
}

/// Implements `Bindings` for `$store` over `$db`; `$event_lock` serializes writers of
/// binding events, and `$for_share` locks the registry records a new binding relies on. Defines `write_transition` for the registry's writes; uses
/// `save_response` and `write_event` of the other aggregates.
macro_rules! bindings_sql {
    ($store:ident, $db:ty, $event_lock:expr, $for_share:expr) => {
        impl $crate::store::Bindings for $store {
            async fn live_bindings_of(
                &self,
                authorizer: &gongji_shared::IdNumber,
            ) -> Result<Vec<$crate::domain::Binding>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::bindings::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE authorizer = $1 AND {} ORDER BY seq LIMIT $2",
                    $crate::store::bindings::BINDING_COLUMNS,
                    $crate::store::bindings::LIVE
                ))
                .bind(self.vault.index(authorizer))
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }

            async fn authorization_facts(
                &self,
                authorizer: &gongji_shared::IdNumber,
                beneficiary: &gongji_shared::IdNumber,
                kind: $crate::domain::BindingKind,
            ) -> Result<
                (Option<$crate::domain::Person>, Option<$crate::domain::Person>, Option<$crate::domain::Binding>),
                $crate::store::StoreError,
            > {
                self.read_facts(authorizer, beneficiary, kind).await
            }

            async fn insert_binding(
                &self,
                binding: &$crate::domain::Binding,
                event: &$crate::domain::BindingEvent,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
                max_beneficiaries: Option<u32>,
                registry_seen: &[(&gongji_shared::IdNumber, Option<&$crate::domain::Person>)],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                // The registry records the rules read, locked until commit: a registry change
                // in flight is waited for and then seen, and one that comes later waits for
                // this binding and then sees it. Taken before the event lock, as an upsert
                // takes its row lock before it (no cycle).
                for (id, seen) in registry_seen {
                    let row: Option<$crate::store::persons::PersonRow> = sqlx::query_as(&format!(
                        "SELECT {} FROM persons WHERE id_number = $1{}",
                        $crate::store::persons::PERSON_COLUMNS,
                        $for_share
                    ))
                    .bind(self.vault.index(id))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let now: Option<$crate::domain::Person> = row.map(|r| r.open(&self.vault)).transpose()?;
                    if now.as_ref() != *seen {
                        return Err($crate::store::StoreError::Conflict($crate::store::Conflict::RegistryChanged));
                    }
                }
                sqlx::query($event_lock).execute(&mut *tx).await?;
                save_response(&mut tx, &self.vault, idempotency, response, binding.create_time).await?;
                if let Some(max) = max_beneficiaries {
                    let (others,): (i64,) = sqlx::query_as(&format!(
                        "SELECT COUNT(DISTINCT beneficiary) FROM bindings \
                         WHERE authorizer = $1 AND kind = 'FUNDS_SHARING' AND beneficiary <> $2 AND {}",
                        $crate::store::bindings::LIVE
                    ))
                    .bind(self.vault.index(&binding.authorizer))
                    .bind(self.vault.index(&binding.beneficiary))
                    .fetch_one(&mut *tx)
                    .await?;
                    if others >= i64::from(max) {
                        return Err($crate::store::StoreError::Conflict($crate::store::Conflict::LimitReached));
                    }
                }
                sqlx::query($crate::store::bindings::insert_binding_sql())
                .bind(&binding.binding_id)
                .bind(self.vault.seal_id(&binding.authorizer))
                .bind(self.vault.seal_id(&binding.beneficiary))
                .bind(self.vault.seal_name(&binding.beneficiary_name))
                .bind(binding.relationship.as_str())
                .bind(binding.kind.as_str())
                .bind(binding.state.as_str())
                .bind(binding.version)
                .bind(binding.create_time)
                .bind(binding.update_time)
                .bind(&binding.state_reason)
                .bind(binding.limits.encode())
                .bind(binding.consent_expire_time)
                .bind(self.vault.index(&binding.authorizer))
                .bind(self.vault.index(&binding.beneficiary))
                .execute(&mut *tx)
                .await
                .map_err(|e| gongji_shared::db::decode::unique_or(e, $crate::store::Conflict::LiveBindingExists))?;
                write_event(&mut tx, &self.vault, event, idempotency).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn transition(
                &self,
                next: &$crate::domain::Binding,
                expected_version: i64,
                event: &$crate::domain::BindingEvent,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($event_lock).execute(&mut *tx).await?;
                save_response(&mut tx, &self.vault, idempotency, response, next.update_time).await?;
                write_transition(&mut tx, &self.vault, next, expected_version, event, idempotency).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn system_transition(
                &self,
                next: &$crate::domain::Binding,
                expected_version: i64,
                event: &$crate::domain::BindingEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let by = gongji_shared::command::Idempotency {
                    scope: $crate::store::bindings::SYSTEM.to_owned(),
                    acting_person: None,
                    request_id: event.request_id.clone(),
                    operation: "system",
                    fingerprint: String::new(),
                };
                let mut tx = self.pool.begin().await?;
                sqlx::query($event_lock).execute(&mut *tx).await?;
                write_transition(&mut tx, &self.vault, next, expected_version, event, &by).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn consents_expired(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::Binding>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::bindings::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE state = 'PENDING_CONSENT' AND consent_expire_time < $1 \
                     ORDER BY consent_expire_time LIMIT $2",
                    $crate::store::bindings::BINDING_COLUMNS
                ))
                .bind(now)
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }

            async fn list_bindings(
                &self,
                filter: &$crate::store::ListFilter,
            ) -> Result<Vec<(i64, $crate::domain::Binding)>, $crate::store::StoreError> {
                let column = if filter.as_authorizer { "authorizer" } else { "beneficiary" };
                let rows: Vec<$crate::store::bindings::PositionedRow> = sqlx::query_as(&format!(
                    "SELECT seq, {} FROM bindings WHERE {column} = $1 AND seq > $2 AND {} ORDER BY seq LIMIT $3",
                    $crate::store::bindings::BINDING_COLUMNS,
                    $crate::store::bindings::states_clause(&filter.states)
                ))
                .bind(self.vault.index(&filter.person))
                .bind(filter.after)
                .bind(i64::from(filter.limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter()
                    .map(|r| Ok((r.seq, r.binding.open(&self.vault)?)))
                    .collect()
            }

            async fn binding(
                &self,
                binding_id: &str,
            ) -> Result<Option<($crate::domain::Binding, Vec<$crate::domain::BindingEvent>)>, $crate::store::StoreError> {
                let row: Option<$crate::store::bindings::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE binding_id = $1",
                    $crate::store::bindings::BINDING_COLUMNS
                ))
                .bind(binding_id)
                .fetch_optional(&self.reads)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let events: Vec<$crate::store::events::EventRow> = sqlx::query_as(
                    "SELECT sequence, binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version, caller, acting_person, verification \
                     FROM binding_events WHERE binding_id = $1 ORDER BY sequence LIMIT $2",
                )
                .bind(binding_id)
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&self.reads)
                .await?;
                let events = events.into_iter().map(|e| e.open(&self.vault)).collect::<Result<_, _>>()?;
                Ok(Some((row.open(&self.vault)?, events)))
            }
        }

        /// Moves a binding to its next version if nobody changed it meanwhile, with its event.
        async fn write_transition(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            next: &$crate::domain::Binding,
            expected_version: i64,
            event: &$crate::domain::BindingEvent,
            by: &gongji_shared::command::Idempotency,
        ) -> Result<(), $crate::store::StoreError> {
            let updated = sqlx::query(
                "UPDATE bindings SET state = $1, version = $2, update_time = $3, state_reason = $4, limits = $7 \
                 WHERE binding_id = $5 AND version = $6",
            )
            .bind(next.state.as_str())
            .bind(next.version)
            .bind(next.update_time)
            .bind(&next.state_reason)
            .bind(&next.binding_id)
            .bind(expected_version)
            .bind(next.limits.encode())
            .execute(&mut **tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err($crate::store::StoreError::Conflict($crate::store::Conflict::VersionChanged));
            }
            write_event(tx, vault, event, by).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch's row answering lookup `i` for the authorizer sealed as `party`.
    fn row(i: i64, party: &str) -> BatchFactsRow {
        BatchFactsRow {
            i,
            facts: FactsRow {
                a_id_sealed: Some(party.to_owned()),
                ..FactsRow::default()
            },
        }
    }

    fn parties(rows: &[FactsRow]) -> Vec<&str> {
        rows.iter()
            .filter_map(|r| r.a_id_sealed.as_deref())
            .collect()
    }

    #[test]
    fn a_batchs_rows_go_to_their_lookups_in_order_whatever_order_they_come_in() {
        let rows = vec![row(2, "b"), row(3, "c"), row(1, "a")];
        let Ok(grouped) = rows_of_batch(rows, 3) else {
            panic!("every row names a lookup");
        };
        assert_eq!(parties(&grouped), ["a", "b", "c"]);
    }

    #[test]
    fn a_lookup_with_two_rows_or_none_is_corrupt() {
        for rows in [
            vec![row(1, "a"), row(2, "b"), row(1, "a2")],
            vec![row(1, "a")],
        ] {
            let Err(error) = rows_of_batch(rows, 2) else {
                panic!("a lookup without exactly one row was answered");
            };
            assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
        }
    }

    /// A row of no binding holding the parties sealed as `a` and `z` (if any).
    fn facts_row(vault: &Vault, a: Option<&IdNumber>, z: Option<&IdNumber>) -> FactsRow {
        let name = gongji_shared::PersonName::parse("李子轩").unwrap();
        let sealed = |id: Option<&IdNumber>| id.map(|id| vault.seal_id(id));
        let name_of = |id: Option<&IdNumber>| id.map(|_| vault.seal_name(&name));
        let years = |id: Option<&IdNumber>| id.map(|_| String::new());
        let time = |id: Option<&IdNumber>| id.map(|_| Utc::now());
        FactsRow {
            a_id_sealed: sealed(a),
            a_name: name_of(a),
            a_resident_paid_years: years(a),
            a_update_time: time(a),
            z_id_sealed: sealed(z),
            z_name: name_of(z),
            z_resident_paid_years: years(z),
            z_update_time: time(z),
            ..FactsRow::default()
        }
    }

    #[test]
    fn each_side_of_the_row_is_its_own_partys_record_or_none() {
        let vault = Vault::generate();
        let a = IdNumber::parse("34052419800101001X").unwrap();
        let z = IdNumber::parse("340504201801100012").unwrap();
        let Ok((first, second, binding)) =
            facts_of(facts_row(&vault, Some(&a), Some(&z)), &vault, &a, &z)
        else {
            panic!("both records open");
        };
        assert_eq!(first.map(|p| p.id_number), Some(a.clone()));
        assert_eq!(second.map(|p| p.id_number), Some(z.clone()));
        assert!(binding.is_none());
        let Ok(facts) = facts_of(facts_row(&vault, None, Some(&z)), &vault, &a, &z) else {
            panic!("an unregistered authorizer is no error");
        };
        assert!(facts.0.is_none() && facts.1.is_some());
        // A record found by one party's index but sealing another's ID number is corrupt,
        // on either side, and so is a record missing a required column.
        for (row, what) in [
            (facts_row(&vault, Some(&z), Some(&z)), "authorizer"),
            (facts_row(&vault, Some(&a), Some(&a)), "beneficiary"),
            (
                FactsRow {
                    a_name: None,
                    ..facts_row(&vault, Some(&a), Some(&z))
                },
                "name",
            ),
        ] {
            let Err(error) = facts_of(row, &vault, &a, &z) else {
                panic!("{what}: a wrong record was read as the party's");
            };
            assert!(matches!(error, StoreError::Corrupt(_)), "{what}: {error:?}");
        }
    }

    #[test]
    fn a_row_of_no_lookup_is_corrupt() {
        for i in [0, 3, -1] {
            let Err(error) = rows_of_batch(vec![row(i, "x")], 2) else {
                panic!("{i}: a row of no lookup was placed");
            };
            assert!(matches!(error, StoreError::Corrupt(_)), "{i}: {error:?}");
        }
    }
}
