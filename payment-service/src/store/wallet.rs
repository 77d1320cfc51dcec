//! Family wallet transfers (U4).

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    IdNumber,
    command::Idempotency,
    db::decode::{self, corrupt},
};

use super::{Database, StoreError};
use crate::domain::{
    Movement,
    fence::Posting,
    payment::decode_draws,
    usage::{NewUse, UseKind},
    wallet::{Settle, TransferState, WalletTransfer},
};

/// Family wallet transfers.
pub trait Wallets: Database<Conflict = super::Conflict> {
    /// How many transfers the authorizer made on `day`.
    fn transfers_made_on(
        &self,
        authorizer: &IdNumber,
        day: NaiveDate,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Records a transfer, its movement (posting its hold) and its family use, atomically,
    /// if the authorizer has made fewer than `max_per_day` transfers on the movement's day
    /// (`Conflict::WalletDailyCount` otherwise), counted under the account's lock.
    fn insert_transfer(
        &self,
        transfer: &WalletTransfer,
        movement: &Movement,
        posting: &Posting,
        max_per_day: u32,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` pending transfers whose confirmation time ran out before `now`, oldest
    /// deadline first.
    fn transfers_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WalletTransfer>, StoreError>> + Send;

    /// Confirms or returns a pending transfer in one transaction, under its row's lock. A
    /// return locks the authorizer's account, writes `plan`'s movement (given the transfer,
    /// the account and whether the authorizer's year of the transfer was closed since) and
    /// the family use of what came back. With `answer`, the answer is kept under `by` for
    /// retries. `None` when the transfer is no longer pending (nothing changes).
    fn settle_transfer<P, A>(
        &self,
        transfer_id: &str,
        settle: Settle,
        at: DateTime<Utc>,
        plan: P,
        by: &Idempotency,
        answer: Option<A>,
    ) -> impl Future<Output = Result<Option<WalletTransfer>, StoreError>> + Send
    where
        P: FnOnce(&WalletTransfer, &crate::domain::Account, bool) -> Movement + Send,
        A: FnOnce(&WalletTransfer) -> Vec<u8> + Send;

    /// One transfer.
    fn wallet_transfer(
        &self,
        transfer_id: &str,
    ) -> impl Future<Output = Result<Option<WalletTransfer>, StoreError>> + Send;
}

pub(super) const TRANSFER_SELECT: &str = "transfer_id, request_id, movement_id, authorizer_sealed, \
    beneficiary_sealed, amount_fen, draws, destination, binding_id, binding_version, state, create_time, \
    business_date, confirm_deadline";

#[derive(sqlx::FromRow)]
pub(super) struct TransferRow {
    transfer_id: String,
    request_id: String,
    movement_id: String,
    authorizer_sealed: String,
    beneficiary_sealed: String,
    amount_fen: i64,
    draws: String,
    destination: String,
    binding_id: String,
    binding_version: i64,
    state: String,
    create_time: DateTime<Utc>,
    business_date: NaiveDate,
    confirm_deadline: DateTime<Utc>,
}

impl TransferRow {
    pub(super) fn open(
        self,
        vault: &gongji_shared::vault::Vault,
    ) -> Result<WalletTransfer, StoreError> {
        let r = self;
        Ok(WalletTransfer {
            transfer_id: r.transfer_id,
            request_id: r.request_id,
            movement_id: r.movement_id,
            authorizer: decode::sealed_id(
                vault,
                &r.authorizer_sealed,
                "wallet_transfers.authorizer",
            )?,
            beneficiary: decode::sealed_id(
                vault,
                &r.beneficiary_sealed,
                "wallet_transfers.beneficiary",
            )?,
            amount: decode::money(r.amount_fen, "wallet_transfers.amount_fen")?,
            draws: decode_draws(&r.draws).ok_or_else(|| corrupt("wallet_transfers.draws"))?,
            destination: decode::region(&r.destination, "wallet_transfers.destination")?,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            state: TransferState::parse(&r.state)
                .ok_or_else(|| corrupt("wallet_transfers.state"))?,
            create_time: r.create_time,
            business_date: r.business_date,
            confirm_deadline: r.confirm_deadline,
        })
    }
}

/// The family use of a transfer: all of it left the authorizer's account.
pub(super) fn transfer_use(t: &WalletTransfer, business_date: NaiveDate) -> NewUse {
    NewUse {
        movement_id: t.movement_id.clone(),
        kind: UseKind::Debit,
        payment_id: t.transfer_id.clone(),
        purpose: gongji_shared::policy::Purpose::FamilyWallet,
        authorizer: t.authorizer.clone(),
        beneficiary: t.beneficiary.clone(),
        binding_id: t.binding_id.clone(),
        amount_fen: t.amount.fen(),
        institution_code: None,
        business_date,
        create_time: t.create_time,
    }
}

/// The family use of a transfer's return: all of it came back to the authorizer's account.
pub(super) fn return_use(
    t: &WalletTransfer,
    movement: &Movement,
    business_date: NaiveDate,
) -> NewUse {
    NewUse {
        movement_id: movement.movement_id.clone(),
        kind: UseKind::Refund,
        create_time: movement.create_time,
        ..transfer_use(t, business_date)
    }
}

/// Implements `Wallets` for `$store`; `$for_update` locks a row read inside a transaction.
/// Uses `save_response`, `record_movement`, `apply_movement`, `post_hold` and `record_use` of
/// the other aggregates.
macro_rules! wallet_sql {
    ($store:ident, $for_update:expr) => {
        impl $crate::store::Wallets for $store {
            async fn transfers_made_on(
                &self,
                authorizer: &gongji_shared::IdNumber,
                day: chrono::NaiveDate,
            ) -> Result<u32, $crate::store::StoreError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM wallet_transfers WHERE authorizer = $1 AND business_date = $2",
                )
                .bind(self.vault.index(authorizer))
                .bind(day)
                .fetch_one(&self.reads)
                .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn insert_transfer(
                &self,
                t: &$crate::domain::wallet::WalletTransfer,
                movement: &$crate::domain::Movement,
                posting: &$crate::domain::fence::Posting,
                max_per_day: u32,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, &self.vault, idempotency, response, t.create_time).await?;
                let (_, day) = record_movement(&mut tx, &self.vault, movement, idempotency).await?;
                // The day's count under the account's lock: concurrent transfers of one
                // authorizer count one after the other.
                let authorizer = self.vault.index(&t.authorizer);
                sqlx::query(&format!("SELECT holder FROM accounts WHERE holder = $1{}", $for_update))
                    .bind(&authorizer)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (made,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM wallet_transfers WHERE authorizer = $1 AND business_date = $2",
                )
                .bind(&authorizer)
                .bind(day)
                .fetch_one(&mut *tx)
                .await?;
                if made >= i64::from(max_per_day) {
                    return Err($crate::store::StoreError::Conflict($crate::store::Conflict::WalletDailyCount));
                }
                post_hold(&mut tx, posting).await?;
                sqlx::query(
                    "INSERT INTO wallet_transfers (transfer_id, request_id, movement_id, authorizer, beneficiary, \
                     authorizer_sealed, beneficiary_sealed, amount_fen, draws, destination, binding_id, binding_version, \
                     state, create_time, business_date, confirm_deadline, caller, acting_person) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                )
                .bind(&t.transfer_id)
                .bind(&t.request_id)
                .bind(&t.movement_id)
                .bind(&authorizer)
                .bind(self.vault.index(&t.beneficiary))
                .bind(self.vault.seal_id(&t.authorizer))
                .bind(self.vault.seal_id(&t.beneficiary))
                .bind(t.amount.fen())
                .bind($crate::domain::payment::encode_draws(&t.draws))
                .bind(t.destination.as_str())
                .bind(&t.binding_id)
                .bind(t.binding_version)
                .bind(t.state.as_str())
                .bind(t.create_time)
                .bind(day)
                .bind(t.confirm_deadline)
                .bind(&idempotency.scope)
                .bind(idempotency.acting_person.as_deref().map(|a| self.vault.seal(a)))
                .execute(&mut *tx)
                .await?;
                record_use(&mut tx, &self.vault, &$crate::store::wallet::transfer_use(t, day)).await?;
                apply_movement(&mut tx, &self.vault, movement).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn transfers_due(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::wallet::WalletTransfer>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::wallet::TransferRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM wallet_transfers WHERE state = 'PENDING' AND confirm_deadline < $1 \
                     ORDER BY confirm_deadline LIMIT $2",
                    $crate::store::wallet::TRANSFER_SELECT
                ))
                .bind(now)
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }

            async fn settle_transfer<P, A>(
                &self,
                transfer_id: &str,
                settle: $crate::domain::wallet::Settle,
                at: chrono::DateTime<chrono::Utc>,
                plan: P,
                by: &gongji_shared::command::Idempotency,
                answer: Option<A>,
            ) -> Result<Option<$crate::domain::wallet::WalletTransfer>, $crate::store::StoreError>
            where
                P: FnOnce(&$crate::domain::wallet::WalletTransfer, &$crate::domain::Account, bool) -> $crate::domain::Movement + Send,
                A: FnOnce(&$crate::domain::wallet::WalletTransfer) -> Vec<u8> + Send,
            {
                use $crate::domain::wallet::{Settle, TransferState};
                let mut tx = self.pool.begin().await?;
                // The day's lock first, then the transfer's row, then the account's.
                open_day(&mut tx, gongji_shared::domain::clock::shanghai_date(at)).await?;
                let row: Option<$crate::store::wallet::TransferRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM wallet_transfers WHERE transfer_id = $1{}",
                    $crate::store::wallet::TRANSFER_SELECT,
                    $for_update
                ))
                .bind(transfer_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Err($crate::store::StoreError::Corrupt("no such wallet transfer".into()));
                };
                let t = row.open(&self.vault)?;
                if t.state != TransferState::Pending {
                    return Ok(None);
                }
                let next = match settle {
                    Settle::Confirm => {
                        sqlx::query("UPDATE wallet_transfers SET state = 'CONFIRMED' WHERE transfer_id = $1")
                            .bind(transfer_id)
                            .execute(&mut *tx)
                            .await?;
                        $crate::domain::wallet::WalletTransfer { state: TransferState::Confirmed, ..t }
                    }
                    Settle::Return => {
                        let account = read_account(&mut tx, &self.vault, &t.authorizer, $for_update).await?;
                        let closed: Option<(i32,)> =
                            sqlx::query_as("SELECT year FROM year_closings WHERE holder = $1 AND year = $2")
                                .bind(self.vault.index(&t.authorizer))
                                .bind(chrono::Datelike::year(&t.business_date))
                                .fetch_optional(&mut *tx)
                                .await?;
                        let movement = plan(&t, &account, closed.is_some());
                        let (_, day) = record_movement(&mut tx, &self.vault, &movement, by).await?;
                        record_use(&mut tx, &self.vault, &$crate::store::wallet::return_use(&t, &movement, day)).await?;
                        sqlx::query(
                            "UPDATE wallet_transfers SET state = 'RETURNED', return_movement_id = $2 WHERE transfer_id = $1",
                        )
                        .bind(transfer_id)
                        .bind(&movement.movement_id)
                        .execute(&mut *tx)
                        .await?;
                        apply_movement(&mut tx, &self.vault, &movement).await?;
                        $crate::domain::wallet::WalletTransfer { state: TransferState::Returned, ..t }
                    }
                };
                if let Some(answer) = answer {
                    save_response(&mut tx, &self.vault, by, &answer(&next), at).await?;
                }
                tx.commit().await?;
                Ok(Some(next))
            }

            async fn wallet_transfer(
                &self,
                transfer_id: &str,
            ) -> Result<Option<$crate::domain::wallet::WalletTransfer>, $crate::store::StoreError> {
                let row: Option<$crate::store::wallet::TransferRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM wallet_transfers WHERE transfer_id = $1",
                    $crate::store::wallet::TRANSFER_SELECT
                ))
                .bind(transfer_id)
                .fetch_optional(&self.reads)
                .await?;
                row.map(|r| r.open(&self.vault)).transpose()
            }
        }
    };
}
