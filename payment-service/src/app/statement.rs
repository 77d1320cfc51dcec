//! Yearly statements of personal accounts.

use chrono::{Datelike, NaiveDate};
use gongji_shared::IdNumber;

use super::{AccountRole, App, AppError};
use crate::{
    domain::statement::Statement,
    store::{Accounts, Statements},
};

/// A year's statement of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearStatement {
    pub holder: IdNumber,
    pub year: i32,
    pub statement: Statement,
    /// Whether the year has ended: its closing balances are final.
    pub complete: bool,
}

impl<S: Accounts + Statements, R> App<S, R> {
    /// The statement of `holder`'s account for `year`: from the year's first business day to
    /// its last (to today, for the current year).
    pub async fn account_statement(
        &self,
        holder: &IdNumber,
        year: i32,
    ) -> Result<YearStatement, AppError> {
        let today = self.clock.today();
        if year > today.year() {
            return Err(AppError::YearNotStarted { year, today });
        }
        let account = self.existing(holder, AccountRole::Holder).await?;
        let opened = gongji_shared::domain::clock::shanghai_date(account.open_time).year();
        if year < opened {
            return Err(AppError::YearBeforeAccount { year, opened });
        }
        let day = |month, day| {
            NaiveDate::from_ymd_opt(year, month, day)
                .ok_or(AppError::YearNotStarted { year, today })
        };
        let rows = self
            .store
            .statement_rows(holder, day(1, 1)?, day(12, 31)?)
            .await?;
        let statement = Statement::of(&rows);
        // Built from the entries, a statement always reconciles with them; one that does not
        // is a fault to look into, not an answer to give.
        if !statement.reconciles(None) {
            tracing::error!(holder = %holder, year, "a statement does not reconcile with its entries");
            return Err(crate::store::StoreError::Corrupt(
                "a statement does not reconcile with its entries".into(),
            )
            .into());
        }
        Ok(YearStatement {
            holder: holder.clone(),
            year,
            statement,
            complete: year < today.year(),
        })
    }
}
