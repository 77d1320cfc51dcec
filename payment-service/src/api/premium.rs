//! PremiumService handlers.

use gongji_proto::{
    binding::v1::{CheckAuthorizationResponse, EnrollmentStatus, Purpose},
    payment::v1::{
        GetPremiumPaymentRequest, GetPremiumPaymentResponse, ListPremiumPaymentsRequest,
        ListPremiumPaymentsResponse, PayPremiumRequest, PayPremiumResponse, QuotePremiumRequest,
        QuotePremiumResponse, RefundPremiumPaymentRequest, RefundPremiumPaymentResponse,
        premium_service_server::PremiumService,
    },
};
use gongji_shared::{
    CoverageYear, IdNumber, RegionCode,
    rpc::{ApiError, Idempotency, Violation, validate},
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    Context, convert, page_token, replay, replay_after_race, status, store_failure, unavailable,
};
use crate::{
    domain::{
        Account,
        payment::{self, OtherMeans, OtherMeansProblem, PaymentState, PremiumPayment},
        premium::{self, PremiumTerms, Refusal, TermsInput},
        split::{self, Split},
    },
    store::{Store, StoreError},
};

/// Longest other-means reference accepted.
const MAX_REFERENCE_LEN: usize = 64;
/// Longest payment ID accepted (ours are UUIDs).
const MAX_PAYMENT_ID_LEN: usize = 64;

/// The premium API.
pub struct PremiumApi<S> {
    ctx: Context<S>,
}

/// Everything a quote and a payment compute, from the same code.
struct Prepared {
    auth: CheckAuthorizationResponse,
    account: Account,
    region: RegionCode,
    terms: PremiumTerms,
    split: Split,
}

fn refusal(r: Refusal, year: CoverageYear) -> Status {
    let error = match r {
        Refusal::CoverageYearNotOpen => ApiError::failed_precondition(
            "COVERAGE_YEAR_NOT_OPEN",
            "the policy has no premium for this year or its collection window has not opened",
        ),
        Refusal::NoBenefitInCoverageYear { would_start } => {
            let error = ApiError::failed_precondition(
                "NO_BENEFIT_IN_COVERAGE_YEAR",
                "paying now would bring no cover within the coverage year; a back-payment must say so",
            );
            match would_start {
                Some(start) => error.with_metadata("benefit_start_date", start),
                None => error,
            }
        }
        Refusal::BackPaymentNotPast => ApiError::invalid_argument(
            "INVALID_BACK_PAYMENT",
            "back_payment",
            "a back-payment is only for a coverage year before the current one",
        ),
    };
    status(error.with_metadata("coverage_year", year))
}

pub(super) fn not_authorized(auth: &CheckAuthorizationResponse) -> Status {
    let mut error = ApiError::failed_precondition(
        "NOT_AUTHORIZED",
        "binding-service does not authorize this account to pay for this beneficiary",
    )
    .with_metadata(
        "denials",
        auth.denials
            .iter()
            .map(|d| d.reason.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    for d in &auth.denials {
        error = error.with_violation(Violation {
            kind: d.reason.clone(),
            subject: "authorization".to_owned(),
            description: d.message.clone(),
        });
    }
    status(error)
}

impl<S: Store> PremiumApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }

    /// Asks binding-service fresh, then computes premium, window, waiting period and split.
    /// With `must_be_authorized`, a denial stops here.
    async fn prepare(
        &self,
        payer: &IdNumber,
        beneficiary: &IdNumber,
        year: CoverageYear,
        back_payment: bool,
        must_be_authorized: bool,
    ) -> Result<Prepared, Status> {
        let auth = self
            .ctx
            .binding
            .check(payer, beneficiary, Purpose::Premium)
            .await
            .map_err(unavailable)?;
        if must_be_authorized && !auth.authorized {
            tracing::info!(payer = %payer, beneficiary = %beneficiary, "premium refused: not authorized");
            return Err(not_authorized(&auth));
        }
        let person = auth.beneficiary.as_ref().ok_or_else(|| {
            status(
                ApiError::not_found("PERSON_NOT_FOUND", "the beneficiary is not in the registry")
                    .with_metadata("beneficiary_id_number", beneficiary.masked()),
            )
        })?;
        let has_employee = person
            .employee_enrollment
            .as_ref()
            .is_some_and(|e| e.status != EnrollmentStatus::Terminated as i32);
        if has_employee {
            return Err(status(
                ApiError::failed_precondition(
                    "BENEFICIARY_HAS_EMPLOYEE_INSURANCE",
                    "the beneficiary has employee insurance and owes no resident premium",
                )
                .with_metadata("beneficiary_id_number", beneficiary.masked()),
            ));
        }
        let region = RegionCode::parse(&auth.beneficiary_region_code).map_err(|_| {
            status(ApiError::failed_precondition(
                "BENEFICIARY_NOT_INSURED",
                "the beneficiary has no insurance region in the registry",
            ))
        })?;
        let account = self
            .ctx
            .store
            .account(payer)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found("ACCOUNT_NOT_FOUND", "the payer has no personal account")
                        .with_metadata("payer_id_number", payer.masked()),
                )
            })?;
        let history = self
            .ctx
            .store
            .paid_years(beneficiary)
            .await
            .map_err(store_failure)?;
        if history.iter().any(|p| p.year == year) {
            return Err(status(
                ApiError::already_exists(
                    "PREMIUM_ALREADY_PAID",
                    "the beneficiary's premium for this year is already paid",
                )
                .with_metadata("coverage_year", year),
            ));
        }
        let today = self.ctx.clock.today();
        let terms = premium::terms(&TermsInput {
            policy: &self.ctx.policy,
            year,
            region: &region,
            today,
            birth_date: beneficiary.birth_date(),
            back_payment,
            history: &history,
        })
        .map_err(|r| refusal(r, year))?;
        let usable = self
            .ctx
            .policy
            .rules_on(today)
            .map(|r| r.usable_buckets.clone())
            .unwrap_or_default();
        let split = split::split(terms.premium, Some(&account), &usable);
        Ok(Prepared {
            auth,
            account,
            region,
            terms,
            split,
        })
    }
}

fn other_means(
    wire: Option<&gongji_proto::payment::v1::OtherMeans>,
) -> Result<Option<OtherMeans>, Status> {
    let Some(o) = wire else { return Ok(None) };
    let amount = validate::positive_money(&o.amount, "other_means.amount").map_err(status)?;
    let channel = convert::channel_from_pb(o.channel).map_err(status)?;
    let reference = o.reference.trim();
    if reference.is_empty()
        || reference.len() > MAX_REFERENCE_LEN
        || !reference.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(status(ApiError::invalid_argument(
            "INVALID_OTHER_MEANS",
            "other_means.reference",
            format!(
                "other_means.reference has 1 to {MAX_REFERENCE_LEN} printable ASCII characters"
            ),
        )));
    }
    Ok(Some(OtherMeans {
        amount,
        channel,
        reference: reference.to_owned(),
    }))
}

pub(super) fn payment_id(value: &str) -> Result<String, Status> {
    validate::identifier(
        value,
        "payment_id",
        "INVALID_PAYMENT_ID",
        MAX_PAYMENT_ID_LEN,
    )
    .map_err(status)
}

#[tonic::async_trait]
impl<S: Store> PremiumService for PremiumApi<S> {
    async fn quote_premium(
        &self,
        request: Request<QuotePremiumRequest>,
    ) -> Result<Response<QuotePremiumResponse>, Status> {
        let r = request.get_ref();
        let payer = validate::id_number(&r.payer_id_number, "payer_id_number").map_err(status)?;
        let beneficiary = validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number")
            .map_err(status)?;
        let year = validate::coverage_year(r.coverage_year, "coverage_year").map_err(status)?;
        let prepared = self
            .prepare(&payer, &beneficiary, year, r.back_payment, false)
            .await?;
        Ok(Response::new(QuotePremiumResponse {
            quote: Some(convert::quote_to_pb(&convert::QuoteView {
                year: year.get(),
                region: prepared.region.as_str(),
                terms: &prepared.terms,
                split: &prepared.split,
                payment_date: self.ctx.clock.today(),
                back_payment: r.back_payment,
            })),
        }))
    }

    async fn pay_premium(
        &self,
        request: Request<PayPremiumRequest>,
    ) -> Result<Response<PayPremiumResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let payer =
            validate::id_number(&request.payer_id_number, "payer_id_number").map_err(status)?;
        let beneficiary =
            validate::id_number(&request.beneficiary_id_number, "beneficiary_id_number")
                .map_err(status)?;
        let year =
            validate::coverage_year(request.coverage_year, "coverage_year").map_err(status)?;
        let expected =
            validate::money(&request.expected_amount, "expected_amount").map_err(status)?;
        let declared = other_means(request.other_means.as_ref())?;
        let idempotency = Idempotency::of(request_id.as_str(), "PayPremium", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }

        let p = self
            .prepare(&payer, &beneficiary, year, request.back_payment, true)
            .await?;
        if expected != p.terms.premium {
            return Err(status(
                ApiError::failed_precondition(
                    "AMOUNT_MISMATCH",
                    "expected_amount differs from the premium",
                )
                .with_metadata("expected_amount", expected)
                .with_metadata("premium", p.terms.premium),
            ));
        }
        payment::check_other_means(&p.split, declared.as_ref()).map_err(|problem| {
            status(match problem {
                OtherMeansProblem::Shortfall(shortfall) => ApiError::failed_precondition(
                    "INSUFFICIENT_BALANCE",
                    "the usable balance is short; pay the shortfall by other means in the same request",
                )
                .with_metadata("shortfall", shortfall)
                .with_metadata("usable_balance", p.split.account_part)
                .with_metadata("premium", p.terms.premium),
                OtherMeansProblem::NotNeeded => ApiError::invalid_argument(
                    "INVALID_OTHER_MEANS",
                    "other_means",
                    "the account covers the whole premium; other_means must be absent",
                ),
                OtherMeansProblem::WrongAmount { expected } => ApiError::invalid_argument(
                    "INVALID_OTHER_MEANS",
                    "other_means.amount",
                    "other_means.amount must equal the premium less the account part",
                )
                .with_metadata("expected_other_means_amount", expected),
            })
        })?;

        let now = self.ctx.clock.now();
        let payment = PremiumPayment {
            payment_id: uuid::Uuid::new_v4().to_string(),
            request_id: idempotency.request_id.clone(),
            movement_id: uuid::Uuid::new_v4().to_string(),
            payer: payer.clone(),
            beneficiary: beneficiary.clone(),
            year,
            state: PaymentState::Paid,
            terms: p.terms,
            back_payment: request.back_payment,
            split: p.split,
            other_means: declared,
            binding_id: p.auth.binding_id.clone(),
            binding_version: p.auth.binding_version,
            payer_region: p.account.region.clone(),
            beneficiary_region: p.region,
            payment_date: gongji_shared::clock::shanghai_date(now),
            pay_time: now,
            refund_time: None,
            refund_reason: None,
        };
        let movement = payment::premium_movement(&payment);
        let response = PayPremiumResponse {
            payment: Some(convert::payment_to_pb(&payment)),
        };
        match self
            .ctx
            .store
            .insert_premium(&payment, &movement, &idempotency, &response.encode_to_vec())
            .await
        {
            Ok(()) => {}
            Err(StoreError::AlreadyPaid) => {
                return Err(status(
                    ApiError::already_exists(
                        "PREMIUM_ALREADY_PAID",
                        "the beneficiary's premium for this year is already paid",
                    )
                    .with_metadata("coverage_year", year),
                ));
            }
            Err(StoreError::InsufficientBalance) => {
                return Err(status(ApiError::aborted(
                    "CONCURRENT_UPDATE",
                    "the balance changed while paying; quote again and retry",
                )));
            }
            Err(StoreError::RequestIdTaken) => {
                return replay_after_race(&self.ctx.store, &idempotency)
                    .await
                    .map(Response::new);
            }
            Err(e) => return Err(store_failure(e)),
        }
        tracing::info!(
            payment_id = %payment.payment_id,
            payer = %payer,
            beneficiary = %beneficiary,
            coverage_year = year.get(),
            premium = %payment.terms.premium,
            account_part = %payment.split.account_part,
            other_part = %payment.split.other_part,
            "premium paid"
        );
        Ok(Response::new(response))
    }

    async fn get_premium_payment(
        &self,
        request: Request<GetPremiumPaymentRequest>,
    ) -> Result<Response<GetPremiumPaymentResponse>, Status> {
        let id = payment_id(&request.get_ref().payment_id)?;
        let payment = self
            .ctx
            .store
            .premium_payment(&id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| payment_not_found(&id))?;
        Ok(Response::new(GetPremiumPaymentResponse {
            payment: Some(convert::payment_to_pb(&payment)),
        }))
    }

    async fn list_premium_payments(
        &self,
        request: Request<ListPremiumPaymentsRequest>,
    ) -> Result<Response<ListPremiumPaymentsResponse>, Status> {
        let r = request.get_ref();
        let (as_payer, person) = validate::one_of_two_people(
            (&r.payer_id_number, "payer_id_number"),
            (&r.beneficiary_id_number, "beneficiary_id_number"),
        )
        .map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let rows = self
            .ctx
            .store
            .premium_payments(&person, as_payer, before, page_size + 1)
            .await
            .map_err(store_failure)?;
        let (rows, next_page_token) = validate::page(rows, page_size, |(position, _)| *position);
        Ok(Response::new(ListPremiumPaymentsResponse {
            payments: rows
                .iter()
                .map(|(_, p)| convert::payment_to_pb(p))
                .collect(),
            next_page_token,
        }))
    }

    async fn refund_premium_payment(
        &self,
        request: Request<RefundPremiumPaymentRequest>,
    ) -> Result<Response<RefundPremiumPaymentResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = payment_id(&request.payment_id)?;
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "RefundPremiumPayment", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }
        let payment = self
            .ctx
            .store
            .premium_payment(&id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| payment_not_found(&id))?;
        let already = || {
            status(
                ApiError::failed_precondition(
                    "ALREADY_REFUNDED",
                    "this payment was refunded before",
                )
                .with_metadata("payment_id", &id),
            )
        };
        if payment.state == PaymentState::Refunded {
            return Err(already());
        }
        let now = self.ctx.clock.now();
        let movement = (!payment.split.account_part.is_zero()).then(|| {
            payment::refund_movement(
                &payment,
                &uuid::Uuid::new_v4().to_string(),
                &idempotency.request_id,
                now,
                gongji_shared::clock::shanghai_date(now),
            )
        });
        let refunded = PremiumPayment {
            state: PaymentState::Refunded,
            refund_time: Some(now),
            refund_reason: Some(reason),
            ..payment
        };
        let response = RefundPremiumPaymentResponse {
            payment: Some(convert::payment_to_pb(&refunded)),
        };
        match self
            .ctx
            .store
            .refund_premium(
                &refunded,
                movement.as_ref(),
                refunded.other_means.as_ref(),
                &idempotency,
                &response.encode_to_vec(),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::AlreadyRefunded) => return Err(already()),
            Err(StoreError::RequestIdTaken) => {
                return replay_after_race(&self.ctx.store, &idempotency)
                    .await
                    .map(Response::new);
            }
            Err(e) => return Err(store_failure(e)),
        }
        tracing::info!(
            payment_id = %refunded.payment_id,
            payer = %refunded.payer,
            beneficiary = %refunded.beneficiary,
            account_part = %refunded.split.account_part,
            other_part = %refunded.split.other_part,
            "premium refunded"
        );
        Ok(Response::new(response))
    }
}

fn payment_not_found(id: &str) -> Status {
    status(
        ApiError::not_found("PAYMENT_NOT_FOUND", "no premium payment with this ID")
            .with_metadata("payment_id", id),
    )
}
