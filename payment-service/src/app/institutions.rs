//! Designated institutions: the core insurance system syncs them; medical expenses are paid
//! at them only.

use gongji_shared::command::Command;

use super::{App, AppError, Registry};
use crate::{
    domain::{
        institution::{self, InstitutionBatch},
        medical::InstitutionKind,
    },
    store::Institutions,
};

impl<S: Institutions, R: Registry> App<S, R> {
    /// Creates or replaces the batch's institutions, all or none; answers how many.
    pub async fn upsert_institutions(
        &self,
        batch: InstitutionBatch,
        command: Command<usize>,
    ) -> Result<usize, AppError> {
        let count = batch.institutions().len();
        let (now, _) = self.now();
        self.store
            .upsert_institutions(
                &batch,
                now,
                command.idempotency(),
                &command.response(&count),
            )
            .await?;
        tracing::info!(count, "designated institutions synced");
        Ok(count)
    }

    /// Whether a charge of `kind` at `code` may be paid today (M1).
    pub(super) async fn require_designated(
        &self,
        code: &str,
        kind: InstitutionKind,
    ) -> Result<(), AppError> {
        let today = self.today();
        let found = self.store.institution(code).await?;
        institution::check(found.as_ref(), kind, today).map_err(|why| {
            AppError::InstitutionNotDesignated {
                code: code.to_owned(),
                why,
                business_date: today,
            }
        })
    }
}
