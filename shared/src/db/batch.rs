//! A transaction's independent writes sent as one statement. Each round trip to PostgreSQL
//! costs more than most of the statements it carries (a wake-up on each side, a snapshot,
//! an executor set-up), and a payment's write transaction was a dozen of them. On PostgreSQL
//! a batch runs as one statement of data-modifying `WITH` parts; on SQLite, whose writer is
//! in the same process, part after part in the same transaction. Either way each part says
//! how many rows it touched.
//!
//! The parts of one batch run on one snapshot and do not see each other's rows (foreign
//! keys are checked at the statement's end, so a child may name a parent the batch
//! inserts). A part that must see another's effect, or a lock taken before its read, goes
//! in a statement of its own.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Arguments, Row};

/// Most parts in one batch: its statement stays a size PostgreSQL plans quickly.
pub const MAX_PARTS: usize = 16;
/// Most values one batch binds (PostgreSQL's protocol allows 65,535).
pub const MAX_VALUES: usize = 1_000;

/// A value bound to a part.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    I64(Option<i64>),
    I32(Option<i32>),
    Bool(bool),
    Date(Option<NaiveDate>),
    Time(Option<DateTime<Utc>>),
    Bytes(Vec<u8>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(Some(v))
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I32(Some(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(Some(v))
    }
}
impl From<Option<NaiveDate>> for Value {
    fn from(v: Option<NaiveDate>) -> Self {
        Value::Date(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Value {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Value::Time(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

/// One statement of a batch: an INSERT or UPDATE (its rows touched are counted), or a
/// SELECT (its rows are counted), numbering its values `$1`, `$2`, ... as if alone.
#[derive(Debug, Clone)]
pub struct Part {
    /// The table the part writes or reads: a failure names it, and so the part.
    pub table: &'static str,
    sql: String,
    values: Vec<Value>,
}

impl Part {
    /// A part over `table`: one statement, with no `$` inside quotes (numbering would change
    /// it) and no `RETURNING` (counting adds one).
    pub fn new(table: &'static str, sql: impl Into<String>, values: Vec<Value>) -> Self {
        let sql = sql.into();
        debug_assert!(!sql.contains(';'), "one statement: {sql}");
        debug_assert!(
            sql.split('\'')
                .skip(1)
                .step_by(2)
                .all(|quoted| !quoted.contains('$')),
            "a $ inside quotes: {sql}"
        );
        Self { table, sql, values }
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    fn is_select(&self) -> bool {
        self.sql.trim_start().starts_with("SELECT")
    }
}

/// A batch failed: the part whose table the database named, when it named one.
#[derive(Debug, thiserror::Error)]
#[error("batch part {part:?} failed: {error}")]
pub struct BatchError {
    pub part: Option<usize>,
    pub error: sqlx::Error,
}

/// Independent writes of one transaction, sent together.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    parts: Vec<Part>,
}

impl Batch {
    /// Adds a part; returns its index, where its count will be.
    pub fn push(&mut self, part: Part) -> usize {
        assert!(
            self.parts.len() < MAX_PARTS,
            "a batch holds at most {MAX_PARTS} parts"
        );
        self.parts.push(part);
        self.parts.len() - 1
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The one statement PostgreSQL runs: each part a `WITH` query (writes counted through
    /// `RETURNING 1`), then one row of their counts in part order. Every part is referenced,
    /// so every part runs, a SELECT too.
    pub fn postgres_sql(&self) -> String {
        let mut sql = String::from("WITH ");
        let mut offset = 0;
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let body = renumber(&part.sql, offset);
            if part.is_select() {
                sql.push_str(&format!("p{i} AS ({body})"));
            } else {
                sql.push_str(&format!("p{i} AS ({body} RETURNING 1)"));
            }
            offset += part.values.len();
        }
        let counts: Vec<String> = (0..self.parts.len())
            .map(|i| format!("(SELECT COUNT(*) FROM p{i})"))
            .collect();
        sql.push_str(" SELECT ");
        sql.push_str(&counts.join(", "));
        sql
    }

    fn value_count(&self) -> usize {
        self.parts.iter().map(|p| p.values.len()).sum()
    }

    /// The part a database failure names through its table, if one does.
    fn part_of(&self, error: &sqlx::Error) -> Option<usize> {
        let table = match error {
            sqlx::Error::Database(db) => db.table()?,
            _ => return None,
        };
        self.parts.iter().position(|p| p.table == table)
    }
}

/// `$n` becomes `$(n + offset)`, everywhere in `sql` (which quotes no `$`).
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&digits),
        }
    }
    out
}

/// Runs a batch on a connection inside a transaction; answers each part's count, in order.
pub trait RunBatch {
    fn run_batch(
        &mut self,
        batch: &Batch,
    ) -> impl Future<Output = Result<Vec<i64>, BatchError>> + Send;
}

impl RunBatch for sqlx::PgConnection {
    async fn run_batch(&mut self, batch: &Batch) -> Result<Vec<i64>, BatchError> {
        assert!(
            batch.value_count() <= MAX_VALUES,
            "a batch binds too many values"
        );
        let fail = |error| BatchError {
            part: batch.part_of(&error),
            error,
        };
        let mut args = sqlx::postgres::PgArguments::default();
        for value in batch.parts.iter().flat_map(|p| &p.values) {
            let added = match value {
                Value::Text(v) => args.add(v.as_deref()),
                Value::I64(v) => args.add(*v),
                Value::I32(v) => args.add(*v),
                Value::Bool(v) => args.add(*v),
                Value::Date(v) => args.add(*v),
                Value::Time(v) => args.add(*v),
                Value::Bytes(v) => args.add(v.as_slice()),
            };
            added.map_err(|e| fail(sqlx::Error::Encode(e)))?;
        }
        let row = sqlx::query_with(&batch.postgres_sql(), args)
            .fetch_one(&mut *self)
            .await
            .map_err(fail)?;
        (0..batch.parts.len())
            .map(|i| row.try_get::<i64, _>(i).map_err(fail))
            .collect()
    }
}

impl RunBatch for sqlx::SqliteConnection {
    async fn run_batch(&mut self, batch: &Batch) -> Result<Vec<i64>, BatchError> {
        let mut counts = Vec::with_capacity(batch.parts.len());
        for (i, part) in batch.parts.iter().enumerate() {
            let fail = |error| BatchError {
                part: Some(i),
                error,
            };
            let query = sqlx::query(&part.sql).bind_values(&part.values);
            let count = if part.is_select() {
                query.fetch_all(&mut *self).await.map_err(fail)?.len() as u64
            } else {
                query
                    .execute(&mut *self)
                    .await
                    .map_err(fail)?
                    .rows_affected()
            };
            counts.push(i64::try_from(count).unwrap_or(i64::MAX));
        }
        Ok(counts)
    }
}

/// Binds values in order to a statement of either database (for one run alone).
pub trait BindValues: Sized {
    fn bind_values(self, values: &[Value]) -> Self;
}

/// The body of `bind_values`: each value by its type.
macro_rules! bind_each {
    ($query:ident, $values:ident) => {{
        for value in $values {
            $query = match value {
                Value::Text(v) => $query.bind(v.clone()),
                Value::I64(v) => $query.bind(*v),
                Value::I32(v) => $query.bind(*v),
                Value::Bool(v) => $query.bind(*v),
                Value::Date(v) => $query.bind(*v),
                Value::Time(v) => $query.bind(*v),
                Value::Bytes(v) => $query.bind(v.clone()),
            };
        }
        $query
    }};
}

impl<'q> BindValues for sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    fn bind_values(mut self, values: &[Value]) -> Self {
        bind_each!(self, values)
    }
}

impl BindValues for sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_values(mut self, values: &[Value]) -> Self {
        bind_each!(self, values)
    }
}

impl<'q, O> BindValues
    for sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    fn bind_values(mut self, values: &[Value]) -> Self {
        bind_each!(self, values)
    }
}

impl<O> BindValues for sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    fn bind_values(mut self, values: &[Value]) -> Self {
        bind_each!(self, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let mut batch = Batch::default();
        batch.push(Part::new(
            "parents",
            "INSERT INTO parents (id, born) VALUES ($1, $2)",
            vec!["a".into(), NaiveDate::from_ymd_opt(2025, 1, 1).into()],
        ));
        batch.push(Part::new(
            "children",
            "INSERT INTO children (parent, n) VALUES ($1, $2), ($1, $3)",
            vec!["a".into(), 1_i64.into(), 2_i64.into()],
        ));
        batch.push(Part::new(
            "parents",
            "SELECT id FROM parents WHERE id = $1",
            vec!["a".into()],
        ));
        batch
    }

    #[test]
    fn parts_are_numbered_on_from_the_values_before_them() {
        assert_eq!(
            renumber("a = $1 AND b = $12 OR $", 3),
            "a = $4 AND b = $15 OR $"
        );
        assert_eq!(
            batch().postgres_sql(),
            "WITH p0 AS (INSERT INTO parents (id, born) VALUES ($1, $2) RETURNING 1), \
             p1 AS (INSERT INTO children (parent, n) VALUES ($3, $4), ($3, $5) RETURNING 1), \
             p2 AS (SELECT id FROM parents WHERE id = $6) \
             SELECT (SELECT COUNT(*) FROM p0), (SELECT COUNT(*) FROM p1), (SELECT COUNT(*) FROM p2)"
        );
    }

    const SCHEMA: [&str; 2] = [
        "CREATE TABLE parents (id TEXT PRIMARY KEY, born DATE NOT NULL)",
        "CREATE TABLE children (parent TEXT NOT NULL REFERENCES parents (id), n BIGINT NOT NULL, UNIQUE (parent, n))",
    ];

    /// The same batch on both databases: a child may name the parent the batch inserts, a
    /// SELECT part does not see the batch's own rows on PostgreSQL (one snapshot) and does on
    /// SQLite (one part after another), and a failure names its part and leaves no row.
    async fn counts_and_failures<C: RunBatch>(
        connection: &mut C,
        select_sees_own_rows: bool,
        exec: impl AsyncFn(&mut C, &str),
    ) {
        for statement in SCHEMA {
            exec(connection, statement).await;
        }
        exec(connection, "BEGIN").await;
        let counts = connection.run_batch(&batch()).await.unwrap();
        assert_eq!(counts, [1, 2, i64::from(select_sees_own_rows)]);
        exec(connection, "COMMIT").await;
        exec(connection, "BEGIN").await;
        let mut again = Batch::default();
        again.push(Part::new(
            "parents",
            "INSERT INTO parents (id, born) VALUES ($1, $2)",
            vec!["b".into(), Value::Date(NaiveDate::from_ymd_opt(2025, 1, 2))],
        ));
        again.push(Part::new(
            "children",
            "INSERT INTO children (parent, n) VALUES ($1, $2)",
            vec!["a".into(), 1_i64.into()],
        ));
        let error = connection.run_batch(&again).await.unwrap_err();
        assert_eq!(error.part, Some(1), "{error}");
        assert!(crate::db::is_unique_violation(&error.error), "{error}");
        exec(connection, "ROLLBACK").await;
        // Counted by a batch of two SELECT parts.
        let mut rows = Batch::default();
        rows.push(Part::new("parents", "SELECT id FROM parents", vec![]));
        rows.push(Part::new("children", "SELECT n FROM children", vec![]));
        let counts = connection.run_batch(&rows).await.unwrap();
        assert_eq!(counts, [1, 2], "the failed batch left nothing");
    }

    #[tokio::test]
    async fn a_batch_runs_the_same_on_sqlite() {
        use sqlx::Connection;
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut connection)
            .await
            .unwrap();
        counts_and_failures(
            &mut connection,
            true,
            async |c: &mut sqlx::SqliteConnection, sql: &str| {
                sqlx::raw_sql(sql).execute(&mut *c).await.unwrap();
            },
        )
        .await;
    }

    /// Needs the `testing` feature, which the workspace's test run turns on.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_batch_is_one_statement_on_postgres() {
        use sqlx::Connection;
        let Some(names) = crate::testing::create_databases(&["batch_unit"]).await else {
            return;
        };
        let url = crate::testing::database_url(&crate::testing::admin_url(), &names[0]);
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        counts_and_failures(
            &mut connection,
            false,
            async |c: &mut sqlx::PgConnection, sql: &str| {
                sqlx::raw_sql(sql).execute(&mut *c).await.unwrap();
            },
        )
        .await;
        connection.close().await.unwrap();
        crate::testing::drop_databases(&names).await;
    }
}
