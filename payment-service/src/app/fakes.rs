//! In-memory fakes of the registry (binding-service) and the store, for use-case tests of
//! paths the gRPC surface cannot reach on demand: a peer that changes its mind between two
//! calls, a balance that moves between the read and the write, a request ID taken by a
//! concurrent call. Each fake keeps the invariants of the real thing that the use cases
//! rely on: a write is all or nothing, no bucket goes below zero or into others' live
//! holds, a hold is posted only while live, a year is paid once, a request ID is recorded
//! once, and binding-service records a use for every yes to AuthorizeUse.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use gongji_shared::{
    IdNumber,
    command::{Command, Idempotency, SavedResponse},
    db::Database,
    policy::{Bucket, Purpose},
};

use super::{PeerError, Registry, UseRequest};
use crate::{
    domain::{
        Account, AccountEntry, Book, CurrentYearHistory, Movement,
        authorization::{Authorization, Enrollment, InsuredPerson},
        fence::{FamilyDebit, Hold, HoldState, Posting, RecordedUse},
        institution::{DesignatedInstitution, InstitutionBatch},
        medical::MedicalPayment,
        medical_refund::{MedicalRefund, RefundRefusal},
        payment::{OtherMeans, PaymentState, PremiumPayment},
        premium::PaidYear,
    },
    store::{
        Accounts, Conflict, Holds, Institutions, MedicalPayments, PlannedRefund, Premiums,
        RefundFacts, StoreError,
    },
};

/// A hook a test runs inside a fake, at a chosen moment.
pub type Hook = Arc<dyn Fn() + Send + Sync>;
/// A hook run as binding-service answers AuthorizeUse, with the request.
pub type UseHook = Arc<dyn Fn(&UseRequest) + Send + Sync>;

/// What the fake registry answers, and what it was asked.
#[derive(Default)]
pub struct RegistryState {
    /// `None`: binding-service is unreachable.
    pub authorization: Option<Authorization>,
    pub people: BTreeMap<IdNumber, InsuredPerson>,
    pub unreachable: bool,
    /// Every authorization asked for, in order.
    pub asked: Vec<(IdNumber, IdNumber, Purpose)>,
    /// The answer to AuthorizeUse when it differs from `authorization`.
    pub use_answer: Option<Authorization>,
    /// AuthorizeUse alone cannot be reached (CheckAuthorization still can).
    pub use_unreachable: bool,
    /// Runs as AuthorizeUse is answered: what could happen meanwhile elsewhere.
    pub on_use: Option<UseHook>,
    /// Every use recorded, in order.
    pub uses: Vec<RecordedUse>,
    /// The authorizer's ACTIVE funds-sharing bindings.
    pub bound: Vec<super::BoundBeneficiary>,
}

/// binding-service, in memory.
#[derive(Clone, Default)]
pub struct FakeRegistry(Arc<Mutex<RegistryState>>);

impl FakeRegistry {
    pub fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.0.lock().unwrap()
    }
}

impl Registry for FakeRegistry {
    async fn authorize(
        &self,
        authorizer: &IdNumber,
        beneficiary: &IdNumber,
        purpose: Purpose,
    ) -> Result<Authorization, PeerError> {
        let mut state = self.state();
        state
            .asked
            .push((authorizer.clone(), beneficiary.clone(), purpose));
        match (&state.authorization, state.unreachable) {
            (Some(answer), false) => Ok(answer.clone()),
            _ => Err(PeerError::Unavailable("fake: unreachable".to_owned())),
        }
    }

    /// Records the use when the answer authorizes, as binding-service does.
    async fn authorize_use(&self, request: &UseRequest) -> Result<Authorization, PeerError> {
        let hook = self.state().on_use.clone();
        if let Some(hook) = hook {
            hook(request);
        }
        let mut state = self.state();
        if state.unreachable || state.use_unreachable {
            return Err(PeerError::Unavailable("fake: unreachable".to_owned()));
        }
        let answer = state
            .use_answer
            .clone()
            .or_else(|| state.authorization.clone())
            .ok_or_else(|| PeerError::Unavailable("fake: unreachable".to_owned()))?;
        if answer.is_authorized() {
            state.uses.push(RecordedUse {
                movement_id: request.movement_id.clone(),
                binding_id: answer.binding_id.clone(),
                binding_version: answer.binding_version,
                amount: request.amount,
            });
        }
        Ok(answer)
    }

    /// One page with every use of the binding.
    async fn binding_uses(
        &self,
        binding_id: &str,
        _page_token: &str,
    ) -> Result<Option<(Vec<RecordedUse>, String)>, PeerError> {
        let state = self.state();
        if state.unreachable {
            return Err(PeerError::Unavailable("fake: unreachable".to_owned()));
        }
        let known = state
            .authorization
            .as_ref()
            .is_some_and(|a| a.binding_id == binding_id);
        let uses = state
            .uses
            .iter()
            .filter(|u| u.binding_id == binding_id)
            .cloned()
            .collect();
        Ok(known.then(|| (uses, String::new())))
    }

    async fn bound_beneficiaries(
        &self,
        _authorizer: &IdNumber,
    ) -> Result<Vec<super::BoundBeneficiary>, PeerError> {
        let state = self.state();
        if state.unreachable {
            return Err(PeerError::Unavailable("fake: unreachable".to_owned()));
        }
        Ok(state.bound.clone())
    }

    async fn person(&self, id: &IdNumber) -> Result<Option<InsuredPerson>, PeerError> {
        let state = self.state();
        if state.unreachable {
            return Err(PeerError::Unavailable("fake: unreachable".to_owned()));
        }
        Ok(state.people.get(id).cloned())
    }
}

/// What the fake store holds.
#[derive(Default)]
pub struct StoreState {
    pub accounts: BTreeMap<IdNumber, Account>,
    pub responses: BTreeMap<String, SavedResponse>,
    pub premiums: Vec<PremiumPayment>,
    pub medical: Vec<MedicalPayment>,
    pub movements: Vec<Movement>,
    pub closed_years: Vec<(IdNumber, i32)>,
    /// Designated institutions by code.
    pub institutions: BTreeMap<String, DesignatedInstitution>,
    /// Holds by movement ID, with their state (`HELD`, `POSTED` or `VOIDED`).
    pub holds: BTreeMap<String, (Hold, &'static str)>,
    /// Runs at the start of every write, before its checks: what a concurrent caller could
    /// commit between a use case's reads and its write.
    pub before_write: Option<Hook>,
}

/// The store, in memory.
#[derive(Clone, Default)]
pub struct FakeStore(Arc<Mutex<StoreState>>);

impl FakeStore {
    pub fn state(&self) -> MutexGuard<'_, StoreState> {
        self.0.lock().unwrap()
    }

    /// Runs the hook (outside the lock, so it may use the fakes), then the write under the
    /// lock: the write sees whatever the hook did.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut StoreState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let hook = self.state().before_write.clone();
        if let Some(hook) = hook {
            hook();
        }
        f(&mut self.state())
    }
}

fn conflict(c: Conflict) -> StoreError {
    StoreError::Conflict(c)
}

impl StoreState {
    /// Checks everything a write needs before changing anything, so a refused write leaves
    /// no trace: the request ID is new and every bucket stays at or above zero.
    fn check(
        &self,
        idempotency: &Idempotency,
        movement: Option<&Movement>,
    ) -> Result<(), StoreError> {
        if self.responses.contains_key(&idempotency.request_id) {
            return Err(conflict(Conflict::RequestIdTaken));
        }
        for (holder, bucket, amount_fen) in movement.into_iter().flat_map(personal) {
            let balance = self
                .accounts
                .get(&holder)
                .map_or(0, |a| a.balance(bucket).fen());
            // A debit leaves the live holds of others untouched.
            let held = movement.map_or(0, |m| {
                self.held_fen(&holder, bucket, m.create_time, &m.movement_id)
            });
            if balance + amount_fen < 0 || (amount_fen < 0 && balance + amount_fen < held) {
                return Err(conflict(Conflict::InsufficientBalance));
            }
            if balance + amount_fen > gongji_shared::domain::money::MAX_BALANCE_FEN {
                return Err(conflict(Conflict::BalanceLimit));
            }
        }
        Ok(())
    }

    /// What live holds other than `except` reserve on a bucket at `at`.
    fn held_fen(
        &self,
        holder: &IdNumber,
        bucket: Bucket,
        at: chrono::DateTime<chrono::Utc>,
        except: &str,
    ) -> i64 {
        self.holds
            .iter()
            .filter(|(id, (h, state))| {
                *state == "HELD" && &h.holder == holder && h.expire_time > at && *id != except
            })
            .flat_map(|(_, (h, _))| h.draws.iter())
            .filter(|d| d.bucket == bucket)
            .map(|d| d.amount.fen())
            .sum()
    }

    /// Posts a hold (after `check`): `Conflict::HoldGone` unless live at the posting.
    fn post_hold(&mut self, posting: Option<&Posting>) -> Result<(), StoreError> {
        let Some(posting) = posting else {
            return Ok(());
        };
        match self.holds.get_mut(&posting.movement_id) {
            Some((hold, state)) if *state == "HELD" && hold.expire_time > posting.at => {
                *state = "POSTED";
                Ok(())
            }
            _ => Err(conflict(Conflict::HoldGone)),
        }
    }

    /// Records the answer and applies the movement (after `check`).
    fn commit(&mut self, idempotency: &Idempotency, response: &[u8], movement: Option<&Movement>) {
        self.responses.insert(
            idempotency.request_id.clone(),
            SavedResponse {
                operation: idempotency.operation.to_owned(),
                fingerprint: idempotency.fingerprint.clone(),
                response: response.to_vec(),
            },
        );
        let Some(movement) = movement else { return };
        for (holder, bucket, amount_fen) in personal(movement) {
            let account = self.accounts.get_mut(&holder).expect("checked");
            let balance = match bucket {
                Bucket::CurrentYear => &mut account.current_year,
                Bucket::PriorYears => &mut account.prior_years,
            };
            *balance = gongji_shared::Money::from_fen(balance.fen() + amount_fen).expect("checked");
        }
        self.movements.push(movement.clone());
    }
}

/// The personal postings of a movement.
fn personal(movement: &Movement) -> Vec<(IdNumber, Bucket, i64)> {
    movement
        .postings
        .iter()
        .filter_map(|p| match &p.book {
            Book::Personal { holder, bucket, .. } => Some((holder.clone(), *bucket, p.amount_fen)),
            Book::Fund { .. } => None,
        })
        .collect()
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
        self.write(|s| {
            s.check(idempotency, None)?;
            s.commit(idempotency, response, None);
            Ok(())
        })
    }
}

impl Accounts for FakeStore {
    async fn account_holders(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, IdNumber)>, StoreError> {
        // Positions are 1-based in the map's order (the fake opens no account mid-batch).
        Ok(self
            .state()
            .accounts
            .keys()
            .enumerate()
            .map(|(i, h)| (i as i64 + 1, h.clone()))
            .filter(|(no, _)| *no > after)
            .take(limit as usize)
            .collect())
    }

    async fn open_account(
        &self,
        account: &Account,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|s| {
            s.check(idempotency, None)?;
            if s.accounts.contains_key(&account.holder) {
                return Err(conflict(Conflict::AccountExists));
            }
            s.commit(idempotency, response, None);
            s.accounts.insert(account.holder.clone(), account.clone());
            Ok(())
        })
    }

    async fn account(&self, holder: &IdNumber) -> Result<Option<Account>, StoreError> {
        Ok(self.state().accounts.get(holder).cloned())
    }

    async fn post<T: Send>(
        &self,
        holder: &IdNumber,
        movement: &Movement,
        command: &Command<T>,
        make: impl FnOnce(&Account, &[i64], chrono::NaiveDate) -> T + Send,
    ) -> Result<T, StoreError> {
        self.write(|s| {
            s.check(command.idempotency(), Some(movement))?;
            s.commit(command.idempotency(), &[], Some(movement));
            let after = s
                .accounts
                .get(holder)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt("no account".into()))?;
            let ids: Vec<i64> = (1..=movement.postings.len() as i64).collect();
            let outcome = make(&after, &ids, movement.business_date);
            let response = command.response(&outcome);
            if let Some(saved) = s.responses.get_mut(command.request_id()) {
                saved.response = response;
            }
            Ok(outcome)
        })
    }

    /// Entry IDs are positions among every personal posting, counted from one.
    async fn entries(
        &self,
        holder: &IdNumber,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccountEntry>, StoreError> {
        let state = self.state();
        let mut entries = Vec::new();
        let mut entry_id = 0;
        for movement in &state.movements {
            for (h, bucket, amount_fen) in personal(movement) {
                entry_id += 1;
                if &h == holder && before.is_none_or(|b| entry_id < b) {
                    entries.push(AccountEntry {
                        entry_id,
                        movement_id: movement.movement_id.clone(),
                        kind: movement.kind,
                        bucket,
                        amount_fen,
                        request_id: movement.request_id.clone(),
                        create_time: movement.create_time,
                        business_date: movement.business_date,
                        memo: movement.memo.clone(),
                        caller: String::new(),
                        // The fake keeps no payments to join: use cases never read it.
                        family: None,
                    });
                }
            }
        }
        entries.reverse();
        entries.truncate(limit as usize);
        Ok(entries)
    }

    async fn close_year<T: Send>(
        &self,
        holder: &IdNumber,
        year: i32,
        _at: chrono::DateTime<chrono::Utc>,
        plan: impl FnOnce(&Account, CurrentYearHistory) -> Option<Movement> + Send,
        command: &Command<T>,
        make: impl FnOnce(&Account, i64) -> T + Send,
    ) -> Result<T, StoreError> {
        self.write(|s| {
            let before = s
                .accounts
                .get(holder)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt("no account".into()))?;
            if s.closed_years.contains(&(holder.clone(), year)) {
                return Err(conflict(Conflict::YearClosed));
            }
            let year_end = chrono::NaiveDate::from_ymd_opt(year, 12, 31).expect("a year");
            let mut history = CurrentYearHistory::default();
            for m in &s.movements {
                for (h, bucket, amount_fen) in personal(m) {
                    if &h != holder || bucket != Bucket::CurrentYear {
                        continue;
                    }
                    if amount_fen < 0 {
                        history.spent_fen -= amount_fen;
                    } else if m.business_date <= year_end {
                        history.credited_by_year_end_fen += amount_fen;
                    }
                }
            }
            let movement = plan(&before, history);
            s.check(command.idempotency(), movement.as_ref())?;
            s.commit(command.idempotency(), &[], movement.as_ref());
            s.closed_years.push((holder.clone(), year));
            let moved = movement.as_ref().map_or(0, |m| {
                m.postings
                    .iter()
                    .map(|p| p.amount_fen)
                    .filter(|a| *a > 0)
                    .sum()
            });
            let after = s
                .accounts
                .get(holder)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt("no account".into()))?;
            let outcome = make(&after, moved);
            let response = command.response(&outcome);
            if let Some(saved) = s.responses.get_mut(command.request_id()) {
                saved.response = response;
            }
            Ok(outcome)
        })
    }
}

impl Premiums for FakeStore {
    async fn premium_facts(
        &self,
        payer: &IdNumber,
        beneficiary: &IdNumber,
    ) -> Result<(Option<Account>, Vec<PaidYear>), StoreError> {
        let state = self.state();
        let mut paid: Vec<PaidYear> = state
            .premiums
            .iter()
            .filter(|p| &p.beneficiary == beneficiary && p.state == PaymentState::Paid)
            .map(|p| PaidYear {
                year: p.year,
                back_payment: p.back_payment,
            })
            .collect();
        paid.sort_by_key(|p| p.year);
        Ok((state.accounts.get(payer).cloned(), paid))
    }

    async fn insert_premium(
        &self,
        payment: &PremiumPayment,
        movement: &Movement,
        posting: Option<&Posting>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|s| {
            s.check(idempotency, Some(movement))?;
            let paid = s.premiums.iter().any(|p| {
                p.beneficiary == payment.beneficiary
                    && p.year == payment.year
                    && p.state == PaymentState::Paid
            });
            if paid {
                return Err(conflict(Conflict::AlreadyPaid));
            }
            s.post_hold(posting)?;
            let movement = (!payment.split.account_part.is_zero()).then_some(movement);
            s.commit(idempotency, response, movement);
            s.premiums.push(payment.clone());
            Ok(())
        })
    }

    async fn premium_payment(
        &self,
        payment_id: &str,
    ) -> Result<Option<PremiumPayment>, StoreError> {
        Ok(self
            .state()
            .premiums
            .iter()
            .find(|p| p.payment_id == payment_id)
            .cloned())
    }

    /// Positions are places in the order of payment, counted from one.
    async fn premium_payments(
        &self,
        person: &IdNumber,
        as_payer: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, PremiumPayment)>, StoreError> {
        let state = self.state();
        let mut rows: Vec<(i64, PremiumPayment)> = (1..)
            .zip(state.premiums.iter().cloned())
            .filter(|(position, p)| {
                let who = if as_payer { &p.payer } else { &p.beneficiary };
                who == person && before.is_none_or(|b| *position < b)
            })
            .collect();
        rows.reverse();
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn refund_premium(
        &self,
        refunded: &PremiumPayment,
        plan: impl FnOnce(bool) -> Option<Movement> + Send,
        _owed_back: Option<&OtherMeans>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|s| {
            let paid_year = chrono::Datelike::year(&refunded.payment_date);
            let movement = plan(
                s.closed_years
                    .contains(&(refunded.payer.clone(), paid_year)),
            );
            let movement = movement.as_ref();
            s.check(idempotency, movement)?;
            let index = s
                .premiums
                .iter()
                .position(|p| p.payment_id == refunded.payment_id && p.state == PaymentState::Paid)
                .ok_or_else(|| conflict(Conflict::AlreadyRefunded))?;
            s.commit(idempotency, response, movement);
            s.premiums[index] = refunded.clone();
            Ok(())
        })
    }
}

impl Institutions for FakeStore {
    async fn upsert_institutions(
        &self,
        batch: &InstitutionBatch,
        _at: chrono::DateTime<chrono::Utc>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|s| {
            s.check(idempotency, None)?;
            s.commit(idempotency, response, None);
            for i in batch.institutions() {
                s.institutions.insert(i.code.clone(), i.clone());
            }
            Ok(())
        })
    }

    async fn institution(&self, code: &str) -> Result<Option<DesignatedInstitution>, StoreError> {
        Ok(self.state().institutions.get(code).cloned())
    }
}

impl MedicalPayments for FakeStore {
    async fn medical_payments(
        &self,
        filter: &crate::domain::medical::MedicalFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, MedicalPayment)>, StoreError> {
        let state = self.state();
        let mut found: Vec<(i64, MedicalPayment)> = state
            .medical
            .iter()
            .enumerate()
            .map(|(i, p)| (i64::try_from(i).unwrap_or(i64::MAX) + 1, p.clone()))
            .filter(|(n, p)| {
                before.is_none_or(|b| *n < b)
                    && filter
                        .beneficiary
                        .as_ref()
                        .is_none_or(|b| &p.beneficiary == b)
                    && filter
                        .family_holder
                        .as_ref()
                        .is_none_or(|h| p.family_holder.as_ref() == Some(h))
                    && filter
                        .institution_code
                        .as_ref()
                        .is_none_or(|c| &p.institution_code == c)
                    && p.business_date >= filter.range.start()
                    && p.business_date <= filter.range.end()
            })
            .collect();
        found.reverse();
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn insert_medical(
        &self,
        payment: &MedicalPayment,
        movement: Option<&Movement>,
        posting: Option<&Posting>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.write(|s| {
            s.check(idempotency, movement)?;
            s.post_hold(posting)?;
            s.commit(idempotency, response, movement);
            s.medical.push(payment.clone());
            Ok(())
        })
    }

    async fn refund_medical<P>(
        &self,
        payment: &MedicalPayment,
        at: chrono::DateTime<chrono::Utc>,
        plan: P,
        idempotency: &Idempotency,
    ) -> Result<Result<MedicalRefund, RefundRefusal>, StoreError>
    where
        P: FnOnce(RefundFacts) -> Result<PlannedRefund, RefundRefusal> + Send,
    {
        self.write(|s| {
            let index = s
                .medical
                .iter()
                .position(|m| m.payment_id == payment.payment_id)
                .ok_or_else(|| StoreError::Corrupt("no such medical payment".into()))?;
            let year = chrono::Datelike::year(&payment.business_date);
            let drawn = |holder: &IdNumber, draws: &[crate::domain::split::Draw]| {
                s.accounts
                    .get(holder)
                    .filter(|_| !draws.is_empty())
                    .map(|a| (a.clone(), s.closed_years.contains(&(holder.clone(), year))))
            };
            let facts = RefundFacts {
                refunded: s.medical[index].refunded,
                own: drawn(&payment.beneficiary, &payment.own_draws),
                family: payment
                    .family_holder
                    .as_ref()
                    .and_then(|h| drawn(h, &payment.family_draws)),
                business_date: gongji_shared::domain::clock::shanghai_date(at),
            };
            let planned = match plan(facts) {
                Ok(planned) => planned,
                Err(refusal) => return Ok(Err(refusal)),
            };
            s.check(idempotency, planned.movement.as_ref())?;
            s.commit(idempotency, &planned.response, planned.movement.as_ref());
            s.medical[index].refunded = planned.refund.refunded_total;
            Ok(Ok(planned.refund))
        })
    }

    async fn medical_payment(
        &self,
        payment_id: &str,
    ) -> Result<Option<MedicalPayment>, StoreError> {
        Ok(self
            .state()
            .medical
            .iter()
            .find(|p| p.payment_id == payment_id)
            .cloned())
    }
}

impl Holds for FakeStore {
    /// The fake keeps no family uses: it takes no limits (the stores' own tests do).
    async fn limit_remaining(
        &self,
        _cap: &crate::domain::fence::LimitCap,
        _purpose: Purpose,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<gongji_shared::Money>, StoreError> {
        Ok(None)
    }

    async fn place_hold(&self, hold: &Hold) -> Result<u64, StoreError> {
        self.write(|s| {
            let mut expired = 0;
            let account = s
                .accounts
                .get(&hold.holder)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt("no account".into()))?;
            for (_, (h, state)) in s.holds.iter_mut() {
                if *state == "HELD" && h.holder == hold.holder && h.expire_time <= hold.create_time
                {
                    *state = "VOIDED";
                    expired += 1;
                }
            }
            for bucket in [Bucket::CurrentYear, Bucket::PriorYears] {
                let wanted: i64 = hold
                    .draws
                    .iter()
                    .filter(|d| d.bucket == bucket)
                    .map(|d| d.amount.fen())
                    .sum();
                let held = s.held_fen(&hold.holder, bucket, hold.create_time, &hold.movement_id);
                if account.balance(bucket).fen() - held < wanted {
                    return Err(conflict(Conflict::InsufficientBalance));
                }
            }
            s.holds
                .insert(hold.movement_id.clone(), (hold.clone(), "HELD"));
            Ok(expired)
        })
    }

    async fn void_hold(
        &self,
        movement_id: &str,
        _at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.holds.get_mut(movement_id) {
            Some((_, s)) if *s == "HELD" => {
                *s = "VOIDED";
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn hold_states(
        &self,
        movement_ids: &[String],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, HoldState)>, StoreError> {
        let state = self.state();
        Ok(movement_ids
            .iter()
            .filter_map(|id| {
                let (hold, s) = state.holds.get(id)?;
                let held = match *s {
                    "HELD" if hold.expire_time > at => HoldState::Live,
                    "POSTED" => HoldState::Posted,
                    _ => HoldState::Gone,
                };
                Some((id.clone(), held))
            })
            .collect())
    }

    async fn family_debits(
        &self,
        binding_id: &str,
        limit: i64,
    ) -> Result<Vec<FamilyDebit>, StoreError> {
        let state = self.state();
        let premiums = state
            .premiums
            .iter()
            .filter(|p| p.binding_id == binding_id && !p.split.account_part.is_zero())
            .map(|p| FamilyDebit {
                movement_id: p.movement_id.clone(),
                amount: p.split.account_part,
            });
        let medical = state
            .medical
            .iter()
            .filter(|p| p.binding_id == binding_id)
            .filter_map(|p| {
                Some(FamilyDebit {
                    movement_id: p.movement_id.clone()?,
                    amount: gongji_shared::Money::from_fen(
                        p.family_draws.iter().map(|d| d.amount.fen()).sum(),
                    )
                    .ok()?,
                })
            });
        Ok(premiums
            .chain(medical)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }
}

/// Fixtures: a Ma'anshan employee with 1200.00 of prior years, her son with resident
/// insurance, and a binding-service that authorizes her to pay for him.
pub const PAYER: &str = "340504198707200020";
pub const CHILD: &str = "340504201801100012";

pub fn id(s: &str) -> IdNumber {
    IdNumber::parse(s).unwrap()
}

pub fn ma_anshan() -> gongji_shared::RegionCode {
    gongji_shared::RegionCode::parse("340500").unwrap()
}

pub fn authorized() -> Authorization {
    Authorization {
        limits: gongji_shared::domain::limits::FamilyLimits::none(),
        denials: Vec::new(),
        binding_id: "binding-1".to_owned(),
        binding_version: 1,
        authorizer_region: Some(ma_anshan()),
        beneficiary_region: Some(ma_anshan()),
        beneficiary: Some(InsuredPerson {
            name: None,
            employee: None,
            resident: Some(Enrollment {
                region: ma_anshan(),
                terminated: false,
            }),
            paid_years: Vec::new(),
        }),
    }
}

/// An account in Ma'anshan with `prior_years` (and nothing of the current year).
pub fn account(holder: &str, prior_years: &str) -> Account {
    Account {
        holder: id(holder),
        region: ma_anshan(),
        current_year: gongji_shared::Money::ZERO,
        prior_years: gongji_shared::Money::parse(prior_years).unwrap(),
        open_time: "2020-01-01T00:00:00Z".parse().unwrap(),
    }
}

/// The use cases over fresh fakes, on 2024-11-15 (inside Ma'anshan's 2025 collection
/// window), with the payer's account.
/// The designated hospital the fakes know.
pub const HOSPITAL: &str = "H340500001";

pub fn hospital() -> DesignatedInstitution {
    DesignatedInstitution {
        code: HOSPITAL.to_owned(),
        kind: crate::domain::medical::InstitutionKind::Hospital,
        region: gongji_shared::RegionCode::parse("340500").unwrap(),
        name: "马鞍山市人民医院".to_owned(),
        designated_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        designated_until: None,
    }
}

pub fn app() -> (super::App<FakeStore, FakeRegistry>, FakeStore, FakeRegistry) {
    app_on(gongji_shared::Clock::parse("2024-11-15T10:00:00+08:00").unwrap())
}

/// The use cases over fresh fakes, with the payer's account, on `clock`.
pub fn app_on(
    clock: gongji_shared::Clock,
) -> (super::App<FakeStore, FakeRegistry>, FakeStore, FakeRegistry) {
    let store = FakeStore::default();
    let registry = FakeRegistry::default();
    store
        .state()
        .accounts
        .insert(id(PAYER), account(PAYER, "1200.00"));
    store
        .state()
        .institutions
        .insert(HOSPITAL.to_owned(), hospital());
    registry.state().authorization = Some(authorized());
    let policy = Arc::new(gongji_shared::Policy::load_or_default(None).unwrap());
    let app = super::App::new(store.clone(), registry.clone(), policy, clock);
    (app, store, registry)
}
