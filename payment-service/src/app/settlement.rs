//! Settlement between regions (S1) and verification of the ledger (S2).

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::command::Command;

use super::{App, AppError};
use crate::{
    domain::settlement::{self, CHECKS, Settlement, VerifyCursor, VerifyLimits},
    store::Settlements,
};

/// What VerifyLedger found on one page of each sweep: the checks run and every violation,
/// by check; the settled days whose digests this call recomputed; and where the pass stands,
/// unless it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    pub checks: Vec<&'static str>,
    pub violations: Vec<(&'static str, String)>,
    pub verified_days: Vec<NaiveDate>,
    /// Where the next call goes on, when any sweep has rows left.
    pub next: Option<VerifyCursor>,
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
        let started = std::time::Instant::now();
        let settled = self
            .store
            .settle(date, self.clock.now(), compute, &command, |s, at| (s, at))
            .await;
        if let Some(metrics) = &self.metrics {
            let outcome = [(
                "outcome",
                if settled.is_ok() { "settled" } else { "failed" },
            )];
            metrics
                .counter("gongji_settlement_runs_total", &outcome)
                .increment(1);
            metrics
                .histogram("gongji_settlement_run_seconds", &outcome)
                .record(started.elapsed().as_secs_f64());
        }
        let settled = settled?;
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

    /// Runs every ledger check on one snapshot, over the next page of each sweep after
    /// `cursor` (at most `limits` rows each): a call's work and memory stay bounded whatever
    /// the size of the ledger, and following `next` covers every account, movement, premium
    /// payment and settled day.
    pub async fn verify_ledger(
        &self,
        cursor: &VerifyCursor,
        limits: VerifyLimits,
    ) -> Result<LedgerReport, AppError> {
        let (mut facts, settled, next) = self
            .store
            .ledger_facts(cursor, limits, self.clock.today())
            .await?;
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
            verified_days: settled.iter().map(|(s, _)| s.business_date).collect(),
            next: (!next.is_done()).then_some(next),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gongji_shared::{Clock, command::Idempotency};
    use sqlx::Connection as _;

    use super::*;
    use crate::{
        app::fakes::{FakeRegistry, account},
        domain::settlement::Sweep,
        store::{Accounts as _, Database as _, SqliteStore},
    };

    const ACCOUNTS: u32 = 7;
    const PER_PAGE: usize = 3;

    fn holder(i: u32) -> String {
        gongji_shared::IdNumber::with_check_char(&format!("34050419800101{i:03}"))
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[tokio::test]
    async fn a_pass_pages_through_every_account_a_bounded_page_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("payment.db").display());
        let vault = gongji_shared::vault::Vault::generate();
        let store = SqliteStore::connect(&url, vault.clone()).await.unwrap();
        store.migrate().await.unwrap();
        for i in 0..ACCOUNTS {
            let open = Idempotency::new(&format!("open-{i}"), "OpenAccount", b"o");
            store
                .open_account(&account(&holder(i), "0.00"), &open, b"")
                .await
                .unwrap();
        }
        // The fifth account's balance no longer equals its entries (none).
        let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
        // Rows are stored under the keyed index of their holder's ID number.
        sqlx::query("UPDATE accounts SET prior_fen = 5 WHERE holder = $1")
            .bind(vault.index(&gongji_shared::IdNumber::parse(&holder(4)).unwrap()))
            .execute(&mut raw)
            .await
            .unwrap();
        let policy = Arc::new(gongji_shared::Policy::load_or_default(None).unwrap());
        let clock = Clock::parse("2024-11-15T10:00:00+08:00").unwrap();
        let app = App::new(store, FakeRegistry::default(), policy, clock);
        let limits = VerifyLimits {
            accounts: PER_PAGE,
            ..VerifyLimits::with_days(10)
        };
        let mut cursor = VerifyCursor::start();
        let mut pages = Vec::new();
        loop {
            let report = app.verify_ledger(&cursor, limits).await.unwrap();
            pages.push(
                report
                    .violations
                    .iter()
                    .map(|(check, _)| *check)
                    .collect::<Vec<_>>(),
            );
            match report.next {
                Some(next) => {
                    assert!(
                        matches!(next.accounts, Sweep::After(_)),
                        "only accounts remain: {next:?}"
                    );
                    cursor = next;
                }
                None => break,
            }
        }
        // Seven accounts, three per call: three calls, and the broken one found in the second,
        // by its balance and by its statement.
        assert_eq!(
            pages,
            [
                vec![],
                vec!["BALANCE_EQUALS_ENTRIES", "STATEMENTS_RECONCILE"],
                vec![]
            ]
        );
    }
}
