//! The insured-person registry, as the core insurance system syncs it (B3, B6).

use gongji_shared::{IdNumber, command::Command, db::reseal::ResealStep};

use gongji_shared::PersonName;

use super::{App, AppError};
use crate::{
    domain::{Binding, Enrollment, Person, lifecycle},
    store::Persons,
};

/// A registry record as the core insurance system sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRecord {
    pub id_number: IdNumber,
    pub name: PersonName,
    pub employee: Option<Enrollment>,
    pub resident: Option<Enrollment>,
    pub resident_paid_years: Vec<gongji_shared::CoverageYear>,
}

/// A stored registry record, whether it is new, and the bindings the change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub person: Person,
    pub created: bool,
    pub ended: Vec<Binding>,
}

/// Most records one batch carries: its work and its transaction stay bounded.
pub const MAX_BATCH_RECORDS: usize = 500;

/// Registry records to store at once: 1 to [`MAX_BATCH_RECORDS`], each ID number once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryBatch(Vec<RegistryRecord>);

/// Why records cannot form a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch holds 1 to {MAX_BATCH_RECORDS} records, not {len}")]
    Size { len: usize },
    #[error("records {first} and {second} have the same ID number")]
    Duplicate { first: usize, second: usize },
}

impl RegistryBatch {
    pub fn parse(records: Vec<RegistryRecord>) -> Result<Self, BatchError> {
        if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
            return Err(BatchError::Size { len: records.len() });
        }
        let mut seen = std::collections::HashMap::with_capacity(records.len());
        for (second, record) in records.iter().enumerate() {
            if let Some(first) = seen.insert(record.id_number.as_str(), second) {
                return Err(BatchError::Duplicate { first, second });
            }
        }
        Ok(Self(records))
    }

    pub fn records(&self) -> &[RegistryRecord] {
        &self.0
    }
}

impl<S: gongji_shared::db::reseal::Reseal<Conflict = crate::store::Conflict>, P> App<S, P> {
    /// One step of re-sealing personal data under the newest key (a bounded batch per table,
    /// then the older keys retired), its answer recorded under `command`.
    pub async fn reseal_personal_data(
        &self,
        batch: i64,
        command: Command<ResealStep>,
    ) -> Result<ResealStep, AppError> {
        let at = self.clock.now();
        Ok(gongji_shared::db::reseal::reseal_step(&self.store, batch, &command, at).await?)
    }
}

impl<S: Persons, P> App<S, P> {
    /// Creates or replaces a registry record; a change that makes live bindings ineligible
    /// ends them in the same transaction.
    pub async fn upsert_person(
        &self,
        record: RegistryRecord,
        command: Command<Upserted>,
    ) -> Result<Upserted, AppError> {
        let persons = [self.person_of(record)];
        let upserted = self
            .upsert(&persons, &command, |mut outcomes| {
                let (created, ended) = outcomes.pop().unwrap_or_default();
                Upserted {
                    person: persons[0].clone(),
                    created,
                    ended,
                }
            })
            .await?;
        tracing::debug!(
            id_number = %upserted.person.id_number,
            name = %upserted.person.name,
            ended_bindings = upserted.ended.len(),
            "registry record stored"
        );
        Ok(upserted)
    }

    /// Creates or replaces a batch of registry records, all or none, each under the rules of
    /// [`Self::upsert_person`]; the outcomes come in the batch's order.
    pub async fn upsert_persons(
        &self,
        batch: RegistryBatch,
        command: Command<Vec<Upserted>>,
    ) -> Result<Vec<Upserted>, AppError> {
        let persons: Vec<Person> = batch.0.into_iter().map(|r| self.person_of(r)).collect();
        let upserted = self
            .upsert(&persons, &command, |outcomes| {
                persons
                    .iter()
                    .zip(outcomes)
                    .map(|(person, (created, ended))| Upserted {
                        person: person.clone(),
                        created,
                        ended,
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        tracing::debug!(
            records = upserted.len(),
            ended_bindings = upserted.iter().map(|u| u.ended.len()).sum::<usize>(),
            "registry batch stored"
        );
        Ok(upserted)
    }

    /// A record as stored now.
    fn person_of(&self, record: RegistryRecord) -> Person {
        Person {
            id_number: record.id_number,
            name: record.name,
            employee: record.employee,
            resident: record.resident,
            resident_paid_years: record.resident_paid_years,
            update_time: self.clock.now(),
        }
    }

    /// Stores records under today's rules, ending what they make ineligible, and wakes the
    /// event watchers if anything ended.
    async fn upsert<T: Send>(
        &self,
        persons: &[Person],
        command: &Command<T>,
        make: impl FnOnce(Vec<(bool, Vec<Binding>)>) -> T + Send,
    ) -> Result<T, AppError> {
        let rules = self.policy.rules_on(self.clock.today());
        let province = self.policy.province_code();
        let decide =
            |person: &Person, live: &[Binding]| lifecycle::endings(person, live, rules, province);
        let mut any_ended = false;
        let outcome = self
            .store
            .upsert_persons(persons, command, decide, |outcomes| {
                any_ended = outcomes.iter().any(|(_, ended)| !ended.is_empty());
                make(outcomes)
            })
            .await?;
        if any_ended {
            self.events.notify_waiters();
        }
        Ok(outcome)
    }

    /// One registry record.
    pub async fn person(&self, id: &IdNumber) -> Result<Person, AppError> {
        self.store
            .person(id)
            .await?
            .ok_or_else(|| AppError::PersonNotFound { id: id.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u32) -> RegistryRecord {
        RegistryRecord {
            id_number: IdNumber::with_check_char(&format!("34050420100101{sequence:03}")).unwrap(),
            name: PersonName::parse("王芳").unwrap(),
            employee: None,
            resident: None,
            resident_paid_years: Vec::new(),
        }
    }

    #[test]
    fn a_batch_holds_one_to_the_limit_of_distinct_people() {
        assert_eq!(
            RegistryBatch::parse(Vec::new()),
            Err(BatchError::Size { len: 0 })
        );
        let full: Vec<_> = (0..MAX_BATCH_RECORDS as u32).map(record).collect();
        assert_eq!(
            RegistryBatch::parse(full.clone()).map(|b| b.records().len()),
            Ok(MAX_BATCH_RECORDS)
        );
        let mut over = full;
        over.push(record(999));
        assert_eq!(
            RegistryBatch::parse(over),
            Err(BatchError::Size {
                len: MAX_BATCH_RECORDS + 1
            })
        );
        assert_eq!(
            RegistryBatch::parse(vec![record(1), record(2), record(1)]),
            Err(BatchError::Duplicate {
                first: 0,
                second: 2
            })
        );
    }
}
