//! SettlementService handlers.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_proto::payment::v1::{
    GetSettlementRequest, GetSettlementResponse, LedgerViolation, ReconcileBindingUsesRequest,
    ReconcileBindingUsesResponse, SettleBusinessDayRequest, SettleBusinessDayResponse,
    VerifyLedgerRequest, VerifyLedgerResponse, settlement_service_server::SettlementService,
};
use gongji_shared::rpc::command;
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{convert, failure, status};
use crate::{
    app::{App, Registry},
    domain::settlement::{Settlement, Sweep, VerifyCursor, VerifyLimits},
    store::Store,
};

/// The settlement API.
pub struct SettlementApi<S, R> {
    app: App<S, R>,
}

impl<S, R> SettlementApi<S, R> {
    pub fn new(app: App<S, R>) -> Self {
        Self { app }
    }
}

/// The longest binding ID binding-service issues.
const MAX_BINDING_ID_LEN: usize = 64;

fn business_date(value: &str) -> Result<NaiveDate, Status> {
    validate::date(value, "business_date", "INVALID_DATE").map_err(status)
}

#[tonic::async_trait]
impl<S: Store, R: Registry> SettlementService for SettlementApi<S, R> {
    async fn settle_business_day(
        &self,
        request: Request<SettleBusinessDayRequest>,
    ) -> Result<Response<SettleBusinessDayResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let date = business_date(&request.business_date)?;
        let to_wire = |(s, at): &(Settlement, DateTime<Utc>)| SettleBusinessDayResponse {
            settlement: Some(convert::settlement_to_pb(s, *at)),
        };
        command(
            &self.app,
            &request_id,
            "SettleBusinessDay",
            &request,
            to_wire,
            |c| self.app.settle_business_day(date, c),
        )
        .await
    }

    async fn get_settlement(
        &self,
        request: Request<GetSettlementRequest>,
    ) -> Result<Response<GetSettlementResponse>, Status> {
        let date = business_date(&request.get_ref().business_date)?;
        let (settlement, at) = self.app.settlement(date).await.map_err(failure)?;
        Ok(Response::new(GetSettlementResponse {
            settlement: Some(convert::settlement_to_pb(&settlement, at)),
        }))
    }

    async fn verify_ledger(
        &self,
        request: Request<VerifyLedgerRequest>,
    ) -> Result<Response<VerifyLedgerResponse>, Status> {
        let r = request.get_ref();
        let cursor = verify_cursor(&r.page_token).map_err(status)?;
        let days = validate::page_size(r.page_size).map_err(status)?;
        let limits = VerifyLimits::with_days(days as usize);
        let report = self
            .app
            .verify_ledger(&cursor, limits)
            .await
            .map_err(failure)?;
        Ok(Response::new(VerifyLedgerResponse {
            checks: report.checks.iter().map(|c| (*c).to_owned()).collect(),
            violations: report
                .violations
                .into_iter()
                .map(|(check, detail)| LedgerViolation {
                    check: check.to_owned(),
                    detail,
                })
                .collect(),
            verified_business_dates: report
                .verified_days
                .iter()
                .map(ToString::to_string)
                .collect(),
            next_page_token: report.next.as_ref().map(verify_token).unwrap_or_default(),
        }))
    }

    async fn reconcile_binding_uses(
        &self,
        request: Request<ReconcileBindingUsesRequest>,
    ) -> Result<Response<ReconcileBindingUsesResponse>, Status> {
        let binding_id = validate::identifier(
            &request.get_ref().binding_id,
            "binding_id",
            "INVALID_BINDING_ID",
            MAX_BINDING_ID_LEN,
        )
        .map_err(status)?;
        let report = self
            .app
            .reconcile_binding_uses(&binding_id)
            .await
            .map_err(failure)?;
        Ok(Response::new(ReconcileBindingUsesResponse {
            clean: report.is_clean(),
            debit_count: i64::from(report.debits_checked),
            use_count: i64::from(report.uses_checked),
            debits_without_use: report.debits_without_use,
            uses_without_debit: report.uses_without_debit,
            in_flight: report.in_flight,
        }))
    }
}

/// The tag of a VerifyLedger page token: `v1:ACCOUNT:MOVEMENT:PREMIUM:DAY`, each position the
/// last row checked, or `-` once its sweep is done.
const VERIFY_TOKEN_TAG: &str = "v1";

/// The page token of where a VerifyLedger pass stands.
fn verify_token(cursor: &VerifyCursor) -> String {
    fn part<T: ToString>(sweep: &Sweep<T>) -> String {
        match sweep {
            Sweep::After(t) => t.to_string(),
            Sweep::Start => String::new(),
            Sweep::Done => "-".to_owned(),
        }
    }
    format!(
        "{VERIFY_TOKEN_TAG}:{}:{}:{}:{}",
        part(&cursor.accounts),
        part(&cursor.movements),
        part(&cursor.premiums),
        part(&cursor.days)
    )
}

/// Where a VerifyLedger pass stands, from its page token: empty for a new pass. A bare date
/// (the tokens of earlier releases, which paged settled days only) goes on with the days.
fn verify_cursor(token: &str) -> Result<VerifyCursor, ApiError> {
    let invalid = || {
        ApiError::invalid_argument(
            "INVALID_PAGE_TOKEN",
            "page_token",
            "not a page token of VerifyLedger",
        )
    };
    if token.is_empty() {
        return Ok(VerifyCursor::start());
    }
    if let Ok(day) = validate::date(token, "page_token", "INVALID_PAGE_TOKEN") {
        return Ok(VerifyCursor {
            accounts: Sweep::Done,
            movements: Sweep::Done,
            premiums: Sweep::Done,
            days: Sweep::After(day),
        });
    }
    let parts: Vec<&str> = token.split(':').collect();
    let [tag, accounts, movements, premiums, days] = parts.as_slice() else {
        return Err(invalid());
    };
    if *tag != VERIFY_TOKEN_TAG {
        return Err(invalid());
    }
    fn sweep<T>(part: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Sweep<T>> {
        match part {
            "" => Some(Sweep::Start),
            "-" => Some(Sweep::Done),
            p => parse(p).map(Sweep::After),
        }
    }
    let number = |p: &str| p.parse::<i64>().ok().filter(|n| *n >= 0);
    let movement = |p: &str| {
        (p.len() <= MAX_MOVEMENT_ID_LEN
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| p.to_owned())
    };
    let day = |p: &str| validate::date(p, "page_token", "INVALID_PAGE_TOKEN").ok();
    Ok(VerifyCursor {
        accounts: sweep(accounts, number).ok_or_else(invalid)?,
        movements: sweep(movements, movement).ok_or_else(invalid)?,
        premiums: sweep(premiums, number).ok_or_else(invalid)?,
        days: sweep(days, day).ok_or_else(invalid)?,
    })
}

/// The longest movement ID a page token may carry (a UUID is 36).
const MAX_MOVEMENT_ID_LEN: usize = 64;

#[cfg(test)]
mod verify_token_tests {
    use super::*;

    #[test]
    fn a_page_token_round_trips_and_a_foreign_one_is_refused() {
        let cursor = VerifyCursor {
            accounts: Sweep::After(2000),
            movements: Sweep::After("6f1c2d3e-0000-4000-8000-000000000001".to_owned()),
            premiums: Sweep::Done,
            days: Sweep::After(NaiveDate::from_ymd_opt(2024, 11, 15).unwrap()),
        };
        let token = verify_token(&cursor);
        assert_eq!(verify_cursor(&token).unwrap(), cursor);
        assert_eq!(verify_cursor("").unwrap(), VerifyCursor::start());
        let old = verify_cursor("2024-11-15").unwrap();
        assert_eq!(old.days, cursor.days);
        assert!(old.accounts.is_done() && old.movements.is_done());
        for bad in [
            "not-a-day",
            "v2:1:-:-:-",
            "v1:1:-:-",
            "v1:-1:-:-:-",
            "v1:x:-:-:-",
            "v1:-:a b:-:-",
            "v1:-:-:-:2024-13-01",
        ] {
            assert_eq!(
                verify_cursor(bad).unwrap_err().reason(),
                "INVALID_PAGE_TOKEN",
                "{bad}"
            );
        }
    }
}
