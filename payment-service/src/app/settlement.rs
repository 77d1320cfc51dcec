//! Settlement between regions (S1) and verification of the ledger (S2).

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use super::{App, AppError};
use crate::{
    domain::settlement::{self, CHECKS, Settlement},
    store::Settlements,
};

/// What VerifyLedger found: the checks run and every violation, by check; the settled
/// days whose digests this call recomputed, and whether more remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    pub checks: Vec<&'static str>,
    pub violations: Vec<(&'static str, String)>,
    pub verified_days: Vec<NaiveDate>,
    /// The last day verified, when settled days remain after it.
    pub next_after: Option<NaiveDate>,
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

    /// Runs every ledger check on one snapshot, recomputing the digests of up to `days`
    /// settled days after `after`: a call's work stays bounded, and paging through
    /// `next_after` covers every settled day.
    pub async fn verify_ledger(
        &self,
        after: Option<NaiveDate>,
        days: u32,
    ) -> Result<LedgerReport, AppError> {
        // One more than asked tells whether another page follows.
        let (mut facts, mut settled) = self.store.ledger_facts(after, days + 1).await?;
        let more = settled.len() > days as usize;
        settled.truncate(days as usize);
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
        let verified_days: Vec<NaiveDate> = settled.iter().map(|(s, _)| s.business_date).collect();
        Ok(LedgerReport {
            checks: CHECKS.to_vec(),
            violations,
            next_after: more.then(|| verified_days.last().copied()).flatten(),
            verified_days,
        })
    }
}
