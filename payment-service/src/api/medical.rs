//! MedicalExpenseService handlers.

use gongji_proto::{
    binding::v1::Purpose,
    payment::v1::{
        GetMedicalExpensePaymentRequest, GetMedicalExpensePaymentResponse,
        PayMedicalExpenseRequest, PayMedicalExpenseResponse,
        medical_expense_service_server::MedicalExpenseService,
    },
};
use gongji_shared::{
    IdNumber, RegionCode,
    clock::shanghai_date,
    rpc::{ApiError, Idempotency, validate},
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    Context, convert,
    premium::{not_authorized, payment_id},
    replay, replay_after_race, status, store_failure, unavailable,
};
use crate::{
    domain::{
        Account,
        medical::{self, MedicalPayment},
    },
    store::{Store, StoreError},
};

/// Longest institution code accepted.
const MAX_INSTITUTION_CODE_LEN: usize = 32;

/// The medical-expense API.
pub struct MedicalExpenseApi<S> {
    ctx: Context<S>,
}

impl<S: Store> MedicalExpenseApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }

    async fn account(&self, holder: &IdNumber) -> Result<Option<Account>, Status> {
        self.ctx.store.account(holder).await.map_err(store_failure)
    }
}

fn institution_code(code: &str) -> Result<String, Status> {
    if code.is_empty()
        || code.len() > MAX_INSTITUTION_CODE_LEN
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(status(ApiError::invalid_argument(
            "INVALID_INSTITUTION",
            "institution_code",
            format!("institution_code has 1 to {MAX_INSTITUTION_CODE_LEN} letters and digits"),
        )));
    }
    Ok(code.to_owned())
}

#[tonic::async_trait]
impl<S: Store> MedicalExpenseService for MedicalExpenseApi<S> {
    async fn pay_medical_expense(
        &self,
        request: Request<PayMedicalExpenseRequest>,
    ) -> Result<Response<PayMedicalExpenseResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let beneficiary =
            validate::id_number(&request.beneficiary_id_number, "beneficiary_id_number")
                .map_err(status)?;
        let family_holder = match request.family_account_holder_id_number.as_str() {
            "" => None,
            holder => Some(
                validate::id_number(holder, "family_account_holder_id_number").map_err(status)?,
            ),
        };
        if family_holder.as_ref() == Some(&beneficiary) {
            return Err(status(ApiError::invalid_argument(
                "INVALID_FAMILY_ACCOUNT",
                "family_account_holder_id_number",
                "the family account is someone else's; the beneficiary's own account is drawn first anyway",
            )));
        }
        let code = institution_code(&request.institution_code)?;
        let kind = convert::institution_kind_from_pb(request.institution_kind).map_err(status)?;
        let amount = validate::positive_money(&request.amount, "amount").map_err(status)?;
        let idempotency = Idempotency::of(request_id.as_str(), "PayMedicalExpense", &request);
        if let Some(first) = replay(&self.ctx.store, &idempotency).await? {
            return Ok(Response::new(first));
        }

        let own = self.account(&beneficiary).await?;
        let family = match &family_holder {
            Some(holder) => Some(self.account(holder).await?.ok_or_else(|| {
                status(
                    ApiError::not_found(
                        "ACCOUNT_NOT_FOUND",
                        "the named family account does not exist",
                    )
                    .with_metadata("family_account_holder_id_number", holder.masked()),
                )
            })?),
            None => None,
        };
        let today = self.ctx.clock.today();
        let usable = self
            .ctx
            .policy
            .rules_on(today)
            .map(|r| r.usable_buckets.clone())
            .unwrap_or_default();
        let plan = medical::plan(amount, own.as_ref(), family.as_ref(), &usable);

        // Money of someone else moves only with binding-service's fresh yes (fail closed).
        let (mut binding_id, mut binding_version, mut destination) =
            (String::new(), 0, own.as_ref().map(|a| a.region.clone()));
        if let (Some(holder), false) = (&family_holder, plan.family.account_part.is_zero()) {
            let auth = self
                .ctx
                .binding
                .check(holder, &beneficiary, Purpose::MedicalExpense)
                .await
                .map_err(unavailable)?;
            if !auth.authorized {
                tracing::info!(holder = %holder, beneficiary = %beneficiary, "medical expense refused: not authorized");
                return Err(not_authorized(&auth));
            }
            binding_id = auth.binding_id.clone();
            binding_version = auth.binding_version;
            destination = RegionCode::parse(&auth.beneficiary_region_code)
                .ok()
                .or(destination);
        }

        let now = self.ctx.clock.now();
        let paid_by_accounts =
            !plan.own.account_part.is_zero() || !plan.family.account_part.is_zero();
        let payment = MedicalPayment {
            payment_id: uuid::Uuid::new_v4().to_string(),
            request_id: idempotency.request_id.clone(),
            movement_id: paid_by_accounts.then(|| uuid::Uuid::new_v4().to_string()),
            beneficiary: beneficiary.clone(),
            family_holder,
            institution_code: code,
            institution_kind: kind,
            amount,
            own_draws: plan.own.draws.clone(),
            family_draws: plan.family.draws.clone(),
            other_part: plan.other_part,
            binding_id,
            binding_version,
            destination,
            pay_time: now,
            business_date: shanghai_date(now),
        };
        let movement = medical::medical_movement(&payment, own.as_ref(), family.as_ref());
        let response = PayMedicalExpenseResponse {
            payment: Some(convert::medical_to_pb(&payment)),
        };
        match self
            .ctx
            .store
            .insert_medical(
                &payment,
                movement.as_ref(),
                &idempotency,
                &response.encode_to_vec(),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::InsufficientBalance) => {
                return Err(status(ApiError::aborted(
                    "CONCURRENT_UPDATE",
                    "a balance changed while paying; retry",
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
            beneficiary = %beneficiary,
            amount = %amount,
            own_part = %plan.own.account_part,
            family_part = %plan.family.account_part,
            other_part = %plan.other_part,
            "medical expense paid"
        );
        Ok(Response::new(response))
    }

    async fn get_medical_expense_payment(
        &self,
        request: Request<GetMedicalExpensePaymentRequest>,
    ) -> Result<Response<GetMedicalExpensePaymentResponse>, Status> {
        let id = payment_id(&request.get_ref().payment_id)?;
        let payment = self
            .ctx
            .store
            .medical_payment(&id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                status(
                    ApiError::not_found(
                        "PAYMENT_NOT_FOUND",
                        "no medical-expense payment with this ID",
                    )
                    .with_metadata("payment_id", &id),
                )
            })?;
        Ok(Response::new(GetMedicalExpensePaymentResponse {
            payment: Some(convert::medical_to_pb(&payment)),
        }))
    }
}
