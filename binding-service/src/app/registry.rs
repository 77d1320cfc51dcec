//! The insured-person registry, as the core insurance system syncs it (B3, B6).

use gongji_shared::{IdNumber, command::Command};

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

impl<S: Persons, P> App<S, P> {
    /// Creates or replaces a registry record; a change that makes live bindings ineligible
    /// ends them in the same transaction.
    pub async fn upsert_person(
        &self,
        record: RegistryRecord,
        command: Command<Upserted>,
    ) -> Result<Upserted, AppError> {
        let person = Person {
            id_number: record.id_number,
            name: record.name,
            employee: record.employee,
            resident: record.resident,
            resident_paid_years: record.resident_paid_years,
            update_time: self.clock.now(),
        };
        let rules = self.policy.rules_on(self.clock.today());
        let province = self.policy.province_code();
        let decide = |live: &[Binding]| lifecycle::endings(&person, live, rules, province);
        let upserted = self
            .store
            .upsert_person(&person, &command, decide, |created, ended| Upserted {
                person: person.clone(),
                created,
                ended,
            })
            .await?;
        tracing::debug!(
            id_number = %upserted.person.id_number,
            name = %upserted.person.name,
            ended_bindings = upserted.ended.len(),
            "registry record stored"
        );
        if !upserted.ended.is_empty() {
            self.events.notify_waiters();
        }
        Ok(upserted)
    }

    /// One registry record.
    pub async fn person(&self, id: &IdNumber) -> Result<Person, AppError> {
        self.store
            .person(id)
            .await?
            .ok_or_else(|| AppError::PersonNotFound { id: id.clone() })
    }
}
