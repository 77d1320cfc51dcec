//! Medical-expense refunds: a hospital or pharmacy reverses a charge, whole or in part.

use gongji_shared::{Money, command::Command};

use super::{App, AppError, Registry, new_id};
use crate::{
    domain::{
        medical::MedicalPayment,
        medical_refund::{self, MedicalRefund, RefundRefusal},
    },
    store::{Accounts, Holds, Institutions, MedicalPayments, PlannedRefund},
};

/// A refund to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOrder {
    pub payment_id: String,
    /// How much; `None`: all that is left to refund.
    pub amount: Option<Money>,
    pub reason: String,
}

/// A refund made, with the payment as it stands after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    pub refund: MedicalRefund,
    pub payment: MedicalPayment,
}

impl<S: Accounts + Holds + MedicalPayments + Institutions, R: Registry> App<S, R> {
    /// Refunds a medical-expense payment: the account parts back to their buckets (reverse
    /// order of drawing) as a new movement, the other-means part recorded as owed back.
    pub async fn refund_medical_expense(
        &self,
        order: RefundOrder,
        command: Command<RefundOutcome>,
    ) -> Result<RefundOutcome, AppError> {
        let payment = self.medical_payment(&order.payment_id).await?;
        let (now, _) = self.now();
        let (refund_id, movement_id) = (new_id(), new_id());
        let outcome = |refund: MedicalRefund| RefundOutcome {
            payment: MedicalPayment {
                refunded: refund.refunded_total,
                ..payment.clone()
            },
            refund,
        };
        let plan = |facts: crate::store::RefundFacts| {
            let parts = medical_refund::refund_parts(&payment, facts.refunded, order.amount)?;
            let amount = order
                .amount
                .or_else(|| payment.amount.checked_sub(facts.refunded))
                .unwrap_or(Money::ZERO);
            let mut refund = MedicalRefund {
                refund_id: refund_id.clone(),
                request_id: command.request_id().to_owned(),
                payment_id: payment.payment_id.clone(),
                movement_id: Some(movement_id.clone()),
                amount,
                parts,
                refunded_total: facts.refunded.checked_add(amount).unwrap_or(payment.amount),
                reason: order.reason.clone(),
                refund_time: now,
                business_date: facts.business_date,
            };
            let movement = medical_refund::refund_movement(
                &payment,
                &refund,
                facts.own.as_ref().map(|(a, closed)| (a, *closed)),
                facts.family.as_ref().map(|(a, closed)| (a, *closed)),
            );
            if movement.is_none() {
                refund.movement_id = None;
            }
            Ok(PlannedRefund {
                response: command.response(&outcome(refund.clone())),
                refund,
                movement,
            })
        };
        let refund = self
            .store
            .refund_medical(&payment, now, plan, command.idempotency())
            .await?
            .map_err(|refusal| match refusal {
                RefundRefusal::NothingLeft => AppError::AlreadyRefunded {
                    payment_id: payment.payment_id.clone(),
                },
                RefundRefusal::Exceeds { refundable } => AppError::RefundExceedsPayment {
                    payment_id: payment.payment_id.clone(),
                    requested: order.amount.unwrap_or(refundable),
                    refundable,
                },
            })?;
        tracing::info!(
            payment_id = %refund.payment_id,
            refund_id = %refund.refund_id,
            amount = %refund.amount,
            other_means_owed_back = %refund.parts.other_means,
            refunded_total = %refund.refunded_total,
            "medical expense refunded"
        );
        Ok(outcome(refund))
    }
}
