//! Family bindings (B1 to B6): apply, read, list, revoke, review, authorize, and the audit
//! trail that event streams follow.

use gongji_shared::{
    IdNumber, Money, PersonName, RegionCode, Relationship,
    command::Command,
    policy::{Purpose, ReviewMode},
};

use super::{App, AppError, Balances};
use crate::{
    domain::{
        Binding, BindingEvent, BindingKind, BindingState, BindingUse, Person, VerificationMethod,
        lifecycle::{self, Change, ChangeRefusal},
        rules::{self, AuthorizationFacts, CreateFacts, Failure},
    },
    store::{Bindings, Conflict, Events, ListFilter, Persons, StoreError, Uses},
};

/// An application for a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub beneficiary_name: PersonName,
    pub relationship: Relationship,
    pub kind: BindingKind,
    /// How the channel verified the authorizer, as it reports.
    pub verification: Option<VerificationMethod>,
}

/// Most requests for consent one expiry batch ends, and batches per pass: the work of a pass
/// is bounded; what is left waits for the next pass.
pub const CONSENT_EXPIRY_BATCH: u32 = 100;
pub const CONSENT_EXPIRY_BATCHES_PER_PASS: usize = 10;

/// The answer to "may the authorizer's account pay for the beneficiary": every rule that
/// fails (none: authorized), with the facts it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationAnswer {
    pub failures: Vec<Failure>,
    /// The pair's funds-sharing binding: the live one, else the latest.
    pub binding: Option<Binding>,
    pub authorizer: Option<Person>,
    pub beneficiary: Option<Person>,
    /// Where the authorizer's employee insurance is.
    pub authorizer_region: Option<RegionCode>,
    /// Where the beneficiary is insured (B3): their premium and institutions are paid there.
    pub beneficiary_region: Option<RegionCode>,
    /// The caps payment-service enforces on the debit: the binding's own, else the policy's
    /// defaults.
    pub limits: gongji_shared::domain::limits::FamilyLimits,
}

/// What became of an application (B5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored ACTIVE, or PENDING_REVIEW under manual review.
    Created(Binding),
    /// Refused by the rules: kept as a REJECTED application with every reason, for the
    /// audit trail; the caller is answered with the refusal, and so is a retry.
    Refused {
        binding: Binding,
        failures: Vec<Failure>,
    },
}

impl<S: Persons + Bindings, P: Balances> App<S, P> {
    /// Checks every rule of the policy in force today, all at once, and stores the binding
    /// (ACTIVE, or PENDING_REVIEW under manual review) with its first audit event; or,
    /// refused, the REJECTED application with every reason. A duplicate of a live binding
    /// is refused without a record: the live binding is the record.
    pub async fn create_binding(
        &self,
        application: Application,
        command: Command<Applied>,
    ) -> Result<Applied, AppError> {
        let now = self.clock.now();
        let rules = self.policy.rules_on(self.clock.today());
        let (failures, authorizer, beneficiary) = self.check_rules(&application, None).await?;
        let rules = match rules {
            Some(rules) if failures.is_empty() => rules,
            _ if failures.contains(&Failure::BindingAlreadyExists) => {
                return Err(AppError::BindingRefused { failures });
            }
            _ => {
                let failures = if failures.is_empty() {
                    vec![Failure::NoPolicyInForce]
                } else {
                    failures
                };
                return self.reject(application, failures, &command).await;
            }
        };
        // B5: an adult beneficiary accepts first, when the policy asks for consent.
        let consent_expire_time = lifecycle::consent_deadline(
            rules.consent.as_ref(),
            &application.beneficiary,
            self.clock.today(),
            now,
        );
        let state = match (consent_expire_time, rules.review_mode) {
            (Some(_), _) => BindingState::PendingConsent,
            (None, ReviewMode::Automatic) => BindingState::Active,
            (None, ReviewMode::Manual) => BindingState::PendingReview,
        };
        let (mut binding, event) = new_binding(
            &application,
            state,
            "application",
            command.request_id(),
            now,
        );
        binding.consent_expire_time = consent_expire_time;
        let cap =
            (application.kind == BindingKind::FundsSharing).then_some(rules.max_beneficiaries);
        let created = Applied::Created(binding.clone());
        // The rules decided on these records: a registry change since (say, a terminated
        // enrollment) must not leave an ACTIVE binding with a terminated party.
        let seen = [
            (&binding.authorizer, authorizer.as_ref()),
            (&binding.beneficiary, beneficiary.as_ref()),
        ];
        let stored = self
            .store
            .insert_binding(
                &binding,
                &event,
                command.idempotency(),
                &command.response(&created),
                cap,
                &seen,
            )
            .await;
        match stored {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::LiveBindingExists)) => {
                return Err(refused(Failure::BindingAlreadyExists));
            }
            Err(StoreError::Conflict(Conflict::RegistryChanged)) => {
                return Err(AppError::RegistryChanged);
            }
            // The cap, checked again under the write lock, was reached meanwhile.
            Err(StoreError::Conflict(Conflict::LimitReached)) => {
                return self
                    .reject(application, vec![Failure::BindingLimitReached], &command)
                    .await;
            }
            Err(e) => return Err(e.into()),
        }
        self.events.notify_waiters();
        tracing::info!(
            binding_id = %binding.binding_id,
            authorizer = %binding.authorizer,
            beneficiary = %binding.beneficiary,
            state = binding.state.as_str(),
            "binding created"
        );
        Ok(created)
    }

    /// Approves a binding waiting for manual review, after checking every rule again as of
    /// now (B5): an authorizer who became ineligible meanwhile is refused.
    pub async fn approve_binding(
        &self,
        binding_id: &str,
        reviewer: &str,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        let (current, _) = self.binding(binding_id).await?;
        if current.state == BindingState::PendingReview {
            let failures = self.recheck(&current).await?;
            if !failures.is_empty() {
                tracing::info!(
                    binding_id,
                    ?failures,
                    "approval refused: the rules fail now"
                );
                return Err(AppError::BindingRefused { failures });
            }
        }
        self.change(binding_id, &command, |b| {
            lifecycle::review(b, true, reviewer, "approved")
        })
        .await
    }

    /// The beneficiary accepts a binding waiting for consent (B5), after every rule is checked
    /// again as of now: ACTIVE, or PENDING_REVIEW under manual review.
    pub async fn accept_binding(
        &self,
        binding_id: &str,
        requester: &IdNumber,
        verification: VerificationMethod,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        let (current, _) = self.binding(binding_id).await?;
        let now = self.clock.now();
        let review_mode = self
            .policy
            .rules_on(self.clock.today())
            .map_or(ReviewMode::Automatic, |r| r.review_mode);
        // Who may answer, and whether in time, before the rules: a stranger learns nothing.
        let refused = |refusal| AppError::ChangeRefused {
            refusal,
            binding_id: binding_id.to_owned(),
            state: current.state,
        };
        lifecycle::accept(&current, requester, review_mode, verification, now).map_err(refused)?;
        let failures = self.recheck(&current).await?;
        if !failures.is_empty() {
            tracing::info!(
                binding_id,
                ?failures,
                "acceptance refused: the rules fail now"
            );
            return Err(AppError::BindingRefused { failures });
        }
        self.change(binding_id, &command, |b| {
            lifecycle::accept(b, requester, review_mode, verification, now)
        })
        .await
    }

    /// The beneficiary declines a binding waiting for consent (B5).
    pub async fn decline_binding(
        &self,
        binding_id: &str,
        requester: &IdNumber,
        reason: &str,
        verification: VerificationMethod,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        let now = self.clock.now();
        self.change(binding_id, &command, |b| {
            lifecycle::decline(b, requester, reason, verification, now)
        })
        .await
    }

    /// Ends the requests for consent whose time ran out (B5): EXPIRED, by the system, in
    /// bounded batches. Answers how many.
    pub async fn expire_consents(&self) -> Result<usize, AppError> {
        let now = self.clock.now();
        let mut expired = 0;
        for _ in 0..CONSENT_EXPIRY_BATCHES_PER_PASS {
            let due = self
                .store
                .consents_expired(now, CONSENT_EXPIRY_BATCH)
                .await?;
            for binding in &due {
                let Ok(change) = lifecycle::expire(binding, now) else {
                    continue;
                };
                let request_id = format!("expire-consent:{}", binding.binding_id);
                let (next, event) = lifecycle::apply(binding, &change, &request_id, now);
                match self
                    .store
                    .system_transition(&next, binding.version, &event)
                    .await
                {
                    Ok(()) => expired += 1,
                    // Answered meanwhile: the answer stands.
                    Err(StoreError::Conflict(Conflict::VersionChanged)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if due.len() < CONSENT_EXPIRY_BATCH as usize {
                break;
            }
        }
        if expired > 0 {
            self.events.notify_waiters();
            tracing::info!(expired, "requests for consent expired");
        }
        Ok(expired)
    }

    /// The rules a pending binding fails today, itself left out of the authorizer's live
    /// bindings.
    async fn recheck(&self, pending: &Binding) -> Result<Vec<Failure>, AppError> {
        let application = Application {
            authorizer: pending.authorizer.clone(),
            beneficiary: pending.beneficiary.clone(),
            beneficiary_name: pending.beneficiary_name.clone(),
            relationship: pending.relationship,
            kind: pending.kind,
            verification: None,
        };
        let (failures, _, _) = self
            .check_rules(&application, Some(&pending.binding_id))
            .await?;
        Ok(failures)
    }

    /// Every rule of the policy in force today that `application` fails, with the two
    /// registry records it was decided on. `except` is a binding of the authorizer's left out
    /// of their live bindings (the pending one being approved).
    async fn check_rules(
        &self,
        application: &Application,
        except: Option<&str>,
    ) -> Result<(Vec<Failure>, Option<Person>, Option<Person>), AppError> {
        let authorizer = self.store.person(&application.authorizer).await?;
        let beneficiary = self.store.person(&application.beneficiary).await?;
        let mut live = self.store.live_bindings_of(&application.authorizer).await?;
        live.retain(|b| Some(b.binding_id.as_str()) != except);
        let usable = match application.kind {
            BindingKind::FundsSharing => {
                Some(self.payment.usable_balance(&application.authorizer).await?)
            }
            BindingKind::Proxy => None,
        };
        let failures = rules::check_create(&CreateFacts {
            rules: self.policy.rules_on(self.clock.today()),
            province: self.policy.province_code(),
            authorizer_id: &application.authorizer,
            authorizer: authorizer.as_ref(),
            authorizer_usable_fen: usable.map(Money::fen),
            beneficiary_id: &application.beneficiary,
            beneficiary: beneficiary.as_ref(),
            beneficiary_name: &application.beneficiary_name,
            relationship: application.relationship,
            kind: application.kind,
            authorizer_live_bindings: &live,
        });
        Ok((failures, authorizer, beneficiary))
    }

    /// Stores a refused application as REJECTED with every reason, and answers the refusal.
    async fn reject(
        &self,
        application: Application,
        failures: Vec<Failure>,
        command: &Command<Applied>,
    ) -> Result<Applied, AppError> {
        let reasons = failures
            .iter()
            .map(|f| f.reason())
            .collect::<Vec<_>>()
            .join(",");
        let (mut binding, mut event) = new_binding(
            &application,
            BindingState::Rejected,
            &format!("refused: {reasons}"),
            command.request_id(),
            self.clock.now(),
        );
        binding.state_reason = format!("refused: {reasons}");
        event.actor = "rules".to_owned();
        tracing::info!(
            binding_id = %binding.binding_id,
            authorizer = %binding.authorizer,
            beneficiary = %binding.beneficiary,
            ?failures,
            "binding refused; the application is kept"
        );
        let refused = Applied::Refused {
            binding: binding.clone(),
            failures,
        };
        self.store
            .insert_binding(
                &binding,
                &event,
                command.idempotency(),
                &command.response(&refused),
                None,
                &[],
            )
            .await?;
        self.events.notify_waiters();
        Ok(refused)
    }
}

/// A new binding of `application` in `state`, with its first audit event.
fn new_binding(
    application: &Application,
    state: BindingState,
    reason: &str,
    request_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (Binding, BindingEvent) {
    let binding = Binding {
        binding_id: uuid::Uuid::new_v4().to_string(),
        authorizer: application.authorizer.clone(),
        beneficiary: application.beneficiary.clone(),
        beneficiary_name: application.beneficiary_name.clone(),
        relationship: application.relationship,
        kind: application.kind,
        state,
        version: 1,
        create_time: now,
        update_time: now,
        state_reason: String::new(),
        limits: gongji_shared::domain::limits::FamilyLimits::none(),
        consent_expire_time: None,
    };
    let event = BindingEvent {
        sequence: 0,
        binding_id: binding.binding_id.clone(),
        from_state: None,
        to_state: state,
        actor: "authorizer".to_owned(),
        reason: reason.to_owned(),
        request_id: request_id.to_owned(),
        event_time: now,
        binding_version: 1,
        caller: String::new(),
        acting_person: None,
        verification: application.verification,
    };
    (binding, event)
}

impl<S: Persons + Bindings, P> App<S, P> {
    /// One binding with its history, oldest first.
    pub async fn binding(
        &self,
        binding_id: &str,
    ) -> Result<(Binding, Vec<BindingEvent>), AppError> {
        self.store
            .binding(binding_id)
            .await?
            .ok_or_else(|| AppError::BindingNotFound {
                binding_id: binding_id.to_owned(),
            })
    }

    /// One page of a person's bindings; each with its position.
    pub async fn list_bindings(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<(i64, Binding)>, AppError> {
        Ok(self.store.list_bindings(filter).await?)
    }

    /// Ends a live binding at the request of either party.
    pub async fn revoke_binding(
        &self,
        binding_id: &str,
        requester: &IdNumber,
        reason: &str,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        self.change(binding_id, &command, |b| {
            lifecycle::revoke(b, requester, reason)
        })
        .await
    }

    /// Sets the limits of an ACTIVE funds-sharing binding, at the request of its authorizer
    /// (the person the caller acts for): an audited event, and a new version.
    pub async fn set_binding_limits(
        &self,
        binding_id: &str,
        requester: &IdNumber,
        limits: gongji_shared::domain::limits::FamilyLimits,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        let policy = self.policy.family_limits().clone();
        self.change(binding_id, &command, |b| {
            lifecycle::set_limits(b, requester, limits, &policy)
        })
        .await
    }

    /// Rejects a binding waiting for manual review.
    pub async fn reject_binding(
        &self,
        binding_id: &str,
        reviewer: &str,
        reason: &str,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        self.change(binding_id, &command, |b| {
            lifecycle::review(b, false, reviewer, reason)
        })
        .await
    }

    /// Whether the authorizer's account may pay for the beneficiary for `purpose`, decided
    /// on the registry and the binding as they are now.
    pub async fn check_authorization(
        &self,
        authorizer_id: &IdNumber,
        beneficiary_id: &IdNumber,
        purpose: Purpose,
    ) -> Result<AuthorizationAnswer, AppError> {
        let (authorizer, beneficiary, binding) = self
            .store
            .authorization_facts(authorizer_id, beneficiary_id, BindingKind::FundsSharing)
            .await?;
        let answer = self.decide_authorization(purpose, authorizer, beneficiary, binding);
        tracing::debug!(
            authorizer = %authorizer_id,
            beneficiary = %beneficiary_id,
            purpose = purpose.as_str(),
            authorized = answer.failures.is_empty(),
            failures = ?answer.failures,
            "authorization checked"
        );
        Ok(answer)
    }

    /// The answer of the rules in force today to the parties and the pair's binding.
    fn decide_authorization(
        &self,
        purpose: Purpose,
        authorizer: Option<Person>,
        beneficiary: Option<Person>,
        binding: Option<Binding>,
    ) -> AuthorizationAnswer {
        let province = self.policy.province_code();
        let failures = rules::check_authorization(&AuthorizationFacts {
            rules: self.policy.rules_on(self.clock.today()),
            province,
            purpose,
            authorizer: authorizer.as_ref(),
            beneficiary: beneficiary.as_ref(),
            binding: binding.as_ref(),
        });
        let limits = match &binding {
            Some(b) if !b.limits.is_empty() => b.limits.clone(),
            _ => self.policy.family_limits().defaults.clone(),
        };
        AuthorizationAnswer {
            failures,
            binding,
            limits,
            authorizer_region: authorizer
                .as_ref()
                .and_then(|p| p.employee.as_ref())
                .map(|e| e.region.clone()),
            beneficiary_region: beneficiary
                .as_ref()
                .and_then(|p| p.insured_region(province))
                .cloned(),
            authorizer,
            beneficiary,
        }
    }

    /// Reads a binding, asks `decide` for the change, and stores the next version with its
    /// audit event and answer in one transaction.
    pub(super) async fn change(
        &self,
        binding_id: &str,
        command: &Command<Binding>,
        decide: impl FnOnce(&Binding) -> Result<Change, ChangeRefusal>,
    ) -> Result<Binding, AppError> {
        let (current, _) = self.binding(binding_id).await?;
        let change = decide(&current).map_err(|refusal| AppError::ChangeRefused {
            refusal,
            binding_id: binding_id.to_owned(),
            state: current.state,
        })?;
        let (next, event) =
            lifecycle::apply(&current, &change, command.request_id(), self.clock.now());
        self.store
            .transition(
                &next,
                current.version,
                &event,
                command.idempotency(),
                &command.response(&next),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::VersionChanged) => AppError::BindingChanged,
                e => e.into(),
            })?;
        self.events.notify_waiters();
        tracing::info!(
            binding_id = %next.binding_id,
            from = current.state.as_str(),
            to = next.state.as_str(),
            actor = %event.actor,
            "binding changed"
        );
        Ok(next)
    }
}

/// One family debit to authorize (P1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseOrder {
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub purpose: Purpose,
    pub amount: Money,
    /// payment-service's movement of the debit.
    pub movement_id: String,
}

/// The answer to a use: the decision, and the use recorded when it authorizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseAnswer {
    pub answer: AuthorizationAnswer,
    pub recorded: Option<BindingUse>,
}

impl<S: Persons + Bindings + Uses, P: Sync> App<S, P> {
    /// Authorizes one family debit and records its use in the same transaction as the
    /// check, under the lock revocations take (P1): a use exists only for a debit
    /// authorized while its binding was ACTIVE.
    pub async fn authorize_use(
        &self,
        order: UseOrder,
        command: Command<UseAnswer>,
    ) -> Result<UseAnswer, AppError> {
        let now = self.clock.now();
        let answer = self
            .store
            .authorize_use(
                &order.authorizer,
                &order.beneficiary,
                now,
                &command,
                |authorizer, beneficiary, binding| {
                    let answer =
                        self.decide_authorization(order.purpose, authorizer, beneficiary, binding);
                    let recorded = answer
                        .failures
                        .is_empty()
                        .then_some(answer.binding.as_ref())
                        .flatten()
                        .map(|b| BindingUse {
                            movement_id: order.movement_id.clone(),
                            binding_id: b.binding_id.clone(),
                            binding_version: b.version,
                            purpose: order.purpose,
                            amount: order.amount,
                            use_time: now,
                        });
                    (
                        UseAnswer {
                            answer,
                            recorded: recorded.clone(),
                        },
                        recorded,
                    )
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::UseRecorded) => AppError::UseRecorded {
                    movement_id: order.movement_id.clone(),
                },
                e => e.into(),
            })?;
        tracing::debug!(
            authorizer = %order.authorizer,
            beneficiary = %order.beneficiary,
            purpose = order.purpose.as_str(),
            amount = %order.amount,
            authorized = answer.recorded.is_some(),
            "use authorized"
        );
        Ok(answer)
    }

    /// Up to `limit` uses of a binding after position `after`, oldest first.
    pub async fn binding_uses(
        &self,
        binding_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, BindingUse)>, AppError> {
        self.binding(binding_id).await?;
        Ok(self.store.uses_of(binding_id, after, limit).await?)
    }
}

impl<S: Events, P> App<S, P> {
    /// Up to `limit` audit events after `cursor`, in commit order.
    pub async fn events_after(
        &self,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<BindingEvent>, AppError> {
        Ok(self.store.events_after(cursor, limit).await?)
    }
}

fn refused(failure: Failure) -> AppError {
    AppError::BindingRefused {
        failures: vec![failure],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gongji_shared::{Policy, command::Idempotency};

    use super::*;
    use crate::app::{
        Infra,
        fakes::{DAUGHTER, FakeStore, MOTHER, SON, app, id},
    };

    fn application(beneficiary: &str, name: &str) -> Application {
        Application {
            authorizer: id(MOTHER),
            beneficiary: id(beneficiary),
            beneficiary_name: PersonName::parse(name).unwrap(),
            relationship: Relationship::Child,
            kind: BindingKind::FundsSharing,
            verification: None,
        }
    }

    fn apply(request_id: &str) -> Command<Applied> {
        Command::new(
            Idempotency::new(request_id, "Op", request_id.as_bytes()),
            |a: &Applied| match a {
                Applied::Created(b) | Applied::Refused { binding: b, .. } => {
                    b.binding_id.clone().into_bytes()
                }
            },
        )
    }

    fn created(applied: Applied) -> Binding {
        match applied {
            Applied::Created(b) => b,
            Applied::Refused { failures, .. } => panic!("refused: {failures:?}"),
        }
    }

    fn command(request_id: &str) -> Command<Binding> {
        Command::new(
            Idempotency::new(request_id, "Op", request_id.as_bytes()),
            |b: &Binding| b.binding_id.clone().into_bytes(),
        )
    }

    /// The `n`th child born 2015-06-01 in Ma'anshan, with its GB 11643 check character.
    fn child(n: u32) -> IdNumber {
        IdNumber::with_check_char(&format!("34050420150601{:03}", 100 + n)).unwrap()
    }

    fn stored(store: &FakeStore) -> (usize, usize, usize) {
        let s = store.state();
        (s.bindings.len(), s.events.len(), s.responses.len())
    }

    /// A binding as a concurrent call would have committed it.
    fn concurrent(beneficiary: &str) -> Binding {
        let now = chrono::Utc::now();
        Binding {
            binding_id: format!("concurrent-{beneficiary}"),
            authorizer: id(MOTHER),
            beneficiary: id(beneficiary),
            beneficiary_name: PersonName::parse("李子轩").unwrap(),
            relationship: Relationship::Child,
            kind: BindingKind::FundsSharing,
            state: BindingState::Active,
            version: 1,
            create_time: now,
            update_time: now,
            state_reason: String::new(),
            limits: gongji_shared::domain::limits::FamilyLimits::none(),
            consent_expire_time: None,
        }
    }

    #[tokio::test]
    async fn a_binding_is_stored_with_its_first_event_and_answer() {
        let (app, store) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .map(created)
            .unwrap();
        assert_eq!(binding.state, BindingState::Active);
        assert_eq!(stored(&store), (1, 1, 1));
        assert_eq!(
            store.state().responses["c-1"].response,
            binding.binding_id.into_bytes()
        );
    }

    #[tokio::test]
    async fn payment_service_away_stores_nothing() {
        let (app, store) = app(None);
        let error = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, AppError::Infra(Infra::Peer(_))),
            "{error:?}"
        );
        assert_eq!(stored(&store), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_twin_committed_after_the_rules_check_is_refused_as_a_duplicate() {
        let (app, store) = app(Some("1000.00"));
        store.state().before_write = Some(Arc::new(|s| {
            if s.bindings.is_empty() {
                s.bindings.push(concurrent(SON));
            }
        }));
        let error = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .unwrap_err();
        match error {
            AppError::BindingRefused { failures } => {
                assert_eq!(failures, [Failure::BindingAlreadyExists])
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert_eq!(stored(&store), (1, 0, 0));
    }

    #[tokio::test]
    async fn the_cap_is_checked_again_at_the_write() {
        let (app, store) = app(Some("1000.00"));
        let max = Policy::load_or_default(None)
            .unwrap()
            .rules_on(chrono::NaiveDate::from_ymd_opt(2024, 11, 15).unwrap())
            .unwrap()
            .max_beneficiaries;
        // Concurrent calls bound `max` other beneficiaries meanwhile.
        store.state().before_write = Some(Arc::new(move |s| {
            for n in 0..max {
                let mut b = concurrent(DAUGHTER);
                b.binding_id = format!("other-{n}");
                b.beneficiary = child(n);
                s.bindings.push(b);
            }
        }));
        let applied = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .unwrap();
        match applied {
            Applied::Refused { binding, failures } => {
                assert_eq!(failures, [Failure::BindingLimitReached]);
                assert_eq!(binding.state, BindingState::Rejected);
                assert!(binding.state_reason.contains("BINDING_LIMIT_REACHED"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let state = store.state();
        let rejected: Vec<_> = state
            .bindings
            .iter()
            .filter(|b| b.state == BindingState::Rejected)
            .collect();
        assert_eq!(rejected.len(), 1, "the refused application is kept");
        assert!(state.responses.contains_key("c-1"), "and its answer");
    }

    #[tokio::test]
    async fn a_binding_changed_after_it_was_read_is_not_overwritten() {
        let (app, store) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .map(created)
            .unwrap();
        let changed = binding.binding_id.clone();
        store.state().before_write = Some(Arc::new(move |s| {
            for b in s.bindings.iter_mut().filter(|b| b.binding_id == changed) {
                b.version = 2;
            }
        }));
        let error = app
            .revoke_binding(&binding.binding_id, &id(MOTHER), "done", command("r-1"))
            .await
            .unwrap_err();
        assert!(matches!(error, AppError::BindingChanged), "{error:?}");
        assert_eq!(store.state().bindings[0].state, BindingState::Active);
        assert_eq!(stored(&store), (1, 1, 1));
    }

    /// B5/B7: a registry update that terminates the beneficiary while the application is
    /// decided never leaves an ACTIVE binding with a terminated party.
    #[tokio::test]
    async fn a_beneficiary_terminated_while_binding_gets_no_active_binding() {
        let (app, store) = app(Some("1000.00"));
        store.state().before_write = Some(Arc::new(|s| {
            let son = s.persons.get_mut(&id(SON)).unwrap();
            if let Some(e) = son.resident.as_mut() {
                e.status = crate::domain::EnrollmentStatus::Terminated;
            }
            son.update_time += chrono::Duration::seconds(1);
        }));
        let error = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .unwrap_err();
        assert!(matches!(error, AppError::RegistryChanged), "{error:?}");
        assert_eq!(stored(&store), (0, 0, 0));
    }

    #[tokio::test]
    async fn only_a_party_may_revoke() {
        let (app, _) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), apply("c-1"))
            .await
            .map(created)
            .unwrap();
        let error = app
            .revoke_binding(&binding.binding_id, &id(DAUGHTER), "no", command("r-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                AppError::ChangeRefused {
                    refusal: ChangeRefusal::NotAParty,
                    ..
                }
            ),
            "{error:?}"
        );
        let revoked = app
            .revoke_binding(&binding.binding_id, &id(SON), "grown up", command("r-2"))
            .await
            .unwrap();
        assert_eq!((revoked.state, revoked.version), (BindingState::Revoked, 2));
        assert_eq!(app.events_after(0, 10).await.unwrap().len(), 2);
    }
}
