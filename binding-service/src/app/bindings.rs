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
    /// Where the authorizer's employee insurance is.
    pub authorizer_region: Option<RegionCode>,
    /// Where the beneficiary is insured (B3): their premium and institutions are paid there.
    pub beneficiary_region: Option<RegionCode>,
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
        let province = self.policy.province_code();
        Ok(AuthorizationAnswer {
            failures,
            binding,
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
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let body = format!("34050420150601{:03}", 100 + n);
        let sum: u32 = body
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let check = b"10X98765432"[(sum % 11) as usize] as char;
        IdNumber::parse(&format!("{body}{check}")).unwrap()
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
        }
    }

    #[tokio::test]
    async fn a_binding_is_stored_with_its_first_event_and_answer() {
        let (app, store) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), command("c-1"))
            .await
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
            .create_binding(application(SON, "李子轩"), command("c-1"))
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
            .create_binding(application(SON, "李子轩"), command("c-1"))
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
        let error = app
            .create_binding(application(SON, "李子轩"), command("c-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, AppError::BindingRefused { failures } if failures == &[Failure::BindingLimitReached]),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_binding_changed_after_it_was_read_is_not_overwritten() {
        let (app, store) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), command("c-1"))
            .await
            .unwrap();
        let changed = binding.binding_id.clone();
        store.state().before_write = Some(Arc::new(move |s| {
            for b in s.bindings.iter_mut().filter(|b| b.binding_id == changed) {
                b.version = 2;
            }
        }));
        let error = app
            .revoke_binding(
                &binding.binding_id,
                Party::Authorizer,
                &id(MOTHER),
                "done",
                command("r-1"),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, AppError::BindingChanged), "{error:?}");
        assert_eq!(store.state().bindings[0].state, BindingState::Active);
        assert_eq!(stored(&store), (1, 1, 1));
    }

    #[tokio::test]
    async fn only_a_party_may_revoke() {
        let (app, _) = app(Some("1000.00"));
        let binding = app
            .create_binding(application(SON, "李子轩"), command("c-1"))
            .await
            .unwrap();
        let error = app
            .revoke_binding(
                &binding.binding_id,
                Party::Authorizer,
                &id(DAUGHTER),
                "no",
                command("r-1"),
            )
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
            .revoke_binding(
                &binding.binding_id,
                Party::Beneficiary,
                &id(SON),
                "grown up",
                command("r-2"),
            )
            .await
            .unwrap();
        assert_eq!((revoked.state, revoked.version), (BindingState::Revoked, 2));
        assert_eq!(app.events_after(0, 10).await.unwrap().len(), 2);
    }
}
