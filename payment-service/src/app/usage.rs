//! Family usage (共济使用明细): what an authorizer's account paid for each family member,
//! as either side sees it, with the names the registry holds.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use gongji_shared::{IdNumber, PersonName};

use super::{App, AppError, Registry};
use crate::{
    domain::usage::{RecordedUse, UseFilter, UseTotal},
    store::FamilyUses,
};

/// Most registry reads one listing makes at a time for names.
const NAME_LOOKUPS_IN_FLIGHT: usize = 8;

/// One page of family uses, the totals over the whole range, and the names of everyone in
/// either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyUsage {
    /// Newest first, at most the page size asked (one more tells a next page follows).
    pub uses: Vec<RecordedUse>,
    pub totals: Vec<UseTotal>,
    /// The registry's name of each party; absent when the registry gives none.
    pub names: BTreeMap<IdNumber, PersonName>,
}

impl<S: FamilyUses, R: Registry> App<S, R> {
    /// Up to `limit` uses of `filter`, newest first, below position `before` if given, with
    /// the totals per beneficiary and purpose over its range.
    pub async fn family_usage(
        &self,
        filter: &UseFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<FamilyUsage, AppError> {
        let uses = self.store.uses(filter, before, limit).await?;
        let totals = self.store.use_totals(filter).await?;
        let people: Vec<IdNumber> = uses
            .iter()
            .flat_map(|u| [&u.new.authorizer, &u.new.beneficiary])
            .chain(totals.iter().map(|t| &t.beneficiary))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let names = futures::stream::iter(people)
            .map(|id| async move {
                let person = self.registry.person(&id).await?;
                Ok::<_, AppError>(person.and_then(|p| p.name).map(|name| (id, name)))
            })
            .buffer_unordered(NAME_LOOKUPS_IN_FLIGHT)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await?;
        Ok(FamilyUsage {
            uses,
            totals,
            names,
        })
    }
}
