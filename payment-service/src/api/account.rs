//! AccountService handlers.

use gongji_proto::payment::v1::{
    CloseYearForAllAccountsRequest, CloseYearForAllAccountsResponse, CloseYearRequest,
    CloseYearResponse, CreditAccountRequest, CreditAccountResponse, GetAccountRequest,
    GetAccountResponse, GetAccountStatementRequest, GetAccountStatementResponse,
    ListAccountEntriesRequest, ListAccountEntriesResponse, ListFamilyUsageRequest,
    ListFamilyUsageResponse, OpenAccountRequest, OpenAccountResponse, ResealPersonalDataRequest,
    ResealPersonalDataResponse, WatchAccountEventsRequest, WatchAccountEventsResponse,
    account_service_server::AccountService,
};
use gongji_shared::db::reseal::{RESEAL_BATCH, ResealStep};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::rpc::watch::{WatchStream, Watchers};
use gongji_shared::{
    CoverageYear,
    domain::money::format_signed_fen,
    rpc::{ApiError, validate},
};
use tonic::{Request, Response, Status};

use super::{
    convert, date_range, failure, optional_id, page_token, status, watch::AccountEventFeed,
};
use crate::{
    app::{AccountView, App, Credited, Registry, YearBatch, YearClosed},
    domain::usage::{UseFilter, UseParties},
    store::Store,
};

/// The account API.
pub struct AccountApi<S, R> {
    app: App<S, R>,
    watchers: Watchers,
}

impl<S, R> AccountApi<S, R> {
    pub fn new(app: App<S, R>, watchers: Watchers) -> Self {
        Self { app, watchers }
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

/// The account holder a read names, who must be the person the caller acts for, if any.
fn party_holder<T>(
    request: &Request<T>,
    value: &str,
    today: chrono::NaiveDate,
) -> Result<gongji_shared::IdNumber, Status> {
    let holder = validate::id_number(value, "holder_id_number", today).map_err(status)?;
    Caller::of(request)
        .require_party(&[&holder])
        .map_err(status)?;
    Ok(holder)
}

/// A year field: from 2000 to 2100.
/// A count of accounts in a page (at most the page size) on the wire.
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn year(year: i32) -> Result<i32, Status> {
    CoverageYear::parse(year).map_err(|_| {
        status(
            ApiError::invalid_argument("INVALID_YEAR", "year", "year must be from 2000 to 2100")
                .with_metadata("year", year),
        )
    })?;
    Ok(year)
}

/// What a family usage listing asks for.
fn usage_filter(r: &ListFamilyUsageRequest, today: chrono::NaiveDate) -> Result<UseFilter, Status> {
    let authorizer = optional_id(&r.authorizer_id_number, "authorizer_id_number", today)?;
    let beneficiary = optional_id(&r.beneficiary_id_number, "beneficiary_id_number", today)?;
    let parties = UseParties::parse(authorizer, beneficiary).ok_or_else(|| {
        status(ApiError::invalid_argument(
            "PARTY_REQUIRED",
            "authorizer_id_number",
            "name the authorizer, the beneficiary, or both",
        ))
    })?;
    let range = date_range(&r.start_date, &r.end_date, today)?;
    let purpose = convert::usage_purpose_from_pb(r.purpose).map_err(status)?;
    Ok(UseFilter {
        parties,
        range,
        purpose,
    })
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
        let holder = party_holder(&request, &request.get_ref().holder_id_number, today)?;
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
        let holder = party_holder(&request, &r.holder_id_number, today)?;
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

    async fn list_family_usage(
        &self,
        request: Request<ListFamilyUsageRequest>,
    ) -> Result<Response<ListFamilyUsageResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let filter = usage_filter(r, today)?;
        caller
            .require_party(&filter.parties.named())
            .map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let mut usage = self
            .app
            .family_usage(&filter, before, page_size + 1)
            .await
            .map_err(failure)?;
        let (uses, next_page_token) =
            validate::page(std::mem::take(&mut usage.uses), page_size, |u| u.use_id);
        Ok(Response::new(ListFamilyUsageResponse {
            uses: uses
                .iter()
                .map(|u| convert::use_to_pb(u, &usage, &caller))
                .collect(),
            next_page_token,
            totals: usage
                .totals
                .iter()
                .map(|t| convert::use_total_to_pb(t, &usage, &caller))
                .collect(),
        }))
    }

    type WatchAccountEventsStream = WatchStream<WatchAccountEventsResponse>;

    async fn watch_account_events(
        &self,
        request: Request<WatchAccountEventsRequest>,
    ) -> Result<Response<Self::WatchAccountEventsStream>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let holder = optional_id(&r.holder_id_number, "holder_id_number", today)?;
        caller
            .require_party(&holder.iter().collect::<Vec<_>>())
            .map_err(status)?;
        let feed = AccountEventFeed {
            app: self.app.clone(),
            holder,
        };
        let stream =
            self.watchers
                .watch(feed, &caller.identity, r.after_position, "after_position")?;
        Ok(Response::new(stream))
    }

    async fn get_account_statement(
        &self,
        request: Request<GetAccountStatementRequest>,
    ) -> Result<Response<GetAccountStatementResponse>, Status> {
        let today = self.app.today();
        let r = request.get_ref();
        let holder = party_holder(&request, &r.holder_id_number, today)?;
        let year = year(r.year)?;
        let statement = self
            .app
            .account_statement(&holder, year)
            .await
            .map_err(failure)?;
        Ok(Response::new(GetAccountStatementResponse {
            statement: Some(convert::statement_to_pb(&statement)),
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
        let year = year(request.year)?;
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

    async fn close_year_for_all_accounts(
        &self,
        request: Request<CloseYearForAllAccountsRequest>,
    ) -> Result<Response<CloseYearForAllAccountsResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let year = year(request.year)?;
        let page_size = validate::page_size(request.page_size).map_err(status)?;
        let after = page_token(&request.page_token)?.unwrap_or(0);
        let to_wire = |b: &YearBatch| CloseYearForAllAccountsResponse {
            accounts_seen: count(b.seen),
            accounts_closed: count(b.closed),
            accounts_nothing_to_move: count(b.nothing_to_move),
            accounts_opened_after: count(b.opened_after),
            accounts_retry_later: count(b.retry_later),
            moved_amount: format_signed_fen(b.moved_fen),
            next_page_token: b.next.map(|n| n.to_string()).unwrap_or_default(),
        };
        // Each account's closing is recorded under a request ID of its own, the same in
        // every run for the year and account: a second run finds the year closed.
        let part = move |no: i64| {
            let part_id = format!("gongji-close-year-{year}-account-{no}");
            let part_request = CloseYearRequest {
                request_id: part_id.clone(),
                holder_id_number: String::new(),
                year,
            };
            gongji_shared::rpc::part_command(
                &part_id,
                "CloseYear",
                &part_request,
                |c: &YearClosed| CloseYearResponse {
                    account: Some(account_to_pb(&c.account)),
                    moved_amount: format_signed_fen(c.moved_fen),
                },
            )
        };
        command(
            &self.app,
            &request_id,
            "CloseYearForAllAccounts",
            &request,
            to_wire,
            |c| self.app.close_year_for_all(year, after, page_size, part, c),
        )
        .await
    }

    async fn reseal_personal_data(
        &self,
        request: Request<ResealPersonalDataRequest>,
    ) -> Result<Response<ResealPersonalDataResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let batch = validate::batch_size_or_limit(
            request.batch_size,
            RESEAL_BATCH as usize,
            "batch_size",
            "values",
        )
        .map_err(status)? as i64;
        let to_wire = |step: &ResealStep| ResealPersonalDataResponse {
            rewritten_values: i64::try_from(step.rewritten).unwrap_or(i64::MAX),
            done: step.done,
            retired_key_versions: step.retired.clone(),
        };
        command(
            &self.app,
            &request_id,
            "ResealPersonalData",
            &request,
            to_wire,
            |c| self.app.reseal_personal_data(batch, c),
        )
        .await
    }
}
