//! PremiumService handlers.

use chrono::NaiveDate;
use gongji_proto::payment::v1::{
    self as pb, GetPremiumPaymentRequest, GetPremiumPaymentResponse, ListPremiumPaymentsRequest,
    ListPremiumPaymentsResponse, ListUnpaidPremiumsRequest, ListUnpaidPremiumsResponse,
    PayPremiumRequest, PayPremiumResponse, QuotePremiumRequest, QuotePremiumResponse,
    RefundPremiumPaymentRequest, RefundPremiumPaymentResponse,
    premium_service_server::PremiumService,
};
use gongji_shared::rpc::auth::Caller;
use gongji_shared::rpc::command;
use gongji_shared::rpc::{ApiError, validate};
use tonic::{Request, Response, Status};

use super::{convert, failure, page_token, status};
use crate::{
    app::{App, PaymentOrder, PremiumOrder, Quote, Registry},
    domain::payment::{OtherMeans, PremiumPayment},
    store::Store,
};

/// Longest other-means reference accepted.
const MAX_REFERENCE_LEN: usize = 64;
/// Longest payment ID accepted (ours are UUIDs).
const MAX_PAYMENT_ID_LEN: usize = 64;

/// A quote on the wire.
fn quote_to_pb(quote: &Quote) -> pb::PremiumQuote {
    convert::quote_to_pb(&convert::QuoteView {
        year: quote.year.get(),
        region: quote.region.as_str(),
        terms: &quote.terms,
        split: &quote.split,
        payment_date: quote.payment_date,
        back_payment: quote.back_payment,
        continuity: Some(&quote.continuity),
    })
}

/// The premium API.
pub struct PremiumApi<S, R> {
    app: App<S, R>,
}

impl<S, R> PremiumApi<S, R> {
    pub fn new(app: App<S, R>) -> Self {
        Self { app }
    }
}

/// The premium order named by a quote or a payment.
fn order(
    payer: &str,
    beneficiary: &str,
    year: i32,
    back_payment: bool,
    today: NaiveDate,
) -> Result<PremiumOrder, Status> {
    Ok(PremiumOrder {
        payer: validate::id_number(payer, "payer_id_number", today).map_err(status)?,
        beneficiary: validate::id_number(beneficiary, "beneficiary_id_number", today)
            .map_err(status)?,
        year: validate::coverage_year(year, "coverage_year").map_err(status)?,
        back_payment,
    })
}

fn other_means(wire: Option<&pb::OtherMeans>) -> Result<Option<OtherMeans>, Status> {
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

fn payment(p: &PremiumPayment) -> Option<pb::PremiumPayment> {
    Some(convert::payment_to_pb(p))
}

#[tonic::async_trait]
impl<S: Store, R: Registry> PremiumService for PremiumApi<S, R> {
    async fn list_unpaid_premiums(
        &self,
        request: Request<ListUnpaidPremiumsRequest>,
    ) -> Result<Response<ListUnpaidPremiumsResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.get_ref();
        let authorizer = validate::id_number(
            &r.authorizer_id_number,
            "authorizer_id_number",
            self.app.today(),
        )
        .map_err(status)?;
        caller.require_party(&[&authorizer]).map_err(status)?;
        let year = validate::coverage_year(r.coverage_year, "coverage_year").map_err(status)?;
        let reminders = self
            .app
            .unpaid_premiums(&authorizer, year)
            .await
            .map_err(failure)?;
        let unpaid = reminders
            .into_iter()
            .map(|reminder| {
                let b = &reminder.bound;
                let mut item = pb::UnpaidPremium {
                    beneficiary_id_number: b.beneficiary.as_str().to_owned(),
                    beneficiary_name: b.name.as_ref().map(|n| caller.name(n)).unwrap_or_default(),
                    binding_id: b.binding_id.clone(),
                    ..Default::default()
                };
                if let Some(quote) = &reminder.quote {
                    item.window_end_date = quote.terms.window.end.to_string();
                    item.quote = Some(quote_to_pb(quote));
                }
                if let Some(refusal) = reminder.refusal {
                    item.refusal_reason = super::error::app_error(refusal).reason().to_owned();
                }
                item
            })
            .collect();
        Ok(Response::new(ListUnpaidPremiumsResponse { unpaid }))
    }

    async fn quote_premium(
        &self,
        request: Request<QuotePremiumRequest>,
    ) -> Result<Response<QuotePremiumResponse>, Status> {
        let r = request.get_ref();
        let order = order(
            &r.payer_id_number,
            &r.beneficiary_id_number,
            r.coverage_year,
            r.back_payment,
            self.app.today(),
        )?;
        // A channel quotes from the account of the person it acts for (the payer).
        Caller::of(&request)
            .require_party(&[&order.payer])
            .map_err(status)?;
        let quote = self.app.quote_premium(&order).await.map_err(failure)?;
        Ok(Response::new(QuotePremiumResponse {
            quote: Some(quote_to_pb(&quote)),
        }))
    }

    async fn pay_premium(
        &self,
        request: Request<PayPremiumRequest>,
    ) -> Result<Response<PayPremiumResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let order = PaymentOrder {
            order: order(
                &request.payer_id_number,
                &request.beneficiary_id_number,
                request.coverage_year,
                request.back_payment,
                self.app.today(),
            )?,
            expected: validate::money(&request.expected_amount, "expected_amount")
                .map_err(status)?,
            other_means: other_means(request.other_means.as_ref())?,
        };
        // Others pay for a child only "logged in as the authorizer" (the payer).
        caller
            .require_party(&[&order.order.payer])
            .map_err(status)?;
        let to_wire = |p: &PremiumPayment| PayPremiumResponse {
            payment: payment(p),
        };
        command(
            &self.app,
            &request_id,
            "PayPremium",
            &request,
            to_wire,
            |c| self.app.pay_premium(order, c),
        )
        .await
    }

    async fn get_premium_payment(
        &self,
        request: Request<GetPremiumPaymentRequest>,
    ) -> Result<Response<GetPremiumPaymentResponse>, Status> {
        let id = payment_id(&request.get_ref().payment_id)?;
        let p = self.app.premium_payment(&id).await.map_err(failure)?;
        Caller::of(&request)
            .require_party(&[&p.payer, &p.beneficiary])
            .map_err(status)?;
        Ok(Response::new(GetPremiumPaymentResponse {
            payment: payment(&p),
        }))
    }

    async fn list_premium_payments(
        &self,
        request: Request<ListPremiumPaymentsRequest>,
    ) -> Result<Response<ListPremiumPaymentsResponse>, Status> {
        let today = self.app.today();
        let r = request.get_ref();
        let (as_payer, person) = validate::one_of_two_people(
            (&r.payer_id_number, "payer_id_number"),
            (&r.beneficiary_id_number, "beneficiary_id_number"),
            today,
        )
        .map_err(status)?;
        Caller::of(&request)
            .require_party(&[&person])
            .map_err(status)?;
        let page_size = validate::page_size(r.page_size).map_err(status)?;
        let before = page_token(&r.page_token)?;
        // One more than a page tells whether another page follows.
        let rows = self
            .app
            .premium_payments(&person, as_payer, before, page_size + 1)
            .await
            .map_err(failure)?;
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
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id).map_err(status)?;
        let id = payment_id(&request.payment_id)?;
        if caller.acting_person.is_some() {
            let paid = self.app.premium_payment(&id).await.map_err(failure)?;
            caller.require_party(&[&paid.payer]).map_err(status)?;
        }
        let reason = validate::reason(&request.reason, "reason").map_err(status)?;
        let to_wire = |p: &PremiumPayment| RefundPremiumPaymentResponse {
            payment: payment(p),
        };
        command(
            &self.app,
            &request_id,
            "RefundPremiumPayment",
            &request,
            to_wire,
            |c| async move { self.app.refund_premium(&id, reason, c).await },
        )
        .await
    }
}
