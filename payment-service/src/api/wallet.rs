//! WalletService handlers.

use gongji_proto::payment::v1::{
    self as pb, ConfirmWalletTransferRequest, ConfirmWalletTransferResponse,
    GetWalletStatementRequest, GetWalletStatementResponse, GetWalletTransferRequest,
    GetWalletTransferResponse, ReturnWalletTransferRequest, ReturnWalletTransferResponse,
    SettleWalletMonthRequest, SettleWalletMonthResponse, TransferToFamilyWalletRequest,
    TransferToFamilyWalletResponse, wallet_service_server::WalletService,
};
use gongji_shared::rpc::{auth::Caller, command, timestamp, validate};
use tonic::{Request, Response, Status};

use super::{convert, failure, status};
use crate::{
    app::{App, Registry, StatedMonth, TransferOrder},
    domain::{
        wallet::{Settle, TransferState, WalletTransfer},
        wallet_statement,
    },
    store::Store,
};

/// Longest transfer ID accepted.
const MAX_TRANSFER_ID_LEN: usize = 64;

/// The wallet API.
pub struct WalletApi<S, R> {
    app: App<S, R>,
}

impl<S, R> WalletApi<S, R> {
    pub fn new(app: App<S, R>) -> Self {
        Self { app }
    }
}

fn transfer_id(id: &str) -> Result<String, Status> {
    validate::identifier(
        id,
        "transfer_id",
        "INVALID_TRANSFER_ID",
        MAX_TRANSFER_ID_LEN,
    )
    .map_err(status)
}

fn month(value: &str) -> Result<chrono::NaiveDate, Status> {
    wallet_statement::parse_month(value)
        .filter(|m| gongji_shared::CoverageYear::parse(chrono::Datelike::year(m)).is_ok())
        .ok_or_else(|| {
            status(
                gongji_shared::rpc::ApiError::invalid_argument(
                    "INVALID_MONTH",
                    "month",
                    "month is written YYYY-MM, e.g. 2026-11",
                )
                .with_metadata("month", value.chars().take(16).collect::<String>()),
            )
        })
}

fn statement_to_pb((s, at): &StatedMonth) -> pb::WalletStatement {
    let yuan = gongji_shared::domain::money::format_signed_fen;
    pb::WalletStatement {
        month: s.month.format("%Y-%m").to_string(),
        lines: s
            .lines
            .iter()
            .map(|l| pb::WalletStatementLine {
                destination_province_code: l.destination.as_str().to_owned(),
                transferred_amount: yuan(l.transferred_fen),
                returned_amount: yuan(l.returned_fen),
                net_amount: yuan(l.net_fen()),
                transfer_count: l.transfer_count,
                return_count: l.return_count,
            })
            .collect(),
        digest: s.digest.clone(),
        settle_time: Some(timestamp(*at)),
    }
}

fn transfer_to_pb(t: &WalletTransfer) -> pb::WalletTransfer {
    pb::WalletTransfer {
        transfer_id: t.transfer_id.clone(),
        request_id: t.request_id.clone(),
        authorizer_id_number: t.authorizer.as_str().to_owned(),
        beneficiary_id_number: t.beneficiary.as_str().to_owned(),
        amount: t.amount.to_string(),
        draws: t.draws.iter().map(convert::draw_to_pb).collect(),
        destination_province_code: t.destination.as_str().to_owned(),
        binding_id: t.binding_id.clone(),
        binding_version: t.binding_version,
        state: match t.state {
            TransferState::Pending => pb::WalletTransferState::Pending,
            TransferState::Confirmed => pb::WalletTransferState::Confirmed,
            TransferState::Returned => pb::WalletTransferState::Returned,
        } as i32,
        create_time: Some(timestamp(t.create_time)),
        business_date: t.business_date.to_string(),
        confirm_deadline: Some(timestamp(t.confirm_deadline)),
        movement_id: t.movement_id.clone(),
    }
}

#[tonic::async_trait]
impl<S: Store, R: Registry> WalletService for WalletApi<S, R> {
    async fn transfer_to_family_wallet(
        &self,
        request: Request<TransferToFamilyWalletRequest>,
    ) -> Result<Response<TransferToFamilyWalletResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let today = self.app.today();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let order = TransferOrder {
            authorizer: validate::id_number(
                &request.authorizer_id_number,
                "authorizer_id_number",
                today,
            )
            .map_err(status)?,
            beneficiary: validate::id_number(
                &request.beneficiary_id_number,
                "beneficiary_id_number",
                today,
            )
            .map_err(status)?,
            amount: validate::positive_money(&request.amount, "amount").map_err(status)?,
        };
        // Only the authorizer moves her money.
        caller.require_party(&[&order.authorizer]).map_err(status)?;
        let to_wire = |t: &WalletTransfer| TransferToFamilyWalletResponse {
            transfer: Some(transfer_to_pb(t)),
        };
        command(
            &self.app,
            &request_id,
            "TransferToFamilyWallet",
            &request,
            to_wire,
            |c| self.app.transfer_to_wallet(order, c),
        )
        .await
    }

    async fn get_wallet_transfer(
        &self,
        request: Request<GetWalletTransferRequest>,
    ) -> Result<Response<GetWalletTransferResponse>, Status> {
        let id = transfer_id(&request.get_ref().transfer_id)?;
        let transfer = self.app.wallet_transfer(&id).await.map_err(failure)?;
        Caller::of(&request)
            .require_party(&[&transfer.authorizer, &transfer.beneficiary])
            .map_err(status)?;
        Ok(Response::new(GetWalletTransferResponse {
            transfer: Some(transfer_to_pb(&transfer)),
        }))
    }

    async fn confirm_wallet_transfer(
        &self,
        request: Request<ConfirmWalletTransferRequest>,
    ) -> Result<Response<ConfirmWalletTransferResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = transfer_id(&request.transfer_id)?;
        let to_wire = |t: &WalletTransfer| ConfirmWalletTransferResponse {
            transfer: Some(transfer_to_pb(t)),
        };
        command(
            &self.app,
            &request_id,
            "ConfirmWalletTransfer",
            &request,
            to_wire,
            |c| async move {
                self.app
                    .settle_wallet_transfer(&id, Settle::Confirm, c)
                    .await
            },
        )
        .await
    }

    async fn return_wallet_transfer(
        &self,
        request: Request<ReturnWalletTransferRequest>,
    ) -> Result<Response<ReturnWalletTransferResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = transfer_id(&request.transfer_id)?;
        let to_wire = |t: &WalletTransfer| ReturnWalletTransferResponse {
            transfer: Some(transfer_to_pb(t)),
        };
        command(
            &self.app,
            &request_id,
            "ReturnWalletTransfer",
            &request,
            to_wire,
            |c| async move {
                self.app
                    .settle_wallet_transfer(&id, Settle::Return, c)
                    .await
            },
        )
        .await
    }

    async fn settle_wallet_month(
        &self,
        request: Request<SettleWalletMonthRequest>,
    ) -> Result<Response<SettleWalletMonthResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let first = month(&request.month)?;
        let to_wire = |s: &StatedMonth| SettleWalletMonthResponse {
            statement: Some(statement_to_pb(s)),
        };
        command(
            &self.app,
            &request_id,
            "SettleWalletMonth",
            &request,
            to_wire,
            |c| self.app.settle_wallet_month(first, c),
        )
        .await
    }

    async fn get_wallet_statement(
        &self,
        request: Request<GetWalletStatementRequest>,
    ) -> Result<Response<GetWalletStatementResponse>, Status> {
        let first = month(&request.get_ref().month)?;
        let stated = self.app.wallet_statement(first).await.map_err(failure)?;
        Ok(Response::new(GetWalletStatementResponse {
            statement: Some(statement_to_pb(&stated)),
        }))
    }
}
