//! SettlementService handlers.

use chrono::NaiveDate;
use gongji_proto::payment::v1::{
    GetSettlementRequest, GetSettlementResponse, LedgerViolation, SettleBusinessDayRequest,
    SettleBusinessDayResponse, VerifyLedgerRequest, VerifyLedgerResponse,
    settlement_service_server::SettlementService,
};
use gongji_shared::rpc::{ApiError, Idempotency, validate};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Context, convert, replay, replay_after_race, status, store_failure};
use crate::{
    domain::settlement::{self, CHECKS},
    store::{Store, StoreError},
};

/// The settlement API.
pub struct SettlementApi<S> {
    ctx: Context<S>,
}

impl<S: Store> SettlementApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }
}

fn business_date(value: &str) -> Result<NaiveDate, Status> {
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
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let date = business_date(&request.business_date)?;
        let today = self.ctx.clock.today();
        if date >= today {
            return Err(status(
                ApiError::failed_precondition(
                    "BUSINESS_DAY_NOT_CLOSED",
                    "a business day is settled after it ends (Asia/Shanghai midnight)",
                )
                .with_metadata("business_date", date)
                .with_metadata("today", today),
            ));
        }
        let idempotency = Idempotency::of(request_id.as_str(), "SettleBusinessDay", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        let respond = |s: &settlement::Settlement, at| {
            SettleBusinessDayResponse {
                settlement: Some(convert::settlement_to_pb(s, at)),
            }
            .encode_to_vec()
        };
        let compute = |entries: &[settlement::SettledEntry]| settlement::settle(date, entries);
        let bytes = match self
            .ctx
            .store
            .settle(date, self.ctx.clock.now(), compute, &idempotency, respond)
            .await
        {
            Ok(bytes) => bytes,
            Err(StoreError::RequestIdTaken) => {
                return replay_after_race(&self.ctx.store, &idempotency)
                    .await
                    .map(Response::new);
            }
            Err(e) => return Err(store_failure(e)),
        };
        let response = SettleBusinessDayResponse::decode(bytes.as_slice())
            .map_err(|_| status(ApiError::internal()))?;
        if let Some(s) = &response.settlement {
            tracing::info!(business_date = %date, movements = s.movement_count, digest = %s.digest, "business day settled");
        }
        Ok(Response::new(response))
    }

    async fn get_settlement(
        &self,
        request: Request<GetSettlementRequest>,
    ) -> Result<Response<GetSettlementResponse>, Status> {
        let date = business_date(&request.get_ref().business_date)?;
        let (settlement, at) = self
            .ctx
            .store
            .settlement(date)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found("SETTLEMENT_NOT_FOUND", "this business day is not settled")
                        .with_metadata("business_date", date),
                )
            })?;
        Ok(Response::new(GetSettlementResponse {
            settlement: Some(convert::settlement_to_pb(&settlement, at)),
        }))
    }

    async fn verify_ledger(
        &self,
        _request: Request<VerifyLedgerRequest>,
    ) -> Result<Response<VerifyLedgerResponse>, Status> {
        let (mut facts, settled) = self.ctx.store.ledger_facts().await.map_err(store_failure)?;
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
        Ok(Response::new(VerifyLedgerResponse {
            checks: CHECKS.iter().map(|c| (*c).to_owned()).collect(),
            violations: violations
                .into_iter()
                .map(|(check, detail)| LedgerViolation {
                    check: check.to_owned(),
                    detail,
                })
                .collect(),
        }))
    }
}
