//! Accounts and their double-entry ledger: opening, balances, posting movements, entries,
//! year closing. `write_movement` is the one place balances change; the other aggregates'
//! writes call it inside their own transactions.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{
    IdNumber,
    command::{Command, Idempotency},
    policy::Bucket,
    vault::Vault,
};

use gongji_shared::db::{
    batch::Part,
    decode::{self, corrupt},
};

use super::{Database, StoreError};
use crate::domain::{
    Account, AccountEntry, Book, CurrentYearHistory, FamilyUse, Movement, MovementKind,
};

/// Accounts and the ledger.
pub trait Accounts: Database<Conflict = super::Conflict> {
    /// Opens an account with zero balances; `Conflict::AccountExists` if the holder has one.
    fn open_account(
        &self,
        account: &Account,
        idempotency: &Idempotency,
        response: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One account.
    fn account(
        &self,
        holder: &IdNumber,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Writes a balanced movement touching `holder`'s account; `make` gets the account
    /// after it, the entry IDs of the postings, in order, and the business day the movement
    /// got (its own, or the next open one when that day is settled), and builds the outcome
    /// whose answer is recorded with it.
    fn post<T: Send>(
        &self,
        holder: &IdNumber,
        movement: &Movement,
        command: &Command<T>,
        make: impl FnOnce(&Account, &[i64], NaiveDate) -> T + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// The holder's account-side entries, newest first, older than `before` if given.
    fn entries(
        &self,
        holder: &IdNumber,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AccountEntry>, StoreError>> + Send;

    /// Closes `year` for the holder: `plan` sees the account as locked in the transaction,
    /// with the history of its current-year bucket up to the end of `year`, and returns the
    /// movement (none when nothing moves); `make(account_after, moved_fen)` builds the
    /// outcome. `Conflict::YearClosed` when the year was closed before.
    fn close_year<T: Send>(
        &self,
        holder: &IdNumber,
        year: i32,
        at: DateTime<Utc>,
        plan: impl FnOnce(&Account, CurrentYearHistory) -> Option<Movement> + Send,
        command: &Command<T>,
        make: impl FnOnce(&Account, i64) -> T + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// Up to `limit` account holders after position `after` (0 to start), in the order the
    /// accounts were opened, each with its position.
    fn account_holders(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(i64, IdNumber)>, StoreError>> + Send;
}

/// The balance column of a bucket. Never user input: a fixed match.
pub(super) fn bucket_column(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::CurrentYear => "current_fen",
        Bucket::PriorYears => "prior_fen",
    }
}

/// The columns of an entry row: holder (its keyed index), bucket, fund, region.
pub(super) fn book_columns<'a>(
    vault: &Vault,
    book: &'a Book,
) -> (
    Option<String>,
    Option<&'static str>,
    Option<&'static str>,
    &'a str,
) {
    match book {
        Book::Personal {
            holder,
            bucket,
            region,
        } => (
            Some(vault.index(holder)),
            Some(bucket.as_str()),
            None,
            region.as_str(),
        ),
        Book::Fund { fund, region } => (None, None, Some(*fund), region.as_str()),
    }
}

/// The columns an account is read from.
pub(super) const ACCOUNT_COLUMNS: &str = "holder_sealed, region, current_fen, prior_fen, open_time";

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    /// The holder's ID number, sealed (`holder` holds its keyed index).
    pub(super) holder_sealed: String,
    pub(super) region: String,
    pub(super) current_fen: i64,
    pub(super) prior_fen: i64,
    pub(super) open_time: DateTime<Utc>,
}

impl AccountRow {
    /// The account, its holder opened.
    pub(super) fn open(self, vault: &Vault) -> Result<Account, StoreError> {
        let r = self;
        Ok(Account {
            holder: decode::sealed_id(vault, &r.holder_sealed, "accounts.holder_sealed")?,
            region: decode::region(&r.region, "accounts.region")?,
            current_year: decode::money(r.current_fen, "accounts.current_fen")?,
            prior_years: decode::money(r.prior_fen, "accounts.prior_fen")?,
            open_time: r.open_time,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    entry_id: i64,
    movement_id: String,
    kind: String,
    bucket: String,
    amount_fen: i64,
    request_id: String,
    create_time: DateTime<Utc>,
    business_date: NaiveDate,
    memo: String,
    caller: String,
    /// For a family debit or its refund: the family member (sealed), the binding, and the
    /// institution of a medical expense.
    beneficiary_sealed: Option<String>,
    binding_id: Option<String>,
    institution_code: Option<String>,
}

/// For an entry `e` of a movement `m`: whom the family debit from its account (or the refund of
/// one) was for, the binding, and a medical expense's institution, from the payment it belongs
/// to (a premium, a premium's refund, a medical expense, a medical expense's refund, a family
/// wallet transfer). Joined to the family account's entries only.
macro_rules! entry_family_columns {
    () => {
        "COALESCE(p.beneficiary_sealed, r.beneficiary_sealed, d.beneficiary_sealed, dr.beneficiary_sealed, \
         wt.beneficiary_sealed) AS beneficiary_sealed, \
         COALESCE(p.binding_id, r.binding_id, d.binding_id, dr.binding_id, wt.binding_id) AS binding_id, \
         COALESCE(d.institution_code, dr.institution_code) AS institution_code"
    };
}
/// The joins [`entry_family_columns`] reads.
macro_rules! entry_family_joins {
    () => {
        "LEFT JOIN premium_payments p ON p.movement_id = e.movement_id AND p.payer = e.holder \
         LEFT JOIN premium_payments r ON r.refund_movement_id = e.movement_id AND r.payer = e.holder \
         LEFT JOIN medical_payments d ON d.movement_id = e.movement_id AND d.family_holder = e.holder \
         LEFT JOIN medical_refunds q ON q.movement_id = e.movement_id \
         LEFT JOIN medical_payments dr ON dr.payment_id = q.payment_id AND dr.family_holder = e.holder \
         LEFT JOIN wallet_transfers wt ON wt.movement_id = e.movement_id AND wt.authorizer = e.holder"
    };
}

/// The holder's entries ($1) before $2, newest first, at most $3; each with whom a family
/// debit from the account (or its refund) was for.
pub(super) const ENTRIES_SQL: &str = concat!(
    "SELECT e.entry_id, e.movement_id, m.kind, e.bucket, e.amount_fen, m.request_id, \
     m.create_time, m.business_date, m.memo, m.caller, ",
    entry_family_columns!(),
    " FROM entries e JOIN movements m ON m.movement_id = e.movement_id ",
    entry_family_joins!(),
    " WHERE e.holder = $1 AND e.entry_id < $2 ORDER BY e.entry_id DESC LIMIT $3"
);

impl EntryRow {
    /// The entry, whom a family debit was for opened.
    pub(super) fn open(self, vault: &Vault) -> Result<AccountEntry, StoreError> {
        let r = self;
        let family = match (r.beneficiary_sealed, r.binding_id) {
            (Some(sealed), Some(binding_id)) => Some(FamilyUse {
                beneficiary: decode::sealed_id(vault, &sealed, "payments.beneficiary_sealed")?,
                binding_id,
                institution_code: r.institution_code,
            }),
            _ => None,
        };
        Ok(AccountEntry {
            family,
            entry_id: r.entry_id,
            movement_id: r.movement_id,
            kind: MovementKind::parse(&r.kind).ok_or_else(|| corrupt("movements.kind"))?,
            bucket: Bucket::parse(&r.bucket).ok_or_else(|| corrupt("entries.bucket"))?,
            amount_fen: r.amount_fen,
            request_id: r.request_id,
            create_time: r.create_time,
            business_date: r.business_date,
            memo: r.memo,
            caller: r.caller,
        })
    }
}

/// The movement's row, on business day `business_date`, written by `by`.
pub(super) fn movement_part(
    vault: &Vault,
    movement: &Movement,
    by: &Idempotency,
    business_date: NaiveDate,
) -> Part {
    Part::new(
        "movements",
        "INSERT INTO movements (movement_id, kind, request_id, create_time, business_date, purpose, destination, memo, caller, acting_person) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vec![
            movement.movement_id.as_str().into(),
            movement.kind.as_str().into(),
            movement.request_id.as_str().into(),
            movement.create_time.into(),
            business_date.into(),
            movement.purpose.map(|p| p.as_str()).into(),
            movement.destination.as_ref().map(|d| d.as_str()).into(),
            movement.memo.as_str().into(),
            by.scope.as_str().into(),
            by.acting_person.as_deref().map(|p| vault.seal(p)).into(),
        ],
    )
}

/// Every entry of a movement in one statement, five columns each after the movement's ID
/// ($1). Their IDs come from one counter, in row order, so sorted they are in posting order.
pub(super) fn entries_part(vault: &Vault, movement: &Movement) -> Part {
    let rows = (0..movement.postings.len())
        .map(|i| {
            let p = 2 + i * 5;
            format!(
                "($1, ${}, ${}, ${}, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut values = Vec::with_capacity(1 + movement.postings.len() * 5);
    values.push(movement.movement_id.as_str().into());
    for posting in &movement.postings {
        let (holder, bucket, fund, region) = book_columns(vault, &posting.book);
        values.extend([
            holder.into(),
            bucket.into(),
            fund.into(),
            region.into(),
            posting.amount_fen.into(),
        ]);
    }
    Part::new(
        "entries",
        format!(
            "INSERT INTO entries (movement_id, holder, bucket, fund, region, amount_fen) VALUES {rows}"
        ),
        values,
    )
}

/// Implements `Accounts` for `$store` over `$db`; `$for_update` locks a row read inside a
/// transaction, and `$day_lock_shared` takes a business day's lock in shared mode (against
/// its settlement, which takes it alone). Also defines `read_account`, `open_day` and
/// `write_movement` for the other aggregates.
macro_rules! accounts_sql {
    ($store:ident, $db:ty, $for_update:expr, $day_lock_shared:expr, $day_begin:expr, $account_no:expr) => {
        impl $crate::store::Accounts for $store {
            async fn account_holders(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<(i64, gongji_shared::IdNumber)>, $crate::store::StoreError> {
                let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                    "SELECT CAST({no} AS BIGINT), holder_sealed FROM accounts WHERE {no} > $1 ORDER BY {no} LIMIT $2",
                    no = $account_no
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter()
                    .map(|(no, sealed)| {
                        Ok((no, gongji_shared::db::decode::sealed_id(&self.vault, &sealed, "accounts.holder_sealed")?))
                    })
                    .collect()
            }

            async fn open_account(
                &self,
                account: &$crate::domain::Account,
                idempotency: &gongji_shared::command::Idempotency,
                response: &[u8],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                save_response(&mut tx, &self.vault, idempotency, response, account.open_time).await?;
                sqlx::query(
                    "INSERT INTO accounts (holder, region, current_fen, prior_fen, open_time, holder_sealed) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(self.vault.index(&account.holder))
                .bind(account.region.as_str())
                .bind(account.current_year.fen())
                .bind(account.prior_years.fen())
                .bind(account.open_time)
                .bind(self.vault.seal_id(&account.holder))
                .execute(&mut *tx)
                .await
                .map_err(|e| gongji_shared::db::decode::unique_or(e, $crate::store::Conflict::AccountExists))?;
                tx.commit().await?;
                Ok(())
            }

            async fn account(
                &self,
                holder: &gongji_shared::IdNumber,
            ) -> Result<Option<$crate::domain::Account>, $crate::store::StoreError> {
                // Read before every medical payment (each party's): on a kept connection.
                let mut connection = self.warm_reads.acquire().await?;
                let row: Option<$crate::store::accounts::AccountRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM accounts WHERE holder = $1",
                    $crate::store::accounts::ACCOUNT_COLUMNS
                ))
                .bind(self.vault.index(holder))
                .fetch_optional(&mut *connection)
                .await?;
                self.warm_reads.keep(connection);
                row.map(|r| r.open(&self.vault)).transpose()
            }

            async fn post<T: Send>(
                &self,
                holder: &gongji_shared::IdNumber,
                movement: &$crate::domain::Movement,
                command: &gongji_shared::command::Command<T>,
                make: impl FnOnce(&$crate::domain::Account, &[i64], chrono::NaiveDate) -> T + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let (entry_ids, business_date) =
                    write_movement(&mut tx, &self.vault, movement, command.idempotency()).await?;
                let account = read_account(&mut tx, &self.vault, holder, "").await?;
                let outcome = make(&account, &entry_ids, business_date);
                save_response(&mut tx, &self.vault, command.idempotency(), &command.response(&outcome), movement.create_time).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn entries(
                &self,
                holder: &gongji_shared::IdNumber,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::AccountEntry>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::accounts::EntryRow> = sqlx::query_as(
                    $crate::store::accounts::ENTRIES_SQL,
                )
                .bind(self.vault.index(holder))
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit).min($crate::store::MAX_ROWS))
                .fetch_all(&self.reads)
                .await?;
                rows.into_iter().map(|r| r.open(&self.vault)).collect()
            }

            async fn close_year<T: Send>(
                &self,
                holder: &gongji_shared::IdNumber,
                year: i32,
                at: chrono::DateTime<chrono::Utc>,
                plan: impl FnOnce(&$crate::domain::Account, $crate::domain::CurrentYearHistory) -> Option<$crate::domain::Movement> + Send,
                command: &gongji_shared::command::Command<T>,
                make: impl FnOnce(&$crate::domain::Account, i64) -> T + Send,
            ) -> Result<T, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                // The day's lock before any row's, in the order every writer takes them.
                open_day(&mut tx, gongji_shared::domain::clock::shanghai_date(at)).await?;
                let before = read_account(&mut tx, &self.vault, holder, $for_update).await?;
                let year_end = chrono::NaiveDate::from_ymd_opt(year, 12, 31)
                    .ok_or_else(|| $crate::store::StoreError::Corrupt("year out of range".into()))?;
                let (credited_by_year_end_fen, spent_fen): (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN e.amount_fen > 0 AND m.business_date <= $2 THEN e.amount_fen ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN e.amount_fen < 0 THEN -e.amount_fen ELSE 0 END), 0) AS BIGINT) \
                     FROM entries e JOIN movements m ON m.movement_id = e.movement_id \
                     WHERE e.holder = $1 AND e.bucket = 'CURRENT_YEAR'",
                )
                .bind(self.vault.index(holder))
                .bind(year_end)
                .fetch_one(&mut *tx)
                .await?;
                let history = $crate::domain::CurrentYearHistory {
                    credited_by_year_end_fen,
                    spent_fen,
                };
                let movement = plan(&before, history);
                let moved = movement.as_ref().map_or(0, |m| {
                    m.postings.iter().map(|p| p.amount_fen).filter(|a| *a > 0).sum()
                });
                if let Some(movement) = &movement {
                    write_movement(&mut tx, &self.vault, movement, command.idempotency()).await?;
                }
                sqlx::query(
                    "INSERT INTO year_closings (holder, year, moved_fen, movement_id, create_time) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(self.vault.index(holder))
                .bind(year)
                .bind(moved)
                .bind(movement.as_ref().map(|m| m.movement_id.as_str()))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| gongji_shared::db::decode::unique_or(e, $crate::store::Conflict::YearClosed))?;
                let after = read_account(&mut tx, &self.vault, holder, "").await?;
                let outcome = make(&after, moved);
                save_response(&mut tx, &self.vault, command.idempotency(), &command.response(&outcome), at).await?;
                tx.commit().await?;
                Ok(outcome)
            }
        }

        /// One account read inside a transaction; `lock` is `$for_update` to keep it.
        async fn read_account(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            holder: &gongji_shared::IdNumber,
            lock: &str,
        ) -> Result<$crate::domain::Account, $crate::store::StoreError> {
            let row: $crate::store::accounts::AccountRow = sqlx::query_as(&format!(
                "SELECT {} FROM accounts WHERE holder = $1{lock}",
                $crate::store::accounts::ACCOUNT_COLUMNS
            ))
            .bind(vault.index(holder))
            .fetch_one(&mut **tx)
            .await?;
            row.open(vault)
        }

        /// The business day a movement stamped `date` belongs to (S1): `date`, unless it is
        /// settled already, then the next day that is not. A settled day is sealed: no
        /// movement ever carries its date, so every movement is settled exactly once. Takes
        /// each day's lock in shared mode first, so a settlement running meanwhile either
        /// sees this transaction's movement or has committed before it looks.
        async fn open_day(
            tx: &mut sqlx::Transaction<'_, $db>,
            date: chrono::NaiveDate,
        ) -> Result<chrono::NaiveDate, $crate::store::StoreError> {
            let mut day = date;
            for _ in 0..$crate::store::MAX_SEALED_DAYS_SKIPPED {
                sqlx::query($day_lock_shared)
                    .bind(chrono::Datelike::num_days_from_ce(&day))
                    .execute(&mut **tx)
                    .await?;
                let settled: Option<(chrono::NaiveDate,)> =
                    sqlx::query_as("SELECT business_date FROM settlements WHERE business_date = $1")
                        .bind(day)
                        .fetch_optional(&mut **tx)
                        .await?;
                if settled.is_none() {
                    return Ok(day);
                }
                day = day
                    .succ_opt()
                    .ok_or_else(|| $crate::store::StoreError::Corrupt("no day after".into()))?;
            }
            Err($crate::store::StoreError::Corrupt("too many settled days ahead of a movement".into()))
        }

        /// A payment's write (PayPremium, PayMedicalExpense) in few round trips: the
        /// transaction begins with the business day's lock (`$day_begin`, where the database
        /// takes it in the BEGIN's own round trip), then one batch sends the day's
        /// settlement check, the first answer, the movement and its entries, the hold's
        /// posting, the payment's `rows` (given the business day) and, where rows are locked
        /// and one account is debited, that account's lock; then the balances move and it
        /// commits. A settled day rolls the attempt back and the next day is tried (S1). A
        /// unique violation is `RequestIdTaken` when the request ID is stored, else what
        /// `conflict` says of the table, else a database error; a hold gone is `HoldGone`.
        #[allow(clippy::too_many_arguments)]
        async fn write_payment(
            warm: &gongji_shared::db::warm::Warm<$db>,
            vault: &gongji_shared::vault::Vault,
            movement: Option<&$crate::domain::Movement>,
            posting: Option<&$crate::domain::fence::Posting>,
            idempotency: &gongji_shared::command::Idempotency,
            (response, at): (&[u8], chrono::DateTime<chrono::Utc>),
            rows: impl Fn(Option<chrono::NaiveDate>) -> Result<Vec<gongji_shared::db::batch::Part>, $crate::store::StoreError>,
            conflict: impl Fn(&str) -> Option<$crate::store::Conflict>,
        ) -> Result<(), $crate::store::StoreError> {
            use gongji_shared::db::batch::{Batch, Part, RunBatch as _};
            if movement.is_some_and(|m| !m.is_balanced()) {
                return Err($crate::store::StoreError::Corrupt("unbalanced movement".into()));
            }
            // The one account a debit locks in the batch; with several, `apply_movement`
            // locks them one by one in their fixed order.
            let debited: std::collections::BTreeSet<String> = movement
                .into_iter()
                .flat_map(|m| &m.postings)
                .filter_map(|p| match &p.book {
                    $crate::domain::Book::Personal { holder, .. } if p.amount_fen < 0 => Some(vault.index(holder)),
                    _ => None,
                })
                .collect();
            let locked = (debited.len() == 1 && !$for_update.is_empty()).then(|| debited.first().cloned()).flatten();
            let mut day = movement.map(|m| m.business_date);
            for _ in 0..$crate::store::MAX_SEALED_DAYS_SKIPPED {
                // A connection of its own per attempt: one whose attempt was rolled back goes
                // back to the pool, and only one that committed is kept.
                let mut connection = warm.acquire().await?;
                let mut tx = match day.and_then($day_begin) {
                    Some(begin) => sqlx::Connection::begin_with(&mut *connection, begin).await?,
                    None => sqlx::Connection::begin(&mut *connection).await?,
                };
                let mut batch = Batch::default();
                let settled = day.map(|d| {
                    batch.push(Part::new(
                        "settlements",
                        "SELECT business_date FROM settlements WHERE business_date = $1",
                        vec![d.into()],
                    ))
                });
                batch.push(gongji_shared::db::response_part(vault, idempotency, response, at));
                let mut entries = None;
                if let (Some(movement), Some(day)) = (movement, day) {
                    batch.push($crate::store::accounts::movement_part(vault, movement, idempotency, day));
                    entries = Some(batch.push($crate::store::accounts::entries_part(vault, movement)));
                }
                let posted = posting.map(|p| batch.push($crate::store::holds::posting_part(p)));
                for part in rows(day)? {
                    batch.push(part);
                }
                if let Some(holder) = &locked {
                    batch.push(Part::new(
                        "accounts",
                        format!("SELECT holder FROM accounts WHERE holder = $1{}", $for_update),
                        vec![holder.as_str().into()],
                    ));
                }
                let counts = match tx.run_batch(&batch).await {
                    Ok(counts) => counts,
                    Err(e) if gongji_shared::db::is_unique_violation(&e.error) => {
                        // Back to the pool first: SQLite's one writer is this connection.
                        drop(tx);
                        drop(connection);
                        // The parts run in no promised order: a retry may fail on the payment's
                        // row before its request ID. Both commit together, so the request ID
                        // decides first.
                        let (scope, request_id) = (&idempotency.scope, &idempotency.request_id);
                        if saved_response_of(warm.pool(), vault, scope, request_id).await?.is_some() {
                            return Err($crate::store::StoreError::Conflict($crate::store::Conflict::RequestIdTaken));
                        }
                        let table = e.part.map(|i| batch.parts()[i].table);
                        return Err(match table.and_then(&conflict) {
                            Some(c) => $crate::store::StoreError::Conflict(c),
                            None => e.error.into(),
                        });
                    }
                    Err(e) => return Err(e.error.into()),
                };
                if settled.is_some_and(|i| counts[i] > 0) {
                    // Sealed: nothing of this attempt stays (dropping it rolls it back).
                    day = day
                        .and_then(|d| d.succ_opt())
                        .ok_or_else(|| $crate::store::StoreError::Corrupt("no day after".into()))
                        .map(Some)?;
                    continue;
                }
                if let (Some(movement), Some(i)) = (movement, entries) {
                    if usize::try_from(counts[i]).ok() != Some(movement.postings.len()) {
                        return Err($crate::store::StoreError::Corrupt("an entry was not written".into()));
                    }
                }
                if posted.is_some_and(|i| counts[i] != 1) {
                    return Err($crate::store::StoreError::Conflict($crate::store::Conflict::HoldGone));
                }
                if let Some(movement) = movement {
                    apply_movement_locked(&mut tx, vault, movement, locked.as_deref()).await?;
                }
                tx.commit().await?;
                warm.keep(connection);
                return Ok(());
            }
            Err($crate::store::StoreError::Corrupt("too many settled days ahead of a movement".into()))
        }

        /// Writes a movement, its entries and the balances they move (`record_movement`, then
        /// `apply_movement`). Returns the entry IDs in posting order and the business day the
        /// movement got.
        async fn write_movement(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            movement: &$crate::domain::Movement,
            by: &gongji_shared::command::Idempotency,
        ) -> Result<(Vec<i64>, chrono::NaiveDate), $crate::store::StoreError> {
            let written = record_movement(tx, vault, movement, by).await?;
            apply_movement(tx, vault, movement).await?;
            Ok(written)
        }

        /// Writes a movement and its entries, on its open business day (`open_day`), but not
        /// yet the balances: a writer that has more to insert does it before `apply_movement`,
        /// so that the accounts' row locks are taken last and held for the least time (a hot
        /// account takes as many payments per second as that time allows). Returns the entry
        /// IDs in posting order and the business day the movement got.
        async fn record_movement(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            movement: &$crate::domain::Movement,
            by: &gongji_shared::command::Idempotency,
        ) -> Result<(Vec<i64>, chrono::NaiveDate), $crate::store::StoreError> {
            if !movement.is_balanced() {
                return Err($crate::store::StoreError::Corrupt("unbalanced movement".into()));
            }
            let business_date = open_day(tx, movement.business_date).await?;
            use gongji_shared::db::batch::BindValues as _;
            let row = $crate::store::accounts::movement_part(vault, movement, by, business_date);
            sqlx::query(row.sql()).bind_values(row.values()).execute(&mut **tx).await?;
            let entries = $crate::store::accounts::entries_part(vault, movement);
            let returning = format!("{} RETURNING entry_id", entries.sql());
            let insert = sqlx::query_as::<_, (i64,)>(&returning).bind_values(entries.values());
            let mut ids: Vec<i64> = insert.fetch_all(&mut **tx).await?.into_iter().map(|(id,)| id).collect();
            ids.sort_unstable();
            if ids.len() != movement.postings.len() {
                return Err($crate::store::StoreError::Corrupt("an entry was not written".into()));
            }
            Ok((ids, business_date))
        }

        /// Moves the balances of a movement's personal postings, in a fixed order (holder,
        /// bucket) so concurrent movements over the same accounts lock them in the same order,
        /// each with a conditional update that refuses to go below zero, or into what live
        /// holds reserve as of the movement's time, its own hold (the one being posted) aside.
        async fn apply_movement(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            movement: &$crate::domain::Movement,
        ) -> Result<(), $crate::store::StoreError> {
            apply_movement_locked(tx, vault, movement, None).await
        }

        /// `apply_movement`, where the account stored under `locked` was locked already in
        /// this transaction (by `write_payment`'s batch).
        async fn apply_movement_locked(
            tx: &mut sqlx::Transaction<'_, $db>,
            vault: &gongji_shared::vault::Vault,
            movement: &$crate::domain::Movement,
            locked: Option<&str>,
        ) -> Result<(), $crate::store::StoreError> {
            // By index: the order every writer locks accounts in is the order of what their
            // rows are stored under.
            let mut personal: Vec<(String, gongji_shared::policy::Bucket, i64)> = movement
                .postings
                .iter()
                .filter_map(|p| match &p.book {
                    $crate::domain::Book::Personal { holder, bucket, .. } => Some((vault.index(holder), *bucket, p.amount_fen)),
                    $crate::domain::Book::Fund { .. } => None,
                })
                .collect();
            personal.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            for (holder, bucket, amount_fen) in personal {
                let column = $crate::store::accounts::bucket_column(bucket);
                let updated = if amount_fen < 0 {
                    // A debit leaves the account's live holds (P1's fence) untouched. Where rows
                    // are locked, the lock comes first, in its own statement, so the holds are
                    // read after any hold placed meanwhile (which takes the same lock) has
                    // committed; behind SQLite's single writer there is nothing to wait for.
                    if !$for_update.is_empty() && locked != Some(holder.as_str()) {
                        sqlx::query(&format!("SELECT holder FROM accounts WHERE holder = $1{}", $for_update))
                            .bind(&holder)
                            .fetch_optional(&mut **tx)
                            .await?;
                    }
                    sqlx::query(&format!(
                        "UPDATE accounts SET {column} = {column} + $1 \
                         WHERE holder = $2 AND {column} + $1 >= 0 AND {column} + $1 >= \
                         (SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM holds \
                          WHERE holder = $2 AND state = 'HELD' AND expire_ms > $3 AND movement_id <> $4)"
                    ))
                    .bind(amount_fen)
                    .bind(&holder)
                    .bind(movement.create_time.timestamp_millis())
                    .bind(&movement.movement_id)
                    .execute(&mut **tx)
                    .await?
                } else {
                    // Never past the largest balance: every balance stays readable.
                    sqlx::query(&format!(
                        "UPDATE accounts SET {column} = {column} + $1 WHERE holder = $2 AND {column} + $1 <= $3"
                    ))
                    .bind(amount_fen)
                    .bind(&holder)
                    .bind(gongji_shared::domain::money::MAX_BALANCE_FEN)
                    .execute(&mut **tx)
                    .await?
                };
                if updated.rows_affected() != 1 {
                    let conflict = if amount_fen < 0 {
                        $crate::store::Conflict::InsufficientBalance
                    } else {
                        $crate::store::Conflict::BalanceLimit
                    };
                    return Err($crate::store::StoreError::Conflict(conflict));
                }
            }
            Ok(())
        }
    };
}
