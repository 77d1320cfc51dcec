//! Medical expenses (M1, M2): the beneficiary's own account first, then a family account
//! with binding-service's fresh yes, then other means.

use gongji_shared::{IdNumber, Money, command::Command, policy::Purpose};

use super::{AccountRole, App, AppError, PaymentKind, Registry, new_id};
use crate::{
    domain::{
        fence::{Hold, LimitCap},
        medical::{self, InstitutionKind, MedicalPayment},
    },
    store::{Accounts, Conflict, Holds, Institutions, MedicalPayments, StoreError},
};

/// How many times a medical payment reads the limits again after a concurrent debit of the
/// same binding used up what they left.
const MAX_LIMIT_ATTEMPTS: u32 = 5;

/// A cost to pay at a designated institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalOrder {
    pub beneficiary: IdNumber,
    /// A family member whose account may pay what the own account does not.
    pub family_holder: Option<IdNumber>,
    pub institution_code: String,
    pub institution_kind: InstitutionKind,
    pub amount: Money,
}

impl<S: Accounts + Holds + MedicalPayments + Institutions, R: Registry> App<S, R> {
    /// Pays a medical expense.
    pub async fn pay_medical_expense(
        &self,
        order: MedicalOrder,
        command: Command<MedicalPayment>,
    ) -> Result<MedicalPayment, AppError> {
        let MedicalOrder {
            beneficiary,
            family_holder,
            institution_code,
            institution_kind,
            amount,
        } = order;
        // M1: only at a designated institution, as the kind it is designated.
        self.require_designated(&institution_code, institution_kind)
            .await?;
        // The authorizer's limits, if any: binding-service says which apply (asked only when
        // the family account is to pay), and they cap what it pays (the rest goes to other
        // means).
        let mut cap: Option<Option<LimitCap>> = None;
        let movement_id = new_id();
        let (mut binding_id, mut binding_version) = (String::new(), 0);
        // A concurrent debit of the same binding may use up what a limit left between the read
        // and the hold: read again, a bounded number of times.
        let mut attempts = 0;
        let (own, family, now, today, plan, family_part, destination) = loop {
            attempts += 1;
            let own = self.store.account(&beneficiary).await?;
            let family = match &family_holder {
                Some(holder) => Some(self.existing(holder, AccountRole::FamilyAccount).await?),
                None => None,
            };
            // One instant decides the usable buckets and the payment's time and day.
            let (now, today) = self.now();
            let usable = self.usable_buckets(today);
            let mut plan = medical::plan(amount, own.as_ref(), family.as_ref(), &usable, None);
            if let Some(holder) = family_holder
                .as_ref()
                .filter(|_| !plan.family.account_part.is_zero())
            {
                if cap.is_none() {
                    let found = self
                        .limit_cap(holder, &beneficiary, Purpose::MedicalExpense)
                        .await?;
                    cap = Some(found);
                }
                if let Some(Some(cap)) = &cap {
                    let left = self
                        .store
                        .limit_remaining(cap, Purpose::MedicalExpense, now)
                        .await?;
                    plan = medical::plan(amount, own.as_ref(), family.as_ref(), &usable, left);
                }
            }

            // Money of someone else moves only on binding-service's yes for this very debit,
            // recorded as a use before the debit is written (P1's fence; fail closed).
            let mut destination = own.as_ref().map(|a| a.region.clone());
            let family_part = match &family_holder {
                Some(holder) if !plan.family.account_part.is_zero() => Some(holder.clone()),
                _ => None,
            };
            if let Some(holder) = &family_part {
                let hold = Hold::new(
                    &movement_id,
                    holder,
                    &plan.family.draws,
                    Purpose::MedicalExpense,
                    command.request_id(),
                    now,
                    self.hold_timeout_ms,
                )
                .within(cap.clone().flatten());
                match self.hold_and_authorize(&hold, &beneficiary).await {
                    Ok(authorization) => {
                        binding_id = authorization.binding_id;
                        binding_version = authorization.binding_version;
                        destination = authorization.beneficiary_region.or(destination);
                    }
                    Err(AppError::FamilyLimitRaced) if attempts < MAX_LIMIT_ATTEMPTS => continue,
                    Err(AppError::FamilyLimitRaced) => return Err(AppError::BalanceChanged),
                    Err(e) => return Err(e),
                }
            }
            break (own, family, now, today, plan, family_part, destination);
        };

        let paid_by_accounts =
            !plan.own.account_part.is_zero() || !plan.family.account_part.is_zero();
        let payment = MedicalPayment {
            payment_id: new_id(),
            request_id: command.request_id().to_owned(),
            movement_id: paid_by_accounts.then(|| movement_id.clone()),
            beneficiary,
            family_holder,
            institution_code,
            institution_kind,
            amount,
            own_draws: plan.own.draws.clone(),
            family_draws: plan.family.draws.clone(),
            other_part: plan.other_part,
            refunded: Money::ZERO,
            binding_id,
            binding_version,
            destination,
            pay_time: now,
            business_date: today,
        };
        let movement = medical::medical_movement(&payment, own.as_ref(), family.as_ref());
        let posting = family_part
            .as_ref()
            .map(|_| self.posting(&movement_id, &payment.binding_id, payment.binding_version));
        let written = self
            .store
            .insert_medical(
                &payment,
                movement.as_ref(),
                posting.as_ref(),
                command.idempotency(),
                &command.response(&payment),
            )
            .await;
        if let Err(e) = written {
            if posting.is_some() {
                self.release(&movement_id).await;
            }
            return Err(match e {
                StoreError::Conflict(Conflict::InsufficientBalance) => AppError::BalanceChanged,
                StoreError::Conflict(Conflict::HoldGone) => AppError::AuthorizationExpired,
                e => e.into(),
            });
        }
        if posting.is_some() {
            self.count_family_debit(Purpose::MedicalExpense, plan.family.account_part);
        }
        tracing::debug!(
            payment_id = %payment.payment_id,
            beneficiary = %payment.beneficiary,
            amount = %amount,
            own_part = %plan.own.account_part,
            family_part = %plan.family.account_part,
            other_part = %plan.other_part,
            "medical expense paid"
        );
        Ok(payment)
    }

    /// Up to `limit` medical-expense payments matching `filter`, newest first, below position
    /// `before`; each with its position.
    pub async fn medical_payments(
        &self,
        filter: &medical::MedicalFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, MedicalPayment)>, AppError> {
        Ok(self.store.medical_payments(filter, before, limit).await?)
    }

    /// One medical-expense payment.
    pub async fn medical_payment(&self, payment_id: &str) -> Result<MedicalPayment, AppError> {
        self.store
            .medical_payment(payment_id)
            .await?
            .ok_or_else(|| AppError::PaymentNotFound {
                payment_id: payment_id.to_owned(),
                kind: PaymentKind::MedicalExpense,
            })
    }
}

#[cfg(test)]
mod tests {
    use gongji_shared::command::Idempotency;

    use super::*;
    use crate::app::fakes::{CHILD, PAYER, account, app, id};

    fn order(family: bool, amount: &str) -> MedicalOrder {
        MedicalOrder {
            beneficiary: id(CHILD),
            family_holder: family.then(|| id(PAYER)),
            institution_code: "H340500001".to_owned(),
            institution_kind: InstitutionKind::Hospital,
            amount: Money::parse(amount).unwrap(),
        }
    }

    fn command() -> Command<MedicalPayment> {
        Command::new(
            Idempotency::new("m-1", "PayMedicalExpense", b"m"),
            |p: &MedicalPayment| p.payment_id.clone().into_bytes(),
        )
    }

    #[tokio::test]
    async fn binding_service_is_asked_only_when_the_family_account_pays() {
        let (app, store, registry) = app();
        store
            .state()
            .accounts
            .insert(id(CHILD), account(CHILD, "300.00"));
        let paid = app
            .pay_medical_expense(order(true, "200.00"), command())
            .await
            .unwrap();
        assert!(paid.family_draws.is_empty() && paid.binding_id.is_empty());
        assert!(registry.state().asked.is_empty() && registry.state().uses.is_empty());
        assert!(store.state().holds.is_empty());
        assert_eq!(
            store.state().accounts[&id(CHILD)].prior_years.to_string(),
            "100.00"
        );
    }

    #[tokio::test]
    async fn a_family_part_with_binding_service_away_moves_nothing() {
        let (app, store, registry) = app();
        registry.state().unreachable = true;
        let error = app
            .pay_medical_expense(order(true, "200.00"), command())
            .await
            .unwrap_err();
        assert!(
            matches!(error, AppError::Infra(super::super::Infra::Peer(_))),
            "{error:?}"
        );
        let state = store.state();
        assert!(state.medical.is_empty() && state.responses.is_empty());
        assert_eq!(
            state.accounts[&id(PAYER)].prior_years.to_string(),
            "1200.00"
        );
    }

    #[tokio::test]
    async fn an_institution_not_designated_is_refused_before_anything_moves() {
        let (app, store, registry) = app();
        let mut unknown = order(true, "200.00");
        unknown.institution_code = "H340599999".to_owned();
        let mut as_pharmacy = order(true, "200.00");
        as_pharmacy.institution_kind = InstitutionKind::Pharmacy;
        for order in [unknown, as_pharmacy] {
            let error = app.pay_medical_expense(order, command()).await.unwrap_err();
            assert!(
                matches!(error, AppError::InstitutionNotDesignated { .. }),
                "{error:?}"
            );
        }
        assert!(registry.state().asked.is_empty());
        let state = store.state();
        assert!(state.medical.is_empty() && state.holds.is_empty() && state.responses.is_empty());
    }

    #[tokio::test]
    async fn the_family_part_records_the_binding_it_relied_on() {
        let (app, store, registry) = app();
        let paid = app
            .pay_medical_expense(order(true, "200.00"), command())
            .await
            .unwrap();
        assert_eq!(
            (paid.binding_id.as_str(), paid.binding_version),
            ("binding-1", 1)
        );
        let uses = registry.state().uses.clone();
        assert_eq!(uses.len(), 1, "one use, recorded by AuthorizeUse");
        assert_eq!(Some(&uses[0].movement_id), paid.movement_id.as_ref());
        assert_eq!(uses[0].amount.to_string(), "200.00");
        assert_eq!(
            store.state().holds[paid.movement_id.as_ref().unwrap()].1,
            "POSTED"
        );
        assert_eq!(
            store.state().accounts[&id(PAYER)].prior_years.to_string(),
            "1000.00"
        );
    }
}
