//! Yearly statements: an account's entries summed by bucket, kind, family use and year
//! closing, before and within a year. VerifyLedger reads the same sums (`statement_sql`).

use std::future::Future;

use chrono::NaiveDate;
use gongji_shared::{IdNumber, db::decode, policy::Bucket, policy::Purpose, vault::Vault};

use super::StoreError;
use crate::domain::{MovementKind, statement::StatementRow, usage::UseKind};

/// A day after every entry's (both databases keep it): a statement to the last entry.
pub(super) const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// Statements.
pub trait Statements: super::Database<Conflict = super::Conflict> {
    /// The sums of `holder`'s entries up to `end`, those before `start` apart.
    fn statement_rows(
        &self,
        holder: &IdNumber,
        start: NaiveDate,
        end: NaiveDate,
    ) -> impl Future<Output = Result<Vec<StatementRow>, StoreError>> + Send;
}

/// The sums of the entries of the accounts `condition` selects (over `a`, the account, and
/// `e`, the entry; its parameters from `$3`), up to the business day `$2`, those before `$1`
/// apart: by account, bucket, movement kind, family use and year closing. Each row with the
/// account's sealed holder.
pub(super) fn statement_sql(condition: &str) -> String {
    let in_year = "CAST(CASE WHEN m.business_date < $1 THEN 0 ELSE 1 END AS BIGINT)";
    format!(
        "SELECT MAX(a.holder_sealed) AS holder_sealed, e.bucket, m.kind, {in_year} AS in_year, \
         u.kind AS use_kind, u.purpose AS use_purpose, \
         MAX(COALESCE(p.beneficiary_sealed, d.beneficiary_sealed, w.beneficiary_sealed)) AS beneficiary_sealed, \
         y.year AS closed_year, CAST(SUM(e.amount_fen) AS BIGINT) AS amount_fen \
         FROM entries e JOIN movements m ON m.movement_id = e.movement_id \
         JOIN accounts a ON a.holder = e.holder \
         LEFT JOIN family_uses u ON u.movement_id = e.movement_id AND u.authorizer = e.holder \
         LEFT JOIN premium_payments p ON u.purpose = 'PREMIUM' AND p.payment_id = u.payment_id \
         LEFT JOIN medical_payments d ON u.purpose = 'MEDICAL_EXPENSE' AND d.payment_id = u.payment_id \
         LEFT JOIN wallet_transfers w ON u.purpose = 'FAMILY_WALLET' AND w.transfer_id = u.payment_id \
         LEFT JOIN year_closings y ON y.movement_id = e.movement_id \
         WHERE m.business_date <= $2 AND {condition} \
         GROUP BY e.holder, e.bucket, m.kind, {in_year}, u.kind, u.purpose, u.beneficiary, y.year \
         ORDER BY e.holder"
    )
}

#[derive(sqlx::FromRow)]
pub(super) struct StatementSqlRow {
    pub(super) holder_sealed: String,
    bucket: String,
    kind: String,
    in_year: i64,
    use_kind: Option<String>,
    use_purpose: Option<String>,
    beneficiary_sealed: Option<String>,
    closed_year: Option<i32>,
    amount_fen: i64,
}

impl StatementSqlRow {
    pub(super) fn open(self, vault: &Vault) -> Result<StatementRow, StoreError> {
        let r = self;
        let family = match (r.use_kind, r.use_purpose, r.beneficiary_sealed) {
            (Some(kind), Some(purpose), Some(sealed)) => Some((
                UseKind::parse(&kind).ok_or_else(|| decode::corrupt("family_uses.kind"))?,
                Purpose::parse(&purpose).ok_or_else(|| decode::corrupt("family_uses.purpose"))?,
                decode::sealed_id(vault, &sealed, "payments.beneficiary_sealed")?,
            )),
            _ => None,
        };
        Ok(StatementRow {
            bucket: Bucket::parse(&r.bucket).ok_or_else(|| decode::corrupt("entries.bucket"))?,
            kind: MovementKind::parse(&r.kind).ok_or_else(|| decode::corrupt("movements.kind"))?,
            in_year: r.in_year == 1,
            family,
            closed_year: r.closed_year,
            amount_fen: r.amount_fen,
        })
    }
}

/// Implements `Statements` for `$store`.
macro_rules! statement_sql {
    ($store:ident) => {
        impl $crate::store::Statements for $store {
            async fn statement_rows(
                &self,
                holder: &gongji_shared::IdNumber,
                start: chrono::NaiveDate,
                end: chrono::NaiveDate,
            ) -> Result<Vec<$crate::domain::statement::StatementRow>, $crate::store::StoreError>
            {
                let rows: Vec<$crate::store::statement::StatementSqlRow> =
                    sqlx::query_as(&$crate::store::statement::statement_sql("e.holder = $3"))
                        .bind(start)
                        .bind(end)
                        .bind(self.vault.index(holder))
                        .fetch_all(&self.reads)
                        .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }
        }
    };
}
