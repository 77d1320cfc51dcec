//! The SQL both stores share, and the rows it reads.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    CoverageYear, IdNumber, Money, RegionCode,
    policy::{Bucket, DateWindow},
};

use super::StoreError;
use crate::domain::{
    Account, AccountEntry, Book, MovementKind, SettlementPurpose,
    medical::{InstitutionKind, MedicalPayment},
    payment::{Channel, OtherMeans, PaymentState, PremiumPayment, decode_draws},
    premium::PremiumTerms,
    settlement::{Line, SettledEntry, Settlement},
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
    &str,
) {
    match book {
        Book::Personal {
            holder,
            bucket,
            region,
        } => (
            Some(holder.as_str()),
            Some(bucket.as_str()),
            None,
            region.as_str(),
        ),
        Book::Fund { fund, region } => (None, None, Some(*fund), region.as_str()),
    }
}

pub(super) const MEDICAL_COLUMNS: &str = "payment_id, request_id, movement_id, beneficiary, family_holder, \
    institution_code, institution_kind, amount_fen, own_draws, family_draws, other_fen, binding_id, binding_version, \
    destination, pay_time, business_date";

#[derive(sqlx::FromRow)]
pub(super) struct MedicalRow {
    payment_id: String,
    request_id: String,
    movement_id: Option<String>,
    beneficiary: String,
    family_holder: Option<String>,
    institution_code: String,
    institution_kind: String,
    amount_fen: i64,
    own_draws: String,
    family_draws: String,
    other_fen: i64,
    binding_id: String,
    binding_version: i64,
    destination: Option<String>,
    pay_time: DateTime<Utc>,
    business_date: NaiveDate,
}

impl TryFrom<MedicalRow> for MedicalPayment {
    type Error = StoreError;

    fn try_from(r: MedicalRow) -> Result<Self, Self::Error> {
        Ok(MedicalPayment {
            payment_id: r.payment_id,
            request_id: r.request_id,
            movement_id: r.movement_id,
            beneficiary: id(&r.beneficiary, "medical_payments.beneficiary")?,
            family_holder: r
                .family_holder
                .as_deref()
                .map(|h| id(h, "medical_payments.family_holder"))
                .transpose()?,
            institution_code: r.institution_code,
            institution_kind: InstitutionKind::parse(&r.institution_kind)
                .ok_or_else(|| corrupt("medical_payments.institution_kind"))?,
            amount: money(r.amount_fen, "medical_payments.amount_fen")?,
            own_draws: decode_draws(&r.own_draws)
                .ok_or_else(|| corrupt("medical_payments.own_draws"))?,
            family_draws: decode_draws(&r.family_draws)
                .ok_or_else(|| corrupt("medical_payments.family_draws"))?,
            other_part: money(r.other_fen, "medical_payments.other_fen")?,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            destination: r
                .destination
                .as_deref()
                .map(|d| region(d, "medical_payments.destination"))
                .transpose()?,
            pay_time: r.pay_time,
            business_date: r.business_date,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SettledEntryRow {
    entry_id: i64,
    movement_id: String,
    kind: String,
    region: String,
    destination: String,
    purpose: String,
    amount_fen: i64,
}

impl TryFrom<SettledEntryRow> for SettledEntry {
    type Error = StoreError;

    fn try_from(r: SettledEntryRow) -> Result<Self, Self::Error> {
        Ok(SettledEntry {
            entry_id: r.entry_id,
            movement_id: r.movement_id,
            kind: MovementKind::parse(&r.kind).ok_or_else(|| corrupt("movements.kind"))?,
            source: region(&r.region, "entries.region")?,
            destination: region(&r.destination, "movements.destination")?,
            purpose: SettlementPurpose::parse(&r.purpose)
                .ok_or_else(|| corrupt("movements.purpose"))?,
            amount_fen: r.amount_fen,
        })
    }
}

pub(super) const SETTLED_ENTRY_SELECT: &str = "SELECT e.entry_id, e.movement_id, m.kind, e.region, \
    m.destination, m.purpose, e.amount_fen FROM entries e JOIN movements m ON m.movement_id = e.movement_id";

#[derive(sqlx::FromRow)]
pub(super) struct SettlementRow {
    pub business_date: NaiveDate,
    pub movement_count: i64,
    pub digest: String,
    pub settle_time: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct LineRow {
    source_region: String,
    destination_region: String,
    purpose: String,
    gross_fen: i64,
    refunded_fen: i64,
    payment_count: i64,
    refund_count: i64,
}

impl TryFrom<LineRow> for Line {
    type Error = StoreError;

    fn try_from(r: LineRow) -> Result<Self, Self::Error> {
        Ok(Line {
            source: region(&r.source_region, "settlement_lines.source_region")?,
            destination: region(&r.destination_region, "settlement_lines.destination_region")?,
            purpose: SettlementPurpose::parse(&r.purpose)
                .ok_or_else(|| corrupt("settlement_lines.purpose"))?,
            gross_fen: r.gross_fen,
            refunded_fen: r.refunded_fen,
            payment_count: r.payment_count,
            refund_count: r.refund_count,
        })
    }
}

/// A settlement from its stored rows.
pub(super) fn settlement_from(
    row: SettlementRow,
    lines: Vec<LineRow>,
) -> Result<(Settlement, DateTime<Utc>), StoreError> {
    Ok((
        Settlement {
            business_date: row.business_date,
            lines: lines
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            movement_count: row.movement_count,
            digest: row.digest,
        },
        row.settle_time,
    ))
}

#[derive(sqlx::FromRow)]
pub(super) struct PositionedPremiumRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub payment: PremiumRow,
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
pub(super) struct PremiumRow {
    payment_id: String,
    request_id: String,
    movement_id: Option<String>,
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
            movement_id: r.movement_id.unwrap_or_default(),
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

/// Implements `Store` for a pool-holding struct over one sqlx database. `$for_update`
/// locks a row read inside a transaction (PostgreSQL; SQLite has a single writer), and
/// `$premium_seq` gives a new premium payment its position.
macro_rules! sql_store {
    ($store:ident, $db:ty, $migrations:literal, $for_update:literal, $premium_seq:literal) => {
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
                saved_response_of(&self.pool, request_id).await
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
                let account = read_account(&mut tx, holder, "").await?;
                let response = respond(&account, &entry_ids);
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
                if !p.split.account_part.is_zero() {
                    write_movement(&mut tx, movement).await?;
                }
                sqlx::query(&format!(
                    "INSERT INTO premium_payments ({}, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, {})",
                    $crate::store::sql::PREMIUM_COLUMNS,
                    $premium_seq
                ))
                .bind(&p.payment_id)
                .bind(&p.request_id)
                .bind((!p.split.account_part.is_zero()).then_some(p.movement_id.as_str()))
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

            async fn premium_payments(
                &self,
                person: &gongji_shared::IdNumber,
                as_payer: bool,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<(i64, $crate::domain::payment::PremiumPayment)>, $crate::store::StoreError> {
                let column = if as_payer { "payer" } else { "beneficiary" };
                let rows: Vec<$crate::store::sql::PositionedPremiumRow> = sqlx::query_as(&format!(
                    "SELECT seq, {} FROM premium_payments WHERE {column} = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                    $crate::store::sql::PREMIUM_COLUMNS
                ))
                .bind(person.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(|r| Ok((r.seq, r.payment.try_into()?))).collect()
            }

            async fn refund_premium(
                &self,
                refunded: &$crate::domain::payment::PremiumPayment,
                movement: Option<&$crate::domain::Movement>,
                owed_back: Option<&$crate::domain::payment::OtherMeans>,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let at = refunded.refund_time.unwrap_or(refunded.pay_time);
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, idempotency, response, at).await?;
                if let Some(movement) = movement {
                    write_movement(&mut tx, movement).await?;
                }
                let updated = sqlx::query(
                    "UPDATE premium_payments SET state = 'REFUNDED', refund_time = $1, refund_reason = $2, refund_movement_id = $3 \
                     WHERE payment_id = $4 AND state = 'PAID'",
                )
                .bind(at)
                .bind(refunded.refund_reason.as_deref())
                .bind(movement.map(|m| m.movement_id.as_str()))
                .bind(&refunded.payment_id)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err($crate::store::StoreError::AlreadyRefunded);
                }
                if let Some(o) = owed_back {
                    sqlx::query(
                        "INSERT INTO other_means_refunds (payment_id, channel, reference, amount_fen, create_time) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&refunded.payment_id)
                    .bind(o.channel.as_str())
                    .bind(&o.reference)
                    .bind(o.amount.fen())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn close_year(
                &self,
                holder: &gongji_shared::IdNumber,
                year: i32,
                at: chrono::DateTime<chrono::Utc>,
                plan: impl FnOnce(&$crate::domain::Account) -> Option<$crate::domain::Movement> + Send,
                idempotency: &gongji_shared::rpc::Idempotency,
                respond: impl FnOnce(&$crate::domain::Account, i64) -> Vec<u8> + Send,
            ) -> Result<Vec<u8>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let before = read_account(&mut tx, holder, $for_update).await?;
                let movement = plan(&before);
                let moved = movement.as_ref().map_or(0, |m| {
                    m.postings.iter().map(|p| p.amount_fen).filter(|a| *a > 0).sum()
                });
                if let Some(movement) = &movement {
                    write_movement(&mut tx, movement).await?;
                }
                sqlx::query(
                    "INSERT INTO year_closings (holder, year, moved_fen, movement_id, create_time) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(holder.as_str())
                .bind(year)
                .bind(moved)
                .bind(movement.as_ref().map(|m| m.movement_id.as_str()))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::sql::unique_or(e, $crate::store::StoreError::YearClosed))?;
                let after = read_account(&mut tx, holder, "").await?;
                let response = respond(&after, moved);
                save_response(&mut tx, idempotency, &response, at).await?;
                tx.commit().await?;
                Ok(response)
            }

            async fn insert_medical(
                &self,
                p: &$crate::domain::medical::MedicalPayment,
                movement: Option<&$crate::domain::Movement>,
                idempotency: &gongji_shared::rpc::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, idempotency, response, p.pay_time).await?;
                if let Some(movement) = movement {
                    write_movement(&mut tx, movement).await?;
                }
                sqlx::query(&format!(
                    "INSERT INTO medical_payments ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    $crate::store::sql::MEDICAL_COLUMNS
                ))
                .bind(&p.payment_id)
                .bind(&p.request_id)
                .bind(movement.map(|m| m.movement_id.as_str()))
                .bind(p.beneficiary.as_str())
                .bind(p.family_holder.as_ref().map(|h| h.as_str()))
                .bind(&p.institution_code)
                .bind(p.institution_kind.as_str())
                .bind(p.amount.fen())
                .bind($crate::domain::payment::encode_draws(&p.own_draws))
                .bind($crate::domain::payment::encode_draws(&p.family_draws))
                .bind(p.other_part.fen())
                .bind(&p.binding_id)
                .bind(p.binding_version)
                .bind(p.destination.as_ref().map(|d| d.as_str()))
                .bind(p.pay_time)
                .bind(p.business_date)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn medical_payment(
                &self,
                payment_id: &str,
            ) -> Result<Option<$crate::domain::medical::MedicalPayment>, $crate::store::StoreError> {
                let row: Option<$crate::store::sql::MedicalRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM medical_payments WHERE payment_id = $1",
                    $crate::store::sql::MEDICAL_COLUMNS
                ))
                .bind(payment_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn settle(
                &self,
                date: chrono::NaiveDate,
                at: chrono::DateTime<chrono::Utc>,
                compute: impl FnOnce(&[$crate::domain::settlement::SettledEntry]) -> $crate::domain::settlement::Settlement + Send,
                idempotency: &gongji_shared::rpc::Idempotency,
                respond: impl FnOnce(&$crate::domain::settlement::Settlement, chrono::DateTime<chrono::Utc>) -> Vec<u8> + Send,
            ) -> Result<Vec<u8>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                if let Some((settlement, settled_at)) = read_settlement(&mut tx, date).await? {
                    // Settled before: the same settlement, whoever asks.
                    let response = respond(&settlement, settled_at);
                    save_response(&mut tx, idempotency, &response, at).await?;
                    tx.commit().await?;
                    return Ok(response);
                }
                let rows: Vec<$crate::store::sql::SettledEntryRow> = sqlx::query_as(&format!(
                    "{} WHERE m.business_date = $1 AND m.purpose IS NOT NULL AND e.holder IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM settled_movements s WHERE s.movement_id = m.movement_id) \
                     ORDER BY e.entry_id",
                    $crate::store::sql::SETTLED_ENTRY_SELECT
                ))
                .bind(date)
                .fetch_all(&mut *tx)
                .await?;
                let entries = rows.into_iter().map(TryInto::try_into).collect::<Result<Vec<_>, _>>()?;
                let settlement = compute(&entries);
                sqlx::query("INSERT INTO settlements (business_date, movement_count, digest, settle_time) VALUES ($1, $2, $3, $4)")
                    .bind(date)
                    .bind(settlement.movement_count)
                    .bind(&settlement.digest)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                for line in &settlement.lines {
                    sqlx::query(
                        "INSERT INTO settlement_lines (business_date, source_region, destination_region, purpose, gross_fen, \
                         refunded_fen, payment_count, refund_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(date)
                    .bind(line.source.as_str())
                    .bind(line.destination.as_str())
                    .bind(line.purpose.as_str())
                    .bind(line.gross_fen)
                    .bind(line.refunded_fen)
                    .bind(line.payment_count)
                    .bind(line.refund_count)
                    .execute(&mut *tx)
                    .await?;
                }
                let mut movements: Vec<&str> = entries.iter().map(|e| e.movement_id.as_str()).collect();
                movements.sort_unstable();
                movements.dedup();
                for movement_id in movements {
                    sqlx::query("INSERT INTO settled_movements (movement_id, business_date) VALUES ($1, $2)")
                        .bind(movement_id)
                        .bind(date)
                        .execute(&mut *tx)
                        .await?;
                }
                let response = respond(&settlement, at);
                save_response(&mut tx, idempotency, &response, at).await?;
                tx.commit().await?;
                Ok(response)
            }

            async fn settlement(
                &self,
                date: chrono::NaiveDate,
            ) -> Result<Option<($crate::domain::settlement::Settlement, chrono::DateTime<chrono::Utc>)>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let found = read_settlement(&mut tx, date).await?;
                tx.commit().await?;
                Ok(found)
            }

            async fn ledger_facts(
                &self,
            ) -> Result<
                (
                    $crate::domain::settlement::LedgerFacts,
                    Vec<($crate::domain::settlement::Settlement, Vec<$crate::domain::settlement::SettledEntry>)>,
                ),
                $crate::store::StoreError,
            > {
                // One transaction, so every fact is of the same moment.
                let mut tx = self.pool.begin().await?;
                let off: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT a.holder, b.bucket, CASE b.bucket WHEN 'CURRENT_YEAR' THEN a.current_fen ELSE a.prior_fen END, \
                     CAST(COALESCE((SELECT SUM(e.amount_fen) FROM entries e WHERE e.holder = a.holder AND e.bucket = b.bucket), 0) AS BIGINT) \
                     FROM accounts a CROSS JOIN (SELECT 'CURRENT_YEAR' AS bucket UNION ALL SELECT 'PRIOR_YEARS') b",
                )
                .fetch_all(&mut *tx)
                .await?;
                let mask = |holder: &str| {
                    gongji_shared::IdNumber::parse(holder).map_or_else(|_| "?".to_owned(), |id| id.masked())
                };
                let balances_off = off
                    .iter()
                    .filter(|(_, _, cached, summed)| cached != summed)
                    .map(|(h, b, cached, summed)| format!("{} {b}: cached {cached}, entries {summed}", mask(h)))
                    .collect();
                let negative_balances = off
                    .iter()
                    .filter(|(_, _, cached, summed)| *cached < 0 || *summed < 0)
                    .map(|(h, b, _, _)| format!("{} {b}", mask(h)))
                    .collect();
                let unbalanced: Vec<(String,)> = sqlx::query_as(
                    "SELECT movement_id FROM entries GROUP BY movement_id HAVING SUM(amount_fen) <> 0 LIMIT 100",
                )
                .fetch_all(&mut *tx)
                .await?;
                let totals = "SELECT CAST(COALESCE(SUM(CASE WHEN m.kind <> 'REFUND' THEN -e.amount_fen ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN m.kind = 'REFUND' THEN e.amount_fen ELSE 0 END), 0) AS BIGINT) \
                     FROM entries e JOIN movements m ON m.movement_id = e.movement_id \
                     WHERE m.purpose IS NOT NULL AND e.holder IS NOT NULL";
                let (payment_debits_fen, refunds_fen): (i64, i64) = sqlx::query_as(totals).fetch_one(&mut *tx).await?;
                let (unsettled_debits_fen, unsettled_refunds_fen): (i64, i64) = sqlx::query_as(&format!(
                    "{totals} AND NOT EXISTS (SELECT 1 FROM settled_movements s WHERE s.movement_id = m.movement_id)"
                ))
                .fetch_one(&mut *tx)
                .await?;
                let (settled_gross_fen, settled_refunded_fen): (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(gross_fen), 0) AS BIGINT), CAST(COALESCE(SUM(refunded_fen), 0) AS BIGINT) FROM settlement_lines",
                )
                .fetch_one(&mut *tx)
                .await?;
                let duplicates: Vec<(String, i32)> = sqlx::query_as(
                    "SELECT beneficiary, coverage_year FROM premium_payments WHERE state = 'PAID' \
                     GROUP BY beneficiary, coverage_year HAVING COUNT(*) > 1 LIMIT 100",
                )
                .fetch_all(&mut *tx)
                .await?;
                let days: Vec<$crate::store::sql::SettlementRow> = sqlx::query_as(
                    "SELECT business_date, movement_count, digest, settle_time FROM settlements ORDER BY business_date LIMIT $1",
                )
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&mut *tx)
                .await?;
                let mut settled = Vec::with_capacity(days.len());
                for day in days {
                    let rows: Vec<$crate::store::sql::SettledEntryRow> = sqlx::query_as(&format!(
                        "{} JOIN settled_movements s ON s.movement_id = m.movement_id \
                         WHERE s.business_date = $1 AND e.holder IS NOT NULL ORDER BY e.entry_id",
                        $crate::store::sql::SETTLED_ENTRY_SELECT
                    ))
                    .bind(day.business_date)
                    .fetch_all(&mut *tx)
                    .await?;
                    let entries = rows.into_iter().map(TryInto::try_into).collect::<Result<Vec<_>, _>>()?;
                    let (settlement, _) = $crate::store::sql::settlement_from(day, Vec::new())?;
                    settled.push((settlement, entries));
                }
                tx.commit().await?;
                let facts = $crate::domain::settlement::LedgerFacts {
                    balances_off,
                    negative_balances,
                    unbalanced_movements: unbalanced.into_iter().map(|(m,)| m).collect(),
                    payment_debits_fen,
                    refunds_fen,
                    settled_gross_fen,
                    settled_refunded_fen,
                    unsettled_debits_fen,
                    unsettled_refunds_fen,
                    duplicate_premiums: duplicates
                        .iter()
                        .map(|(b, y)| format!("{} {y}", mask(b)))
                        .collect(),
                    digests_off: Vec::new(),
                };
                Ok((facts, settled))
            }
        }

        /// A stored settlement with its lines.
        async fn read_settlement(
            tx: &mut sqlx::Transaction<'_, $db>,
            date: chrono::NaiveDate,
        ) -> Result<Option<($crate::domain::settlement::Settlement, chrono::DateTime<chrono::Utc>)>, $crate::store::StoreError> {
            let row: Option<$crate::store::sql::SettlementRow> = sqlx::query_as(
                "SELECT business_date, movement_count, digest, settle_time FROM settlements WHERE business_date = $1",
            )
            .bind(date)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let lines: Vec<$crate::store::sql::LineRow> = sqlx::query_as(
                "SELECT source_region, destination_region, purpose, gross_fen, refunded_fen, payment_count, refund_count \
                 FROM settlement_lines WHERE business_date = $1 ORDER BY source_region, destination_region, purpose",
            )
            .bind(date)
            .fetch_all(&mut **tx)
            .await?;
            $crate::store::sql::settlement_from(row, lines).map(Some)
        }

        /// One account read inside a transaction; `lock` is `$for_update` to keep it.
        async fn read_account(
            tx: &mut sqlx::Transaction<'_, $db>,
            holder: &gongji_shared::IdNumber,
            lock: &str,
        ) -> Result<$crate::domain::Account, $crate::store::StoreError> {
            let row: $crate::store::sql::AccountRow = sqlx::query_as(&format!(
                "SELECT holder, region, current_fen, prior_fen, open_time FROM accounts WHERE holder = $1{lock}"
            ))
            .bind(holder.as_str())
            .fetch_one(&mut **tx)
            .await?;
            row.try_into()
        }

        /// Writes a movement and its postings. Personal buckets move first, in a fixed order
        /// (holder, bucket) so concurrent movements over the same accounts lock them in the
        /// same order, each with a conditional update that refuses to go below zero. Returns
        /// the entry IDs in posting order.
        async fn write_movement(
            tx: &mut sqlx::Transaction<'_, $db>,
            movement: &$crate::domain::Movement,
        ) -> Result<Vec<i64>, $crate::store::StoreError> {
            if !movement.is_balanced() {
                return Err($crate::store::StoreError::Corrupt("unbalanced movement".into()));
            }
            sqlx::query(
                "INSERT INTO movements (movement_id, kind, request_id, create_time, business_date, purpose, destination) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&movement.movement_id)
            .bind(movement.kind.as_str())
            .bind(&movement.request_id)
            .bind(movement.create_time)
            .bind(movement.business_date)
            .bind(movement.purpose.map(|p| p.as_str()))
            .bind(movement.destination.as_ref().map(|d| d.as_str()))
            .execute(&mut **tx)
            .await?;
            let mut personal: Vec<(&gongji_shared::IdNumber, gongji_shared::policy::Bucket, i64)> = movement
                .postings
                .iter()
                .filter_map(|p| match &p.book {
                    $crate::domain::Book::Personal { holder, bucket, .. } => Some((holder, *bucket, p.amount_fen)),
                    $crate::domain::Book::Fund { .. } => None,
                })
                .collect();
            personal.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            for (holder, bucket, amount_fen) in personal {
                let column = $crate::store::sql::bucket_column(bucket);
                let updated = sqlx::query(&format!(
                    "UPDATE accounts SET {column} = {column} + $1 WHERE holder = $2 AND {column} + $1 >= 0"
                ))
                .bind(amount_fen)
                .bind(holder.as_str())
                .execute(&mut **tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err($crate::store::StoreError::InsufficientBalance);
                }
            }
            let mut ids = Vec::with_capacity(movement.postings.len());
            for posting in &movement.postings {
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

        gongji_shared::idempotency_sql!(
            $db,
            $crate::store::StoreError,
            $crate::store::StoreError::RequestIdTaken
        );
    };
}
