//! Settlement between regions and verification of the ledger (S1, S2).

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{
    MovementKind, SettlementPurpose,
    settlement::{LedgerFacts, Line, SettledEntry, Settlement},
};

/// Settlements and ledger verification.
pub trait Settlements: Database<Conflict = super::Conflict> {
    /// Settles `date` once: `compute` turns the account-side entries of the day's unsettled
    /// payment and refund movements into the settlement, which is stored with its lines and
    /// the movements it covers; `make(settlement, settled_at)` builds the outcome. A day
    /// settled before gives its stored settlement.
    fn settle<T: Send>(
        &self,
        date: NaiveDate,
        at: DateTime<Utc>,
        compute: impl FnOnce(&[SettledEntry]) -> Settlement + Send,
        command: &Command<T>,
        make: impl FnOnce(Settlement, DateTime<Utc>) -> T + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// The stored settlement of a day, with when it was made.
    fn settlement(
        &self,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Option<(Settlement, DateTime<Utc>)>, StoreError>> + Send;

    /// Everything VerifyLedger checks, measured in one snapshot, and the settled entries of
    /// the first `days` settled days after `after` (every day when called page by page),
    /// for recomputing their digests.
    #[allow(clippy::type_complexity)]
    fn ledger_facts(
        &self,
        after: Option<NaiveDate>,
        days: u32,
    ) -> impl Future<
        Output = Result<(LedgerFacts, Vec<(Settlement, Vec<SettledEntry>)>), StoreError>,
    > + Send;
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
            source: decode::region(&r.region, "entries.region")?,
            destination: decode::region(&r.destination, "movements.destination")?,
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
            source: decode::region(&r.source_region, "settlement_lines.source_region")?,
            destination: decode::region(
                &r.destination_region,
                "settlement_lines.destination_region",
            )?,
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

/// Implements `Settlements` for `$store` over `$db`; `$day_lock` takes a business day's
/// lock alone (its writers take it shared), `$snapshot` makes a transaction one snapshot.
/// Uses `save_response` of the idempotency aggregate.
macro_rules! settlement_sql {
    ($store:ident, $db:ty, $day_lock:expr, $snapshot:expr) => {
        impl $crate::store::Settlements for $store {
            async fn settle<T: Send>(
                &self,
                date: chrono::NaiveDate,
                at: chrono::DateTime<chrono::Utc>,
                compute: impl FnOnce(&[$crate::domain::settlement::SettledEntry]) -> $crate::domain::settlement::Settlement + Send,
                command: &gongji_shared::command::Command<T>,
                make: impl FnOnce($crate::domain::settlement::Settlement, chrono::DateTime<chrono::Utc>) -> T + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                // Alone on the day: a movement of the day still committing is waited for, and
                // one committing after this sees the day sealed (S1). A concurrent settlement
                // of the same day waits here, then finds this one.
                sqlx::query($day_lock)
                    .bind(chrono::Datelike::num_days_from_ce(&date))
                    .execute(&mut *tx)
                    .await?;
                if let Some((settlement, settled_at)) = read_settlement(&mut tx, date).await? {
                    // Settled before: the same settlement, whoever asks.
                    let outcome = make(settlement, settled_at);
                    save_response(&mut tx, command.idempotency(), &command.response(&outcome), at).await?;
                    tx.commit().await?;
                    return Ok(outcome);
                }
                let rows: Vec<$crate::store::settlement::SettledEntryRow> = sqlx::query_as(&format!(
                    "{} WHERE m.business_date = $1 AND m.purpose IS NOT NULL AND e.holder IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM settled_movements s WHERE s.movement_id = m.movement_id) \
                     ORDER BY e.entry_id",
                    $crate::store::settlement::SETTLED_ENTRY_SELECT
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
                let outcome = make(settlement, at);
                save_response(&mut tx, command.idempotency(), &command.response(&outcome), at).await?;
                tx.commit().await?;
                Ok(outcome)
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
                after: Option<chrono::NaiveDate>,
                days: u32,
            ) -> Result<
                (
                    $crate::domain::settlement::LedgerFacts,
                    Vec<($crate::domain::settlement::Settlement, Vec<$crate::domain::settlement::SettledEntry>)>,
                ),
                $crate::store::StoreError,
            > {
                // One transaction, one snapshot, so every fact is of the same moment.
                let mut tx = self.pool.begin().await?;
                sqlx::query($snapshot).execute(&mut *tx).await?;
                // Only the buckets that are off come back: memory stays bounded.
                let off: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT holder, bucket, cached, summed FROM ( \
                     SELECT a.holder AS holder, b.bucket AS bucket, \
                     CASE b.bucket WHEN 'CURRENT_YEAR' THEN a.current_fen ELSE a.prior_fen END AS cached, \
                     CAST(COALESCE((SELECT SUM(e.amount_fen) FROM entries e WHERE e.holder = a.holder AND e.bucket = b.bucket), 0) AS BIGINT) AS summed \
                     FROM accounts a CROSS JOIN (SELECT 'CURRENT_YEAR' AS bucket UNION ALL SELECT 'PRIOR_YEARS') b \
                     ) x WHERE cached <> summed OR cached < 0 OR summed < 0 LIMIT 100",
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
                let days: Vec<$crate::store::settlement::SettlementRow> = sqlx::query_as(
                    "SELECT business_date, movement_count, digest, settle_time FROM settlements \
                     WHERE business_date > $1 ORDER BY business_date LIMIT $2",
                )
                // Settled days are 2000 or later (dates are validated): start before them.
                .bind(after.or(chrono::NaiveDate::from_ymd_opt(1999, 12, 31)))
                .bind(i64::from(days).min($crate::store::MAX_ROWS))
                .fetch_all(&mut *tx)
                .await?;
                let mut settled = Vec::with_capacity(days.len());
                for day in days {
                    let rows: Vec<$crate::store::settlement::SettledEntryRow> = sqlx::query_as(&format!(
                        "{} JOIN settled_movements s ON s.movement_id = m.movement_id \
                         WHERE s.business_date = $1 AND e.holder IS NOT NULL ORDER BY e.entry_id",
                        $crate::store::settlement::SETTLED_ENTRY_SELECT
                    ))
                    .bind(day.business_date)
                    .fetch_all(&mut *tx)
                    .await?;
                    let entries = rows.into_iter().map(TryInto::try_into).collect::<Result<Vec<_>, _>>()?;
                    let (settlement, _) = $crate::store::settlement::settlement_from(day, Vec::new())?;
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
            let row: Option<$crate::store::settlement::SettlementRow> = sqlx::query_as(
                "SELECT business_date, movement_count, digest, settle_time FROM settlements WHERE business_date = $1",
            )
            .bind(date)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let lines: Vec<$crate::store::settlement::LineRow> = sqlx::query_as(
                "SELECT source_region, destination_region, purpose, gross_fen, refunded_fen, payment_count, refund_count \
                 FROM settlement_lines WHERE business_date = $1 ORDER BY source_region, destination_region, purpose",
            )
            .bind(date)
            .fetch_all(&mut **tx)
            .await?;
            $crate::store::settlement::settlement_from(row, lines).map(Some)
        }
    };
}
