//! MedicalExpenseService handlers.

use gongji_proto::payment::v1::{
    GetMedicalExpensePaymentRequest, GetMedicalExpensePaymentResponse, InstitutionKind,
    PayMedicalExpenseRequest, PayMedicalExpenseResponse,
    medical_expense_service_server::MedicalExpenseService,
};
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{Context, status};
use crate::store::Store;

/// Longest institution code accepted.
const MAX_INSTITUTION_CODE_LEN: usize = 32;

/// The medical-expense API.
pub struct MedicalExpenseApi<S> {
    #[allow(dead_code)] // used once the medical-expense rules land (issue: payment-service)
    ctx: Context<S>,
}

impl<S: Store> MedicalExpenseApi<S> {
    pub fn new(ctx: Context<S>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl<S: Store> MedicalExpenseService for MedicalExpenseApi<S> {
    async fn pay_medical_expense(
        &self,
        request: Request<PayMedicalExpenseRequest>,
    ) -> Result<Response<PayMedicalExpenseResponse>, Status> {
        let r = request.get_ref();
        validate::request_id(&r.request_id).map_err(status)?;
        validate::id_number(&r.beneficiary_id_number, "beneficiary_id_number").map_err(status)?;
        if !r.family_account_holder_id_number.is_empty() {
            validate::id_number(
                &r.family_account_holder_id_number,
                "family_account_holder_id_number",
            )
            .map_err(status)?;
        }
        let code = &r.institution_code;
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
        let kind = InstitutionKind::try_from(r.institution_kind)
            .ok()
            .filter(|k| *k != InstitutionKind::Unspecified);
        validate::known_enum(
            kind,
            r.institution_kind,
            "INVALID_INSTITUTION",
            "institution_kind",
        )
        .map_err(status)?;
        validate::positive_money(&r.amount, "amount").map_err(status)?;
        Err(status(ApiError::unimplemented("PayMedicalExpense")))
    }

    async fn get_medical_expense_payment(
        &self,
        request: Request<GetMedicalExpensePaymentRequest>,
    ) -> Result<Response<GetMedicalExpensePaymentResponse>, Status> {
        let id = &request.get_ref().payment_id;
        if id.is_empty() || id.len() > 64 {
            return Err(status(ApiError::invalid_argument(
                "INVALID_PAYMENT_ID",
                "payment_id",
                "payment_id has 1 to 64 characters",
            )));
        }
        Err(status(ApiError::unimplemented("GetMedicalExpensePayment")))
    }
}
