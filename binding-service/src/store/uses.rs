//! The uses of bindings (P1): each family debit a binding authorized, recorded in the same
//! transaction as the check, under the lock every binding transition takes.

use std::future::Future;

use chrono::{DateTime, Utc};
use gongji_shared::{IdNumber, command::Command, db::decode, policy::Purpose};

use super::{Database, StoreError};
use crate::domain::{Binding, BindingUse, Person};

/// Recorded uses.
pub trait Uses: Database<Conflict = super::Conflict> {
    /// Reads the pair's funds-sharing binding under its row lock and the two parties, lets
    /// `decide` answer (and name the use to record, if authorized), and records the answer,
    /// then the use, atomically. `Conflict::RequestIdTaken` when the request ID has an answer
    /// (checked before the use); `Conflict::UseRecorded` when the movement has a use.
    fn authorize_use<T: Send>(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        at: DateTime<Utc>,
        command: &Command<T>,
        decide: impl FnOnce(Option<Person>, Option<Person>, Option<Binding>) -> (T, Option<BindingUse>)
        + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// Up to `limit` uses of a binding after position `after`, oldest first; each with its
    /// position.
    fn uses_of(
        &self,
        binding_id: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, BindingUse)>, StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct UseRow {
    pub seq: i64,
    movement_id: String,
    binding_id: String,
    binding_version: i64,
    purpose: String,
    amount_fen: i64,
    use_time: DateTime<Utc>,
}

impl TryFrom<UseRow> for BindingUse {
    type Error = StoreError;

    fn try_from(r: UseRow) -> Result<Self, Self::Error> {
        Ok(BindingUse {
            movement_id: r.movement_id,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            purpose: Purpose::parse(&r.purpose)
                .ok_or_else(|| decode::corrupt("binding_uses.purpose"))?,
            amount: decode::money(r.amount_fen, "binding_uses.amount_fen")?,
            use_time: r.use_time,
        })
    }
}

/// Implements `Uses` for `$store`. `$for_update` locks the binding's row, which every
/// revocation and ending writes: a use commits before one or sees it, and one binding's uses
/// commit one at a time, in the order of `$next_seq`, their position. Uses of other bindings
/// run side by side.
/// Uses `save_response` of the idempotency plumbing.
macro_rules! uses_sql {
    ($store:ident, $for_update:expr, $next_seq:expr) => {
        impl $crate::store::Uses for $store {
            async fn authorize_use<T: Send>(
                &self,
                authorizer: &gongji_shared::IdNumber,
                beneficiary: &gongji_shared::IdNumber,
                at: chrono::DateTime<chrono::Utc>,
                command: &gongji_shared::command::Command<T>,
                decide: impl FnOnce(
                    Option<$crate::domain::Person>,
                    Option<$crate::domain::Person>,
                    Option<$crate::domain::Binding>,
                ) -> (T, Option<$crate::domain::BindingUse>)
                + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let mut connection = self.warm.acquire().await?;
                let mut tx = sqlx::Connection::begin(&mut *connection).await?;
                // The binding's row first: a revocation or an ending in flight is waited for
                // and then seen, and one that comes later waits for this use. The records read
                // after it are the ones current once the lock is held.
                let row: Option<$crate::store::bindings::BindingRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM bindings WHERE authorizer = $1 AND beneficiary = $2 AND kind = 'FUNDS_SHARING' \
                     AND state <> 'REJECTED' ORDER BY CASE WHEN {} THEN 0 ELSE 1 END, seq DESC LIMIT 1{}",
                    $crate::store::bindings::BINDING_COLUMNS,
                    $crate::store::bindings::LIVE,
                    $for_update
                ))
                .bind(self.vault.index(authorizer))
                .bind(self.vault.index(beneficiary))
                .fetch_optional(&mut *tx)
                .await?;
                let binding = row.map(|r| r.open(&self.vault)).transpose()?;
                let rows: Vec<$crate::store::persons::PersonRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM persons WHERE id_number IN ($1, $2)",
                    $crate::store::persons::PERSON_COLUMNS
                ))
                .bind(self.vault.index(authorizer))
                .bind(self.vault.index(beneficiary))
                .fetch_all(&mut *tx)
                .await?;
                let (authorizer_person, beneficiary_person) =
                    $crate::store::persons::pair_of(rows, &self.vault, authorizer, beneficiary)?;
                let (outcome, recorded) = decide(authorizer_person, beneficiary_person, binding);
                // The answer and the use in one batch. A retry of a call that committed
                // conflicts on its request ID and is given the first answer (AuthorizeUse looks
                // it up only then), whether or not a use was recorded.
                use gongji_shared::db::batch::{Batch, Part, RunBatch as _};

                let mut batch = Batch::default();
                batch.push(gongji_shared::db::response_part(
                    &self.vault,
                    command.idempotency(),
                    &command.response(&outcome),
                    at,
                ));
                if let Some(u) = &recorded {
                    batch.push(Part::new(
                        "binding_uses",
                        format!(
                            "INSERT INTO binding_uses (movement_id, seq, binding_id, binding_version, purpose, amount_fen, use_time, caller) \
                             VALUES ($1, {}, $2, $3, $4, $5, $6, $7)",
                            $next_seq
                        ),
                        vec![
                            u.movement_id.as_str().into(),
                            u.binding_id.as_str().into(),
                            u.binding_version.into(),
                            u.purpose.as_str().into(),
                            u.amount.fen().into(),
                            u.use_time.into(),
                            command.idempotency().scope.as_str().into(),
                        ],
                    ));
                }
                if let Err(e) = tx.run_batch(&batch).await {
                    if !gongji_shared::db::is_unique_violation(&e.error) {
                        return Err(e.error.into());
                    }
                    // Back to the pool first: SQLite's one writer is this connection.
                    drop(tx);
                    drop(connection);
                    // The parts of a batch run in no promised order: a retry of a call that
                    // recorded its use may fail on the use (its movement ID) rather than on its
                    // request ID. Both committed together, so the request ID decides.
                    let idempotency = command.idempotency();
                    let (scope, request_id) = (&idempotency.scope, &idempotency.request_id);
                    let taken = saved_response_of(&self.pool, &self.vault, scope, request_id)
                        .await?
                        .is_some();
                    let conflict = if taken {
                        $crate::store::Conflict::RequestIdTaken
                    } else {
                        $crate::store::Conflict::UseRecorded
                    };
                    return Err($crate::store::StoreError::Conflict(conflict));
                }
                tx.commit().await?;
                self.warm.keep(connection);
                Ok(outcome)
            }

            async fn uses_of(
                &self,
                binding_id: &str,
                after: i64,
                limit: u32,
            ) -> Result<Vec<(i64, $crate::domain::BindingUse)>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::uses::UseRow> = sqlx::query_as(
                    "SELECT seq, movement_id, binding_id, binding_version, purpose, amount_fen, use_time \
                     FROM binding_uses WHERE binding_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(binding_id)
                .bind(after)
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| Ok((r.seq, r.try_into()?))).collect()
            }
        }
    };
}
