//! AccountService handlers.

use chrono::Datelike;
use gongji_proto::binding::v1::EnrollmentStatus;
use gongji_proto::payment::v1::{
    CloseYearRequest, CloseYearResponse, CreditAccountRequest, CreditAccountResponse,
    GetAccountRequest, GetAccountResponse, ListAccountEntriesRequest, ListAccountEntriesResponse,
    OpenAccountRequest, OpenAccountResponse, account_service_server::AccountService,
};
use gongji_shared::{
    IdNumber, RegionCode,
    clock::shanghai_date,
    policy::Bucket,
    rpc::{ApiError, Idempotency, validate},
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    Context, convert, page_token, replay, replay_after_race, status, store_failure, unavailable,
};
use crate::{
    domain::{Account, AccountEntry, Movement, MovementKind, close_year, credit},
    store::{Store, StoreError},
};

/// The account API.
pub struct AccountApi<S> {
    ctx: Context<S>,
}

impl<S: Store> AccountApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }

    /// The buckets family may use today, in drawing order (none when no policy is in force).
    fn usable_buckets(&self) -> Vec<Bucket> {
        self.ctx
            .policy
            .rules_on(self.ctx.clock.today())
            .map(|r| r.usable_buckets.clone())
            .unwrap_or_default()
    }

    /// A personal account belongs to an employee-insured person, in the region of that
    /// enrollment: the registry (binding-service) says so, or no account is opened.
    async fn check_employee_insured(
        &self,
        holder: &IdNumber,
        region: &RegionCode,
    ) -> Result<(), Status> {
        let person = self.ctx.binding.person(holder).await.map_err(unavailable)?;
        let Some(person) = person else {
            return Err(status(
                ApiError::failed_precondition(
                    "PERSON_NOT_FOUND",
                    "the holder is not in the registry",
                )
                .with_metadata("holder_id_number", holder.masked()),
            ));
        };
        let employee = person
            .employee_enrollment
            .filter(|e| e.status != EnrollmentStatus::Terminated as i32);
        match employee {
            None => Err(status(
                ApiError::failed_precondition(
                    "HOLDER_NOT_EMPLOYEE_INSURED",
                    "only a person with employee insurance has a personal account",
                )
                .with_metadata("holder_id_number", holder.masked()),
            )),
            Some(e) if e.region_code != region.as_str() => Err(status(
                ApiError::failed_precondition(
                    "REGION_MISMATCH",
                    "region_code differs from the holder's employee-insurance region",
                )
                .with_metadata("region_code", region)
                .with_metadata("registry_region_code", e.region_code),
            )),
            Some(_) => Ok(()),
        }
    }

    async fn existing(&self, holder: &IdNumber) -> Result<Account, Status> {
        self.ctx
            .store
            .account(holder)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found("ACCOUNT_NOT_FOUND", "no personal account for this holder")
                        .with_metadata("holder_id_number", holder.masked()),
                )
            })
    }
}

#[tonic::async_trait]
impl<S: Store> AccountService for AccountApi<S> {
    async fn open_account(
        &self,
        request: Request<OpenAccountRequest>,
    ) -> Result<Response<OpenAccountResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder =
            validate::id_number(&request.holder_id_number, "holder_id_number").map_err(status)?;
        let region = validate::region_code(&request.region_code, "region_code").map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "OpenAccount", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        self.check_employee_insured(&holder, &region).await?;
        let account = Account {
            holder,
            region,
            current_year: gongji_shared::Money::ZERO,
            prior_years: gongji_shared::Money::ZERO,
            open_time: self.ctx.clock.now(),
        };
        let response = OpenAccountResponse {
            account: Some(convert::account_to_pb(&account, &self.usable_buckets())),
        };
        match self
            .ctx
            .store
            .open_account(&account, &idempotency, &response.encode_to_vec())
            .await
        {
            Ok(()) => {}
            Err(StoreError::AccountExists) => {
                return Err(status(
                    ApiError::already_exists(
                        "ACCOUNT_ALREADY_EXISTS",
                        "this holder already has a personal account",
                    )
                    .with_metadata("holder_id_number", account.holder.masked()),
                ));
            }
            Err(StoreError::RequestIdTaken) => {
                return replay_after_race(&self.ctx.store, &idempotency)
                    .await
                    .map(Response::new);
            }
            Err(e) => return Err(store_failure(e)),
        }
        tracing::info!(holder = %account.holder, region = %account.region, "account opened");
        Ok(Response::new(response))
    }

    async fn credit_account(
        &self,
        request: Request<CreditAccountRequest>,
    ) -> Result<Response<CreditAccountResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder =
            validate::id_number(&request.holder_id_number, "holder_id_number").map_err(status)?;
        let amount = validate::positive_money(&request.amount, "amount").map_err(status)?;
        let bucket = convert::bucket_from_pb(request.bucket, "bucket").map_err(status)?;
        if request.memo.chars().count() > validate::MAX_REASON_CHARS {
            return Err(status(ApiError::invalid_argument(
                "INVALID_MEMO",
                "memo",
                "memo has at most 256 characters",
            )));
        }
        let idempotency = Idempotency::of(request_id.as_str(), "CreditAccount", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        let account = self.existing(&holder).await?;
        let now = self.ctx.clock.now();
        let movement = credit(
            &account,
            bucket,
            amount,
            Movement {
                movement_id: uuid::Uuid::new_v4().to_string(),
                kind: MovementKind::Credit,
                request_id: idempotency.request_id.clone(),
                create_time: now,
                business_date: shanghai_date(now),
                purpose: None,
                destination: None,
                postings: Vec::new(),
            },
        );
        let usable = self.usable_buckets();
        let respond = |after: &Account, entry_ids: &[i64]| {
            CreditAccountResponse {
                account: Some(convert::account_to_pb(after, &usable)),
                entry: Some(convert::entry_to_pb(&AccountEntry {
                    entry_id: entry_ids.first().copied().unwrap_or_default(),
                    movement_id: movement.movement_id.clone(),
                    kind: MovementKind::Credit,
                    bucket,
                    amount_fen: amount.fen(),
                    request_id: movement.request_id.clone(),
                    create_time: now,
                    business_date: movement.business_date,
                })),
            }
            .encode_to_vec()
        };
        let bytes = match self
            .ctx
            .store
            .post(&holder, &movement, &idempotency, respond)
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
        tracing::info!(holder = %holder, %amount, bucket = bucket.as_str(), "account credited");
        CreditAccountResponse::decode(bytes.as_slice())
            .map(Response::new)
            .map_err(|_| status(ApiError::internal()))
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        let holder = validate::id_number(&request.get_ref().holder_id_number, "holder_id_number")
            .map_err(status)?;
        let account = self.existing(&holder).await?;
        Ok(Response::new(GetAccountResponse {
            account: Some(convert::account_to_pb(&account, &self.usable_buckets())),
        }))
    }

    async fn list_account_entries(
        &self,
        request: Request<ListAccountEntriesRequest>,
    ) -> Result<Response<ListAccountEntriesResponse>, Status> {
        let r = request.get_ref();
        let holder =
            validate::id_number(&r.holder_id_number, "holder_id_number").map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        self.existing(&holder).await?;
        // One more than a page tells whether another page follows.
        let entries = self
            .ctx
            .store
            .entries(&holder, before, page_size + 1)
            .await
            .map_err(store_failure)?;
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
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let holder =
            validate::id_number(&request.holder_id_number, "holder_id_number").map_err(status)?;
        let year = request.year;
        gongji_shared::CoverageYear::parse(year).map_err(|_| {
            status(
                ApiError::invalid_argument(
                    "INVALID_YEAR",
                    "year",
                    "year must be from 2000 to 2100",
                )
                .with_metadata("year", year),
            )
        })?;
        let today = self.ctx.clock.today();
        if year >= today.year() {
            return Err(status(
                ApiError::failed_precondition(
                    "YEAR_NOT_ENDED",
                    "a year is closed once it has ended",
                )
                .with_metadata("year", year)
                .with_metadata("today", today),
            ));
        }
        let idempotency = Idempotency::of(request_id.as_str(), "CloseYear", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        self.existing(&holder).await?;
        let now = self.ctx.clock.now();
        let base = Movement {
            movement_id: uuid::Uuid::new_v4().to_string(),
            kind: MovementKind::CloseYear,
            request_id: idempotency.request_id.clone(),
            create_time: now,
            business_date: shanghai_date(now),
            purpose: None,
            destination: None,
            postings: Vec::new(),
        };
        let usable = self.usable_buckets();
        let respond = |after: &Account, moved_fen: i64| {
            CloseYearResponse {
                account: Some(convert::account_to_pb(after, &usable)),
                moved_amount: gongji_shared::money::format_signed_fen(moved_fen),
            }
            .encode_to_vec()
        };
        let plan = |account: &Account| close_year(account, base);
        let bytes = match self
            .ctx
            .store
            .close_year(&holder, year, now, plan, &idempotency, respond)
            .await
        {
            Ok(bytes) => bytes,
            // Closed before (under another request ID): nothing more moves.
            Err(StoreError::YearClosed) => {
                let account = self.existing(&holder).await?;
                return Ok(Response::new(CloseYearResponse {
                    account: Some(convert::account_to_pb(&account, &self.usable_buckets())),
                    moved_amount: gongji_shared::Money::ZERO.to_string(),
                }));
            }
            Err(StoreError::RequestIdTaken) => {
                return replay_after_race(&self.ctx.store, &idempotency)
                    .await
                    .map(Response::new);
            }
            Err(e) => return Err(store_failure(e)),
        };
        let response = CloseYearResponse::decode(bytes.as_slice())
            .map_err(|_| status(ApiError::internal()))?;
        tracing::info!(holder = %holder, year, moved = %response.moved_amount, "year closed");
        Ok(Response::new(response))
    }
}
