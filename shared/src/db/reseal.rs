//! Re-encryption: every sealed value rewritten under the newest key, in bounded batches, so
//! that an old key can be retired. Each batch commits on its own, and finds its rows by what
//! they hold (a value not under the newest key), so a run that stops is resumed by running
//! again.

use std::future::Future;

use super::StoreError;

/// Rows re-sealed per table per batch: a bound on one transaction's work.
pub const RESEAL_BATCH: i64 = 500;

/// A table holding sealed values.
#[derive(Debug, Clone, Copy)]
pub struct SealedTable {
    pub table: &'static str,
    /// Sealed text columns (NULL and empty are left alone).
    pub text: &'static [&'static str],
    /// Sealed values kept as bytes, written with the row's text columns, so under the same
    /// key: found through those, re-sealed with them.
    pub bytes: &'static [&'static str],
}

impl SealedTable {
    /// A table whose sealed values are all text.
    pub const fn text(table: &'static str, text: &'static [&'static str]) -> Self {
        Self {
            table,
            text,
            bytes: &[],
        }
    }
}

/// The idempotency table both services keep: the fingerprint, the acting person and the
/// answer (bytes), written together.
pub const IDEMPOTENCY: SealedTable = SealedTable {
    table: "idempotency",
    text: &["fingerprint", "acting_person"],
    bytes: &["response"],
};

/// What a store does to move its sealed values to the newest key.
pub trait Reseal: super::Database {
    /// Re-seals up to `limit` rows of each sealed table not yet under the newest key, one
    /// transaction per table. A row changed meanwhile is left for the next batch. Returns
    /// how many rows were rewritten.
    fn reseal_batch(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<u64, StoreError<Self::Conflict>>> + Send;

    /// Once no value is left under an older key, forgets the older keys' check values, so
    /// that their keys may be removed from the key document; returns the versions retired.
    /// `None` while some value still needs them.
    fn retire_old_keys(
        &self,
    ) -> impl Future<Output = Result<Option<Vec<i64>>, StoreError<Self::Conflict>>> + Send;
}

/// The SQL finding the rows of `t` with a value not under the key `$1` names, at most `$2`.
pub fn stale_rows_sql(t: &SealedTable, row_id: &str) -> String {
    let columns: Vec<&str> = t.text.iter().chain(t.bytes).copied().collect();
    format!(
        "SELECT {row_id}, {} FROM {} WHERE {} LIMIT $2",
        columns.join(", "),
        t.table,
        stale_clause(t)
    )
}

/// Whether a row of `t` has a text value not under the key `$1` names (`v<n>:%`).
pub fn stale_clause(t: &SealedTable) -> String {
    t.text
        .iter()
        .map(|c| format!("({c} IS NOT NULL AND {c} <> '' AND {c} NOT LIKE $1)"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The update of one row of `t` to its re-sealed values, only if it still holds the values
/// read: `$1..$n` the new values, `$n+1` the row, `$n+2..` the old values; `same` is the
/// null-safe equality of the database (`IS NOT DISTINCT FROM`, `IS`).
pub fn reseal_row_sql(t: &SealedTable, row_match: &str, same: &str) -> String {
    let columns: Vec<&str> = t.text.iter().chain(t.bytes).copied().collect();
    let n = columns.len();
    let set: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let unchanged: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} {same} ${}", n + 2 + i))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE {} AND {}",
        t.table,
        set.join(", "),
        row_match.replace("$ROW", &format!("${}", n + 1)),
        unchanged.join(" AND ")
    )
}

/// [`reseal_sql!`] for a PostgreSQL store: rows named by their `ctid`.
#[macro_export]
macro_rules! reseal_sql_postgres {
    ($store:ident, $tables:expr) => {
        $crate::reseal_sql!(
            $store,
            sqlx::Postgres,
            $tables,
            "CAST(ctid AS TEXT)",
            "ctid = CAST($ROW AS tid)",
            "IS NOT DISTINCT FROM",
            None
        );
    };
}

/// [`reseal_sql!`] for a SQLite store: rows named by their `rowid`. Its transactions take the
/// write lock as they begin: one that read first and then wrote would fail at once
/// (SQLITE_BUSY, no waiting) if the running service wrote in between.
#[macro_export]
macro_rules! reseal_sql_sqlite {
    ($store:ident, $tables:expr) => {
        $crate::reseal_sql!(
            $store,
            sqlx::Sqlite,
            $tables,
            "CAST(rowid AS TEXT)",
            "rowid = CAST($ROW AS INTEGER)",
            "IS",
            Some("BEGIN IMMEDIATE")
        );
    };
}

/// Implements [`Reseal`] for `$store` (with `pool` and `vault`) over `$db`: `$tables` its
/// sealed tables, `$row_id` an expression naming a row as text, `$row_match` the condition
/// matching it again (`$ROW` its parameter), `$same` null-safe equality, `$begin` the statement
/// its transactions begin with (`None`: the driver's own).
#[macro_export]
macro_rules! reseal_sql {
    ($store:ident, $db:ty, $tables:expr, $row_id:literal, $row_match:literal, $same:literal, $begin:expr) => {
        impl $crate::db::reseal::Reseal for $store {
            async fn reseal_batch(
                &self,
                limit: i64,
            ) -> Result<u64, $crate::db::StoreError<<Self as $crate::db::Database>::Conflict>> {
                use sqlx::Row as _;
                let current = format!("v{}:%", self.vault.active_version());
                let reseal = |sealed: &str| {
                    self.vault
                        .reseal(sealed)
                        .map(|new| new.unwrap_or_else(|| sealed.to_owned()))
                        .map_err(|e| $crate::db::StoreError::Keys(format!("cannot re-seal: {e}")))
                };
                let mut rewritten = 0;
                for t in $tables {
                    let begin: Option<&'static str> = $begin;
                    let mut tx = match begin {
                        Some(statement) => self.pool.begin_with(statement).await?,
                        None => self.pool.begin().await?,
                    };
                    let rows = sqlx::query(&$crate::db::reseal::stale_rows_sql(t, $row_id))
                        .bind(&current)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    let update = $crate::db::reseal::reseal_row_sql(t, $row_match, $same);
                    for row in rows {
                        let key: String = row.try_get(0)?;
                        let mut old_text = Vec::with_capacity(t.text.len());
                        let mut new_text = Vec::with_capacity(t.text.len());
                        for i in 0..t.text.len() {
                            let value: Option<String> = row.try_get(1 + i)?;
                            new_text.push(match value.as_deref() {
                                Some(v) if !v.is_empty() => Some(reseal(v)?),
                                _ => value.clone(),
                            });
                            old_text.push(value);
                        }
                        let mut old_bytes = Vec::with_capacity(t.bytes.len());
                        let mut new_bytes = Vec::with_capacity(t.bytes.len());
                        for i in 0..t.bytes.len() {
                            let value: Option<Vec<u8>> = row.try_get(1 + t.text.len() + i)?;
                            new_bytes.push(match value.as_deref() {
                                Some(v) if !v.is_empty() => {
                                    let text = std::str::from_utf8(v).map_err(|_| {
                                        $crate::db::decode::corrupt(&format!("{}: a sealed value", t.table))
                                    })?;
                                    Some(reseal(text)?.into_bytes())
                                }
                                _ => value.clone(),
                            });
                            old_bytes.push(value);
                        }
                        let mut query = sqlx::query(&update);
                        for v in &new_text {
                            query = query.bind(v.as_deref());
                        }
                        for v in &new_bytes {
                            query = query.bind(v.as_deref());
                        }
                        query = query.bind(&key);
                        for v in &old_text {
                            query = query.bind(v.as_deref());
                        }
                        for v in &old_bytes {
                            query = query.bind(v.as_deref());
                        }
                        rewritten += query.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                }
                Ok(rewritten)
            }

            async fn retire_old_keys(
                &self,
            ) -> Result<Option<Vec<i64>>, $crate::db::StoreError<<Self as $crate::db::Database>::Conflict>> {
                let current = format!("v{}:%", self.vault.active_version());
                let begin: Option<&'static str> = $begin;
                let mut tx = match begin {
                    Some(statement) => self.pool.begin_with(statement).await?,
                    None => self.pool.begin().await?,
                };
                for t in $tables {
                    let stale: Option<(i64,)> = sqlx::query_as(&format!(
                        "SELECT CAST(1 AS BIGINT) FROM {} WHERE {} LIMIT 1",
                        t.table,
                        $crate::db::reseal::stale_clause(t)
                    ))
                    .bind(&current)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if stale.is_some() {
                        return Ok(None);
                    }
                }
                let retired: Vec<(i64,)> = sqlx::query_as(
                    "DELETE FROM vault_checks WHERE version > 0 AND version <> $1 RETURNING version",
                )
                .bind(i64::from(self.vault.active_version()))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(retired.into_iter().map(|(v,)| v).collect()))
            }
        }
    };
}

/// One call's worth of re-sealing (ResealPersonalData): a bounded batch per table and, once
/// none is left, the older keys retired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealStep {
    /// Rows rewritten under the newest key by this step.
    pub rewritten: u64,
    /// Nothing is left under an older key, and the older keys are retired.
    pub done: bool,
    /// The key versions retired by this step.
    pub retired: Vec<i64>,
}

/// Re-seals up to `limit` rows of each table; when there were none, retires the older keys
/// if nothing needs them; then records the step's answer under `command` (its batches commit
/// on their own). Neither rewritten nor done: a value was written under an older key
/// meanwhile, by an instance that has not loaded the newest key yet.
pub async fn reseal_step<S: Reseal>(
    store: &S,
    limit: i64,
    command: &crate::command::Command<ResealStep>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<ResealStep, StoreError<S::Conflict>> {
    debug_assert!((1..=RESEAL_BATCH).contains(&limit));
    let rewritten = store.reseal_batch(limit).await?;
    let step = if rewritten > 0 {
        ResealStep {
            rewritten,
            ..ResealStep::default()
        }
    } else {
        match store.retire_old_keys().await? {
            Some(retired) => ResealStep {
                rewritten: 0,
                done: true,
                retired,
            },
            None => ResealStep::default(),
        }
    };
    store
        .record_answer(command.idempotency(), &command.response(&step), at)
        .await?;
    tracing::info!(
        rewritten = step.rewritten,
        done = step.done,
        retired = ?step.retired,
        "personal data re-sealed"
    );
    Ok(step)
}

/// `--reseal`: migrates, re-seals every value under the newest key, batch after batch, then
/// retires the older keys. Returns the rows rewritten and the versions retired.
pub async fn reseal_all<S: Reseal>(store: &S) -> Result<(u64, Vec<i64>), StoreError<S::Conflict>> {
    store.migrate().await?;
    let mut total = 0;
    loop {
        let rewritten = store.reseal_batch(RESEAL_BATCH).await?;
        total += rewritten;
        tracing::info!(rewritten, total, "re-sealed a batch");
        if rewritten == 0 {
            break;
        }
    }
    match store.retire_old_keys().await? {
        Some(retired) => {
            tracing::info!(
                total,
                ?retired,
                "every value is sealed under the newest key"
            );
            Ok((total, retired))
        }
        // A value written under an older key meanwhile (by a service that has not loaded the
        // new key): run again once every instance has it.
        None => Err(StoreError::Keys(
            "values under an older key remain; run again once every instance uses the newest key"
                .to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SealedTable = SealedTable {
        table: "idempotency",
        text: &["fingerprint", "acting_person"],
        bytes: &["response"],
    };

    #[test]
    fn a_batch_finds_stale_text_and_rewrites_only_rows_unchanged_since_read() {
        assert_eq!(
            stale_rows_sql(&T, "rowid"),
            "SELECT rowid, fingerprint, acting_person, response FROM idempotency WHERE \
             (fingerprint IS NOT NULL AND fingerprint <> '' AND fingerprint NOT LIKE $1) OR \
             (acting_person IS NOT NULL AND acting_person <> '' AND acting_person NOT LIKE $1) LIMIT $2"
        );
        assert_eq!(
            reseal_row_sql(&T, "rowid = $ROW", "IS"),
            "UPDATE idempotency SET fingerprint = $1, acting_person = $2, response = $3 WHERE \
             rowid = $4 AND fingerprint IS $5 AND acting_person IS $6 AND response IS $7"
        );
    }
}
