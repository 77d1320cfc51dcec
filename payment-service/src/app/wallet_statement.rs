//! The family wallet's monthly inter-province statement (U4).

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use super::{App, AppError, Registry};
use crate::{
    domain::wallet_statement::{self, WalletStatement},
    store::{MonthRefusal, WalletStatements},
};

/// A statement with when it was first made.
pub type StatedMonth = (WalletStatement, DateTime<Utc>);

impl<S: WalletStatements, R: Registry> App<S, R> {
    /// Makes the statement of the month starting `first` (again: the same one), once every
    /// day of it is settled.
    pub async fn settle_wallet_month(
        &self,
        first: NaiveDate,
        command: Command<StatedMonth>,
    ) -> Result<StatedMonth, AppError> {
        let (now, _) = self.now();
        let days = wallet_statement::days_of(first);
        let make = |digests: &[(NaiveDate, String)], lines| {
            wallet_statement::statement(first, digests, lines)
        };
        let answer = |s: &WalletStatement, at: DateTime<Utc>| command.response(&(s.clone(), at));
        let stated = self
            .store
            .settle_wallet_month(&days, now, make, command.idempotency(), answer)
            .await?
            .map_err(|refusal| match refusal {
                MonthRefusal::NotSettled { day } => AppError::MonthNotSettled { month: first, day },
            })?;
        tracing::info!(
            month = %first.format("%Y-%m"),
            digest = %stated.0.digest,
            lines = stated.0.lines.len(),
            "family wallet month stated"
        );
        Ok(stated)
    }

    /// The statement of the month starting `first`.
    pub async fn wallet_statement(&self, first: NaiveDate) -> Result<StatedMonth, AppError> {
        self.store
            .wallet_statement(first)
            .await?
            .ok_or(AppError::StatementNotFound { month: first })
    }
}
