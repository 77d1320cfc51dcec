//! The usage record of family mutual aid: written by the premium and medical writes in their
//! own transactions (`record_use`), read by listings, newest first, with totals.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{db::decode, policy::Purpose, vault::Vault};

use super::StoreError;
use crate::domain::usage::{NewUse, RecordedUse, UseFilter, UseKind, UseTotal};

/// Family uses.
pub trait FamilyUses: super::Database<Conflict = super::Conflict> {
    /// Up to `limit` uses matching `filter`, newest first, below position `before` if given.
    fn uses(
        &self,
        filter: &UseFilter,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecordedUse>, StoreError>> + Send;

    /// The totals per beneficiary and purpose of every use matching `filter`.
    fn use_totals(
        &self,
        filter: &UseFilter,
    ) -> impl Future<Output = Result<Vec<UseTotal>, StoreError>> + Send;
}

/// The use's row: a family debit or its refund, which always moves money.
pub(super) fn use_part(
    vault: &Vault,
    u: &NewUse,
) -> Result<gongji_shared::db::batch::Part, StoreError> {
    if u.amount_fen <= 0 {
        return Err(StoreError::Corrupt("a family use moves no money".into()));
    }
    Ok(gongji_shared::db::batch::Part::new(
        "family_uses",
        "INSERT INTO family_uses (movement_id, kind, payment_id, purpose, authorizer, beneficiary, binding_id, \
         amount_fen, institution_code, business_date, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        vec![
            u.movement_id.as_str().into(),
            u.kind.as_str().into(),
            u.payment_id.as_str().into(),
            u.purpose.as_str().into(),
            vault.index(&u.authorizer).into(),
            vault.index(&u.beneficiary).into(),
            u.binding_id.as_str().into(),
            u.amount_fen.into(),
            u.institution_code.as_deref().into(),
            u.business_date.into(),
            u.create_time.into(),
        ],
    ))
}

/// The columns of a use, with both parties' sealed numbers from the payment it names.
pub(super) const USE_SELECT: &str = "u.use_id, u.movement_id, u.kind, u.payment_id, u.purpose, \
     COALESCE(p.payer_sealed, d.family_holder_sealed, w.authorizer_sealed) AS authorizer_sealed, \
     COALESCE(p.beneficiary_sealed, d.beneficiary_sealed, w.beneficiary_sealed) AS beneficiary_sealed, \
     u.binding_id, u.amount_fen, u.institution_code, u.business_date, u.create_time";

/// The joins `USE_SELECT` reads the sealed parties through.
pub(super) const USE_JOINS: &str = "FROM family_uses u \
     LEFT JOIN premium_payments p ON u.purpose = 'PREMIUM' AND p.payment_id = u.payment_id \
     LEFT JOIN medical_payments d ON u.purpose = 'MEDICAL_EXPENSE' AND d.payment_id = u.payment_id \
     LEFT JOIN wallet_transfers w ON u.purpose = 'FAMILY_WALLET' AND w.transfer_id = u.payment_id";

/// The conditions of `filter`, numbering its parameters from `$1`, in the order
/// [`filter_binds`] gives them.
pub(super) fn filter_sql(filter: &UseFilter) -> (String, usize) {
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if filter.parties.authorizer().is_some() {
        conditions.push(format!("u.authorizer = ${}", next()));
    }
    if filter.parties.beneficiary().is_some() {
        conditions.push(format!("u.beneficiary = ${}", next()));
    }
    conditions.push(format!("u.business_date >= ${}", next()));
    conditions.push(format!("u.business_date <= ${}", next()));
    if filter.purpose.is_some() {
        conditions.push(format!("u.purpose = ${}", next()));
    }
    (conditions.join(" AND "), n)
}

/// One bound value of a filter.
pub(super) enum Bind {
    Text(String),
    Date(NaiveDate),
}

/// `$query` with each of `$binds` (filter values, in order) bound.
macro_rules! bind_filter {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                $crate::store::usage::Bind::Text(t) => query.bind(t),
                $crate::store::usage::Bind::Date(d) => query.bind(d),
            };
        }
        query
    }};
}

/// The values of [`filter_sql`]'s parameters, in order.
pub(super) fn filter_binds(vault: &Vault, filter: &UseFilter) -> Vec<Bind> {
    let mut binds = Vec::new();
    if let Some(a) = filter.parties.authorizer() {
        binds.push(Bind::Text(vault.index(a)));
    }
    if let Some(b) = filter.parties.beneficiary() {
        binds.push(Bind::Text(vault.index(b)));
    }
    binds.push(Bind::Date(filter.range.start()));
    binds.push(Bind::Date(filter.range.end()));
    if let Some(p) = filter.purpose {
        binds.push(Bind::Text(p.as_str().to_owned()));
    }
    binds
}

#[derive(sqlx::FromRow)]
pub(super) struct UseRow {
    use_id: i64,
    movement_id: String,
    kind: String,
    payment_id: String,
    purpose: String,
    authorizer_sealed: Option<String>,
    beneficiary_sealed: Option<String>,
    binding_id: String,
    amount_fen: i64,
    institution_code: Option<String>,
    business_date: NaiveDate,
    create_time: DateTime<Utc>,
}

impl UseRow {
    /// The use, its parties opened.
    pub(super) fn open(self, vault: &Vault) -> Result<RecordedUse, StoreError> {
        let r = self;
        let sealed = |v: Option<String>, what: &str| {
            let v = v.ok_or_else(|| decode::corrupt(what))?;
            decode::sealed_id(vault, &v, what)
        };
        Ok(RecordedUse {
            use_id: r.use_id,
            new: NewUse {
                movement_id: r.movement_id,
                kind: UseKind::parse(&r.kind).ok_or_else(|| decode::corrupt("family_uses.kind"))?,
                payment_id: r.payment_id,
                purpose: Purpose::parse(&r.purpose)
                    .ok_or_else(|| decode::corrupt("family_uses.purpose"))?,
                authorizer: sealed(r.authorizer_sealed, "family_uses.authorizer")?,
                beneficiary: sealed(r.beneficiary_sealed, "family_uses.beneficiary")?,
                binding_id: r.binding_id,
                amount_fen: r.amount_fen,
                institution_code: r.institution_code,
                business_date: r.business_date,
                create_time: r.create_time,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TotalRow {
    beneficiary_sealed: Option<String>,
    purpose: String,
    debited_fen: i64,
    refunded_fen: i64,
    debit_count: i64,
}

impl TotalRow {
    pub(super) fn open(self, vault: &Vault) -> Result<UseTotal, StoreError> {
        let r = self;
        let sealed = r
            .beneficiary_sealed
            .ok_or_else(|| decode::corrupt("family_uses.beneficiary"))?;
        Ok(UseTotal {
            beneficiary: decode::sealed_id(vault, &sealed, "family_uses.beneficiary")?,
            purpose: Purpose::parse(&r.purpose)
                .ok_or_else(|| decode::corrupt("family_uses.purpose"))?,
            debited_fen: r.debited_fen,
            refunded_fen: r.refunded_fen,
            debit_count: r.debit_count,
        })
    }
}

/// Implements `FamilyUses` for `$store` over `$db`; defines `record_use` for the payment
/// writes.
macro_rules! usage_sql {
    ($store:ident, $db:ty) => {
        impl $crate::store::FamilyUses for $store {
            async fn uses(
                &self,
                filter: &$crate::domain::usage::UseFilter,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::usage::RecordedUse>, $crate::store::StoreError> {
                let (conditions, n) = $crate::store::usage::filter_sql(filter);
                let sql = format!(
                    "SELECT {} {} WHERE {conditions} AND u.use_id < ${} ORDER BY u.use_id DESC LIMIT ${}",
                    $crate::store::usage::USE_SELECT,
                    $crate::store::usage::USE_JOINS,
                    n + 1,
                    n + 2
                );
                let query = bind_filter!(sqlx::query_as::<_, $crate::store::usage::UseRow>(&sql), $crate::store::usage::filter_binds(&self.vault, filter));
                let rows = query
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                    .fetch_all(&self.reads)
                    .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }

            async fn use_totals(
                &self,
                filter: &$crate::domain::usage::UseFilter,
            ) -> Result<Vec<$crate::domain::usage::UseTotal>, $crate::store::StoreError> {
                let (conditions, n) = $crate::store::usage::filter_sql(filter);
                let sql = format!(
                    "SELECT MAX(COALESCE(p.beneficiary_sealed, d.beneficiary_sealed, w.beneficiary_sealed)) AS beneficiary_sealed, u.purpose, \
                     CAST(COALESCE(SUM(CASE WHEN u.kind = 'DEBIT' THEN u.amount_fen ELSE 0 END), 0) AS BIGINT) AS debited_fen, \
                     CAST(COALESCE(SUM(CASE WHEN u.kind = 'REFUND' THEN u.amount_fen ELSE 0 END), 0) AS BIGINT) AS refunded_fen, \
                     CAST(COALESCE(SUM(CASE WHEN u.kind = 'DEBIT' THEN 1 ELSE 0 END), 0) AS BIGINT) AS debit_count \
                     {} WHERE {conditions} GROUP BY u.beneficiary, u.purpose ORDER BY u.beneficiary, u.purpose LIMIT ${}",
                    $crate::store::usage::USE_JOINS,
                    n + 1
                );
                let query = bind_filter!(sqlx::query_as::<_, $crate::store::usage::TotalRow>(&sql), $crate::store::usage::filter_binds(&self.vault, filter));
                let rows = query
                    .bind($crate::store::MAX_ROWS)
                    .fetch_all(&self.reads)
                    .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }
        }

        /// Records a family debit or its refund, in the transaction of its movement (after
        /// the movement's row, which it refers to).
        async fn record_use(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            u: &$crate::domain::usage::NewUse,
        ) -> Result<(), $crate::store::StoreError> {
            let part = $crate::store::usage::use_part(vault, u)?;
            gongji_shared::db::batch::BindValues::bind_values(sqlx::query(part.sql()), part.values())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}
