//! Holds (P1's fence): amounts reserved for a family debit while binding-service is asked.
//! A hold is posted by the payment's own write (`insert_premium`, `insert_medical`), in the
//! same transaction as its debit; here it is placed, voided and looked up. Every debit
//! leaves an account's live holds untouched (`write_movement`).

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{Database, StoreError};
use crate::domain::fence::{FamilyDebit, Hold, HoldState, LimitCap};

/// What one limit has counted: the binding's ($1) family debits less their refunds on the
/// business days $2 to $3, and its live holds as of $4 (ms), of purpose $5 (NULL: both).
pub(super) const LIMIT_USED_SQL: &str = "SELECT CAST(COALESCE((SELECT SUM(CASE WHEN kind = 'DEBIT' THEN amount_fen ELSE -amount_fen END) \
     FROM family_uses WHERE binding_id = $1 AND business_date >= $2 AND business_date <= $3 \
     AND (CAST($5 AS TEXT) IS NULL OR purpose = $5)), 0) \
     + COALESCE((SELECT SUM(current_fen + prior_fen) FROM holds WHERE binding_id = $1 AND state = 'HELD' \
     AND expire_ms > $4 AND (CAST($5 AS TEXT) IS NULL OR purpose = $5)), 0) AS BIGINT)";

/// Holds, and the family debits reconciliation compares with binding-service's uses.
pub trait Holds: Database<Conflict = super::Conflict> {
    /// Reserves the hold's draws on its holder's account: `Conflict::InsufficientBalance`
    /// when a bucket less its live holds falls short, `Conflict::FamilyLimit` when its cap's
    /// limits have less left than it takes (both checked under the account's lock, which every
    /// family debit from it takes). Voids the account's expired holds on the way, and says
    /// how many.
    fn place_hold(&self, hold: &Hold) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// What a family debit for `purpose` may still take under `cap` as of `at`: each
    /// applicable limit less the binding's debits (net of refunds) in its period and its live
    /// holds; `None` when no limit applies.
    fn limit_remaining(
        &self,
        cap: &LimitCap,
        purpose: gongji_shared::policy::Purpose,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<gongji_shared::Money>, StoreError>> + Send;

    /// Voids a hold not yet posted; `false` when it was posted or voided before.
    fn void_hold(
        &self,
        movement_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// What became of these holds as of `at` (unknown ones left out); one lookup each.
    fn hold_states(
        &self,
        movement_ids: &[String],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, HoldState)>, StoreError>> + Send;

    /// The family debits that relied on a binding, up to `limit`.
    fn family_debits(
        &self,
        binding_id: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<FamilyDebit>, StoreError>> + Send;
}

/// The posting of a hold by its payment's write: only a live hold (held, not expired as of
/// the posting) is posted, so the part counts 1 or the hold is gone.
pub(super) fn posting_part(
    posting: &crate::domain::fence::Posting,
) -> gongji_shared::db::batch::Part {
    gongji_shared::db::batch::Part::new(
        "holds",
        "UPDATE holds SET state = 'POSTED', close_ms = $1, binding_id = $2, binding_version = $3 \
         WHERE movement_id = $4 AND state = 'HELD' AND expire_ms > $1",
        vec![
            posting.at.timestamp_millis().into(),
            posting.binding_id.as_str().into(),
            posting.binding_version.into(),
            posting.movement_id.as_str().into(),
        ],
    )
}

/// An account and what its holds reserve, read together under the account's lock.
#[derive(sqlx::FromRow)]
pub(super) struct HeldAccountRow {
    #[sqlx(flatten)]
    pub(super) account: super::accounts::AccountRow,
    /// Live holds' amounts per bucket, and how many holds expired without being closed.
    pub(super) held_current_fen: i64,
    pub(super) held_prior_fen: i64,
    pub(super) expired: i64,
}

/// The hold state a row shows at `at_ms`.
pub(super) fn hold_state(state: &str, expire_ms: i64, at_ms: i64) -> Option<HoldState> {
    match state {
        "HELD" if expire_ms > at_ms => Some(HoldState::Live),
        "HELD" | "VOIDED" => Some(HoldState::Gone),
        "POSTED" => Some(HoldState::Posted),
        _ => None,
    }
}

/// Implements `Holds` for `$store`; `$hold_begin` (given the holder's stored index) begins
/// the transaction that places a hold, with the account's lock, where the database locks rows
/// (`None`: a plain BEGIN).
macro_rules! holds_sql {
    ($store:ident, $db:ty, $hold_begin:expr) => {
        impl $crate::store::Holds for $store {
            async fn place_hold(
                &self,
                hold: &$crate::domain::fence::Hold,
            ) -> Result<u64, $crate::store::StoreError> {
                let at_ms = hold.create_time.timestamp_millis();
                let holder = self.vault.index(&hold.holder);
                // The account's lock first (in the BEGIN's round trip where the database
                // allows): a debit and another hold wait, then see this one. The account and
                // its holds are read in one statement after it.
                let mut connection = self.warm.acquire().await?;
                let mut tx = match $hold_begin(&holder) {
                    Some(begin) => sqlx::Connection::begin_with(&mut *connection, begin).await?,
                    // A database that locks no rows (SQLite's one writer).
                    None => sqlx::Connection::begin(&mut *connection).await?,
                };
                let row: $crate::store::holds::HeldAccountRow = sqlx::query_as(&format!(
                    "SELECT {}, h.held_current_fen, h.held_prior_fen, h.expired FROM accounts, \
                     (SELECT CAST(COALESCE(SUM(CASE WHEN expire_ms > $2 THEN current_fen ELSE 0 END), 0) AS BIGINT) AS held_current_fen, \
                     CAST(COALESCE(SUM(CASE WHEN expire_ms > $2 THEN prior_fen ELSE 0 END), 0) AS BIGINT) AS held_prior_fen, \
                     CAST(COALESCE(SUM(CASE WHEN expire_ms > $2 THEN 0 ELSE 1 END), 0) AS BIGINT) AS expired \
                     FROM holds WHERE holder = $1 AND state = 'HELD') h \
                     WHERE accounts.holder = $1",
                    $crate::store::accounts::ACCOUNT_COLUMNS
                ))
                .bind(&holder)
                .bind(at_ms)
                .fetch_one(&mut *tx)
                .await?;
                let (held_current_fen, held_prior_fen, expired) = (row.held_current_fen, row.held_prior_fen, row.expired);
                let account = row.account.open(&self.vault)?;
                if expired > 0 {
                    // Expired holds count for nothing already; closing them keeps the account's
                    // live holds few.
                    sqlx::query(
                        "UPDATE holds SET state = 'VOIDED', close_ms = $1 \
                         WHERE holder = $2 AND state = 'HELD' AND expire_ms <= $1",
                    )
                    .bind(at_ms)
                    .bind(&holder)
                    .execute(&mut *tx)
                    .await?;
                }
                let (mut current_fen, mut prior_fen) = (0_i64, 0_i64);
                for draw in &hold.draws {
                    match draw.bucket {
                        gongji_shared::policy::Bucket::CurrentYear => current_fen += draw.amount.fen(),
                        gongji_shared::policy::Bucket::PriorYears => prior_fen += draw.amount.fen(),
                    }
                }
                if account.current_year.fen() - held_current_fen < current_fen
                    || account.prior_years.fen() - held_prior_fen < prior_fen
                {
                    return Err($crate::store::StoreError::Conflict(
                        $crate::store::Conflict::InsufficientBalance,
                    ));
                }
                // Behind the account's lock every other debit of the binding waits: what the
                // limits have counted cannot change until this commits.
                if let Some(cap) = &hold.cap {
                    let remaining = limit_remaining_in(&mut tx, cap, hold.purpose, at_ms).await?;
                    if remaining.is_some_and(|left| left < hold.amount()) {
                        return Err($crate::store::StoreError::Conflict(
                            $crate::store::Conflict::FamilyLimit,
                        ));
                    }
                }
                sqlx::query(
                    "INSERT INTO holds (movement_id, holder, current_fen, prior_fen, purpose, request_id, state, create_ms, expire_ms, binding_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'HELD', $7, $8, $9)",
                )
                .bind(&hold.movement_id)
                .bind(&holder)
                .bind(current_fen)
                .bind(prior_fen)
                .bind(hold.purpose.as_str())
                .bind(&hold.request_id)
                .bind(at_ms)
                .bind(hold.expire_time.timestamp_millis())
                .bind(hold.cap.as_ref().map(|c| c.binding_id.as_str()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.warm.keep(connection);
                Ok(u64::try_from(expired).unwrap_or(0))
            }

            async fn limit_remaining(
                &self,
                cap: &$crate::domain::fence::LimitCap,
                purpose: gongji_shared::policy::Purpose,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<gongji_shared::Money>, $crate::store::StoreError> {
                let mut connection = self.reads.acquire().await?;
                limit_remaining_in(&mut connection, cap, purpose, at.timestamp_millis()).await
            }

            async fn void_hold(
                &self,
                movement_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::store::StoreError> {
                let voided = sqlx::query(
                    "UPDATE holds SET state = 'VOIDED', close_ms = $1 WHERE movement_id = $2 AND state = 'HELD'",
                )
                .bind(at.timestamp_millis())
                .bind(movement_id)
                .execute(&self.pool)
                .await?;
                Ok(voided.rows_affected() == 1)
            }

            async fn hold_states(
                &self,
                movement_ids: &[String],
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<(String, $crate::domain::fence::HoldState)>, $crate::store::StoreError> {
                let mut states = Vec::with_capacity(movement_ids.len());
                for id in movement_ids {
                    let row: Option<(String, i64)> =
                        sqlx::query_as("SELECT state, expire_ms FROM holds WHERE movement_id = $1")
                            .bind(id)
                            .fetch_optional(&self.reads)
                            .await?;
                    if let Some((state, expire_ms)) = row {
                        let state = $crate::store::holds::hold_state(&state, expire_ms, at.timestamp_millis())
                            .ok_or_else(|| gongji_shared::db::decode::corrupt("holds.state"))?;
                        states.push((id.clone(), state));
                    }
                }
                Ok(states)
            }

            async fn family_debits(
                &self,
                binding_id: &str,
                limit: i64,
            ) -> Result<Vec<$crate::domain::fence::FamilyDebit>, $crate::store::StoreError> {
                // The family part of a medical expense is what its family draws took.
                let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
                    "SELECT movement_id, account_fen, NULL FROM premium_payments \
                     WHERE binding_id = $1 AND movement_id IS NOT NULL \
                     UNION ALL \
                     SELECT movement_id, 0, family_draws FROM medical_payments \
                     WHERE binding_id = $1 AND movement_id IS NOT NULL \
                     LIMIT $2",
                )
                .bind(binding_id)
                .bind(limit)
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter()
                    .map(|(movement_id, account_fen, family_draws)| {
                        let fen = match family_draws {
                            Some(draws) => $crate::domain::payment::decode_draws(&draws)
                                .ok_or_else(|| gongji_shared::db::decode::corrupt("medical_payments.family_draws"))?
                                .iter()
                                .map(|d| d.amount.fen())
                                .sum(),
                            None => account_fen,
                        };
                        Ok($crate::domain::fence::FamilyDebit {
                            movement_id,
                            amount: gongji_shared::db::decode::money(fen, "family debit amount")?,
                        })
                    })
                    .collect()
            }
        }

        /// Posts a hold inside the payment's transaction, after its debit is written (locks
        /// go account before hold, as in `place_hold`): `Conflict::HoldGone` when it
        /// expired, was voided, or never was.
        async fn post_hold(
            tx: &mut sqlx::Transaction<'_, $db>,
            posting: &$crate::domain::fence::Posting,
        ) -> Result<(), $crate::store::StoreError> {
            let part = $crate::store::holds::posting_part(posting);
            let posted = gongji_shared::db::batch::BindValues::bind_values(sqlx::query(part.sql()), part.values())
                .execute(&mut **tx)
                .await?;
            if posted.rows_affected() != 1 {
                return Err($crate::store::StoreError::Conflict($crate::store::Conflict::HoldGone));
            }
            Ok(())
        }

        /// What a debit for `purpose` may still take under `cap` as of `at_ms`, read on
        /// `connection` (inside a transaction, after the account's lock, when it must hold).
        async fn limit_remaining_in(
            connection: &mut <$db as sqlx::Database>::Connection,
            cap: &$crate::domain::fence::LimitCap,
            purpose: gongji_shared::policy::Purpose,
            at_ms: i64,
        ) -> Result<Option<gongji_shared::Money>, $crate::store::StoreError> {
            let mut used = std::collections::HashMap::new();
            for limit in cap.limits.iter().filter(|l| l.applies_to(purpose)) {
                let (first, last) = limit.period.bounds(cap.today);
                let (fen,): (i64,) = sqlx::query_as($crate::store::holds::LIMIT_USED_SQL)
                    .bind(&cap.binding_id)
                    .bind(first)
                    .bind(last)
                    .bind(at_ms)
                    .bind(limit.purpose.map(|p| p.as_str()))
                    .fetch_one(&mut *connection)
                    .await?;
                used.insert((limit.purpose, limit.period), fen);
            }
            Ok(cap
                .limits
                .remaining(purpose, |l| used.get(&(l.purpose, l.period)).copied().unwrap_or(0)))
        }
    };
}
