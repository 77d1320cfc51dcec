//! The family wallet's monthly inter-province statements (U4).

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{command::Idempotency, db::decode};

use super::{Database, StoreError};
use crate::domain::wallet_statement::{WalletLine, WalletStatement};

/// Why a month's statement cannot be made yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthRefusal {
    /// A day of the month is not settled (the first such day).
    NotSettled { day: NaiveDate },
}

/// Monthly wallet statements.
pub trait WalletStatements: Database<Conflict = super::Conflict> {
    /// Makes the statement of the month of `days` (all its days, in order) with `make`, from
    /// each day's settlement digest and the month's family wallet lines per destination; a
    /// month stated before is checked to reproduce and answered as it was. With the answer
    /// kept under `idempotency`.
    fn settle_wallet_month<M, A>(
        &self,
        days: &[NaiveDate],
        at: DateTime<Utc>,
        make: M,
        idempotency: &Idempotency,
        answer: A,
    ) -> impl Future<
        Output = Result<Result<(WalletStatement, DateTime<Utc>), MonthRefusal>, StoreError>,
    > + Send
    where
        M: FnOnce(&[(NaiveDate, String)], Vec<WalletLine>) -> WalletStatement + Send,
        A: FnOnce(&WalletStatement, DateTime<Utc>) -> Vec<u8> + Send;

    /// The statement of the month starting `month`, with when it was made, if it was.
    fn wallet_statement(
        &self,
        month: NaiveDate,
    ) -> impl Future<Output = Result<Option<(WalletStatement, DateTime<Utc>)>, StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct LineRow {
    destination: String,
    transferred_fen: i64,
    returned_fen: i64,
    transfer_count: i64,
    return_count: i64,
}

impl LineRow {
    pub(super) fn open(self) -> Result<WalletLine, StoreError> {
        Ok(WalletLine {
            destination: decode::region(&self.destination, "wallet_statement_lines.destination")?,
            transferred_fen: self.transferred_fen,
            returned_fen: self.returned_fen,
            transfer_count: self.transfer_count,
            return_count: self.return_count,
        })
    }
}

/// Implements `WalletStatements` for `$store` over `$db`. Uses `save_response`.
macro_rules! wallet_statement_sql {
    ($store:ident, $db:ty) => {
        impl $crate::store::WalletStatements for $store {
            async fn settle_wallet_month<M, A>(
                &self,
                days: &[chrono::NaiveDate],
                at: chrono::DateTime<chrono::Utc>,
                make: M,
                idempotency: &gongji_shared::command::Idempotency,
                answer: A,
            ) -> Result<
                Result<
                    ($crate::domain::wallet_statement::WalletStatement, chrono::DateTime<chrono::Utc>),
                    $crate::store::wallet_statement::MonthRefusal,
                >,
                $crate::store::StoreError,
            >
            where
                M: FnOnce(&[(chrono::NaiveDate, String)], Vec<$crate::domain::wallet_statement::WalletLine>)
                    -> $crate::domain::wallet_statement::WalletStatement
                    + Send,
                A: FnOnce(&$crate::domain::wallet_statement::WalletStatement, chrono::DateTime<chrono::Utc>) -> Vec<u8>
                    + Send,
            {
                let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
                    return Err($crate::store::StoreError::Corrupt("a month without days".into()));
                };
                let mut tx = self.pool.begin().await?;
                let settled: Vec<(chrono::NaiveDate, String)> = sqlx::query_as(
                    "SELECT business_date, digest FROM settlements WHERE business_date >= $1 AND business_date <= $2 \
                     ORDER BY business_date",
                )
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await?;
                // Every day settled, so every day sealed: nothing will ever be dated in the month.
                if let Some(day) = days.iter().zip(settled.iter().map(|(d, _)| *d).chain(std::iter::repeat(chrono::NaiveDate::MIN)))
                    .find(|(want, got)| want != &got)
                    .map(|(want, _)| *want)
                {
                    return Ok(Err($crate::store::wallet_statement::MonthRefusal::NotSettled { day }));
                }
                let lines: Vec<$crate::store::wallet_statement::LineRow> = sqlx::query_as(
                    "SELECT destination_region AS destination, CAST(SUM(gross_fen) AS BIGINT) AS transferred_fen, \
                     CAST(SUM(refunded_fen) AS BIGINT) AS returned_fen, CAST(SUM(payment_count) AS BIGINT) AS transfer_count, \
                     CAST(SUM(refund_count) AS BIGINT) AS return_count FROM settlement_lines \
                     WHERE business_date >= $1 AND business_date <= $2 AND purpose = 'FAMILY_WALLET' \
                     GROUP BY destination_region ORDER BY destination_region",
                )
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await?;
                let lines = lines.into_iter().map(|l| l.open()).collect::<Result<Vec<_>, _>>()?;
                let statement = make(&settled, lines);
                let before: Option<(String, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT digest, settle_time FROM wallet_statements WHERE month = $1")
                        .bind(first)
                        .fetch_optional(&mut *tx)
                        .await?;
                let settle_time = match before {
                    // A second run reproduces the first, or the facts it was made of changed.
                    Some((digest, _)) if digest != statement.digest => {
                        return Err($crate::store::StoreError::Corrupt(format!(
                            "the wallet statement of {first} no longer reproduces"
                        )));
                    }
                    Some((_, settle_time)) => settle_time,
                    None => {
                        sqlx::query("INSERT INTO wallet_statements (month, digest, settle_time) VALUES ($1, $2, $3)")
                            .bind(first)
                            .bind(&statement.digest)
                            .bind(at)
                            .execute(&mut *tx)
                            .await?;
                        for l in &statement.lines {
                            sqlx::query(
                                "INSERT INTO wallet_statement_lines (month, destination, transferred_fen, returned_fen, \
                                 transfer_count, return_count) VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(first)
                            .bind(l.destination.as_str())
                            .bind(l.transferred_fen)
                            .bind(l.returned_fen)
                            .bind(l.transfer_count)
                            .bind(l.return_count)
                            .execute(&mut *tx)
                            .await?;
                        }
                        at
                    }
                };
                save_response(&mut tx, &self.vault, idempotency, &answer(&statement, settle_time), at).await?;
                tx.commit().await?;
                Ok(Ok((statement, settle_time)))
            }

            async fn wallet_statement(
                &self,
                month: chrono::NaiveDate,
            ) -> Result<
                Option<($crate::domain::wallet_statement::WalletStatement, chrono::DateTime<chrono::Utc>)>,
                $crate::store::StoreError,
            > {
                let head: Option<(String, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT digest, settle_time FROM wallet_statements WHERE month = $1")
                        .bind(month)
                        .fetch_optional(&self.reads)
                        .await?;
                let Some((digest, settle_time)) = head else { return Ok(None) };
                let lines: Vec<$crate::store::wallet_statement::LineRow> = sqlx::query_as(
                    "SELECT destination, transferred_fen, returned_fen, transfer_count, return_count \
                     FROM wallet_statement_lines WHERE month = $1 ORDER BY destination",
                )
                .bind(month)
                .fetch_all(&self.reads)
                .await?;
                Ok(Some((
                    $crate::domain::wallet_statement::WalletStatement {
                        month,
                        lines: lines.into_iter().map(|l| l.open()).collect::<Result<_, _>>()?,
                        digest,
                    },
                    settle_time,
                )))
            }
        }
    };
}
