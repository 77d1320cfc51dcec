//! Resident premiums paid from a family member's account: quote, pay, read, list, refund
//! (P1 to P9).

use chrono::NaiveDate;
use gongji_shared::{CoverageYear, IdNumber, Money, RegionCode, command::Command, policy::Purpose};

use super::{AccountRole, App, AppError, PaymentKind, Registry, new_id};
use crate::{
    domain::{
        Account,
        authorization::Authorization,
        fence::{Hold, LimitCap},
        payment::{self, OtherMeans, OtherMeansProblem, PaymentState, PremiumPayment},
        premium::{self, Continuity, PaidYear, PremiumTerms, TermsInput},
        split::{self, Split},
    },
    store::{Accounts, Conflict, Holds, Premiums, StoreError},
};

/// Whose premium, for which year, from whose account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremiumOrder {
    pub payer: IdNumber,
    pub beneficiary: IdNumber,
    pub year: CoverageYear,
    pub back_payment: bool,
}

/// A payment order: the premium the caller expects, and the part they pay by other means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    pub order: PremiumOrder,
    pub expected: Money,
    pub other_means: Option<OtherMeans>,
}

/// What paying now would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub year: CoverageYear,
    pub region: RegionCode,
    pub terms: PremiumTerms,
    pub split: Split,
    pub payment_date: NaiveDate,
    pub back_payment: bool,
    /// The beneficiary's continuity, and what a gap would cost.
    pub continuity: Continuity,
}

/// Everything a quote and a payment compute, from the same code.
struct Prepared {
    authorization: Authorization,
    account: Account,
    region: RegionCode,
    terms: PremiumTerms,
    split: Split,
    /// The beneficiary's paid years, here and anywhere the registry knows of.
    history: Vec<PaidYear>,
    /// The limits the debit keeps within, if any apply.
    cap: Option<LimitCap>,
    /// What the limits leave, when that is less than the account could pay.
    capped_by_limit: Option<Money>,
}

impl<S: Accounts + Holds + Premiums, R: Registry> App<S, R> {
    /// What paying the premium now would cost and buy; binding-service is asked, but a
    /// denial does not stop a quote.
    pub async fn quote_premium(&self, order: &PremiumOrder) -> Result<Quote, AppError> {
        Ok(self.authorized_quote(order).await?.0)
    }

    /// The quote, and whether binding-service authorizes the payer's account to pay it now.
    pub(super) async fn authorized_quote(
        &self,
        order: &PremiumOrder,
    ) -> Result<(Quote, bool), AppError> {
        let (_, today) = self.now();
        let prepared = self.prepare(order, false, today).await?;
        let authorized = prepared.authorization.is_authorized();
        // A quote's advice, of the same inputs as its terms; a payment computes none.
        let continuity = premium::continuity(
            &TermsInput {
                policy: &self.policy,
                year: order.year,
                region: &prepared.region,
                today,
                birth_date: order.beneficiary.birth_date(),
                back_payment: order.back_payment,
                history: &prepared.history,
            },
            &prepared.terms,
        );
        let quote = Quote {
            year: order.year,
            region: prepared.region,
            terms: prepared.terms,
            split: prepared.split,
            payment_date: today,
            back_payment: order.back_payment,
            continuity,
        };
        Ok((quote, authorized))
    }

    /// Pays the premium from the payer's account (and other means for the rest), with
    /// binding-service's yes for this very debit, recorded as a use before it is written.
    pub async fn pay_premium(
        &self,
        order: PaymentOrder,
        command: Command<PremiumPayment>,
    ) -> Result<PremiumPayment, AppError> {
        let PaymentOrder {
            order,
            expected,
            other_means,
        } = order;
        // One instant decides the window, the waiting months and the payment's date (P6, P7).
        let (now, today) = self.now();
        let p = self.prepare(&order, true, today).await?;
        if expected != p.terms.premium {
            return Err(AppError::AmountMismatch {
                expected,
                premium: p.terms.premium,
            });
        }
        payment::check_other_means(&p.split, other_means.as_ref()).map_err(
            |problem| match problem {
                OtherMeansProblem::Shortfall(shortfall) => match p.capped_by_limit {
                    Some(remaining) => AppError::FamilyLimitReached {
                        remaining,
                        shortfall,
                    },
                    None => AppError::InsufficientBalance {
                        shortfall,
                        usable: p.split.account_part,
                        premium: p.terms.premium,
                    },
                },
                OtherMeansProblem::NotNeeded => AppError::OtherMeansNotNeeded,
                OtherMeansProblem::WrongAmount { expected } => {
                    AppError::OtherMeansWrongAmount { expected }
                }
            },
        )?;
        // P1's fence: the account part is held, binding-service authorizes and records the
        // use under the revocation's lock, and the payment's write posts the hold.
        let movement_id = new_id();
        let has_account_part = !p.split.account_part.is_zero();
        let authorization = if has_account_part {
            let hold = Hold::new(
                &movement_id,
                &order.payer,
                &p.split.draws,
                Purpose::Premium,
                command.request_id(),
                now,
                self.hold_timeout_ms,
            )
            .within(p.cap.clone());
            let authorization = self.hold_and_authorize(&hold, &order.beneficiary).await?;
            if authorization.beneficiary_region.as_ref() != Some(&p.region) {
                self.release(&movement_id).await;
                return Err(AppError::AuthorizationChanged);
            }
            authorization
        } else {
            p.authorization
        };
        let payment = PremiumPayment {
            payment_id: new_id(),
            request_id: command.request_id().to_owned(),
            movement_id: movement_id.clone(),
            payer: order.payer,
            beneficiary: order.beneficiary,
            year: order.year,
            state: PaymentState::Paid,
            terms: p.terms,
            back_payment: order.back_payment,
            split: p.split,
            other_means,
            binding_id: authorization.binding_id,
            binding_version: authorization.binding_version,
            payer_region: p.account.region,
            beneficiary_region: p.region,
            payment_date: today,
            pay_time: now,
            refund_time: None,
            refund_reason: None,
        };
        let movement = payment::premium_movement(&payment);
        let posting = has_account_part
            .then(|| self.posting(&movement_id, &payment.binding_id, payment.binding_version));
        let written = self
            .store
            .insert_premium(
                &payment,
                &movement,
                posting.as_ref(),
                command.idempotency(),
                &command.response(&payment),
            )
            .await;
        if let Err(e) = written {
            if has_account_part {
                self.release(&movement_id).await;
            }
            return Err(match e {
                StoreError::Conflict(Conflict::AlreadyPaid) => {
                    AppError::PremiumAlreadyPaid { year: order.year }
                }
                StoreError::Conflict(Conflict::InsufficientBalance) => AppError::BalanceChanged,
                StoreError::Conflict(Conflict::HoldGone) => AppError::AuthorizationExpired,
                e => e.into(),
            });
        }
        if has_account_part {
            self.count_family_debit(Purpose::Premium, payment.split.account_part);
        }
        tracing::debug!(
            payment_id = %payment.payment_id,
            payer = %payment.payer,
            beneficiary = %payment.beneficiary,
            coverage_year = payment.year.get(),
            premium = %payment.terms.premium,
            account_part = %payment.split.account_part,
            other_part = %payment.split.other_part,
            "premium paid"
        );
        Ok(payment)
    }

    /// Asks binding-service fresh, then computes premium, window, waiting period and split
    /// as of `today`. With `must_be_authorized`, a denial stops here.
    async fn prepare(
        &self,
        order: &PremiumOrder,
        must_be_authorized: bool,
        today: NaiveDate,
    ) -> Result<Prepared, AppError> {
        let PremiumOrder {
            payer,
            beneficiary,
            year,
            back_payment,
        } = order;
        // binding-service's answer and the account's facts are asked for side by side (two
        // round trips' wait become one); the answer still decides first.
        let (authorization, facts) = tokio::join!(
            self.registry
                .authorize(payer, beneficiary, Purpose::Premium),
            self.store.premium_facts(payer, beneficiary)
        );
        let authorization = authorization?;
        if must_be_authorized && !authorization.is_authorized() {
            tracing::info!(payer = %payer, beneficiary = %beneficiary, "premium refused: not authorized");
            return Err(AppError::NotAuthorized {
                denials: authorization.denials,
            });
        }
        let person =
            authorization
                .beneficiary
                .as_ref()
                .ok_or_else(|| AppError::BeneficiaryNotFound {
                    beneficiary: beneficiary.clone(),
                })?;
        if person.live_employee().is_some() {
            return Err(AppError::BeneficiaryHasEmployeeInsurance {
                beneficiary: beneficiary.clone(),
            });
        }
        let region = authorization
            .beneficiary_region
            .clone()
            .ok_or(AppError::BeneficiaryNotInsured)?;
        // P5: one premium per beneficiary and year, whoever paid it and through whatever
        // channel; years paid elsewhere count as covered when gap years are counted.
        if person.paid_years.contains(year) {
            return Err(AppError::PremiumAlreadyPaid { year: *year });
        }
        let (account, mut history) = facts?;
        let account = account.ok_or_else(|| AppError::AccountNotFound {
            holder: payer.clone(),
            role: AccountRole::Payer,
        })?;
        if history.iter().any(|p| p.year == *year) {
            return Err(AppError::PremiumAlreadyPaid { year: *year });
        }
        for paid in &person.paid_years {
            if !history.iter().any(|p| p.year == *paid) {
                history.push(PaidYear {
                    year: *paid,
                    back_payment: false,
                });
            }
        }
        let input = TermsInput {
            policy: &self.policy,
            year: *year,
            region: &region,
            today,
            birth_date: beneficiary.birth_date(),
            back_payment: *back_payment,
            history: &history,
        };
        let terms = premium::terms(&input).map_err(|refusal| AppError::PremiumRefused {
            refusal,
            year: *year,
        })?;
        // The authorizer's limits, if any apply, cap the account part (the rest by other means).
        let cap = super::fence::cap_of(&authorization, today);
        let left = match &cap {
            Some(cap) => {
                self.store
                    .limit_remaining(cap, Purpose::Premium, self.clock.now())
                    .await?
            }
            None => None,
        };
        let uncapped = split::split(terms.premium, Some(&account), &self.usable_buckets(today));
        let capped_by_limit = left.filter(|l| *l < uncapped.account_part);
        let split = split::capped(uncapped, left);
        Ok(Prepared {
            cap,
            capped_by_limit,
            authorization,
            account,
            region,
            terms,
            split,
            history,
        })
    }

    /// One premium payment.
    pub async fn premium_payment(&self, payment_id: &str) -> Result<PremiumPayment, AppError> {
        self.store
            .premium_payment(payment_id)
            .await?
            .ok_or_else(|| AppError::PaymentNotFound {
                payment_id: payment_id.to_owned(),
                kind: PaymentKind::Premium,
            })
    }

    /// Up to `limit` premium payments by payer (or for a beneficiary), newest first, before
    /// position `before`; each with its position.
    pub async fn premium_payments(
        &self,
        person: &IdNumber,
        as_payer: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, PremiumPayment)>, AppError> {
        Ok(self
            .store
            .premium_payments(person, as_payer, before, limit)
            .await?)
    }

    /// Refunds a paid premium (P9): the account part back to the buckets it came from, the
    /// other-means part recorded as owed back; the year counts as unpaid again.
    pub async fn refund_premium(
        &self,
        payment_id: &str,
        reason: String,
        command: Command<PremiumPayment>,
    ) -> Result<PremiumPayment, AppError> {
        let payment = self.premium_payment(payment_id).await?;
        let already = || AppError::AlreadyRefunded {
            payment_id: payment_id.to_owned(),
        };
        if payment.state == PaymentState::Refunded {
            return Err(already());
        }
        let now = self.clock.now();
        let has_account_part = !payment.split.account_part.is_zero();
        let plan = |paid_year_closed: bool| {
            has_account_part.then(|| {
                payment::refund_movement(
                    &payment,
                    &new_id(),
                    command.request_id(),
                    now,
                    gongji_shared::domain::clock::shanghai_date(now),
                    paid_year_closed,
                )
            })
        };
        let refunded = PremiumPayment {
            state: PaymentState::Refunded,
            refund_time: Some(now),
            refund_reason: Some(reason),
            ..payment.clone()
        };
        self.store
            .refund_premium(
                &refunded,
                plan,
                refunded.other_means.as_ref(),
                command.idempotency(),
                &command.response(&refunded),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::AlreadyRefunded) => already(),
                e => e.into(),
            })?;
        tracing::info!(
            payment_id = %refunded.payment_id,
            payer = %refunded.payer,
            beneficiary = %refunded.beneficiary,
            account_part = %refunded.split.account_part,
            other_part = %refunded.split.other_part,
            "premium refunded"
        );
        Ok(refunded)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gongji_shared::command::{Idempotency, SavedResponse};

    use super::*;
    use crate::{
        app::fakes::{CHILD, FakeStore, PAYER, app, id},
        domain::{authorization::Denial, fence::Hold},
    };

    fn order() -> PaymentOrder {
        PaymentOrder {
            order: PremiumOrder {
                payer: id(PAYER),
                beneficiary: id(CHILD),
                year: CoverageYear::parse(2025).unwrap(),
                back_payment: false,
            },
            expected: Money::parse("400.00").unwrap(),
            other_means: None,
        }
    }

    fn command(request_id: &str) -> Command<PremiumPayment> {
        Command::new(
            Idempotency::new(request_id, "PayPremium", request_id.as_bytes()),
            |p: &PremiumPayment| p.payment_id.clone().into_bytes(),
        )
    }

    fn prior_years(store: &FakeStore) -> String {
        store.state().accounts[&id(PAYER)].prior_years.to_string()
    }

    #[tokio::test]
    async fn a_payment_debits_once_and_records_its_answer() {
        let (app, store, registry) = app();
        let paid = app.pay_premium(order(), command("r-1")).await.unwrap();
        assert_eq!(prior_years(&store), "800.00");
        let state = store.state();
        assert_eq!(state.premiums, vec![paid.clone()]);
        assert_eq!(
            state.responses["r-1"].response,
            paid.payment_id.into_bytes()
        );
        assert_eq!(registry.state().asked.len(), 1);
    }

    /// P1's fence. The revocation commits after the first check, while the amount is being
    /// held: AuthorizeUse, answered under the revocation's lock, says no, so no use is
    /// recorded, the hold is voided and nothing is debited. (This test once showed the gap:
    /// the debit went through on the earlier answer.)
    #[tokio::test]
    async fn a_revocation_after_the_check_refuses_the_debit_and_voids_its_hold() {
        let (app, store, registry) = app();
        let revoke = registry.clone();
        store.state().before_write = Some(Arc::new(move || {
            let mut state = revoke.state();
            let mut revoked = state.authorization.clone().unwrap();
            revoked.binding_version = 2;
            revoked.denials.push(Denial {
                reason: "BINDING_NOT_ACTIVE".to_owned(),
                message: "revoked".to_owned(),
            });
            state.use_answer = Some(revoked);
        }));
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        match error {
            AppError::NotAuthorized { denials } => {
                assert_eq!(denials[0].reason, "BINDING_NOT_ACTIVE")
            }
            other => panic!("expected NOT_AUTHORIZED, got {other:?}"),
        }
        assert!(
            registry.state().uses.is_empty(),
            "no use after a revocation"
        );
        let state = store.state();
        assert!(state.premiums.is_empty() && state.responses.is_empty());
        assert_eq!(
            state.accounts[&id(PAYER)].prior_years.to_string(),
            "1200.00"
        );
        assert_eq!(state.holds.len(), 1);
        assert!(state.holds.values().all(|(_, s)| *s == "VOIDED"));
    }

    #[tokio::test]
    async fn a_debit_posts_its_hold_after_binding_service_recorded_its_use() {
        let (app, store, registry) = app();
        let paid = app.pay_premium(order(), command("r-1")).await.unwrap();
        let uses = registry.state().uses.clone();
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].movement_id, paid.movement_id);
        assert_eq!(uses[0].amount.to_string(), "400.00");
        assert_eq!(
            (paid.binding_id.as_str(), paid.binding_version),
            ("binding-1", 1)
        );
        let state = store.state();
        assert_eq!(state.holds[&paid.movement_id].1, "POSTED");
        assert_eq!(state.movements[0].movement_id, paid.movement_id);
    }

    #[tokio::test]
    async fn a_hold_that_ran_out_before_the_write_moves_nothing() {
        let (app, store, registry) = app();
        let expire = store.clone();
        registry.state().on_use = Some(Arc::new(move |_: &crate::app::UseRequest| {
            for (hold, _) in expire.state().holds.values_mut() {
                hold.expire_time = hold.create_time;
            }
        }));
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(matches!(error, AppError::AuthorizationExpired), "{error:?}");
        let state = store.state();
        assert!(state.premiums.is_empty() && state.responses.is_empty());
        assert_eq!(
            state.accounts[&id(PAYER)].prior_years.to_string(),
            "1200.00"
        );
        assert!(state.holds.values().all(|(_, s)| *s == "VOIDED"));
    }

    #[tokio::test]
    async fn binding_service_lost_at_the_use_voids_the_hold() {
        let (app, store, registry) = app();
        registry.state().use_unreachable = true;
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(
            matches!(error, AppError::Infra(super::super::Infra::Peer(_))),
            "{error:?}"
        );
        let state = store.state();
        assert!(state.premiums.is_empty());
        assert!(state.holds.values().all(|(_, s)| *s == "VOIDED"));
    }

    #[tokio::test]
    async fn a_live_hold_is_not_spent_by_another_payment_and_an_expired_one_is() {
        let (app, store, _) = app();
        let now = gongji_shared::Clock::parse("2024-11-15T10:00:00+08:00")
            .unwrap()
            .now();
        let draws = [crate::domain::split::Draw {
            bucket: gongji_shared::policy::Bucket::PriorYears,
            amount: Money::parse("1000.00").unwrap(),
        }];
        let other = Hold::new(
            "m-other",
            &id(PAYER),
            &draws,
            Purpose::MedicalExpense,
            "x",
            now,
            30_000,
        );
        store
            .state()
            .holds
            .insert("m-other".to_owned(), (other.clone(), "HELD"));
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(matches!(error, AppError::BalanceChanged), "{error:?}");
        let stale = Hold {
            create_time: now - chrono::Duration::minutes(5),
            expire_time: now - chrono::Duration::minutes(4),
            ..other
        };
        store
            .state()
            .holds
            .insert("m-other".to_owned(), (stale, "HELD"));
        app.pay_premium(order(), command("r-2")).await.unwrap();
        let state = store.state();
        assert_eq!(state.holds["m-other"].1, "VOIDED", "expired, so voided");
        assert_eq!(state.accounts[&id(PAYER)].prior_years.to_string(), "800.00");
    }

    #[tokio::test]
    async fn a_changed_region_between_the_check_and_the_use_refuses() {
        let (app, store, registry) = app();
        let mut moved = registry.state().authorization.clone().unwrap();
        moved.beneficiary_region = Some(gongji_shared::RegionCode::parse("340100").unwrap());
        registry.state().use_answer = Some(moved);
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(matches!(error, AppError::AuthorizationChanged), "{error:?}");
        let state = store.state();
        assert!(state.premiums.is_empty());
        assert!(state.holds.values().all(|(_, s)| *s == "VOIDED"));
    }

    #[tokio::test]
    async fn reconciliation_is_clean_after_payments_and_reports_a_lost_use() {
        let (app, _, registry) = app();
        let paid = app.pay_premium(order(), command("r-1")).await.unwrap();
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((report.debits_checked, report.uses_checked), (1, 1));
        registry.state().uses.clear();
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        assert_eq!(report.debits_without_use, [paid.movement_id]);
    }

    #[tokio::test]
    async fn reconciliation_reports_a_use_whose_hold_ran_out_but_not_one_in_flight() {
        let (app, store, registry) = app();
        let expire = store.clone();
        registry.state().on_use = Some(Arc::new(move |_: &crate::app::UseRequest| {
            for (hold, _) in expire.state().holds.values_mut() {
                hold.expire_time = hold.create_time;
            }
        }));
        app.pay_premium(order(), command("r-1")).await.unwrap_err();
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        let lost = registry.state().uses[0].movement_id.clone();
        assert_eq!(report.uses_without_debit, std::slice::from_ref(&lost));
        // The same use with its hold still live is a payment in flight.
        let (hold, _) = store.state().holds[&lost].clone();
        let live = Hold {
            expire_time: hold.create_time + chrono::Duration::seconds(30),
            ..hold
        };
        store.state().holds.insert(lost.clone(), (live, "HELD"));
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.in_flight, [lost]);
    }

    /// Issue 8, point 8: one instant decides the window and stamps the payment. On a clock
    /// that moves a second at every reading, from the last second of the 2025 window, a
    /// second reading for the date would say 2025-01-01, outside the window it was
    /// decided in.
    #[tokio::test]
    async fn one_instant_decides_the_window_and_dates_the_payment() {
        let last_second = chrono::DateTime::parse_from_rfc3339("2024-12-31T23:59:59+08:00")
            .unwrap()
            .to_utc();
        let (app, _, _) = crate::app::fakes::app_on(gongji_shared::Clock::stepping(last_second));
        let paid = app.pay_premium(order(), command("r-1")).await.unwrap();
        assert_eq!(paid.pay_time, last_second, "the first reading");
        assert_eq!(
            paid.payment_date,
            chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()
        );
        assert!(paid.terms.in_window, "decided on the same instant");
    }

    #[tokio::test]
    async fn a_balance_spent_between_the_read_and_the_debit_refuses_and_stores_nothing() {
        let (app, store, _) = app();
        let spender = store.clone();
        store.state().before_write = Some(Arc::new(move || {
            let mut state = spender.state();
            let account = state.accounts.get_mut(&id(PAYER)).unwrap();
            account.prior_years = Money::parse("100.00").unwrap();
        }));
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(matches!(error, AppError::BalanceChanged), "{error:?}");
        let state = store.state();
        assert!(state.premiums.is_empty() && state.responses.is_empty());
        assert_eq!(state.accounts[&id(PAYER)].prior_years.to_string(), "100.00");
    }

    #[tokio::test]
    async fn a_request_id_taken_by_a_concurrent_call_is_a_lost_race_that_moves_nothing() {
        let (app, store, _) = app();
        let racer = store.clone();
        store.state().before_write = Some(Arc::new(move || {
            racer.state().responses.insert(
                "r-1".to_owned(),
                SavedResponse {
                    operation: "PayPremium".to_owned(),
                    fingerprint: "first".to_owned(),
                    response: b"first".to_vec(),
                },
            );
        }));
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(matches!(error, AppError::RequestIdTaken), "{error:?}");
        assert_eq!(prior_years(&store), "1200.00");
        assert!(store.state().premiums.is_empty());
    }

    #[tokio::test]
    async fn binding_service_unreachable_refuses_before_any_write() {
        let (app, store, registry) = app();
        registry.state().unreachable = true;
        let error = app.pay_premium(order(), command("r-1")).await.unwrap_err();
        assert!(
            matches!(error, AppError::Infra(super::super::Infra::Peer(_))),
            "{error:?}"
        );
        assert!(store.state().responses.is_empty());
        assert_eq!(prior_years(&store), "1200.00");
    }

    #[tokio::test]
    async fn a_denial_refuses_a_payment_but_not_a_quote() {
        let (app, store, registry) = app();
        registry
            .state()
            .authorization
            .as_mut()
            .unwrap()
            .denials
            .push(Denial {
                reason: "BINDING_NOT_FOUND".to_owned(),
                message: "no binding".to_owned(),
            });
        let quote = app.quote_premium(&order().order).await.unwrap();
        assert_eq!(quote.terms.premium.to_string(), "400.00");
        match app.pay_premium(order(), command("r-1")).await {
            Err(AppError::NotAuthorized { denials }) => {
                assert_eq!(denials[0].reason, "BINDING_NOT_FOUND")
            }
            other => panic!("expected NOT_AUTHORIZED, got {other:?}"),
        }
        assert!(store.state().premiums.is_empty());
    }

    #[tokio::test]
    async fn a_refund_returns_the_money_and_a_second_one_is_refused() {
        let (app, store, _) = app();
        let paid = app.pay_premium(order(), command("r-1")).await.unwrap();
        let refunded = app
            .refund_premium(&paid.payment_id, "duplicate".to_owned(), command("r-2"))
            .await
            .unwrap();
        assert_eq!(refunded.state, PaymentState::Refunded);
        assert_eq!(prior_years(&store), "1200.00");
        let again = app
            .refund_premium(&paid.payment_id, "again".to_owned(), command("r-3"))
            .await
            .unwrap_err();
        assert!(
            matches!(again, AppError::AlreadyRefunded { .. }),
            "{again:?}"
        );
    }
}
