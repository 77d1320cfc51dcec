//! SettlementService handlers.

use gongji_proto::payment::v1::{
    GetSettlementRequest, GetSettlementResponse, SettleBusinessDayRequest,
    SettleBusinessDayResponse, VerifyLedgerRequest, VerifyLedgerResponse,
    settlement_service_server::SettlementService,
};
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{Context, status};
use crate::store::Store;

/// The settlement API.
pub struct SettlementApi<S> {
    #[allow(dead_code)] // used once settlement lands (issue: payment-service)
    ctx: Context<S>,
}

impl<S: Store> SettlementApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }
}

fn business_date(value: &str) -> Result<chrono::NaiveDate, Status> {
    value.parse().map_err(|_| {
        status(ApiError::invalid_argument(
            "INVALID_DATE",
            "business_date",
            "business_date is an ISO 8601 date, e.g. 2024-11-15",
        ))
    })
}

#[tonic::async_trait]
impl<S: Store> SettlementService for SettlementApi<S> {
    async fn settle_business_day(
        &self,
        request: Request<SettleBusinessDayRequest>,
    ) -> Result<Response<SettleBusinessDayResponse>, Status> {
        let r = request.get_ref();
        validate::request_id(&r.request_id).map_err(status)?;
        business_date(&r.business_date)?;
        Err(status(ApiError::unimplemented("SettleBusinessDay")))
    }

    async fn get_settlement(
        &self,
        request: Request<GetSettlementRequest>,
    ) -> Result<Response<GetSettlementResponse>, Status> {
        business_date(&request.get_ref().business_date)?;
        Err(status(ApiError::unimplemented("GetSettlement")))
    }

    async fn verify_ledger(
        &self,
        _request: Request<VerifyLedgerRequest>,
    ) -> Result<Response<VerifyLedgerResponse>, Status> {
        Err(status(ApiError::unimplemented("VerifyLedger")))
    }
}
