//! Settlement between regions (S1) and verification of the ledger (S2).

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use super::{App, AppError};
use crate::{
    domain::settlement::{self, CHECKS, Settlement},
    store::Settlements,
};

/// What VerifyLedger found: the checks run and every violation, by check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    pub checks: Vec<&'static str>,
    pub violations: Vec<(&'static str, String)>,
}

impl<S: Settlements, R> App<S, R> {
    /// Settles a business day once it has ended (Asia/Shanghai midnight); a day settled
    /// before gives its stored settlement.
    pub async fn settle_business_day(
        &self,
        date: NaiveDate,
        command: Command<(Settlement, DateTime<Utc>)>,
    ) -> Result<(Settlement, DateTime<Utc>), AppError> {
        let today = self.clock.today();
        if date >= today {
            return Err(AppError::BusinessDayNotClosed { date, today });
        }
        let compute = |entries: &[settlement::SettledEntry]| settlement::settle(date, entries);
        let settled = self
            .store
            .settle(date, self.clock.now(), compute, &command, |s, at| (s, at))
            .await?;
        tracing::info!(business_date = %date, movements = settled.0.movement_count, digest = %settled.0.digest, "business day settled");
        Ok(settled)
    }

    /// The stored settlement of a day, with when it was made.
    pub async fn settlement(
        &self,
        date: NaiveDate,
    ) -> Result<(Settlement, DateTime<Utc>), AppError> {
        self.store
            .settlement(date)
            .await?
            .ok_or(AppError::SettlementNotFound { date })
    }

    /// Runs every ledger check, recomputing each settled day's digest.
    pub async fn verify_ledger(&self) -> Result<LedgerReport, AppError> {
        let (mut facts, settled) = self.store.ledger_facts().await?;
        for (stored, entries) in &settled {
            let again = settlement::settle(stored.business_date, entries);
            if again.digest != stored.digest {
                facts.digests_off.push(stored.business_date.to_string());
            }
        }
        let violations = settlement::verify(&facts);
        if !violations.is_empty() {
            tracing::error!(violations = violations.len(), "ledger violations found");
        }
        Ok(LedgerReport {
            checks: CHECKS.to_vec(),
            violations,
        })
    }
}
