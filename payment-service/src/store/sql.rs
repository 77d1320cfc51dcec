//! The SQL both stores share, and the rows it reads.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    CoverageYear, IdNumber, Money, RegionCode,
    policy::{Bucket, DateWindow},
};

use super::StoreError;
use crate::domain::{
    Account, AccountEntry, Book, MovementKind,
    payment::{Channel, OtherMeans, PaymentState, PremiumPayment, decode_draws},
    premium::PremiumTerms,
    split::Split,
};

pub(super) const PREMIUM_COLUMNS: &str = "payment_id, request_id, movement_id, payer, beneficiary, coverage_year, state, \
    premium_fen, account_fen, other_fen, draws, other_channel, other_reference, binding_id, binding_version, \
    payer_region, beneficiary_region, back_payment, in_window, window_start, window_end, waiting_months, \
    benefit_start, benefit_end, payment_date, pay_time, refund_time, refund_reason";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn id(s: &str, what: &str) -> Result<IdNumber, StoreError> {
    IdNumber::parse(s).map_err(|_| corrupt(what))
}

fn region(s: &str, what: &str) -> Result<RegionCode, StoreError> {
    RegionCode::parse(s).map_err(|_| corrupt(what))
}

fn money(fen: i64, what: &str) -> Result<Money, StoreError> {
    Money::from_fen(fen).map_err(|_| corrupt(what))
}

/// The balance column of a bucket. Never user input: a fixed match.
pub(super) fn bucket_column(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::CurrentYear => "current_fen",
        Bucket::PriorYears => "prior_fen",
    }
}

/// The columns of an entry row: holder, bucket, fund, region.
pub(super) fn book_columns(
    book: &Book,
) -> (
    Option<&str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&str>,
) {
    match book {
        Book::Personal { holder, bucket } => {
            (Some(holder.as_str()), Some(bucket.as_str()), None, None)
        }
        Book::Fund { fund, region } => (None, None, Some(*fund), Some(region.as_str())),
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    holder: String,
    region: String,
    current_fen: i64,
    prior_fen: i64,
    open_time: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<Self, Self::Error> {
        Ok(Account {
            holder: id(&r.holder, "accounts.holder")?,
            region: region(&r.region, "accounts.region")?,
            current_year: money(r.current_fen, "accounts.current_fen")?,
            prior_years: money(r.prior_fen, "accounts.prior_fen")?,
            open_time: r.open_time,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    entry_id: i64,
    movement_id: String,
    kind: String,
    bucket: String,
    amount_fen: i64,
    request_id: String,
    create_time: DateTime<Utc>,
    business_date: NaiveDate,
}

impl TryFrom<EntryRow> for AccountEntry {
    type Error = StoreError;

    fn try_from(r: EntryRow) -> Result<Self, Self::Error> {
        Ok(AccountEntry {
            entry_id: r.entry_id,
            movement_id: r.movement_id,
            kind: MovementKind::parse(&r.kind).ok_or_else(|| corrupt("movements.kind"))?,
            bucket: Bucket::parse(&r.bucket).ok_or_else(|| corrupt("entries.bucket"))?,
            amount_fen: r.amount_fen,
            request_id: r.request_id,
            create_time: r.create_time,
            business_date: r.business_date,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PaidYearRow {
    pub coverage_year: i32,
    pub back_payment: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct SavedRow {
    pub operation: String,
    pub fingerprint: String,
    pub response: Vec<u8>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PremiumRow {
    payment_id: String,
    request_id: String,
    movement_id: String,
    payer: String,
    beneficiary: String,
    coverage_year: i32,
    state: String,
    premium_fen: i64,
    account_fen: i64,
    other_fen: i64,
    draws: String,
    other_channel: Option<String>,
    other_reference: Option<String>,
    binding_id: String,
    binding_version: i64,
    payer_region: String,
    beneficiary_region: String,
    back_payment: bool,
    in_window: bool,
    window_start: NaiveDate,
    window_end: NaiveDate,
    waiting_months: i32,
    benefit_start: Option<NaiveDate>,
    benefit_end: Option<NaiveDate>,
    payment_date: NaiveDate,
    pay_time: DateTime<Utc>,
    refund_time: Option<DateTime<Utc>>,
    refund_reason: Option<String>,
}

impl TryFrom<PremiumRow> for PremiumPayment {
    type Error = StoreError;

    fn try_from(r: PremiumRow) -> Result<Self, Self::Error> {
        let other_part = money(r.other_fen, "premium_payments.other_fen")?;
        let other_means = match (r.other_channel, r.other_reference) {
            (Some(channel), Some(reference)) => Some(OtherMeans {
                amount: other_part,
                channel: Channel::parse(&channel)
                    .ok_or_else(|| corrupt("premium_payments.other_channel"))?,
                reference,
            }),
            _ => None,
        };
        Ok(PremiumPayment {
            payment_id: r.payment_id,
            request_id: r.request_id,
            movement_id: r.movement_id,
            payer: id(&r.payer, "premium_payments.payer")?,
            beneficiary: id(&r.beneficiary, "premium_payments.beneficiary")?,
            year: CoverageYear::parse(r.coverage_year)
                .map_err(|_| corrupt("premium_payments.coverage_year"))?,
            state: match r.state.as_str() {
                "PAID" => PaymentState::Paid,
                "REFUNDED" => PaymentState::Refunded,
                _ => return Err(corrupt("premium_payments.state")),
            },
            terms: PremiumTerms {
                premium: money(r.premium_fen, "premium_payments.premium_fen")?,
                window: DateWindow {
                    start: r.window_start,
                    end: r.window_end,
                },
                in_window: r.in_window,
                waiting_months: u32::try_from(r.waiting_months)
                    .map_err(|_| corrupt("premium_payments.waiting_months"))?,
                cover: r.benefit_start.zip(r.benefit_end),
            },
            back_payment: r.back_payment,
            split: Split {
                draws: decode_draws(&r.draws).ok_or_else(|| corrupt("premium_payments.draws"))?,
                account_part: money(r.account_fen, "premium_payments.account_fen")?,
                other_part,
            },
            other_means,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            payer_region: region(&r.payer_region, "premium_payments.payer_region")?,
            beneficiary_region: region(
                &r.beneficiary_region,
                "premium_payments.beneficiary_region",
            )?,
            payment_date: r.payment_date,
            pay_time: r.pay_time,
            refund_time: r.refund_time,
            refund_reason: r.refund_reason,
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

/// Implements `Store` for a pool-holding struct over one sqlx database.
macro_rules! sql_store {
    ($store:ident, $db:ty, $migrations:literal) => {
        impl $crate::store::Store for $store {
            async fn migrate(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::migrate!($migrations).run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn saved_response(
                &self,
                request_id: &str,
            ) -> Result<Option<gongji_shared::rpc::SavedResponse>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::SavedRow> = sqlx::query_as(
                    "SELECT operation, fingerprint, response FROM idempotency WHERE request_id = $1",
                )
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| gongji_shared::rpc::SavedResponse {
                    operation: r.operation,
                    fingerprint: r.fingerprint,
                    response: r.response,
                }))
            }

            async fn open_account(
                &self,
                account: &$crate::domain::Account,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, idempotency, response, account.open_time).await?;
                sqlx::query(
                    "INSERT INTO accounts (holder, region, current_fen, prior_fen, open_time) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(account.holder.as_str())
                .bind(account.region.as_str())
                .bind(account.current_year.fen())
                .bind(account.prior_years.fen())
                .bind(account.open_time)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::unique_or(e, $crate::store::StoreError::AccountExists))?;
                tx.commit().await?;
                Ok(())
            }

            async fn account(
                &self,
                holder: &gongji_shared::IdNumber,
            ) -> Result<Option<$crate::domain::Account>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::AccountRow> = sqlx::query_as(
                    "SELECT holder, region, current_fen, prior_fen, open_time FROM accounts WHERE holder = $1",
                )
                .bind(holder.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn post(
                &self,
                holder: &gongji_shared::IdNumber,
                movement: &$crate::domain::Movement,
                idempotency: &gongji_shared::rpc::Idempotency,
                respond: impl FnOnce(&$crate::domain::Account, &[i64]) -> Vec<u8> + Send,
            ) -> Result<Vec<u8>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let entry_ids = write_movement(&mut tx, movement).await?;
                let row: $crate::store::sql::AccountRow = sqlx::query_as(
                    "SELECT holder, region, current_fen, prior_fen, open_time FROM accounts WHERE holder = $1",
                )
                .bind(holder.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let response = respond(&row.try_into()?, &entry_ids);
                save_response(&mut tx, idempotency, &response, movement.create_time).await?;
                tx.commit().await?;
                Ok(response)
            }

            async fn entries(
                &self,
                holder: &gongji_shared::IdNumber,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::AccountEntry>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::sql::EntryRow> = sqlx::query_as(
                    "SELECT e.entry_id, e.movement_id, m.kind, e.bucket, e.amount_fen, m.request_id, m.create_time, m.business_date \
                     FROM entries e JOIN movements m ON m.movement_id = e.movement_id \
                     WHERE e.holder = $1 AND e.entry_id < $2 ORDER BY e.entry_id DESC LIMIT $3",
                )
                .bind(holder.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn paid_years(
                &self,
                beneficiary: &gongji_shared::IdNumber,
            ) -> Result<Vec<$crate::domain::premium::PaidYear>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::sql::PaidYearRow> = sqlx::query_as(
                    "SELECT coverage_year, back_payment FROM premium_payments \
                     WHERE beneficiary = $1 AND state = 'PAID' ORDER BY coverage_year LIMIT $2",
                )
                .bind(beneficiary.as_str())
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok($crate::domain::premium::PaidYear {
                            year: gongji_shared::CoverageYear::parse(r.coverage_year)
                                .map_err(|_| $crate::store::StoreError::Corrupt("premium_payments.coverage_year".into()))?,
                            back_payment: r.back_payment,
                        })
                    })
                    .collect()
            }

            async fn insert_premium(
                &self,
                p: &$crate::domain::payment::PremiumPayment,
                movement: &$crate::domain::Movement,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, idempotency, response, p.pay_time).await?;
                write_movement(&mut tx, movement).await?;
                sqlx::query(&format!(
                    "INSERT INTO premium_payments ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
                    $crate::store::sql::PREMIUM_COLUMNS
                ))
                .bind(&p.payment_id)
                .bind(&p.request_id)
                .bind(&p.movement_id)
                .bind(p.payer.as_str())
                .bind(p.beneficiary.as_str())
                .bind(p.year.get())
                .bind(p.state.as_str())
                .bind(p.terms.premium.fen())
                .bind(p.split.account_part.fen())
                .bind(p.split.other_part.fen())
                .bind($crate::domain::payment::encode_draws(&p.split.draws))
                .bind(p.other_means.as_ref().map(|o| o.channel.as_str()))
                .bind(p.other_means.as_ref().map(|o| o.reference.as_str()))
                .bind(&p.binding_id)
                .bind(p.binding_version)
                .bind(p.payer_region.as_str())
                .bind(p.beneficiary_region.as_str())
                .bind(p.back_payment)
                .bind(p.terms.in_window)
                .bind(p.terms.window.start)
                .bind(p.terms.window.end)
                .bind(i32::try_from(p.terms.waiting_months).unwrap_or(i32::MAX))
                .bind(p.terms.cover.map(|c| c.0))
                .bind(p.terms.cover.map(|c| c.1))
                .bind(p.payment_date)
                .bind(p.pay_time)
                .bind(p.refund_time)
                .bind(p.refund_reason.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::unique_or(e, $crate::store::StoreError::AlreadyPaid))?;
                tx.commit().await?;
                Ok(())
            }

            async fn premium_payment(
                &self,
                payment_id: &str,
            ) -> Result<Option<$crate::domain::payment::PremiumPayment>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::PremiumRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM premium_payments WHERE payment_id = $1",
                    $crate::store::sql::PREMIUM_COLUMNS
                ))
                .bind(payment_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }
        }

        /// Writes a movement and its postings, moving each personal bucket's balance with a
        /// conditional update that refuses to go below zero. Returns the entry IDs.
        async fn write_movement(
            tx: &mut sqlx::Transaction<'_, $db>,
            movement: &$crate::domain::Movement,
        ) -> Result<Vec<i64>, $crate::store::StoreError> {
            if !movement.is_balanced() {
                return Err($crate::store::StoreError::Corrupt("unbalanced movement".into()));
            }
            sqlx::query(
                "INSERT INTO movements (movement_id, kind, request_id, create_time, business_date) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&movement.movement_id)
            .bind(movement.kind.as_str())
            .bind(&movement.request_id)
            .bind(movement.create_time)
            .bind(movement.business_date)
            .execute(&mut **tx)
            .await?;
            let mut ids = Vec::with_capacity(movement.postings.len());
            for posting in &movement.postings {
                if let $crate::domain::Book::Personal { holder, bucket } = &posting.book {
                    let column = $crate::store::sql::bucket_column(*bucket);
                    let updated = sqlx::query(&format!(
                        "UPDATE accounts SET {column} = {column} + $1 WHERE holder = $2 AND {column} + $1 >= 0"
                    ))
                    .bind(posting.amount_fen)
                    .bind(holder.as_str())
                    .execute(&mut **tx)
                    .await?;
                    if updated.rows_affected() != 1 {
                        return Err($crate::store::StoreError::InsufficientBalance);
                    }
                }
                let (holder, bucket, fund, region) = $crate::store::sql::book_columns(&posting.book);
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO entries (movement_id, holder, bucket, fund, region, amount_fen) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING entry_id",
                )
                .bind(&movement.movement_id)
                .bind(holder)
                .bind(bucket)
                .bind(fund)
                .bind(region)
                .bind(posting.amount_fen)
                .fetch_one(&mut **tx)
                .await?;
                ids.push(id);
            }
            Ok(ids)
        }

        /// Records the response under its request ID inside the effect's transaction.
        async fn save_response(
            tx: &mut sqlx::Transaction<'_, $db>,
            idempotency: &gongji_shared::rpc::Idempotency,
            response: &[u8],
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query(
                "INSERT INTO idempotency (request_id, operation, fingerprint, response, create_time) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&idempotency.request_id)
            .bind(idempotency.operation)
            .bind(&idempotency.fingerprint)
            .bind(response)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(|e| $crate::store::sql::unique_or(e, $crate::store::StoreError::RequestIdTaken))?;
            Ok(())
        }
    };
}
