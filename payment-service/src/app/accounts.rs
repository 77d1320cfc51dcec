//! Accounts: opening, crediting, reading, listing entries, closing a year (P3).

use chrono::Datelike;
use gongji_shared::{
    IdNumber, Money, RegionCode, command::Command, db::reseal::ResealStep, policy::Bucket,
};

use super::{AccountRole, App, AppError, Registry, new_id};
use crate::{
    domain::{Account, AccountEntry, Movement, MovementKind, close_year, credit},
    store::{Accounts, Conflict, StoreError},
};

/// An account with the buckets its holder's family may use today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub account: Account,
    pub usable_buckets: Vec<Bucket>,
}

/// A credit: the account after it, and its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credited {
    pub account: AccountView,
    pub entry: AccountEntry,
}

/// A year closing: the account after it, and what moved into prior-years (fen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearClosed {
    pub account: AccountView,
    pub moved_fen: i64,
}

/// One page of a year's closing for every account: how each account fared, what moved
/// (fen), and the position the next page starts after (none after the last account).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearBatch {
    pub seen: u32,
    pub closed: u32,
    pub nothing_to_move: u32,
    pub opened_after: u32,
    pub retry_later: u32,
    pub moved_fen: i64,
    pub next: Option<i64>,
}

impl<S: gongji_shared::db::reseal::Reseal<Conflict = crate::store::Conflict>, R> App<S, R> {
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

impl<S: Accounts, R: Registry> App<S, R> {
    /// Closes `year` for the next `page_size` accounts after position `after`, each as
    /// [`App::close_year`] does under the command `part(position)` gives it (so that an
    /// account closed by an earlier run answers as closed, and nothing moves twice), then
    /// records the page's answer under `command`. The work is bounded by the page.
    pub async fn close_year_for_all(
        &self,
        year: i32,
        after: i64,
        page_size: u32,
        part: impl Fn(i64) -> Command<YearClosed>,
        command: Command<YearBatch>,
    ) -> Result<YearBatch, AppError> {
        let today = self.clock.today();
        if year >= today.year() {
            return Err(AppError::YearNotEnded { year, today });
        }
        // One more than a page tells whether another follows.
        let mut holders = self.store.account_holders(after, page_size + 1).await?;
        let more = holders.len() > page_size as usize;
        holders.truncate(page_size as usize);
        let mut batch = YearBatch {
            next: holders.last().map(|(no, _)| *no).filter(|_| more),
            ..YearBatch::default()
        };
        for (no, holder) in holders {
            batch.seen += 1;
            match self.close_year(holder, year, part(no)).await {
                Ok(closed) if closed.moved_fen > 0 => {
                    batch.closed += 1;
                    batch.moved_fen += closed.moved_fen;
                }
                Ok(_) => batch.nothing_to_move += 1,
                Err(AppError::YearBeforeAccount { .. }) => batch.opened_after += 1,
                Err(AppError::BalanceChanged) => batch.retry_later += 1,
                Err(e) => return Err(e),
            }
        }
        self.store
            .record_answer(
                command.idempotency(),
                &command.response(&batch),
                self.clock.now(),
            )
            .await?;
        tracing::info!(
            year,
            seen = batch.seen,
            closed = batch.closed,
            moved_fen = batch.moved_fen,
            "a page of the year's closing done"
        );
        Ok(batch)
    }

    /// Opens the holder's account, in the region of their employee enrollment.
    pub async fn open_account(
        &self,
        holder: IdNumber,
        region: RegionCode,
        command: Command<AccountView>,
    ) -> Result<AccountView, AppError> {
        self.check_employee_insured(&holder, &region).await?;
        let account = Account {
            holder,
            region,
            current_year: Money::ZERO,
            prior_years: Money::ZERO,
            open_time: self.clock.now(),
        };
        let view = self.view(account);
        let response = command.response(&view);
        self.store
            .open_account(&view.account, command.idempotency(), &response)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::AccountExists) => AppError::AccountExists {
                    holder: view.account.holder.clone(),
                },
                e => e.into(),
            })?;
        tracing::info!(holder = %view.account.holder, region = %view.account.region, "account opened");
        Ok(view)
    }

    /// Credits one bucket from the contribution fund of the holder's region.
    pub async fn credit_account(
        &self,
        holder: IdNumber,
        amount: Money,
        bucket: Bucket,
        memo: String,
        command: Command<Credited>,
    ) -> Result<Credited, AppError> {
        let account = self.existing(&holder, AccountRole::Holder).await?;
        let (now, today) = self.now();
        let base = Movement {
            movement_id: new_id(),
            kind: MovementKind::Credit,
            request_id: command.request_id().to_owned(),
            create_time: now,
            business_date: today,
            purpose: None,
            destination: None,
            memo,
            postings: Vec::new(),
        };
        let movement = credit(&account, bucket, amount, base);
        let usable_buckets = self.usable_buckets(self.clock.today());
        let credited = self
            .store
            .post(
                &holder,
                &movement,
                &command,
                |after, entry_ids, business_date| Credited {
                    account: AccountView {
                        account: after.clone(),
                        usable_buckets,
                    },
                    entry: AccountEntry {
                        entry_id: entry_ids.first().copied().unwrap_or_default(),
                        movement_id: movement.movement_id.clone(),
                        kind: MovementKind::Credit,
                        bucket,
                        amount_fen: amount.fen(),
                        request_id: movement.request_id.clone(),
                        create_time: now,
                        business_date,
                        memo: movement.memo.clone(),
                        caller: command.idempotency().scope.clone(),
                        // A credit is the holder's own.
                        family: None,
                    },
                },
            )
            .await?;
        tracing::debug!(holder = %holder, %amount, bucket = bucket.as_str(), "account credited");
        Ok(credited)
    }

    /// One account.
    pub async fn account(&self, holder: &IdNumber) -> Result<AccountView, AppError> {
        let account = self.existing(holder, AccountRole::Holder).await?;
        Ok(self.view(account))
    }

    /// Up to `limit` of the holder's entries, newest first, older than `before` if given.
    pub async fn account_entries(
        &self,
        holder: &IdNumber,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccountEntry>, AppError> {
        self.existing(holder, AccountRole::Holder).await?;
        Ok(self.store.entries(holder, before, limit).await?)
    }

    /// Moves the current-year balance into prior-years once the year has ended. A year
    /// closed before moves nothing more.
    pub async fn close_year(
        &self,
        holder: IdNumber,
        year: i32,
        command: Command<YearClosed>,
    ) -> Result<YearClosed, AppError> {
        let today = self.clock.today();
        if year >= today.year() {
            return Err(AppError::YearNotEnded { year, today });
        }
        let account = self.existing(&holder, AccountRole::Holder).await?;
        let opened = gongji_shared::domain::clock::shanghai_date(account.open_time).year();
        if year < opened {
            return Err(AppError::YearBeforeAccount { year, opened });
        }
        let now = self.clock.now();
        let base = Movement {
            movement_id: new_id(),
            kind: MovementKind::CloseYear,
            request_id: command.request_id().to_owned(),
            create_time: now,
            business_date: gongji_shared::domain::clock::shanghai_date(now),
            purpose: None,
            destination: None,
            memo: String::new(),
            postings: Vec::new(),
        };
        let usable_buckets = self.usable_buckets(today);
        let plan = |account: &Account, history| close_year(account, history, base);
        let closed = self
            .store
            .close_year(&holder, year, now, plan, &command, |after, moved_fen| {
                YearClosed {
                    account: AccountView {
                        account: after.clone(),
                        usable_buckets,
                    },
                    moved_fen,
                }
            })
            .await;
        let closed = match closed {
            Ok(closed) => closed,
            // Closed before (under another request ID): nothing more moves.
            Err(StoreError::Conflict(Conflict::YearClosed)) => {
                let account = self.existing(&holder, AccountRole::Holder).await?;
                return Ok(YearClosed {
                    account: self.view(account),
                    moved_fen: 0,
                });
            }
            // A family payment in flight holds part of the current-year balance (P1's fence).
            Err(StoreError::Conflict(Conflict::InsufficientBalance)) => {
                return Err(AppError::BalanceChanged);
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(holder = %holder, year, moved_fen = closed.moved_fen, "year closed");
        Ok(closed)
    }

    /// A personal account belongs to an employee-insured person, in the region of that
    /// enrollment: the registry says so, or no account is opened.
    async fn check_employee_insured(
        &self,
        holder: &IdNumber,
        region: &RegionCode,
    ) -> Result<(), AppError> {
        let Some(person) = self.registry.person(holder).await? else {
            return Err(AppError::HolderNotInRegistry {
                holder: holder.clone(),
            });
        };
        match person.live_employee() {
            None => Err(AppError::HolderNotEmployeeInsured {
                holder: holder.clone(),
            }),
            Some(e) if &e.region != region => Err(AppError::RegionMismatch {
                region: region.clone(),
                registry_region: e.region.clone(),
            }),
            Some(_) => Ok(()),
        }
    }
}

impl<S: Accounts, R> App<S, R> {
    /// The account of `holder`, or ACCOUNT_NOT_FOUND naming their role.
    pub(super) async fn existing(
        &self,
        holder: &IdNumber,
        role: AccountRole,
    ) -> Result<Account, AppError> {
        self.store
            .account(holder)
            .await?
            .ok_or_else(|| AppError::AccountNotFound {
                holder: holder.clone(),
                role,
            })
    }

    /// The account as its holder sees it today.
    fn view(&self, account: Account) -> AccountView {
        AccountView {
            account,
            usable_buckets: self.usable_buckets(self.clock.today()),
        }
    }
}

#[cfg(test)]
mod tests {
    use gongji_shared::command::Idempotency;

    use super::*;
    use crate::{
        app::fakes::{CHILD, PAYER, app, id, ma_anshan},
        domain::authorization::{Enrollment, InsuredPerson},
    };

    fn command<T>(request_id: &str) -> Command<T> {
        Command::new(
            Idempotency::new(request_id, "Op", request_id.as_bytes()),
            |_: &T| Vec::new(),
        )
    }

    fn employee(region: &str, terminated: bool) -> InsuredPerson {
        InsuredPerson {
            name: None,
            employee: Some(Enrollment {
                region: RegionCode::parse(region).unwrap(),
                terminated,
            }),
            resident: None,
            paid_years: Vec::new(),
        }
    }

    #[tokio::test]
    async fn an_account_opens_only_in_the_registry_s_employee_region() {
        let (app, store, registry) = app();
        let child = id(CHILD);
        let refused = app
            .open_account(child.clone(), ma_anshan(), command("o-1"))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, AppError::HolderNotInRegistry { .. }),
            "{refused:?}"
        );
        registry
            .state()
            .people
            .insert(child.clone(), employee("340500", true));
        let refused = app
            .open_account(child.clone(), ma_anshan(), command("o-2"))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, AppError::HolderNotEmployeeInsured { .. }),
            "{refused:?}"
        );
        registry
            .state()
            .people
            .insert(child.clone(), employee("340100", false));
        let refused = app
            .open_account(child.clone(), ma_anshan(), command("o-3"))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, AppError::RegionMismatch { .. }),
            "{refused:?}"
        );
        assert!(!store.state().accounts.contains_key(&child));
        registry
            .state()
            .people
            .insert(child.clone(), employee("340500", false));
        let opened = app
            .open_account(child.clone(), ma_anshan(), command("o-4"))
            .await
            .unwrap();
        assert_eq!(opened.account.prior_years, Money::ZERO);
        assert!(store.state().accounts.contains_key(&child));
    }

    #[tokio::test]
    async fn a_year_batch_leaves_an_account_with_a_payment_in_flight_for_a_later_run() {
        use crate::{domain::fence::Hold, store::Holds};
        let (app, store, registry) = app();
        let payer = id(PAYER);
        // 80.00 credited in 2024; the batch runs in January 2025.
        app.credit_account(
            payer.clone(),
            Money::parse("80.00").unwrap(),
            Bucket::CurrentYear,
            "test".to_owned(),
            command("c-1"),
        )
        .await
        .unwrap();
        let app = App::new(
            store.clone(),
            registry.clone(),
            std::sync::Arc::new(gongji_shared::Policy::load_or_default(None).unwrap()),
            gongji_shared::Clock::parse("2025-01-10T10:00:00+08:00").unwrap(),
        );
        // A family payment in flight holds 30.00 of current-year.
        let now = app.clock.now();
        let hold = Hold::new(
            "m-in-flight",
            &payer,
            &[crate::domain::split::Draw {
                bucket: Bucket::CurrentYear,
                amount: Money::parse("30.00").unwrap(),
            }],
            gongji_shared::policy::Purpose::Premium,
            "pay-1",
            now,
            60_000,
        );
        store.place_hold(&hold).await.unwrap();
        let part = |no: i64| command(&format!("part-{no}"));
        let left = app
            .close_year_for_all(2024, 0, 10, part, command("batch-1"))
            .await
            .unwrap();
        assert_eq!(
            (
                left.seen,
                left.closed,
                left.retry_later,
                left.moved_fen,
                left.next
            ),
            (1, 0, 1, 0, None)
        );
        assert_eq!(
            store.state().accounts[&payer].current_year.to_string(),
            "80.00"
        );
        // Once the payment is gone, another run closes it.
        store.void_hold("m-in-flight", now).await.unwrap();
        let done = app
            .close_year_for_all(
                2024,
                0,
                10,
                |no| command(&format!("part2-{no}")),
                command("batch-2"),
            )
            .await
            .unwrap();
        assert_eq!(
            (done.closed, done.retry_later, done.moved_fen),
            (1, 0, 8_000)
        );
        let ended = app
            .close_year_for_all(2025, 0, 10, part, command("batch-3"))
            .await
            .unwrap_err();
        assert!(matches!(ended, AppError::YearNotEnded { .. }), "{ended:?}");
    }

    #[tokio::test]
    async fn a_year_moves_what_it_had_at_its_end_once() {
        let (app, store, _) = app();
        let payer = id(PAYER);
        // 50.00 credited in 2023 (recorded as it would have been then), 30.00 today.
        let at = chrono::DateTime::parse_from_rfc3339("2023-06-01T10:00:00+08:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let account = store.state().accounts[&payer].clone();
        let mut earlier = credit(
            &account,
            Bucket::CurrentYear,
            Money::parse("50.00").unwrap(),
            Movement {
                movement_id: "m-2023".to_owned(),
                kind: MovementKind::Credit,
                request_id: "c-2023".to_owned(),
                create_time: at,
                business_date: "2023-06-01".parse().unwrap(),
                purpose: None,
                destination: None,
                memo: String::new(),
                postings: Vec::new(),
            },
        );
        earlier.postings.retain(|p| p.amount_fen > 0);
        {
            let mut state = store.state();
            state.accounts.get_mut(&payer).unwrap().current_year = Money::parse("50.00").unwrap();
            state.movements.push(earlier);
        }
        app.credit_account(
            payer.clone(),
            Money::parse("30.00").unwrap(),
            Bucket::CurrentYear,
            "test".to_owned(),
            command("c-1"),
        )
        .await
        .unwrap();
        let first = app
            .close_year(payer.clone(), 2023, command("y-1"))
            .await
            .unwrap();
        assert_eq!(first.moved_fen, 5_000, "2023's money, not today's");
        let again = app
            .close_year(payer.clone(), 2023, command("y-2"))
            .await
            .unwrap();
        assert_eq!(again.moved_fen, 0);
        let state = store.state().accounts[&payer].clone();
        assert_eq!(
            (
                state.current_year.to_string(),
                state.prior_years.to_string()
            ),
            ("30.00".to_owned(), "1250.00".to_owned())
        );
        let before = app
            .close_year(payer.clone(), 2019, command("y-0"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                before,
                AppError::YearBeforeAccount {
                    year: 2019,
                    opened: 2020
                }
            ),
            "{before:?}"
        );
        let not_ended = app
            .close_year(payer, 2024, command("y-3"))
            .await
            .unwrap_err();
        assert!(
            matches!(not_ended, AppError::YearNotEnded { year: 2024, .. }),
            "{not_ended:?}"
        );
    }
}
