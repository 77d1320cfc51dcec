//! MedicalExpenseService handlers.

use chrono::NaiveDate;
use gongji_proto::payment::v1::{
    self as pb, BatchUpsertDesignatedInstitutionsRequest,
    BatchUpsertDesignatedInstitutionsResponse, GetMedicalExpensePaymentRequest,
    GetMedicalExpensePaymentResponse, ListMedicalExpensePaymentsRequest,
    ListMedicalExpensePaymentsResponse, PayMedicalExpenseRequest, PayMedicalExpenseResponse,
    RefundMedicalExpensePaymentRequest, RefundMedicalExpensePaymentResponse,
    medical_expense_service_server::MedicalExpenseService,
};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{convert, date_range, failure, optional_id, page_token, premium::payment_id, status};
use crate::{
    app::{App, MedicalOrder, RefundOrder, RefundOutcome, Registry},
    domain::{
        institution::{
            BatchError, DesignatedInstitution, InstitutionBatch, MAX_BATCH_INSTITUTIONS,
            MAX_CODE_LEN, MAX_NAME_CHARS,
        },
        medical::{MedicalFilter, MedicalPayment},
    },
    store::Store,
};

/// The medical-expense API.
pub struct MedicalExpenseApi<S, R> {
    app: App<S, R>,
}

impl<S, R> MedicalExpenseApi<S, R> {
    pub fn new(app: App<S, R>) -> Self {
        Self { app }
    }
}

fn institution_code(code: &str) -> Result<String, Status> {
    code_at(code, "institution_code").map_err(status)
}

/// An institution code in `field`.
fn code_at(code: &str, field: &str) -> Result<String, ApiError> {
    if code.is_empty()
        || code.len() > MAX_CODE_LEN
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiError::invalid_argument(
            "INVALID_INSTITUTION",
            field,
            format!("{field} has 1 to {MAX_CODE_LEN} letters and digits"),
        ));
    }
    Ok(code.to_owned())
}

/// One institution of a sync, its fields named under `at` (e.g. `institutions[3]`).
fn designated(i: &pb::DesignatedInstitution, at: &str) -> Result<DesignatedInstitution, ApiError> {
    let field = |name: &str| format!("{at}.{name}");
    let name = i.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_argument(
            "INVALID_NAME",
            &field("name"),
            format!("a name has 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let until = match i.designated_until.as_str() {
        "" => None,
        day => Some(validate::date(
            day,
            &field("designated_until"),
            "INVALID_DATE",
        )?),
    };
    Ok(DesignatedInstitution {
        code: code_at(&i.institution_code, &field("institution_code"))?,
        kind: convert::institution_kind_from_pb(i.institution_kind)?,
        region: validate::region_code(&i.region_code, &field("region_code"))?,
        name: name.to_owned(),
        designated_from: validate::date(
            &i.designated_from,
            &field("designated_from"),
            "INVALID_DATE",
        )?,
        designated_until: until,
    })
}

/// The batch of a BatchUpsertDesignatedInstitutions request; a bad institution's error names
/// its position.
fn institution_batch(
    request: &BatchUpsertDesignatedInstitutionsRequest,
) -> Result<InstitutionBatch, ApiError> {
    let (limit, field, items) = (MAX_BATCH_INSTITUTIONS, "institutions", "institutions");
    validate::batch_size(request.institutions.len(), limit, field, items)?;
    let institutions = request
        .institutions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            designated(r, &format!("institutions[{i}]")).map_err(|e| e.with_metadata("index", i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    InstitutionBatch::parse(institutions).map_err(|e| match e {
        BatchError::Size { len } => validate::batch_size_error(len, limit, field, items),
        BatchError::Duplicate { first, second } => ApiError::invalid_argument(
            "DUPLICATE_INSTITUTION",
            &format!("institutions[{second}].institution_code"),
            format!("institutions {first} and {second} have the same code"),
        )
        .with_metadata("index", second)
        .with_metadata("first_index", first),
        BatchError::Range { index } => ApiError::invalid_argument(
            "INVALID_DATE_RANGE",
            &format!("institutions[{index}].designated_until"),
            "a designation's last day is on or after its first",
        )
        .with_metadata("index", index),
    })
}

/// The order of a PayMedicalExpense request.
fn medical_order(
    request: &PayMedicalExpenseRequest,
    today: NaiveDate,
) -> Result<MedicalOrder, Status> {
    let beneficiary = validate::id_number(
        &request.beneficiary_id_number,
        "beneficiary_id_number",
        today,
    )
    .map_err(status)?;
    let family_holder = match request.family_account_holder_id_number.as_str() {
        "" => None,
        holder => Some(
            validate::id_number(holder, "family_account_holder_id_number", today)
                .map_err(status)?,
        ),
    };
    if family_holder.as_ref() == Some(&beneficiary) {
        return Err(status(ApiError::invalid_argument(
            "INVALID_FAMILY_ACCOUNT",
            "family_account_holder_id_number",
            "the family account is someone else's; the beneficiary's own account is drawn first anyway",
        )));
    }
    Ok(MedicalOrder {
        beneficiary,
        family_holder,
        institution_code: institution_code(&request.institution_code)?,
        institution_kind: convert::institution_kind_from_pb(request.institution_kind)
            .map_err(status)?,
        amount: validate::positive_money(&request.amount, "amount").map_err(status)?,
    })
}

#[tonic::async_trait]
impl<S: Store, R: Registry> MedicalExpenseService for MedicalExpenseApi<S, R> {
    async fn pay_medical_expense(
        &self,
        request: Request<PayMedicalExpenseRequest>,
    ) -> Result<Response<PayMedicalExpenseResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let order = medical_order(&request, self.app.today())?;
        let mut parties = vec![&order.beneficiary];
        parties.extend(order.family_holder.as_ref());
        caller.require_party(&parties).map_err(status)?;
        caller
            .require_institution(&order.institution_code)
            .map_err(status)?;
        let to_wire = |p: &MedicalPayment| PayMedicalExpenseResponse {
            payment: Some(convert::medical_to_pb(p)),
        };
        command(
            &self.app,
            &request_id,
            "PayMedicalExpense",
            &request,
            to_wire,
            |c| self.app.pay_medical_expense(order, c),
        )
        .await
    }

    async fn list_medical_expense_payments(
        &self,
        request: Request<ListMedicalExpensePaymentsRequest>,
    ) -> Result<Response<ListMedicalExpensePaymentsResponse>, Status> {
        let today = self.app.today();
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let beneficiary = optional_id(&r.beneficiary_id_number, "beneficiary_id_number", today)?;
        let family_holder = optional_id(
            &r.family_account_holder_id_number,
            "family_account_holder_id_number",
            today,
        )?;
        let institution_code = match r.institution_code.as_str() {
            "" => None,
            code => Some(institution_code(code)?),
        };
        if beneficiary.is_none() && family_holder.is_none() && institution_code.is_none() {
            return Err(status(ApiError::invalid_argument(
                "FILTER_REQUIRED",
                "beneficiary_id_number",
                "name a beneficiary, a family account holder or an institution",
            )));
        }
        let range = date_range(&r.start_date, &r.end_date, today)?;
        // A person sees their own payments; a hospital or pharmacy those at its institutions.
        let persons: Vec<_> = beneficiary.iter().chain(&family_holder).collect();
        caller.require_party(&persons).map_err(status)?;
        match &institution_code {
            Some(code) => caller.require_institution(code).map_err(status)?,
            None if !caller.institutions.is_empty() => {
                return Err(status(
                    ApiError::permission_denied(
                        "INSTITUTION_NOT_CALLERS",
                        "a hospital or pharmacy caller lists the payments at its own institutions",
                    )
                    .with_metadata("caller", &caller.identity),
                ));
            }
            None => {}
        }
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        let filter = MedicalFilter {
            beneficiary,
            family_holder,
            institution_code,
            range,
        };
        let rows = self
            .app
            .medical_payments(&filter, before, page_size + 1)
            .await
            .map_err(failure)?;
        let (rows, next_page_token) = validate::page(rows, page_size, |(position, _)| *position);
        Ok(Response::new(ListMedicalExpensePaymentsResponse {
            payments: rows
                .iter()
                .map(|(_, p)| convert::medical_to_pb(p))
                .collect(),
            next_page_token,
        }))
    }

    async fn refund_medical_expense_payment(
        &self,
        request: Request<RefundMedicalExpensePaymentRequest>,
    ) -> Result<Response<RefundMedicalExpensePaymentResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = payment_id(&request.payment_id)?;
        let amount = match request.amount.as_str() {
            "" => None,
            amount => Some(validate::positive_money(amount, "amount").map_err(status)?),
        };
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        // A hospital or pharmacy reverses its own charges; a person only their own.
        let paid = self.app.medical_payment(&id).await.map_err(failure)?;
        caller
            .require_institution(&paid.institution_code)
            .map_err(status)?;
        let mut parties = vec![&paid.beneficiary];
        parties.extend(paid.family_holder.as_ref());
        caller.require_party(&parties).map_err(status)?;
        let order = RefundOrder {
            payment_id: id,
            amount,
            reason,
        };
        let to_wire = |o: &RefundOutcome| RefundMedicalExpensePaymentResponse {
            refund: Some(convert::medical_refund_to_pb(&o.refund)),
            payment: Some(convert::medical_to_pb(&o.payment)),
        };
        command(
            &self.app,
            &request_id,
            "RefundMedicalExpensePayment",
            &request,
            to_wire,
            |c| self.app.refund_medical_expense(order, c),
        )
        .await
    }

    async fn batch_upsert_designated_institutions(
        &self,
        request: Request<BatchUpsertDesignatedInstitutionsRequest>,
    ) -> Result<Response<BatchUpsertDesignatedInstitutionsResponse>, Status> {
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let batch = institution_batch(&request).map_err(status)?;
        let to_wire = |count: &usize| BatchUpsertDesignatedInstitutionsResponse {
            upserted_count: i32::try_from(*count).unwrap_or(i32::MAX),
        };
        command(
            &self.app,
            &request_id,
            "BatchUpsertDesignatedInstitutions",
            &request,
            to_wire,
            |c| self.app.upsert_institutions(batch, c),
        )
        .await
    }

    async fn get_medical_expense_payment(
        &self,
        request: Request<GetMedicalExpensePaymentRequest>,
    ) -> Result<Response<GetMedicalExpensePaymentResponse>, Status> {
        let id = payment_id(&request.get_ref().payment_id)?;
        let payment = self.app.medical_payment(&id).await.map_err(failure)?;
        let mut parties = vec![&payment.beneficiary];
        parties.extend(payment.family_holder.as_ref());
        Caller::of(&request)
            .require_party(&parties)
            .map_err(status)?;
        Ok(Response::new(GetMedicalExpensePaymentResponse {
            payment: Some(convert::medical_to_pb(&payment)),
        }))
    }
}
