//! In-memory fakes of payment-service and the store, for use-case tests of paths the gRPC
//! surface cannot reach on demand: a binding committed by a concurrent call between the
//! rules check and the write, a binding that changed between the read and the transition,
//! payment-service away. Each fake keeps the invariants of the real thing that the use
//! cases rely on: a write is all or nothing, one live binding per pair and kind, the cap
//! checked again at the write, a version moves only from the one read, a request ID is
//! recorded once.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use gongji_shared::{
    IdNumber, Money, PersonName, Policy, RegionCode,
    command::{Command, Idempotency, SavedResponse},
    db::Database,
};

use super::{App, Balances, PeerError};
use crate::{
    domain::{
        Binding, BindingEvent, BindingKind, Enrollment, EnrollmentStatus, Person,
        lifecycle::{self, Change},
    },
    store::{Bindings, Conflict, Events, ListFilter, Persons, StoreError},
};

/// A hook a test runs at the start of every write: what a concurrent caller could commit
/// between a use case's reads and its write.
pub type Hook = Arc<dyn Fn(&mut StoreState) + Send + Sync>;

/// payment-service, in memory: one usable balance for everybody, or away.
#[derive(Clone)]
pub struct FakeBalances(pub Option<Money>);

impl Balances for FakeBalances {
    async fn usable_balance(&self, _holder: &IdNumber) -> Result<Money, PeerError> {
        self.0
            .ok_or_else(|| PeerError::Unavailable("fake: unreachable".to_owned()))
    }
}

/// What the fake store holds.
#[derive(Default)]
pub struct StoreState {
    pub persons: BTreeMap<IdNumber, Person>,
    /// In order of creation: a binding's position is its index plus one.
    pub bindings: Vec<Binding>,
    pub events: Vec<BindingEvent>,
    pub responses: BTreeMap<String, SavedResponse>,
    pub before_write: Option<Hook>,
}

/// The store, in memory.
#[derive(Clone, Default)]
pub struct FakeStore(Arc<Mutex<StoreState>>);

impl FakeStore {
    pub fn state(&self) -> MutexGuard<'_, StoreState> {
        self.0.lock().unwrap()
    }

    /// Runs the hook, then the write, under one lock.
    fn write<T>(
        &self,
        idempotency: &Idempotency,
        f: impl FnOnce(&mut StoreState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.state();
        if let Some(hook) = state.before_write.clone() {
            hook(&mut state);
        }
        if state.responses.contains_key(&idempotency.request_id) {
            return Err(StoreError::Conflict(Conflict::RequestIdTaken));
        }
        f(&mut state)
    }
}

impl StoreState {
    fn record(&mut self, idempotency: &Idempotency, response: Vec<u8>) {
        self.responses.insert(
            idempotency.request_id.clone(),
            SavedResponse {
                operation: idempotency.operation.to_owned(),
                fingerprint: idempotency.fingerprint.clone(),
                response,
            },
        );
    }

    fn append(&mut self, event: &BindingEvent) {
        let sequence = self.events.len() as i64 + 1;
        self.events.push(BindingEvent {
            sequence,
            ..event.clone()
        });
    }

    /// Replaces the binding if it is still at `expected_version`.
    fn replace(&mut self, next: &Binding, expected_version: i64) -> Result<(), StoreError> {
        let current = self
            .bindings
            .iter_mut()
            .find(|b| b.binding_id == next.binding_id && b.version == expected_version)
            .ok_or(StoreError::Conflict(Conflict::VersionChanged))?;
        *current = next.clone();
        Ok(())
    }
}

impl Database for FakeStore {
    type Conflict = Conflict;

    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The fake keeps no times: expiry is tested on the real stores, and the use cases never
    /// call it.
    async fn expire_responses(
        &self,
        _before: chrono::DateTime<chrono::Utc>,
        _limit: i64,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Scopes are not kept apart: the use cases never see them.
    async fn saved_response(
        &self,
        _scope: &str,
        request_id: &str,
    ) -> Result<Option<SavedResponse>, StoreError> {
        Ok(self.state().responses.get(request_id).cloned())
    }

    async fn record_answer(
        &self,
        idempotency: &Idempotency,
        response: &[u8],
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.write(idempotency, |s| {
            s.record(idempotency, response.to_vec());
            Ok(())
        })
    }
}

impl Persons for FakeStore {
    async fn upsert_persons<T: Send>(
        &self,
        persons: &[Person],
        command: &Command<T>,
        decide: impl Fn(&Person, &[Binding]) -> Vec<(Binding, Change)> + Send + Sync,
        make: impl FnOnce(Vec<(bool, Vec<Binding>)>) -> T + Send,
    ) -> Result<T, StoreError> {
        self.write(command.idempotency(), |s| {
            let mut results = vec![(false, Vec::new()); persons.len()];
            for i in crate::store::write_order(persons, |id| id.as_str().to_owned()) {
                let person = &persons[i];
                let created = s
                    .persons
                    .insert(person.id_number.clone(), person.clone())
                    .is_none();
                let live: Vec<Binding> = s
                    .bindings
                    .iter()
                    .filter(|b| {
                        b.state.is_live()
                            && (b.authorizer == person.id_number
                                || b.beneficiary == person.id_number)
                    })
                    .cloned()
                    .collect();
                let mut ended = Vec::new();
                for (binding, change) in decide(person, &live) {
                    let (next, event) = lifecycle::apply(
                        &binding,
                        &change,
                        command.request_id(),
                        person.update_time,
                    );
                    s.replace(&next, binding.version)?;
                    s.append(&event);
                    ended.push(next);
                }
                results[i] = (created, ended);
            }
            let outcome = make(results);
            s.record(command.idempotency(), command.response(&outcome));
            Ok(outcome)
        })
    }

    async fn person(&self, id: &IdNumber) -> Result<Option<Person>, StoreError> {
        Ok(self.state().persons.get(id).cloned())
    }
}

impl Bindings for FakeStore {
    async fn live_bindings_of(&self, authorizer: &IdNumber) -> Result<Vec<Binding>, StoreError> {
        Ok(self
            .state()
            .bindings
            .iter()
            .filter(|b| &b.authorizer == authorizer && b.state.is_live())
            .cloned()
            .collect())
    }

    async fn authorization_facts(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        kind: BindingKind,
    ) -> Result<(Option<Person>, Option<Person>, Option<Binding>), StoreError> {
        let state = self.state();
        let pair: Vec<&Binding> = state
            .bindings
            .iter()
            .filter(|b| {
                &b.authorizer == authorizer && &b.beneficiary == beneficiary && b.kind == kind
            })
            .collect();
        Ok((
            state.persons.get(authorizer).cloned(),
            state.persons.get(beneficiary).cloned(),
            pair.iter()
                .find(|b| b.state.is_live())
                .or(pair.last())
                .map(|b| (*b).clone()),
        ))
    }

    async fn insert_binding(
        &self,
        binding: &Binding,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
        max_beneficiaries: Option<u32>,
        registry_seen: &[(&IdNumber, Option<&Person>)],
    ) -> Result<(), StoreError> {
        self.write(idempotency, |s| {
            for (id, seen) in registry_seen {
                if s.persons.get(*id) != *seen {
                    return Err(StoreError::Conflict(Conflict::RegistryChanged));
                }
            }
            let live = |b: &&Binding| b.state.is_live() && b.authorizer == binding.authorizer;
            if s.bindings
                .iter()
                .filter(live)
                .any(|b| b.beneficiary == binding.beneficiary && b.kind == binding.kind)
            {
                return Err(StoreError::Conflict(Conflict::LiveBindingExists));
            }
            if let Some(max) = max_beneficiaries {
                let mut others: Vec<&IdNumber> = s
                    .bindings
                    .iter()
                    .filter(live)
                    .filter(|b| {
                        b.kind == BindingKind::FundsSharing && b.beneficiary != binding.beneficiary
                    })
                    .map(|b| &b.beneficiary)
                    .collect();
                others.sort();
                others.dedup();
                if others.len() >= max as usize {
                    return Err(StoreError::Conflict(Conflict::LimitReached));
                }
            }
            s.bindings.push(binding.clone());
            s.append(event);
            s.record(idempotency, response.to_vec());
            Ok(())
        })
    }

    async fn transition(
        &self,
        next: &Binding,
        expected_version: i64,
        event: &BindingEvent,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(idempotency, |s| {
            s.replace(next, expected_version)?;
            s.append(event);
            s.record(idempotency, response.to_vec());
            Ok(())
        })
    }

    async fn system_transition(
        &self,
        next: &Binding,
        expected_version: i64,
        event: &BindingEvent,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        s.replace(next, expected_version)?;
        s.append(event);
        Ok(())
    }

    async fn consents_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<Binding>, StoreError> {
        Ok(self
            .state()
            .bindings
            .iter()
            .filter(|b| {
                b.state == crate::domain::BindingState::PendingConsent
                    && b.consent_expire_time.is_some_and(|t| t < now)
            })
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn list_bindings(&self, filter: &ListFilter) -> Result<Vec<(i64, Binding)>, StoreError> {
        Ok((1..)
            .zip(self.state().bindings.iter().cloned())
            .filter(|(position, b)| {
                let who = if filter.as_authorizer {
                    &b.authorizer
                } else {
                    &b.beneficiary
                };
                who == &filter.person
                    && *position > filter.after
                    && (filter.states.is_empty() || filter.states.contains(&b.state))
            })
            .take(filter.limit as usize)
            .collect())
    }

    async fn binding(
        &self,
        binding_id: &str,
    ) -> Result<Option<(Binding, Vec<BindingEvent>)>, StoreError> {
        let state = self.state();
        Ok(state
            .bindings
            .iter()
            .find(|b| b.binding_id == binding_id)
            .map(|b| {
                let history = state
                    .events
                    .iter()
                    .filter(|e| e.binding_id == binding_id)
                    .cloned()
                    .collect();
                (b.clone(), history)
            }))
    }
}

impl Events for FakeStore {
    async fn events_after(
        &self,
        sequence: i64,
        limit: u32,
    ) -> Result<Vec<BindingEvent>, StoreError> {
        Ok(self
            .state()
            .events
            .iter()
            .filter(|e| e.sequence > sequence)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

/// Fixtures: a Ma'anshan employee, her son with resident insurance, and another child.
pub const MOTHER: &str = "340504198707200020";
pub const SON: &str = "340504201801100012";
pub const DAUGHTER: &str = "340504201506010022";

pub fn id(s: &str) -> IdNumber {
    IdNumber::parse(s).unwrap()
}

fn person(id_number: &str, name: &str, employee: bool) -> Person {
    let enrollment = Some(Enrollment {
        region: RegionCode::parse("340500").unwrap(),
        status: EnrollmentStatus::Normal,
    });
    Person {
        id_number: id(id_number),
        name: PersonName::parse(name).unwrap(),
        employee: if employee { enrollment.clone() } else { None },
        resident: if employee { None } else { enrollment },
        resident_paid_years: Vec::new(),
        update_time: chrono::Utc::now(),
    }
}

/// The use cases over fresh fakes, on 2024-11-15, with the three people registered and
/// payment-service saying `balance` (or away).
pub fn app(balance: Option<&str>) -> (App<FakeStore, FakeBalances>, FakeStore) {
    let store = FakeStore::default();
    for p in [
        person(MOTHER, "李娜", true),
        person(SON, "李子轩", false),
        person(DAUGHTER, "李子涵", false),
    ] {
        store.state().persons.insert(p.id_number.clone(), p);
    }
    let balances = FakeBalances(balance.map(|b| Money::parse(b).unwrap()));
    let policy = Arc::new(Policy::load_or_default(None).unwrap());
    let clock = gongji_shared::Clock::parse("2024-11-15T10:00:00+08:00").unwrap();
    (App::new(store.clone(), balances, policy, clock), store)
}
