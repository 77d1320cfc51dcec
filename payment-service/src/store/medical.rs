//! Medical-expense payments.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Idempotency;

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{
    Account, Movement,
    fence::Posting,
    medical::{InstitutionKind, MedicalFilter, MedicalPayment},
    medical_refund::{MedicalRefund, RefundRefusal},
    payment::decode_draws,
};

/// What a refund is decided on, read under the locks of its transaction.
#[derive(Debug, Clone)]
pub struct RefundFacts {
    /// What the payment's refunds returned before.
    pub refunded: gongji_shared::Money,
    /// The accounts the payment drew on, each with whether its holder's year of the payment
    /// has been closed since.
    pub own: Option<(Account, bool)>,
    pub family: Option<(Account, bool)>,
    /// The business day the refund's movement belongs to (the first one not settled).
    pub business_date: NaiveDate,
}

/// A refund decided: the refund, its movement if any account gets money back, and the answer
/// kept for retries.
#[derive(Debug, Clone)]
pub struct PlannedRefund {
    pub refund: MedicalRefund,
    pub movement: Option<Movement>,
    pub response: Vec<u8>,
}

/// Medical-expense payments.
pub trait MedicalPayments: Database<Conflict = super::Conflict> {
    /// Records a medical-expense payment and its movement (if any account paid), atomically.
    /// `Conflict::InsufficientBalance` when a bucket fell short.
    /// With `posting`, the movement posts that hold (`Conflict::HoldGone` when it is no
    /// longer live).
    fn insert_medical(
        &self,
        payment: &MedicalPayment,
        movement: Option<&Movement>,
        posting: Option<&Posting>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Refunds a medical-expense payment, whole or in part, in one transaction: the payment
    /// and the accounts it drew on are locked (the accounts in the order every writer locks
    /// them), then `plan` decides the refund on what it is given; a refusal changes nothing.
    /// Writes the refund, its movement, the family use of what came back to the family
    /// account and the payment's refunded total.
    fn refund_medical<P>(
        &self,
        payment: &MedicalPayment,
        at: DateTime<Utc>,
        plan: P,
        idempotency: &Idempotency,
    ) -> impl Future<Output = Result<Result<MedicalRefund, RefundRefusal>, StoreError>> + Send
    where
        P: FnOnce(RefundFacts) -> Result<PlannedRefund, RefundRefusal> + Send;

    /// One medical-expense payment.
    fn medical_payment(
        &self,
        payment_id: &str,
    ) -> impl Future<Output = Result<Option<MedicalPayment>, StoreError>> + Send;

    /// Up to `limit` payments matching `filter`, newest first, below position `before` if
    /// given; each with its position.
    fn medical_payments(
        &self,
        filter: &MedicalFilter,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, MedicalPayment)>, StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct PositionedMedicalRow {
    pub(super) position: i64,
    #[sqlx(flatten)]
    pub(super) payment: MedicalRow,
}

/// The conditions of `filter` over `medical_payments`, numbering parameters from `$1`, and
/// their values in order.
pub(super) fn medical_filter(
    vault: &gongji_shared::vault::Vault,
    filter: &MedicalFilter,
) -> (String, Vec<super::usage::Bind>) {
    use super::usage::Bind;
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut push = |column: &str, bind: Bind| {
        binds.push(bind);
        conditions.push(format!("{column} ${}", binds.len()));
    };
    if let Some(b) = &filter.beneficiary {
        push("beneficiary =", Bind::Text(vault.index(b)));
    }
    if let Some(h) = &filter.family_holder {
        push("family_holder =", Bind::Text(vault.index(h)));
    }
    if let Some(code) = &filter.institution_code {
        push("institution_code =", Bind::Text(code.clone()));
    }
    push("business_date >=", Bind::Date(filter.range.start()));
    push("business_date <=", Bind::Date(filter.range.end()));
    (conditions.join(" AND "), binds)
}

pub(super) const MEDICAL_COLUMNS: &str = "payment_id, request_id, movement_id, beneficiary, family_holder, \
    institution_code, institution_kind, amount_fen, own_draws, family_draws, other_fen, binding_id, binding_version, \
    destination, pay_time, business_date";
/// The columns a payment is read from: [`MEDICAL_COLUMNS`] with the parties sealed
/// (`beneficiary` and `family_holder` hold their keyed indexes).
pub(super) const MEDICAL_SELECT: &str = "payment_id, request_id, movement_id, beneficiary_sealed, family_holder_sealed, \
    institution_code, institution_kind, amount_fen, own_draws, family_draws, other_fen, refunded_fen, binding_id, \
    binding_version, destination, pay_time, business_date";

#[derive(sqlx::FromRow)]
pub(super) struct MedicalRow {
    payment_id: String,
    request_id: String,
    movement_id: Option<String>,
    beneficiary_sealed: String,
    family_holder_sealed: Option<String>,
    institution_code: String,
    institution_kind: String,
    amount_fen: i64,
    own_draws: String,
    family_draws: String,
    other_fen: i64,
    refunded_fen: i64,
    binding_id: String,
    binding_version: i64,
    destination: Option<String>,
    pay_time: DateTime<Utc>,
    business_date: NaiveDate,
}

impl MedicalRow {
    /// The payment, its parties opened.
    pub(super) fn open(
        self,
        vault: &gongji_shared::vault::Vault,
    ) -> Result<MedicalPayment, StoreError> {
        let r = self;
        Ok(MedicalPayment {
            payment_id: r.payment_id,
            request_id: r.request_id,
            movement_id: r.movement_id,
            beneficiary: decode::sealed_id(
                vault,
                &r.beneficiary_sealed,
                "medical_payments.beneficiary_sealed",
            )?,
            family_holder: r
                .family_holder_sealed
                .as_deref()
                .map(|h| decode::sealed_id(vault, h, "medical_payments.family_holder_sealed"))
                .transpose()?,
            institution_code: r.institution_code,
            institution_kind: InstitutionKind::parse(&r.institution_kind)
                .ok_or_else(|| corrupt("medical_payments.institution_kind"))?,
            amount: decode::money(r.amount_fen, "medical_payments.amount_fen")?,
            own_draws: decode_draws(&r.own_draws)
                .ok_or_else(|| corrupt("medical_payments.own_draws"))?,
            family_draws: decode_draws(&r.family_draws)
                .ok_or_else(|| corrupt("medical_payments.family_draws"))?,
            other_part: decode::money(r.other_fen, "medical_payments.other_fen")?,
            refunded: decode::money(r.refunded_fen, "medical_payments.refunded_fen")?,
            binding_id: r.binding_id,
            binding_version: r.binding_version,
            destination: r
                .destination
                .as_deref()
                .map(|d| decode::region(d, "medical_payments.destination"))
                .transpose()?,
            pay_time: r.pay_time,
            business_date: r.business_date,
        })
    }
}

/// The family use of a medical expense: what the family account paid, if anything.
pub(super) fn medical_use(
    p: &crate::domain::medical::MedicalPayment,
    movement: &crate::domain::Movement,
    business_date: chrono::NaiveDate,
) -> Option<crate::domain::usage::NewUse> {
    let holder = p.family_holder.as_ref()?;
    let family_fen: i64 = p.family_draws.iter().map(|d| d.amount.fen()).sum();
    (family_fen > 0).then(|| crate::domain::usage::NewUse {
        movement_id: movement.movement_id.clone(),
        kind: crate::domain::usage::UseKind::Debit,
        payment_id: p.payment_id.clone(),
        purpose: gongji_shared::policy::Purpose::MedicalExpense,
        authorizer: holder.clone(),
        beneficiary: p.beneficiary.clone(),
        binding_id: p.binding_id.clone(),
        amount_fen: family_fen,
        institution_code: Some(p.institution_code.clone()),
        business_date,
        create_time: movement.create_time,
    })
}

/// The family use of a refund: what came back to the family account, if anything.
pub(super) fn medical_refund_use(
    p: &MedicalPayment,
    movement: &Movement,
    business_date: NaiveDate,
) -> Option<crate::domain::usage::NewUse> {
    let back_fen = movement.credited_to(p.family_holder.as_ref()?);
    let debit = medical_use(p, movement, business_date)?;
    (back_fen > 0).then_some(crate::domain::usage::NewUse {
        kind: crate::domain::usage::UseKind::Refund,
        amount_fen: back_fen,
        ..debit
    })
}

/// The payment's row.
pub(super) fn medical_part(
    vault: &gongji_shared::vault::Vault,
    p: &crate::domain::medical::MedicalPayment,
    movement: Option<&crate::domain::Movement>,
    by: &gongji_shared::command::Idempotency,
) -> gongji_shared::db::batch::Part {
    gongji_shared::db::batch::Part::new(
        "medical_payments",
        format!(
            "INSERT INTO medical_payments ({MEDICAL_COLUMNS}, caller, acting_person, beneficiary_sealed, family_holder_sealed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ),
        vec![
            p.payment_id.as_str().into(),
            p.request_id.as_str().into(),
            movement.map(|m| m.movement_id.as_str()).into(),
            vault.index(&p.beneficiary).into(),
            p.family_holder.as_ref().map(|h| vault.index(h)).into(),
            p.institution_code.as_str().into(),
            p.institution_kind.as_str().into(),
            p.amount.fen().into(),
            crate::domain::payment::encode_draws(&p.own_draws).into(),
            crate::domain::payment::encode_draws(&p.family_draws).into(),
            p.other_part.fen().into(),
            p.binding_id.as_str().into(),
            p.binding_version.into(),
            p.destination.as_ref().map(|d| d.as_str()).into(),
            p.pay_time.into(),
            p.business_date.into(),
            by.scope.as_str().into(),
            by.acting_person.as_deref().map(|a| vault.seal(a)).into(),
            vault.seal_id(&p.beneficiary).into(),
            p.family_holder.as_ref().map(|h| vault.seal_id(h)).into(),
        ],
    )
}

/// Implements `MedicalPayments` for `$store`. Uses `write_payment`, `save_response` and
/// `record_movement` of the other aggregates.
macro_rules! medical_sql {
    ($store:ident, $written_order:expr, $for_update:expr) => {
        impl $crate::store::MedicalPayments for $store {
            async fn insert_medical(
                &self,
                p: &$crate::domain::medical::MedicalPayment,
                movement: Option<&$crate::domain::Movement>,
                posting: Option<&$crate::domain::fence::Posting>,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let row = |day: Option<chrono::NaiveDate>| {
                    let mut rows = vec![$crate::store::medical::medical_part(&self.vault, p, movement, idempotency)];
                    if let (Some(movement), Some(day)) = (movement, day) {
                        if let Some(family) = $crate::store::medical::medical_use(p, movement, day) {
                            rows.push($crate::store::usage::use_part(&self.vault, &family)?);
                        }
                    }
                    Ok(rows)
                };
                write_payment(&self.warm, &self.vault, movement, posting, idempotency, (response, p.pay_time), row, |_| None)
                    .await
            }

            async fn refund_medical<P>(
                &self,
                p: &$crate::domain::medical::MedicalPayment,
                at: chrono::DateTime<chrono::Utc>,
                plan: P,
                idempotency: &gongji_shared::command::Idempotency,
            ) -> Result<Result<$crate::domain::medical_refund::MedicalRefund, $crate::domain::medical_refund::RefundRefusal>, $crate::store::StoreError>
            where
                P: FnOnce($crate::store::medical::RefundFacts) -> Result<$crate::store::medical::PlannedRefund, $crate::domain::medical_refund::RefundRefusal> + Send,
            {
                let mut tx = self.pool.begin().await?;
                // The day's lock first, then the payment's row, then the accounts', in the order
                // every writer takes them.
                let business_date = open_day(&mut tx, gongji_shared::domain::clock::shanghai_date(at)).await?;
                let (refunded_fen,): (i64,) = sqlx::query_as(&format!(
                    "SELECT refunded_fen FROM medical_payments WHERE payment_id = $1{}",
                    $for_update
                ))
                .bind(&p.payment_id)
                .fetch_one(&mut *tx)
                .await?;
                let mut drawn: Vec<(String, &gongji_shared::IdNumber, bool)> = Vec::new();
                if !p.own_draws.is_empty() {
                    drawn.push((self.vault.index(&p.beneficiary), &p.beneficiary, false));
                }
                if let Some(holder) = p.family_holder.as_ref().filter(|_| !p.family_draws.is_empty()) {
                    drawn.push((self.vault.index(holder), holder, true));
                }
                drawn.sort_by(|a, b| a.0.cmp(&b.0));
                let (mut own, mut family) = (None, None);
                for (index, holder, is_family) in drawn {
                    let account = read_account(&mut tx, &self.vault, holder, $for_update).await?;
                    let closed: Option<(i32,)> =
                        sqlx::query_as("SELECT year FROM year_closings WHERE holder = $1 AND year = $2")
                            .bind(&index)
                            .bind(chrono::Datelike::year(&p.business_date))
                            .fetch_optional(&mut *tx)
                            .await?;
                    let slot = if is_family { &mut family } else { &mut own };
                    *slot = Some((account, closed.is_some()));
                }
                let facts = $crate::store::medical::RefundFacts {
                    refunded: gongji_shared::db::decode::money(refunded_fen, "medical_payments.refunded_fen")?,
                    own,
                    family,
                    business_date,
                };
                let planned = match plan(facts) {
                    Ok(planned) => planned,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let r = &planned.refund;
                save_response(&mut tx, &self.vault, idempotency, &planned.response, at).await?;
                if let Some(movement) = &planned.movement {
                    let (_, day) = record_movement(&mut tx, &self.vault, movement, idempotency).await?;
                    if let Some(back) = $crate::store::medical::medical_refund_use(p, movement, day) {
                        record_use(&mut tx, &self.vault, &back).await?;
                    }
                }
                sqlx::query(
                    "INSERT INTO medical_refunds (refund_id, payment_id, request_id, movement_id, amount_fen, own_draws, \
                     family_draws, other_fen, refunded_total_fen, reason, refund_time, business_date, caller, acting_person) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&r.refund_id)
                .bind(&r.payment_id)
                .bind(&r.request_id)
                .bind(planned.movement.as_ref().map(|m| m.movement_id.as_str()))
                .bind(r.amount.fen())
                .bind($crate::domain::payment::encode_draws(&r.parts.own))
                .bind($crate::domain::payment::encode_draws(&r.parts.family))
                .bind(r.parts.other_means.fen())
                .bind(r.refunded_total.fen())
                .bind(&r.reason)
                .bind(r.refund_time)
                .bind(r.business_date)
                .bind(&idempotency.scope)
                .bind(idempotency.acting_person.as_deref().map(|a| self.vault.seal(a)))
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE medical_payments SET refunded_fen = $1 WHERE payment_id = $2")
                    .bind(r.refunded_total.fen())
                    .bind(&p.payment_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(movement) = &planned.movement {
                    apply_movement(&mut tx, &self.vault, movement).await?;
                }
                tx.commit().await?;
                Ok(Ok(planned.refund))
            }

            async fn medical_payments(
                &self,
                filter: &$crate::domain::medical::MedicalFilter,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<(i64, $crate::domain::medical::MedicalPayment)>, $crate::store::StoreError> {
                let (conditions, binds) = $crate::store::medical::medical_filter(&self.vault, filter);
                let sql = format!(
                    "SELECT {order} AS position, {} FROM medical_payments WHERE {conditions} AND {order} < ${} \
                     ORDER BY {order} DESC LIMIT ${}",
                    $crate::store::medical::MEDICAL_SELECT,
                    binds.len() + 1,
                    binds.len() + 2,
                    order = $written_order,
                );
                let query = bind_filter!(sqlx::query_as::<_, $crate::store::medical::PositionedMedicalRow>(&sql), binds);
                let rows = query
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                    .fetch_all(&self.reads)
                    .await?;
                rows.into_iter()
                    .map(|r| Ok((r.position, r.payment.open(&self.vault)?)))
                    .collect()
            }

            async fn medical_payment(
                &self,
                payment_id: &str,
            ) -> Result<Option<$crate::domain::medical::MedicalPayment>, $crate::store::StoreError> {
                let row: Option<$crate::store::medical::MedicalRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM medical_payments WHERE payment_id = $1",
                    $crate::store::medical::MEDICAL_SELECT
                ))
                .bind(payment_id)
                .fetch_optional(&self.reads)
                .await?;
                row.map(|r| r.open(&self.vault)).transpose()
            }
        }
    };
}
