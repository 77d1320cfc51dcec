//! The append-only audit trail of bindings, read in commit order by event streams.

use std::future::Future;

use chrono::{DateTime, Utc};

use gongji_shared::db::decode::corrupt;

use super::{Database, StoreError};
use crate::domain::{BindingEvent, BindingState, VerificationMethod};

/// Binding events.
pub trait Events: Database<Conflict = super::Conflict> {
    /// Audit events after `sequence`, in commit order.
    fn events_after(
        &self,
        sequence: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<BindingEvent>, StoreError>> + Send;
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
    caller: String,
    acting_person: Option<String>,
    verification: Option<String>,
}

impl EventRow {
    /// The event, its acting person (sealed) opened.
    pub(super) fn open(
        self,
        vault: &gongji_shared::vault::Vault,
    ) -> Result<BindingEvent, StoreError> {
        let r = self;
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
            caller: r.caller,
            acting_person: r
                .acting_person
                .map(|p| {
                    gongji_shared::db::decode::opened(vault, &p, "binding_events.acting_person")
                })
                .transpose()?,
            verification: r
                .verification
                .as_deref()
                .map(|v| {
                    VerificationMethod::parse(v)
                        .ok_or_else(|| corrupt("binding_events.verification"))
                })
                .transpose()?,
        })
    }
}

/// Implements `Events` for `$store`; defines `write_event` for the other aggregates' writes.
macro_rules! events_sql {
    ($store:ident, $db:ty) => {
        impl $crate::store::Events for $store {
            async fn events_after(
                &self,
                sequence: i64,
                limit: u32,
            ) -> Result<Vec<$crate::domain::BindingEvent>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::events::EventRow> = sqlx::query_as(
                    "SELECT sequence, binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version, caller, acting_person, verification \
                     FROM binding_events WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                )
                .bind(sequence)
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }
        }

        /// Appends one audit event, with the caller and acting person who caused it.
        async fn write_event(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            event: &$crate::domain::BindingEvent,
            by: &gongji_shared::command::Idempotency,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO binding_events (binding_id, from_state, to_state, actor, reason, request_id, event_time, binding_version, caller, acting_person, verification) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&event.binding_id)
            .bind(event.from_state.map(|s| s.as_str()))
            .bind(event.to_state.as_str())
            .bind(&event.actor)
            .bind(&event.reason)
            .bind(&event.request_id)
            .bind(event.event_time)
            .bind(event.binding_version)
            .bind(&by.scope)
            .bind(by.acting_person.as_deref().map(|p| vault.seal(p)))
            .bind(event.verification.map(|v| v.as_str()))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}
