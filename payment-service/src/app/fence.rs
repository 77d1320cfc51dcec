//! The authorization fence (P1), payment-service's half: hold, ask, then post or void; and
//! the reconciliation of a binding's family debits with the uses binding-service recorded.

use std::collections::{BTreeMap, BTreeSet};

use gongji_shared::IdNumber;

use super::{App, AppError, Registry, UseRequest};
use crate::{
    domain::{
        authorization::Authorization,
        fence::{self, FamilyDebit, Hold, HoldState, Posting, Reconciliation, RecordedUse},
    },
    store::{Conflict, Holds, StoreError},
};

/// How long a hold reserves its amount unless posted or voided: longer than one call to
/// binding-service (2 s) and one write, short enough that a crash between the steps
/// frees the money soon.
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 30_000;
/// Most uses, and most family debits, one reconciliation compares: its work is bounded.
pub const MAX_RECONCILED_USES: usize = 10_000;

impl<S: Holds, R: Registry> App<S, R> {
    /// Reserves the hold, then has binding-service authorize the debit and record its use.
    /// On a denial or any failure the hold is voided and nothing is debited; on a yes the
    /// hold waits for the payment's write to post it.
    pub(super) async fn hold_and_authorize(
        &self,
        hold: &Hold,
        beneficiary: &IdNumber,
    ) -> Result<Authorization, AppError> {
        self.store.place_hold(hold).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::InsufficientBalance) => AppError::BalanceChanged,
            e => e.into(),
        })?;
        let request = UseRequest {
            authorizer: hold.holder.clone(),
            beneficiary: beneficiary.clone(),
            purpose: hold.purpose,
            amount: hold.amount(),
            movement_id: hold.movement_id.clone(),
        };
        let authorization = match self.registry.authorize_use(&request).await {
            Ok(authorization) => authorization,
            Err(e) => {
                self.release(&hold.movement_id).await;
                return Err(e.into());
            }
        };
        if !authorization.is_authorized() {
            self.release(&hold.movement_id).await;
            tracing::info!(
                holder = %hold.holder,
                beneficiary = %beneficiary,
                movement_id = %hold.movement_id,
                "family debit refused: not authorized"
            );
            return Err(AppError::NotAuthorized {
                denials: authorization.denials,
            });
        }
        Ok(authorization)
    }

    /// The posting of a held debit that binding-service authorized under `binding_id`,
    /// written now: the hold must still be live.
    pub(super) fn posting(
        &self,
        movement_id: &str,
        binding_id: &str,
        binding_version: i64,
    ) -> Posting {
        Posting {
            movement_id: movement_id.to_owned(),
            binding_id: binding_id.to_owned(),
            binding_version,
            at: self.clock.now(),
        }
    }

    /// Voids a hold that will not be posted. A failure here costs nothing but time: the
    /// hold expires on its own.
    pub(super) async fn release(&self, movement_id: &str) {
        if let Err(error) = self.store.void_hold(movement_id, self.clock.now()).await {
            tracing::warn!(%movement_id, %error, "hold not voided; it will expire");
        }
    }

    /// Compares the family debits that relied on a binding with the uses binding-service
    /// recorded for it: a debit without its use, or a use whose hold is gone without a
    /// debit, is reported.
    pub async fn reconcile_binding_uses(
        &self,
        binding_id: &str,
    ) -> Result<Reconciliation, AppError> {
        let too_many = || AppError::TooManyUses {
            limit: MAX_RECONCILED_USES,
        };
        // Debits first: a debit that commits meanwhile had its use recorded before, so it
        // is found among the uses read after.
        let limit = i64::try_from(MAX_RECONCILED_USES).unwrap_or(i64::MAX);
        let debits: Vec<FamilyDebit> = self.store.family_debits(binding_id, limit + 1).await?;
        if debits.len() > MAX_RECONCILED_USES {
            return Err(too_many());
        }
        let mut uses: Vec<RecordedUse> = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.registry.binding_uses(binding_id, &token).await?;
            uses.extend(page);
            if uses.len() > MAX_RECONCILED_USES {
                return Err(too_many());
            }
            if next.is_empty() {
                break;
            }
            token = next;
        }
        let debited: BTreeSet<&str> = debits.iter().map(|d| d.movement_id.as_str()).collect();
        let unmatched: Vec<String> = uses
            .iter()
            .filter(|u| !debited.contains(u.movement_id.as_str()))
            .map(|u| u.movement_id.clone())
            .collect();
        let states: BTreeMap<String, HoldState> = self
            .store
            .hold_states(&unmatched, self.clock.now())
            .await?
            .into_iter()
            .collect();
        let report = fence::reconcile(&debits, &uses, |id| states.get(id).copied());
        tracing::info!(
            %binding_id,
            debits = report.debits_checked,
            uses = report.uses_checked,
            debits_without_use = report.debits_without_use.len(),
            uses_without_debit = report.uses_without_debit.len(),
            in_flight = report.in_flight.len(),
            "binding uses reconciled"
        );
        Ok(report)
    }
}
