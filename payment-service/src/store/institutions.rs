//! Designated institutions: the registry the core insurance system syncs.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    command::Idempotency,
    db::decode::{self, corrupt},
};

use super::{Database, StoreError};
use crate::domain::{
    institution::{DesignatedInstitution, InstitutionBatch},
    medical::InstitutionKind,
};

/// Designated institutions.
pub trait Institutions: Database<Conflict = super::Conflict> {
    /// Creates or replaces each institution of `batch`, all or none, with the response kept
    /// for retries.
    fn upsert_institutions(
        &self,
        batch: &InstitutionBatch,
        at: DateTime<Utc>,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The registry's record of `code`, if any.
    fn institution(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<Option<DesignatedInstitution>, StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
pub(super) struct InstitutionRow {
    code: String,
    kind: String,
    region: String,
    name: String,
    designated_from: NaiveDate,
    designated_until: Option<NaiveDate>,
}

impl InstitutionRow {
    pub(super) fn open(self) -> Result<DesignatedInstitution, StoreError> {
        Ok(DesignatedInstitution {
            code: self.code,
            kind: InstitutionKind::parse(&self.kind)
                .ok_or_else(|| corrupt("designated_institutions.kind"))?,
            region: decode::region(&self.region, "designated_institutions.region")?,
            name: self.name,
            designated_from: self.designated_from,
            designated_until: self.designated_until,
        })
    }
}

/// Implements `Institutions` for `$store`.
macro_rules! institutions_sql {
    ($store:ident) => {
        impl $crate::store::Institutions for $store {
            async fn upsert_institutions(
                &self,
                batch: &$crate::domain::institution::InstitutionBatch,
                at: chrono::DateTime<chrono::Utc>,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, &self.vault, idempotency, response, at).await?;
                // At most MAX_BATCH_INSTITUTIONS statements, in one transaction.
                for i in batch.institutions() {
                    sqlx::query(
                        "INSERT INTO designated_institutions (code, kind, region, name, designated_from, designated_until, update_time) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (code) DO UPDATE SET kind = $2, region = $3, name = $4, designated_from = $5, \
                         designated_until = $6, update_time = $7",
                    )
                    .bind(&i.code)
                    .bind(i.kind.as_str())
                    .bind(i.region.as_str())
                    .bind(&i.name)
                    .bind(i.designated_from)
                    .bind(i.designated_until)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn institution(
                &self,
                code: &str,
            ) -> Result<Option<$crate::domain::institution::DesignatedInstitution>, $crate::store::StoreError> {
                let row: Option<$crate::store::institutions::InstitutionRow> = sqlx::query_as(
                    "SELECT code, kind, region, name, designated_from, designated_until \
                     FROM designated_institutions WHERE code = $1",
                )
                .bind(code)
                .fetch_optional(&self.reads)
                .await?;
                row.map(|r| r.open()).transpose()
            }
        }
    };
}
