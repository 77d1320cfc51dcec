//! SettlementService handlers.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_proto::payment::v1::{
    GetSettlementRequest, GetSettlementResponse, LedgerViolation, ReconcileBindingUsesRequest,
    ReconcileBindingUsesResponse, SettleBusinessDayRequest, SettleBusinessDayResponse,
    VerifyLedgerRequest, VerifyLedgerResponse, settlement_service_server::SettlementService,
};
use gongji_shared::rpc::command;
use gongji_shared::rpc::validate;
use tonic::{Request, Response, Status};

use super::{convert, failure, status};
use crate::{
    app::{App, Registry},
    domain::settlement::Settlement,
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
        let after = match r.page_token.as_str() {
            "" => None,
            token => {
                Some(validate::date(token, "page_token", "INVALID_PAGE_TOKEN").map_err(status)?)
            }
        };
        let days = validate::page_size(r.page_size).map_err(status)?;
        let report = self.app.verify_ledger(after, days).await.map_err(failure)?;
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
            next_page_token: report.next_after.map(|d| d.to_string()).unwrap_or_default(),
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
