//! Family bindings (B1 to B6): apply, read, list, revoke, review, authorize, and the audit
//! trail that event streams follow.

use gongji_shared::{
    IdNumber, Money, PersonName, Relationship,
    command::Command,
    policy::{Purpose, ReviewMode},
};

use super::{App, AppError, Balances};
use crate::{
    domain::{
        Binding, BindingEvent, BindingKind, BindingState, Person,
        lifecycle::{self, Change, ChangeRefusal, Party},
        rules::{self, AuthorizationFacts, CreateFacts, Failure},
    },
    store::{Bindings, Conflict, Events, ListFilter, Persons, StoreError},
};

/// An application for a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub beneficiary_name: PersonName,
    pub relationship: Relationship,
    pub kind: BindingKind,
}

/// The answer to "may the authorizer's account pay for the beneficiary": every rule that
/// fails (none: authorized), with the facts it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationAnswer {
    pub failures: Vec<Failure>,
    /// The pair's funds-sharing binding: the live one, else the latest.
    pub binding: Option<Binding>,
    pub authorizer: Option<Person>,
    pub beneficiary: Option<Person>,
}

impl<S: Persons + Bindings, P: Balances> App<S, P> {
    /// Checks every rule of the policy in force today, all at once, and stores the binding
    /// (ACTIVE, or PENDING_REVIEW under manual review) with its first audit event.
    pub async fn create_binding(
        &self,
        application: Application,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        let Application {
            authorizer: authorizer_id,
            beneficiary: beneficiary_id,
            beneficiary_name,
            relationship,
            kind,
        } = application;
        let now = self.clock.now();
        let rules = self.policy.rules_on(self.clock.today());
        let authorizer = self.store.person(&authorizer_id).await?;
        let beneficiary = self.store.person(&beneficiary_id).await?;
        let live = self.store.live_bindings_of(&authorizer_id).await?;
        let usable = match kind {
            BindingKind::FundsSharing => Some(self.payment.usable_balance(&authorizer_id).await?),
            BindingKind::Proxy => None,
        };
        let failures = rules::check_create(&CreateFacts {
            rules,
            province: self.policy.province_code(),
            authorizer_id: &authorizer_id,
            authorizer: authorizer.as_ref(),
            authorizer_usable_fen: usable.map(Money::fen),
            beneficiary_id: &beneficiary_id,
            beneficiary: beneficiary.as_ref(),
            beneficiary_name: &beneficiary_name,
            relationship,
            kind,
            authorizer_live_bindings: &live,
        });
        if !failures.is_empty() {
            tracing::info!(authorizer = %authorizer_id, beneficiary = %beneficiary_id, ?failures, "binding refused");
            return Err(AppError::BindingRefused { failures });
        }
        let Some(rules) = rules else {
            return Err(refused(Failure::NoPolicyInForce));
        };
        let state = match rules.review_mode {
            ReviewMode::Automatic => BindingState::Active,
            ReviewMode::Manual => BindingState::PendingReview,
        };
        let binding = Binding {
            binding_id: uuid::Uuid::new_v4().to_string(),
            authorizer: authorizer_id,
            beneficiary: beneficiary_id,
            beneficiary_name,
            relationship,
            kind,
            state,
            version: 1,
            create_time: now,
            update_time: now,
            state_reason: String::new(),
        };
        let event = BindingEvent {
            sequence: 0,
            binding_id: binding.binding_id.clone(),
            from_state: None,
            to_state: state,
            actor: "authorizer".to_owned(),
            reason: "application".to_owned(),
            request_id: command.request_id().to_owned(),
            event_time: now,
            binding_version: 1,
        };
        let cap = (kind == BindingKind::FundsSharing).then_some(rules.max_beneficiaries);
        self.store
            .insert_binding(
                &binding,
                &event,
                command.idempotency(),
                &command.response(&binding),
                cap,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::LiveBindingExists) => {
                    refused(Failure::BindingAlreadyExists)
                }
                StoreError::Conflict(Conflict::LimitReached) => {
                    refused(Failure::BindingLimitReached)
                }
                e => e.into(),
            })?;
        self.events.notify_waiters();
        tracing::info!(
            binding_id = %binding.binding_id,
            authorizer = %binding.authorizer,
            beneficiary = %binding.beneficiary,
            state = binding.state.as_str(),
            "binding created"
        );
        Ok(binding)
    }
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
        party: Party,
        requester: &IdNumber,
        reason: &str,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        self.change(binding_id, &command, |b| {
            lifecycle::revoke(b, party, requester, reason)
        })
        .await
    }

    /// Approves (or rejects) a binding waiting for manual review.
    pub async fn review_binding(
        &self,
        binding_id: &str,
        approve: bool,
        reviewer: &str,
        reason: &str,
        command: Command<Binding>,
    ) -> Result<Binding, AppError> {
        self.change(binding_id, &command, |b| {
            lifecycle::review(b, approve, reviewer, reason)
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
        let authorizer = self.store.person(authorizer_id).await?;
        let beneficiary = self.store.person(beneficiary_id).await?;
        let binding = self
            .store
            .pair_binding(authorizer_id, beneficiary_id, BindingKind::FundsSharing)
            .await?;
        let failures = rules::check_authorization(&AuthorizationFacts {
            rules: self.policy.rules_on(self.clock.today()),
            province: self.policy.province_code(),
            purpose,
            authorizer: authorizer.as_ref(),
            beneficiary: beneficiary.as_ref(),
            binding: binding.as_ref(),
        });
        tracing::info!(
            authorizer = %authorizer_id,
            beneficiary = %beneficiary_id,
            purpose = purpose.as_str(),
            authorized = failures.is_empty(),
            ?failures,
            "authorization checked"
        );
        Ok(AuthorizationAnswer {
            failures,
            binding,
            authorizer,
            beneficiary,
        })
    }

    /// Reads a binding, asks `decide` for the change, and stores the next version with its
    /// audit event and answer in one transaction.
    async fn change(
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
