//! Premium reminders: the family members an authorizer's account is bound to pay for whose
//! resident premium of a year is still unpaid, by anyone, with what paying now would be.

use gongji_shared::{CoverageYear, IdNumber};

use super::{App, AppError, BoundBeneficiary, PremiumOrder, Quote, Registry};
use crate::{
    domain::premium::PremiumRefusal,
    store::{Accounts, Holds, Premiums},
};

/// One family member whose premium is unpaid.
#[derive(Debug)]
pub struct Reminder {
    pub bound: BoundBeneficiary,
    /// What paying from the authorizer's account now would be, when it can be computed.
    pub quote: Option<Quote>,
    /// Why the authorizer's account cannot pay it now, if it cannot.
    pub refusal: Option<AppError>,
}

impl<S: Accounts + Holds + Premiums, R: Registry> App<S, R> {
    /// The authorizer's bound family members whose premium of `year` is unpaid, in binding
    /// order. Those with the year paid (here or anywhere the registry knows of) and those who
    /// owe no resident premium (employee-insured, or insured nowhere) are left out.
    pub async fn unpaid_premiums(
        &self,
        authorizer: &IdNumber,
        year: CoverageYear,
    ) -> Result<Vec<Reminder>, AppError> {
        let bound = self.registry.bound_beneficiaries(authorizer).await?;
        let mut reminders = Vec::new();
        for b in bound {
            let order = PremiumOrder {
                payer: authorizer.clone(),
                beneficiary: b.beneficiary.clone(),
                year,
                back_payment: false,
            };
            let (quote, refusal) = match self.authorized_quote(&order).await {
                Ok((quote, true)) => (Some(quote), None),
                Ok((quote, false)) => (
                    Some(quote),
                    Some(AppError::NotAuthorized {
                        denials: Vec::new(),
                    }),
                ),
                Err(
                    AppError::PremiumAlreadyPaid { .. }
                    | AppError::BeneficiaryHasEmployeeInsurance { .. }
                    | AppError::BeneficiaryNotInsured,
                ) => continue,
                // Of the year, not of one family member: nobody can pay it yet.
                Err(
                    e @ AppError::PremiumRefused {
                        refusal: PremiumRefusal::CoverageYearNotOpen,
                        ..
                    },
                ) => return Err(e),
                Err(e @ AppError::Infra(_)) => return Err(e),
                Err(e) => (None, Some(e)),
            };
            reminders.push(Reminder {
                bound: b,
                quote,
                refusal,
            });
        }
        Ok(reminders)
    }
}
