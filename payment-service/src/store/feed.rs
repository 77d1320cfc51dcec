//! The account event feed: every movement numbered after it commits (`sequence`), and read
//! back by position, one event per movement and account it touched.

use std::future::Future;

use gongji_shared::{IdNumber, db::decode, vault::Vault};

use super::{StoreError, accounts::EntryRow};
use crate::domain::{AccountEvent, SettlementPurpose};

/// Most movements one sequencing pass numbers: a bound on its transaction.
pub const SEQUENCE_BATCH: u32 = 100;

/// The account event feed.
pub trait AccountFeed: super::Database<Conflict = super::Conflict> {
    /// Numbers up to [`SEQUENCE_BATCH`] committed movements that have no feed position yet,
    /// after every position given before, in the order they were written. Returns how many;
    /// 0 also when another instance is numbering meanwhile.
    fn sequence(&self) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The events of up to `limit` numbered movements after position `after`, in position
    /// order (a movement's events by holder), only those of `holder` if given.
    fn events_after(
        &self,
        after: i64,
        holder: Option<&IdNumber>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AccountEvent>, StoreError>> + Send;
}

/// The statement numbering `n` movements ($1, $3, … their IDs; $2, $4, … their positions).
pub(super) fn numbering(n: usize) -> String {
    let cases: Vec<String> = (0..n)
        .map(|i| format!("WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
        .collect();
    let ids: Vec<String> = (0..n).map(|i| format!("${}", 2 * i + 1)).collect();
    format!(
        "UPDATE movements SET feed_position = CASE movement_id {} END WHERE movement_id IN ({}) AND feed_position IS NULL",
        cases.join(" "),
        ids.join(", ")
    )
}

/// The account entries of the numbered movements from $1 (exclusive) to $2 (inclusive), each
/// with its movement's position and purpose and its holder's sealed number, in position,
/// holder and entry order; `holder_condition` narrows them to one holder ($3).
pub(super) fn feed_sql(holder_condition: &str) -> String {
    format!(
        "SELECT m.feed_position, m.purpose, a.holder_sealed, \
         e.entry_id, e.movement_id, m.kind, e.bucket, e.amount_fen, m.request_id, \
         m.create_time, m.business_date, m.memo, m.caller, \
         {} \
         FROM movements m JOIN entries e ON e.movement_id = m.movement_id \
         JOIN accounts a ON a.holder = e.holder {} \
         WHERE m.feed_position > $1 AND m.feed_position <= $2 {holder_condition} \
         ORDER BY m.feed_position, e.holder, e.entry_id",
        entry_family_columns!(),
        entry_family_joins!()
    )
}

/// The position of the `limit`-th numbered movement after $1 (of those touching holder $3
/// when `by_holder`), or of the last one.
pub(super) fn horizon_sql(by_holder: bool) -> &'static str {
    if by_holder {
        "SELECT MAX(feed_position) FROM (SELECT m.feed_position FROM entries e \
         JOIN movements m ON m.movement_id = e.movement_id \
         WHERE e.holder = $3 AND m.feed_position > $1 \
         GROUP BY m.feed_position ORDER BY m.feed_position LIMIT $2) h"
    } else {
        "SELECT MAX(feed_position) FROM (SELECT feed_position FROM movements \
         WHERE feed_position > $1 ORDER BY feed_position LIMIT $2) h"
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FeedRow {
    feed_position: i64,
    purpose: Option<String>,
    holder_sealed: String,
    #[sqlx(flatten)]
    entry: EntryRow,
}

/// Groups rows (in position, holder, entry order) into one event per movement and holder.
pub(super) fn events_of(
    rows: Vec<FeedRow>,
    vault: &Vault,
) -> Result<Vec<AccountEvent>, StoreError> {
    let mut events: Vec<AccountEvent> = Vec::new();
    for row in rows {
        let holder = decode::sealed_id(vault, &row.holder_sealed, "accounts.holder_sealed")?;
        let purpose = row
            .purpose
            .as_deref()
            .map(|p| {
                SettlementPurpose::parse(p).ok_or_else(|| decode::corrupt("movements.purpose"))
            })
            .transpose()?;
        let entry = row.entry.open(vault)?;
        match events.last_mut() {
            Some(last) if last.position == row.feed_position && last.holder == holder => {
                last.entries.push(entry);
            }
            _ => events.push(AccountEvent {
                position: row.feed_position,
                holder,
                purpose,
                entries: vec![entry],
            }),
        }
    }
    Ok(events)
}

/// Implements `AccountFeed` for `$store` over `$db`; `$lock` takes the sequencer's lock for
/// the transaction, answering whether it got it; `$written_order` orders movements as they
/// were written.
macro_rules! feed_sql {
    ($store:ident, $db:ty, $lock:expr, $written_order:expr) => {
        impl $crate::store::AccountFeed for $store {
            async fn sequence(&self) -> Result<u32, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let (locked,): (bool,) = sqlx::query_as($lock).fetch_one(&mut *tx).await?;
                if !locked {
                    return Ok(0);
                }
                // In the order they were written.
                let unsequenced: Vec<(String,)> = sqlx::query_as(&format!(
                    "SELECT movement_id FROM movements WHERE feed_position IS NULL ORDER BY {} LIMIT $1",
                    $written_order
                ))
                .bind(i64::from($crate::store::feed::SEQUENCE_BATCH))
                .fetch_all(&mut *tx)
                .await?;
                if unsequenced.is_empty() {
                    return Ok(0);
                }
                let (last,): (Option<i64>,) = sqlx::query_as("SELECT MAX(feed_position) FROM movements")
                    .fetch_one(&mut *tx)
                    .await?;
                let last = last.unwrap_or(0);
                let sql = $crate::store::feed::numbering(unsequenced.len());
                let mut update = sqlx::query(&sql);
                for (i, (movement_id,)) in unsequenced.iter().enumerate() {
                    let offset = i64::try_from(i).unwrap_or(i64::MAX);
                    update = update.bind(movement_id).bind(last + 1 + offset);
                }
                let numbered = update.execute(&mut *tx).await?.rows_affected();
                if numbered != unsequenced.len() as u64 {
                    // Only the lock's holder numbers: anything else is a fault.
                    return Err($crate::store::StoreError::Corrupt("a movement was numbered twice".into()));
                }
                tx.commit().await?;
                Ok(u32::try_from(numbered).unwrap_or(u32::MAX))
            }

            async fn events_after(
                &self,
                after: i64,
                holder: Option<&gongji_shared::IdNumber>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::AccountEvent>, $crate::store::StoreError> {
                let limit = i64::from(limit).min($crate::store::MAX_ROWS);
                let index = holder.map(|h| self.vault.index(h));
                let horizon = sqlx::query_as::<_, (Option<i64>,)>($crate::store::feed::horizon_sql(index.is_some()))
                    .bind(after)
                    .bind(limit);
                let horizon = match &index {
                    Some(index) => horizon.bind(index),
                    None => horizon,
                };
                let (horizon,) = horizon.fetch_one(&self.reads).await?;
                let Some(horizon) = horizon else {
                    return Ok(Vec::new());
                };
                let sql = $crate::store::feed::feed_sql(if index.is_some() { "AND e.holder = $3" } else { "" });
                let rows = sqlx::query_as::<_, $crate::store::feed::FeedRow>(&sql)
                    .bind(after)
                    .bind(horizon);
                let rows = match &index {
                    Some(index) => rows.bind(index),
                    None => rows,
                };
                let rows = rows.fetch_all(&self.reads).await?;
                $crate::store::feed::events_of(rows, &self.vault)
            }
        }
    };
}

/// Movements are numbered once each, in the order they were written, in batches; a number
/// never changes.
#[cfg(test)]
mod tests {
    use gongji_shared::{testing, vault::Vault};

    use super::numbering;
    use crate::store::{AccountFeed, Database, PgStore, SqliteStore};

    #[test]
    fn the_numbering_statement_names_each_movement_once() {
        assert_eq!(
            numbering(2),
            "UPDATE movements SET feed_position = CASE movement_id WHEN $1 THEN $2 WHEN $3 THEN $4 END \
             WHERE movement_id IN ($1, $3) AND feed_position IS NULL"
        );
    }

    /// Writes more movements than a batch, numbers them, and checks every number and its
    /// guard, on `$store` (with its writer `pool`).
    macro_rules! numbers_once {
        ($store:expr) => {{
            let store = $store;
            let n = super::SEQUENCE_BATCH + 5;
            for i in 0..n {
                sqlx::query(&format!(
                    "INSERT INTO movements (movement_id, kind, request_id, create_time, business_date, memo, caller) \
                     VALUES ('m-{i:04}', 'CREDIT', 'r-{i}', '2024-11-15 02:00:00+00:00', '2024-11-15', '', 'core')"
                ))
                .execute(&store.pool)
                .await
                .unwrap();
            }
            assert_eq!(store.sequence().await.unwrap(), super::SEQUENCE_BATCH);
            assert_eq!(store.sequence().await.unwrap(), 5);
            assert_eq!(store.sequence().await.unwrap(), 0, "nothing left");
            let changed = sqlx::query("UPDATE movements SET feed_position = 1000 WHERE movement_id = 'm-0000'")
                .execute(&store.pool)
                .await;
            assert!(changed.is_err(), "a number never changes");
            let numbers: (i64, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(DISTINCT feed_position), MIN(feed_position), MAX(feed_position) FROM movements",
            )
            .fetch_one(&store.pool)
            .await
            .unwrap();
            assert_eq!(numbers, (i64::from(n), Some(1), Some(i64::from(n))));
            let first: (i64,) = sqlx::query_as("SELECT feed_position FROM movements WHERE movement_id = 'm-0000'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(first, (1,), "in the order written");
        }};
    }

    #[tokio::test]
    async fn sqlite_movements_are_numbered_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::connect(&url, Vault::generate()).await.unwrap();
        store.migrate().await.unwrap();
        numbers_once!(&store);
    }

    #[tokio::test]
    async fn postgres_movements_are_numbered_once() {
        let Some(names) = testing::create_databases(&["feed"]).await else {
            return;
        };
        let url = testing::database_url(&testing::admin_url(), &names[0]);
        let store = PgStore::connect(&url, 2, Vault::generate()).await.unwrap();
        store.migrate().await.unwrap();
        numbers_once!(&store);
        drop(store);
        testing::drop_databases(&names).await;
    }
}
