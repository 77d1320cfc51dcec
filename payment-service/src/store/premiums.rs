//! Premium payments: the years paid for a beneficiary, paying and refunding.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    CoverageYear, IdNumber, command::Idempotency, policy::DateWindow, vault::Vault,
};

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{
    Account, Movement,
    fence::Posting,
    payment::{Channel, OtherMeans, PaymentState, PremiumPayment, decode_draws},
    premium::{PaidYear, PremiumTerms},
    split::Split,
};

/// Premium payments.
pub trait Premiums: Database<Conflict = super::Conflict> {
    /// What a premium is priced on, in one round trip: the payer's account, if open, and the
    /// beneficiary's paid (not refunded) premium years, ascending.
    fn premium_facts(
        &self,
        payer: &IdNumber,
        beneficiary: &IdNumber,
    ) -> impl Future<Output = Result<(Option<Account>, Vec<PaidYear>), StoreError>> + Send;

    /// Records a premium payment and its movement, atomically. `Conflict::AlreadyPaid`
    /// when the year is paid; `Conflict::InsufficientBalance` when a bucket fell short.
    /// With `posting`, the movement posts that hold (`Conflict::HoldGone` when it is no
    /// longer live).
    fn insert_premium(
        &self,
        payment: &PremiumPayment,
        movement: &Movement,
        posting: Option<&Posting>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One premium payment.
    fn premium_payment(
        &self,
        payment_id: &str,
    ) -> impl Future<Output = Result<Option<PremiumPayment>, StoreError>> + Send;

    /// One page of premium payments by payer (or beneficiary), newest first, before
    /// position `before`; each with its position.
    fn premium_payments(
        &self,
        person: &IdNumber,
        as_payer: bool,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, PremiumPayment)>, StoreError>> + Send;

    /// Marks a paid premium refunded, writes the refund movement of its account part (if
    /// any) and the other-means part owed back (if any), with the response, atomically.
    /// `plan` gets whether the year the premium was paid in has been closed for the payer,
    /// read under the payer's account lock (which year closing takes too), and returns the
    /// refund movement. `Conflict::AlreadyRefunded` when it was refunded before.
    fn refund_premium(
        &self,
        refunded: &PremiumPayment,
        plan: impl FnOnce(bool) -> Option<Movement> + Send,
        owed_back: Option<&OtherMeans>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(super) const PREMIUM_COLUMNS: &str = "payment_id, request_id, movement_id, payer, beneficiary, coverage_year, state, \
    premium_fen, account_fen, other_fen, draws, other_channel, other_reference, binding_id, binding_version, \
    payer_region, beneficiary_region, back_payment, in_window, window_start, window_end, waiting_months, \
    benefit_start, benefit_end, payment_date, pay_time, refund_time, refund_reason";
/// The columns a payment is read from: [`PREMIUM_COLUMNS`] with the parties sealed
/// (`payer` and `beneficiary` hold their keyed indexes, which lookups compare).
pub(super) const PREMIUM_SELECT: &str = "payment_id, request_id, movement_id, payer_sealed, beneficiary_sealed, coverage_year, state, \
    premium_fen, account_fen, other_fen, draws, other_channel, other_reference, binding_id, binding_version, \
    payer_region, beneficiary_region, back_payment, in_window, window_start, window_end, waiting_months, \
    benefit_start, benefit_end, payment_date, pay_time, refund_time, refund_reason";

#[derive(sqlx::FromRow)]
pub(super) struct PositionedPremiumRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub payment: PremiumRow,
}

#[derive(sqlx::FromRow)]
pub(super) struct PremiumFactsRow {
    holder_sealed: Option<String>,
    region: Option<String>,
    current_fen: Option<i64>,
    prior_fen: Option<i64>,
    open_time: Option<DateTime<Utc>>,
    coverage_year: Option<i32>,
    back_payment: Option<bool>,
}

/// The account and paid years of the rows of `premium_facts`.
pub(super) fn premium_facts_of(
    rows: Vec<PremiumFactsRow>,
    vault: &Vault,
) -> Result<(Option<Account>, Vec<PaidYear>), StoreError> {
    let mut account = None;
    let mut paid = Vec::with_capacity(rows.len());
    for r in rows {
        if account.is_none()
            && let (
                Some(holder_sealed),
                Some(region),
                Some(current_fen),
                Some(prior_fen),
                Some(open_time),
            ) = (
                r.holder_sealed,
                r.region,
                r.current_fen,
                r.prior_fen,
                r.open_time,
            )
        {
            account = Some(
                super::accounts::AccountRow {
                    holder_sealed,
                    region,
                    current_fen,
                    prior_fen,
                    open_time,
                }
                .open(vault)?,
            );
        }
        if let (Some(year), Some(back_payment)) = (r.coverage_year, r.back_payment) {
            paid.push(PaidYear {
                year: CoverageYear::parse(year)
                    .map_err(|_| corrupt("premium_payments.coverage_year"))?,
                back_payment,
            });
        }
    }
    paid.sort_by_key(|p| p.year);
    Ok((account, paid))
}

#[derive(sqlx::FromRow)]
pub(super) struct PremiumRow {
    payment_id: String,
    request_id: String,
    movement_id: Option<String>,
    payer_sealed: String,
    beneficiary_sealed: String,
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

impl PremiumRow {
    /// The payment, its parties opened.
    pub(super) fn open(self, vault: &Vault) -> Result<PremiumPayment, StoreError> {
        let r = self;
        let other_part = decode::money(r.other_fen, "premium_payments.other_fen")?;
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
            payer: decode::sealed_id(vault, &r.payer_sealed, "premium_payments.payer_sealed")?,
            beneficiary: decode::sealed_id(
                vault,
                &r.beneficiary_sealed,
                "premium_payments.beneficiary_sealed",
            )?,
            year: CoverageYear::parse(r.coverage_year)
                .map_err(|_| corrupt("premium_payments.coverage_year"))?,
            state: match r.state.as_str() {
                "PAID" => PaymentState::Paid,
                "REFUNDED" => PaymentState::Refunded,
                _ => return Err(corrupt("premium_payments.state")),
            },
            terms: PremiumTerms {
                premium: decode::money(r.premium_fen, "premium_payments.premium_fen")?,
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
                account_part: decode::money(r.account_fen, "premium_payments.account_fen")?,
                other_part,
            },
            other_means,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            payer_region: decode::region(&r.payer_region, "premium_payments.payer_region")?,
            beneficiary_region: decode::region(
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

/// The family use of a premium paid from the payer's account: what left it, on the day its
/// movement got.
pub(super) fn premium_use(
    p: &crate::domain::payment::PremiumPayment,
    movement: &crate::domain::Movement,
    business_date: chrono::NaiveDate,
) -> crate::domain::usage::NewUse {
    crate::domain::usage::NewUse {
        movement_id: movement.movement_id.clone(),
        kind: crate::domain::usage::UseKind::Debit,
        payment_id: p.payment_id.clone(),
        purpose: gongji_shared::policy::Purpose::Premium,
        authorizer: p.payer.clone(),
        beneficiary: p.beneficiary.clone(),
        binding_id: p.binding_id.clone(),
        amount_fen: p.split.account_part.fen(),
        institution_code: None,
        business_date,
        create_time: movement.create_time,
    }
}

/// The family use of a premium's refund: what came back to the payer's account, if anything.
pub(super) fn premium_refund_use(
    p: &crate::domain::payment::PremiumPayment,
    movement: &crate::domain::Movement,
    business_date: chrono::NaiveDate,
) -> Option<crate::domain::usage::NewUse> {
    let back_fen = movement.credited_to(&p.payer);
    (back_fen > 0).then(|| crate::domain::usage::NewUse {
        movement_id: movement.movement_id.clone(),
        kind: crate::domain::usage::UseKind::Refund,
        amount_fen: back_fen,
        business_date,
        create_time: movement.create_time,
        ..premium_use(p, movement, business_date)
    })
}

/// The payment's row, at position `next_seq` (an SQL expression); a paid year paid again
/// fails it as a unique violation of `premium_payments`.
pub(super) fn premium_part(
    vault: &gongji_shared::vault::Vault,
    p: &crate::domain::payment::PremiumPayment,
    by: &gongji_shared::command::Idempotency,
    next_seq: &str,
) -> gongji_shared::db::batch::Part {
    let cover = p.terms.cover;
    gongji_shared::db::batch::Part::new(
        "premium_payments",
        format!(
            "INSERT INTO premium_payments ({PREMIUM_COLUMNS}, caller, acting_person, seq, payer_sealed, beneficiary_sealed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
             $23, $24, $25, $26, $27, $28, $29, $30, {next_seq}, $31, $32)"
        ),
        vec![
            p.payment_id.as_str().into(),
            p.request_id.as_str().into(),
            (!p.split.account_part.is_zero())
                .then_some(p.movement_id.as_str())
                .into(),
            vault.index(&p.payer).into(),
            vault.index(&p.beneficiary).into(),
            p.year.get().into(),
            p.state.as_str().into(),
            p.terms.premium.fen().into(),
            p.split.account_part.fen().into(),
            p.split.other_part.fen().into(),
            crate::domain::payment::encode_draws(&p.split.draws).into(),
            p.other_means.as_ref().map(|o| o.channel.as_str()).into(),
            p.other_means.as_ref().map(|o| o.reference.as_str()).into(),
            p.binding_id.as_str().into(),
            p.binding_version.into(),
            p.payer_region.as_str().into(),
            p.beneficiary_region.as_str().into(),
            p.back_payment.into(),
            p.terms.in_window.into(),
            p.terms.window.start.into(),
            p.terms.window.end.into(),
            i32::try_from(p.terms.waiting_months)
                .unwrap_or(i32::MAX)
                .into(),
            cover.map(|c| c.0).into(),
            cover.map(|c| c.1).into(),
            p.payment_date.into(),
            p.pay_time.into(),
            p.refund_time.into(),
            p.refund_reason.as_deref().into(),
            by.scope.as_str().into(),
            by.acting_person.as_deref().map(|a| vault.seal(a)).into(),
            vault.seal_id(&p.payer).into(),
            vault.seal_id(&p.beneficiary).into(),
        ],
    )
}

/// Implements `Premiums` for `$store`; `$next_seq` gives a new payment its position and
/// `$for_update` locks a row read inside a transaction.
/// Uses `write_payment`, `save_response` and `write_movement` of the other aggregates.
macro_rules! premiums_sql {
    ($store:ident, $next_seq:expr, $for_update:expr) => {
        impl $crate::store::Premiums for $store {
            async fn premium_facts(
                &self,
                payer: &gongji_shared::IdNumber,
                beneficiary: &gongji_shared::IdNumber,
            ) -> Result<(Option<$crate::domain::Account>, Vec<$crate::domain::premium::PaidYear>), $crate::store::StoreError> {
                // One row per paid year (or one row of none), each beside the account's columns.
                let mut connection = self.warm_reads.acquire().await?;
                let rows: Vec<$crate::store::premiums::PremiumFactsRow> = sqlx::query_as(
                    "SELECT a.holder_sealed, a.region, a.current_fen, a.prior_fen, a.open_time, p.coverage_year, p.back_payment \
                     FROM (SELECT 1 AS one) k \
                     LEFT JOIN accounts a ON a.holder = $1 \
                     LEFT JOIN (SELECT coverage_year, back_payment FROM premium_payments \
                      WHERE beneficiary = $2 AND state = 'PAID' ORDER BY coverage_year LIMIT $3) p ON 1 = 1",
                )
                .bind(self.vault.index(payer))
                .bind(self.vault.index(beneficiary))
                .bind($crate::store::MAX_ROWS)
                .fetch_all(&mut *connection)
                .await?;
                self.warm_reads.keep(connection);
                $crate::store::premiums::premium_facts_of(rows, &self.vault)
            }

            async fn insert_premium(
                &self,
                p: &$crate::domain::payment::PremiumPayment,
                movement: &$crate::domain::Movement,
                posting: Option<&$crate::domain::fence::Posting>,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let movement = (!p.split.account_part.is_zero()).then_some(movement);
                let row = |day: Option<chrono::NaiveDate>| {
                    let mut rows = vec![$crate::store::premiums::premium_part(&self.vault, p, idempotency, $next_seq)];
                    if let (Some(movement), Some(day)) = (movement, day) {
                        let family = $crate::store::premiums::premium_use(p, movement, day);
                        rows.push($crate::store::usage::use_part(&self.vault, &family)?);
                    }
                    Ok(rows)
                };
                write_payment(
                    &self.warm,
                    &self.vault,
                    movement,
                    posting,
                    idempotency,
                    (response, p.pay_time),
                    row,
                    |table| (table == "premium_payments").then_some($crate::store::Conflict::AlreadyPaid),
                )
                .await
            }

            async fn premium_payment(
                &self,
                payment_id: &str,
            ) -> Result<Option<$crate::domain::payment::PremiumPayment>, $crate::store::StoreError> {
                let row: Option<$crate::store::premiums::PremiumRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM premium_payments WHERE payment_id = $1",
                    $crate::store::premiums::PREMIUM_SELECT
                ))
                .bind(payment_id)
                .fetch_optional(&self.reads)
                .await?;
                row.map(|r| r.open(&self.vault)).transpose()
            }

            async fn premium_payments(
                &self,
                person: &gongji_shared::IdNumber,
                as_payer: bool,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<(i64, $crate::domain::payment::PremiumPayment)>, $crate::store::StoreError> {
                let column = if as_payer { "payer" } else { "beneficiary" };
                let rows: Vec<$crate::store::premiums::PositionedPremiumRow> = sqlx::query_as(&format!(
                    "SELECT seq, {} FROM premium_payments WHERE {column} = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                    $crate::store::premiums::PREMIUM_SELECT
                ))
                .bind(self.vault.index(person))
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| Ok((r.seq, r.payment.open(&self.vault)?))).collect()
            }

            async fn refund_premium(
                &self,
                refunded: &$crate::domain::payment::PremiumPayment,
                plan: impl FnOnce(bool) -> Option<$crate::domain::Movement> + Send,
                owed_back: Option<&$crate::domain::payment::OtherMeans>,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let at = refunded.refund_time.unwrap_or(refunded.pay_time);
                let mut tx = self.pool.begin().await?;
                // The day's lock before any row's, in the order every writer takes them.
                open_day(&mut tx, gongji_shared::domain::clock::shanghai_date(at)).await?;
                save_response(&mut tx, &self.vault, idempotency, response, at).await?;
                read_account(&mut tx, &self.vault, &refunded.payer, $for_update).await?;
                let closed: Option<(i32,)> =
                    sqlx::query_as("SELECT year FROM year_closings WHERE holder = $1 AND year = $2")
                        .bind(self.vault.index(&refunded.payer))
                        .bind(chrono::Datelike::year(&refunded.payment_date))
                        .fetch_optional(&mut *tx)
                        .await?;
                let movement = plan(closed.is_some());
                if let Some(movement) = &movement {
                    let (_, day) = write_movement(&mut tx, &self.vault, movement, idempotency).await?;
                    if let Some(refund) = $crate::store::premiums::premium_refund_use(refunded, movement, day) {
                        record_use(&mut tx, &self.vault, &refund).await?;
                    }
                }
                let updated = sqlx::query(
                    "UPDATE premium_payments SET state = 'REFUNDED', refund_time = $1, refund_reason = $2, refund_movement_id = $3, \
                     refund_caller = $4, refund_acting_person = $5 WHERE payment_id = $6 AND state = 'PAID'",
                )
                .bind(at)
                .bind(refunded.refund_reason.as_deref())
                .bind(movement.as_ref().map(|m| m.movement_id.as_str()))
                .bind(&idempotency.scope)
                .bind(idempotency.acting_person.as_deref().map(|a| self.vault.seal(a)))
                .bind(&refunded.payment_id)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err($crate::store::StoreError::Conflict($crate::store::Conflict::AlreadyRefunded));
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
        }
    };
}
