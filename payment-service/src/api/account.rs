//! AccountService handlers.

use gongji_proto::payment::v1::{
    CloseYearRequest, CloseYearResponse, CreditAccountRequest, CreditAccountResponse,
    GetAccountRequest, GetAccountResponse, ListAccountEntriesRequest, ListAccountEntriesResponse,
    OpenAccountRequest, OpenAccountResponse, account_service_server::AccountService,
};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::{
    CoverageYear,
    domain::money::format_signed_fen,
    rpc::{ApiError, validate},
};
use tonic::{Request, Response, Status};

use super::{convert, failure, page_token, status};
use crate::{
    app::{AccountView, App, Credited, Registry, YearClosed},
    store::Store,
};

/// The account API.
pub struct AccountApi<S, R> {
    app: App<S, R>,
}

impl<S, R> AccountApi<S, R> {
    pub fn new(app: App<S, R>) -> Self {
        Self { app }
    }
}

/// A credit's memo: at most 256 characters, trimmed, without control characters.
fn memo(value: &str) -> Result<String, Status> {
    let memo = value.trim();
    if memo.chars().count() > validate::MAX_REASON_CHARS || memo.chars().any(char::is_control) {
        return Err(status(ApiError::invalid_argument(
            "INVALID_MEMO",
            "memo",
            "memo has at most 256 characters and no control characters",
        )));
    }
    Ok(memo.to_owned())
}

fn account_to_pb(view: &AccountView) -> gongji_proto::payment::v1::Account {
    convert::account_to_pb(&view.account, &view.usable_buckets)
}

#[tonic::async_trait]
impl<S: Store, R: Registry> AccountService for AccountApi<S, R> {
    async fn open_account(
        &self,
        request: Request<OpenAccountRequest>,
    ) -> Result<Response<OpenAccountResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder = validate::id_number(&request.holder_id_number, "holder_id_number", today)
            .map_err(status)?;
        caller.require_party(&[&holder]).map_err(status)?;
        let region = validate::region_code(&request.region_code, "region_code").map_err(status)?;
        let to_wire = |v: &AccountView| OpenAccountResponse {
            account: Some(account_to_pb(v)),
        };
        command(
            &self.app,
            &request_id,
            "OpenAccount",
            &request,
            to_wire,
            |c| self.app.open_account(holder, region, c),
        )
        .await
    }

    async fn credit_account(
        &self,
        request: Request<CreditAccountRequest>,
    ) -> Result<Response<CreditAccountResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder = validate::id_number(&request.holder_id_number, "holder_id_number", today)
            .map_err(status)?;
        caller.require_party(&[&holder]).map_err(status)?;
        let amount = validate::positive_money(&request.amount, "amount").map_err(status)?;
        let bucket = convert::bucket_from_pb(request.bucket, "bucket").map_err(status)?;
        let memo = memo(&request.memo)?;
        let to_wire = |c: &Credited| CreditAccountResponse {
            account: Some(account_to_pb(&c.account)),
            entry: Some(convert::entry_to_pb(&c.entry)),
        };
        command(
            &self.app,
            &request_id,
            "CreditAccount",
            &request,
            to_wire,
            |c| self.app.credit_account(holder, amount, bucket, memo, c),
        )
        .await
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        let today = self.app.today();
        let holder = validate::id_number(
            &request.get_ref().holder_id_number,
            "holder_id_number",
            today,
        )
        .map_err(status)?;
        Caller::of(&request)
            .require_party(&[&holder])
            .map_err(status)?;
        let view = self.app.account(&holder).await.map_err(failure)?;
        Ok(Response::new(GetAccountResponse {
            account: Some(account_to_pb(&view)),
        }))
    }

    async fn list_account_entries(
        &self,
        request: Request<ListAccountEntriesRequest>,
    ) -> Result<Response<ListAccountEntriesResponse>, Status> {
        let today = self.app.today();
        let r = request.get_ref();
        let holder =
            validate::id_number(&r.holder_id_number, "holder_id_number", today).map_err(status)?;
        Caller::of(&request)
            .require_party(&[&holder])
            .map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let entries = self
            .app
            .account_entries(&holder, before, page_size + 1)
            .await
            .map_err(failure)?;
        let (entries, next_page_token) = validate::page(entries, page_size, |e| e.entry_id);
        Ok(Response::new(ListAccountEntriesResponse {
            entries: entries.iter().map(convert::entry_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn close_year(
        &self,
        request: Request<CloseYearRequest>,
    ) -> Result<Response<CloseYearResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder = validate::id_number(&request.holder_id_number, "holder_id_number", today)
            .map_err(status)?;
        caller.require_party(&[&holder]).map_err(status)?;
        let year = request.year;
        CoverageYear::parse(year).map_err(|_| {
            status(
                ApiError::invalid_argument(
                    "INVALID_YEAR",
                    "year",
                    "year must be from 2000 to 2100",
                )
                .with_metadata("year", year),
            )
        })?;
        let to_wire = |c: &YearClosed| CloseYearResponse {
            account: Some(account_to_pb(&c.account)),
            moved_amount: format_signed_fen(c.moved_fen),
        };
        command(
            &self.app,
            &request_id,
            "CloseYear",
            &request,
            to_wire,
            |c| self.app.close_year(holder, year, c),
        )
        .await
    }
}
