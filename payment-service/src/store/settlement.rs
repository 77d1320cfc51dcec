//! Settlement between regions and verification of the ledger (S1, S2).

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use gongji_shared::db::decode::{self, corrupt};

use super::{Database, StoreError};
use crate::domain::{
    MovementKind, SettlementPurpose,
    settlement::{LedgerFacts, Line, SettledEntry, Settlement, VerifyCursor, VerifyLimits},
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

    /// What VerifyLedger checks on the next page of each sweep after `cursor` (at most
    /// `limits` rows each), measured in one snapshot: the facts, the settled entries of the
    /// page's settled days (for recomputing their digests), and where each sweep stands after
    /// the page.
    #[allow(clippy::type_complexity)]
    fn ledger_facts(
        &self,
        cursor: &VerifyCursor,
        limits: VerifyLimits,
        today: chrono::NaiveDate,
    ) -> impl Future<
        Output = Result<
            (
                LedgerFacts,
                Vec<(Settlement, Vec<SettledEntry>)>,
                VerifyCursor,
            ),
            StoreError,
        >,
    > + Send;
}

/// Most violations of one kind one call reports.
pub(super) const MAX_REPORTED: usize = 100;

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
/// lock alone (its writers take it shared), `$snapshot` makes a transaction one snapshot,
/// `$account_no` is the column that numbers accounts in the order they were opened.
/// Uses `save_response` of the idempotency aggregate.
macro_rules! settlement_sql {
    ($store:ident, $db:ty, $day_lock:expr, $snapshot:expr, $account_no:expr) => {
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
                    save_response(&mut tx, &self.vault, command.idempotency(), &command.response(&outcome), at).await?;
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
                save_response(&mut tx, &self.vault, command.idempotency(), &command.response(&outcome), at).await?;
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
                cursor: &$crate::domain::settlement::VerifyCursor,
                limits: $crate::domain::settlement::VerifyLimits,
                today: chrono::NaiveDate,
            ) -> Result<
                (
                    $crate::domain::settlement::LedgerFacts,
                    Vec<($crate::domain::settlement::Settlement, Vec<$crate::domain::settlement::SettledEntry>)>,
                    $crate::domain::settlement::VerifyCursor,
                ),
                $crate::store::StoreError,
            > {
                use $crate::domain::settlement::Sweep;
                use $crate::store::settlement::MAX_REPORTED;
                let limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
                // Sealed ID numbers, masked for the report.
                let mask = |sealed: &str| {
                    self.vault
                        .open(sealed)
                        .ok()
                        .and_then(|plain| gongji_shared::IdNumber::parse(&plain).ok())
                        .map_or_else(|| "?".to_owned(), |id| id.masked())
                };
                // One transaction, one snapshot, so every fact is of the same moment.
                let mut tx = self.pool.begin().await?;
                sqlx::query($snapshot).execute(&mut *tx).await?;

                // Accounts: each balance against the sum of its entries, a page of accounts.
                let (mut balances_off, mut negative_balances) = (Vec::new(), Vec::new());
                let mut statements_off = Vec::new();
                let mut accounts_next = Sweep::Done;
                if !cursor.accounts.is_done() {
                    let rows: Vec<(i64, String, i64, i64, i64, i64)> = sqlx::query_as(&format!(
                        "SELECT a.{no}, a.holder_sealed, a.current_fen, a.prior_fen, \
                         CAST(COALESCE((SELECT SUM(e.amount_fen) FROM entries e WHERE e.holder = a.holder AND e.bucket = 'CURRENT_YEAR'), 0) AS BIGINT), \
                         CAST(COALESCE((SELECT SUM(e.amount_fen) FROM entries e WHERE e.holder = a.holder AND e.bucket = 'PRIOR_YEARS'), 0) AS BIGINT) \
                         FROM accounts a WHERE a.{no} > $1 ORDER BY a.{no} LIMIT $2",
                        no = $account_no
                    ))
                    .bind(cursor.accounts.after_or(0))
                    .bind(limit(limits.accounts))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (_, holder, current, prior, current_sum, prior_sum) in &rows {
                        for (bucket, cached, summed) in [("CURRENT_YEAR", current, current_sum), ("PRIOR_YEARS", prior, prior_sum)] {
                            if cached != summed && balances_off.len() < MAX_REPORTED {
                                balances_off.push(format!("{} {bucket}: cached {cached}, entries {summed}", mask(holder)));
                            }
                            if (*cached < 0 || *summed < 0) && negative_balances.len() < MAX_REPORTED {
                                negative_balances.push(format!("{} {bucket}", mask(holder)));
                            }
                        }
                    }
                    // Each account's statement of this year, to its last entry, against its
                    // balances: the same sums GetAccountStatement reads.
                    if let Some(last) = rows.last() {
                        let year_start = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), 1, 1)
                            .ok_or_else(|| $crate::store::StoreError::Corrupt("year out of range".into()))?;
                        let sums: Vec<$crate::store::statement::StatementSqlRow> = sqlx::query_as(
                            &$crate::store::statement::statement_sql(&format!("a.{no} > $3 AND a.{no} <= $4", no = $account_no)),
                        )
                        .bind(year_start)
                        .bind($crate::store::statement::LAST_DAY)
                        .bind(cursor.accounts.after_or(0))
                        .bind(last.0)
                        .fetch_all(&mut *tx)
                        .await?;
                        let mut by_holder: std::collections::HashMap<String, Vec<$crate::domain::statement::StatementRow>> =
                            std::collections::HashMap::new();
                        for sum in sums {
                            let holder = sum.holder_sealed.clone();
                            by_holder.entry(holder).or_default().push(sum.open(&self.vault)?);
                        }
                        for (_, holder, current, prior, _, _) in &rows {
                            let statement = $crate::domain::statement::Statement::of(
                                by_holder.get(holder).map_or(&[][..], Vec::as_slice),
                            );
                            let balances = $crate::domain::statement::Balances { current_fen: *current, prior_fen: *prior };
                            if !statement.reconciles(Some(balances)) && statements_off.len() < MAX_REPORTED {
                                statements_off.push(mask(holder));
                            }
                        }
                    }
                    accounts_next = Sweep::next(rows.len(), limits.accounts, rows.last().map(|r| r.0));
                }

                // Movements: the postings of each sum to zero, a page of movements.
                let mut unbalanced_movements = Vec::new();
                let mut movements_next = Sweep::Done;
                if !cursor.movements.is_done() {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT p.movement_id, CAST(COALESCE(SUM(e.amount_fen), 0) AS BIGINT) FROM \
                         (SELECT movement_id FROM movements WHERE movement_id > $1 ORDER BY movement_id LIMIT $2) p \
                         LEFT JOIN entries e ON e.movement_id = p.movement_id \
                         GROUP BY p.movement_id ORDER BY p.movement_id",
                    )
                    .bind(cursor.movements.after_or(String::new()))
                    .bind(limit(limits.movements))
                    .fetch_all(&mut *tx)
                    .await?;
                    unbalanced_movements = rows
                        .iter()
                        .filter(|(_, sum)| *sum != 0)
                        .take(MAX_REPORTED)
                        .map(|(id, _)| id.clone())
                        .collect();
                    movements_next = Sweep::next(rows.len(), limits.movements, rows.last().map(|r| r.0.clone()));
                }

                // Premiums: no paid one has a second paid one for the same beneficiary and year.
                let mut duplicate_premiums = Vec::new();
                let mut premiums_next = Sweep::Done;
                if !cursor.premiums.is_done() {
                    let rows: Vec<(i64, String, i32, i64)> = sqlx::query_as(
                        "SELECT p.seq, p.beneficiary_sealed, p.coverage_year, CASE WHEN p.state = 'PAID' THEN \
                         (SELECT COUNT(*) FROM premium_payments q WHERE q.beneficiary = p.beneficiary \
                          AND q.coverage_year = p.coverage_year AND q.state = 'PAID') ELSE 0 END \
                         FROM premium_payments p WHERE p.seq > $1 ORDER BY p.seq LIMIT $2",
                    )
                    .bind(cursor.premiums.after_or(0))
                    .bind(limit(limits.premiums))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (_, beneficiary, year, paid) in &rows {
                        let found = format!("{} {year}", mask(beneficiary));
                        if *paid > 1 && !duplicate_premiums.contains(&found) && duplicate_premiums.len() < MAX_REPORTED {
                            duplicate_premiums.push(found);
                        }
                    }
                    premiums_next = Sweep::next(rows.len(), limits.premiums, rows.last().map(|r| r.0));
                }

                // Settled days: their digests, and their settlements against their movements.
                let mut settled = Vec::new();
                let mut days_next = Sweep::Done;
                let (mut payment_debits_fen, mut refunds_fen) = (0, 0);
                let (mut settled_gross_fen, mut settled_refunded_fen) = (0, 0);
                let (mut unsettled_debits_fen, mut unsettled_refunds_fen) = (0, 0);
                if !cursor.days.is_done() {
                    // Settled days are 2000 or later (dates are validated): start before them.
                    let after = cursor.days.after_or(chrono::NaiveDate::from_ymd_opt(1999, 12, 31).unwrap_or_default());
                    let days: Vec<$crate::store::settlement::SettlementRow> = sqlx::query_as(
                        "SELECT business_date, movement_count, digest, settle_time FROM settlements \
                         WHERE business_date > $1 ORDER BY business_date LIMIT $2",
                    )
                    .bind(after)
                    .bind(limit(limits.days).min($crate::store::MAX_ROWS))
                    .fetch_all(&mut *tx)
                    .await?;
                    days_next = Sweep::next(days.len(), limits.days, days.last().map(|d| d.business_date));
                    if let Some(last) = days.last().map(|d| d.business_date) {
                        // Every payment and refund of these days, settled or not, against what
                        // their settlements say.
                        let totals = "SELECT CAST(COALESCE(SUM(CASE WHEN m.kind <> 'REFUND' THEN -e.amount_fen ELSE 0 END), 0) AS BIGINT), \
                             CAST(COALESCE(SUM(CASE WHEN m.kind = 'REFUND' THEN e.amount_fen ELSE 0 END), 0) AS BIGINT) \
                             FROM entries e JOIN movements m ON m.movement_id = e.movement_id \
                             WHERE m.purpose IS NOT NULL AND e.holder IS NOT NULL AND m.business_date > $1 AND m.business_date <= $2";
                        (payment_debits_fen, refunds_fen) = sqlx::query_as(totals)
                            .bind(after)
                            .bind(last)
                            .fetch_one(&mut *tx)
                            .await?;
                        (unsettled_debits_fen, unsettled_refunds_fen) = sqlx::query_as(&format!(
                            "{totals} AND NOT EXISTS (SELECT 1 FROM settled_movements s WHERE s.movement_id = m.movement_id)"
                        ))
                        .bind(after)
                        .bind(last)
                        .fetch_one(&mut *tx)
                        .await?;
                        (settled_gross_fen, settled_refunded_fen) = sqlx::query_as(
                            "SELECT CAST(COALESCE(SUM(gross_fen), 0) AS BIGINT), CAST(COALESCE(SUM(refunded_fen), 0) AS BIGINT) \
                             FROM settlement_lines WHERE business_date > $1 AND business_date <= $2",
                        )
                        .bind(after)
                        .bind(last)
                        .fetch_one(&mut *tx)
                        .await?;
                    }
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
                }
                tx.commit().await?;
                let facts = $crate::domain::settlement::LedgerFacts {
                    balances_off,
                    negative_balances,
                    unbalanced_movements,
                    payment_debits_fen,
                    refunds_fen,
                    settled_gross_fen,
                    settled_refunded_fen,
                    unsettled_debits_fen,
                    unsettled_refunds_fen,
                    duplicate_premiums,
                    digests_off: Vec::new(),
                    statements_off,
                };
                let next = $crate::domain::settlement::VerifyCursor {
                    accounts: accounts_next,
                    movements: movements_next,
                    premiums: premiums_next,
                    days: days_next,
                };
                Ok((facts, settled, next))
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
