//! The authorization fence (P1), payment-service's half: hold, ask, then post or void; and
//! the reconciliation of a binding's family debits with the uses binding-service recorded.

use std::collections::{BTreeMap, BTreeSet};

use gongji_shared::{IdNumber, Money};

use super::{App, AppError, Registry, UseRequest};
use crate::{
    domain::{
        authorization::Authorization,
        fence::{
            self, FamilyDebit, Hold, HoldState, LimitCap, Posting, Reconciliation, RecordedUse,
        },
    },
    store::{Conflict, Holds, StoreError},
};

/// How long a hold reserves its amount unless posted or voided: longer than one call to
/// binding-service (2 s) and one write, short enough that a crash between the steps
/// frees the money soon.
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 30_000;
/// Most uses, and most family debits, one reconciliation compares: its work is bounded.
pub const MAX_RECONCILED_USES: usize = 10_000;

/// The limits of an answer as a cap counted from `today`; `None` when none apply.
pub(super) fn cap_of(authorization: &Authorization, today: chrono::NaiveDate) -> Option<LimitCap> {
    (!authorization.limits.is_empty() && !authorization.binding_id.is_empty()).then(|| LimitCap {
        binding_id: authorization.binding_id.clone(),
        limits: authorization.limits.clone(),
        today,
    })
}

impl<S: Holds, R: Registry> App<S, R> {
    /// Reserves the hold, then has binding-service authorize the debit and record its use.
    /// On a denial or any failure the hold is voided and nothing is debited; on a yes the
    /// hold waits for the payment's write to post it.
    pub(super) async fn hold_and_authorize(
        &self,
        hold: &Hold,
        beneficiary: &IdNumber,
    ) -> Result<Authorization, AppError> {
        let expired = self.store.place_hold(hold).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::InsufficientBalance) => AppError::BalanceChanged,
            StoreError::Conflict(Conflict::FamilyLimit) => AppError::FamilyLimitRaced,
            e => e.into(),
        })?;
        if let Some(metrics) = &self.metrics {
            metrics.gauge("gongji_holds_open", &[]).increment(1.0);
            metrics
                .counter("gongji_holds_expired_total", &[])
                .increment(expired);
        }
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
        // The hold was checked against the limits binding-service gave before it; if they
        // changed since (the authorizer set new ones), the debit would keep within old ones.
        let checked = hold.cap.as_ref().map(|c| (&c.binding_id, &c.limits));
        let now_in_force = (!authorization.limits.is_empty())
            .then_some((&authorization.binding_id, &authorization.limits));
        if checked != now_in_force {
            self.release(&hold.movement_id).await;
            tracing::info!(
                holder = %hold.holder,
                movement_id = %hold.movement_id,
                "family debit refused: the binding's limits changed meanwhile"
            );
            return Err(AppError::AuthorizationChanged);
        }
        Ok(authorization)
    }

    /// The limits binding-service says a family debit of `holder`'s account for `beneficiary`
    /// keeps within, counted from today; `None` when none apply.
    pub(super) async fn limit_cap(
        &self,
        holder: &IdNumber,
        beneficiary: &IdNumber,
        purpose: gongji_shared::policy::Purpose,
    ) -> Result<Option<LimitCap>, AppError> {
        let authorization = self
            .registry
            .authorize(holder, beneficiary, purpose)
            .await?;
        Ok(cap_of(&authorization, self.clock.today()))
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
        // Placed by this instance, and now closed or left to expire: no longer open here.
        if let Some(metrics) = &self.metrics {
            metrics.gauge("gongji_holds_open", &[]).decrement(1.0);
        }
        if let Err(error) = self.store.void_hold(movement_id, self.clock.now()).await {
            tracing::warn!(%movement_id, %error, "hold not voided; it will expire");
        }
    }

    /// Counts a family debit whose hold was just posted: `amount` from the authorizer's
    /// account for `purpose`.
    pub(super) fn count_family_debit(
        &self,
        purpose: gongji_shared::policy::Purpose,
        amount: Money,
    ) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let purpose = [("purpose", purpose.as_str())];
        metrics.gauge("gongji_holds_open", &[]).decrement(1.0);
        metrics
            .counter("gongji_family_debits_total", &purpose)
            .increment(1);
        metrics
            .counter("gongji_family_debit_fen_total", &purpose)
            .increment(u64::try_from(amount.fen()).unwrap_or(0));
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
            let Some((page, next)) = self.registry.binding_uses(binding_id, &token).await? else {
                // Unknown to binding-service: any debit that relied on it has no use.
                if debits.is_empty() {
                    return Err(AppError::BindingNotFound {
                        binding_id: binding_id.to_owned(),
                    });
                }
                break;
            };
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

/// The fence over the real stores, SQLite and PostgreSQL: holds reserve money against
/// other debits until they expire, an expired hold is voided, and a hold that is gone is
/// never posted. binding-service is the fake.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gongji_shared::{
        Clock, Money,
        command::{Command, Idempotency},
        policy::{Bucket, Purpose},
    };

    use super::*;
    use crate::{
        app::{
            MedicalOrder, PaymentOrder, PremiumOrder,
            fakes::{CHILD, FakeRegistry, PAYER, account, authorized, id},
        },
        domain::{
            Movement, MovementKind, ledger,
            medical::{InstitutionKind, MedicalPayment},
            payment::PremiumPayment,
            split::Draw,
        },
        store::{PgStore, SqliteStore, Store},
    };

    const T0: &str = "2024-11-15T10:00:00+08:00";

    fn clock(at: &str) -> Clock {
        Clock::parse(at).unwrap()
    }

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    /// The payer's account with 1200.00 of prior years, in a migrated store.
    async fn funded<S: Store>(store: &S) {
        store.migrate().await.unwrap();
        let empty = account(PAYER, "0.00");
        store
            .open_account(&empty, &Idempotency::new("open", "OpenAccount", b"o"), b"")
            .await
            .unwrap();
        let base = Movement {
            movement_id: "credit".to_owned(),
            kind: MovementKind::Credit,
            request_id: "credit".to_owned(),
            create_time: clock(T0).now(),
            business_date: clock(T0).today(),
            purpose: None,
            destination: None,
            memo: String::new(),
            postings: Vec::new(),
        };
        let movement = ledger::credit(&empty, Bucket::PriorYears, money("1200.00"), base);
        let command = Command::new(Idempotency::new("credit", "Credit", b"c"), |_: &()| {
            Vec::new()
        });
        store
            .post(&id(PAYER), &movement, &command, |_, _, _| ())
            .await
            .unwrap();
        // The hospital the tests pay at is designated (M1).
        let hospital = crate::app::fakes::hospital();
        let batch = crate::domain::institution::InstitutionBatch::parse(vec![hospital]).unwrap();
        store
            .upsert_institutions(
                &batch,
                clock(T0).now(),
                &Idempotency::new("designate", "BatchUpsertDesignatedInstitutions", b"d"),
                b"",
            )
            .await
            .unwrap();
    }

    fn app_at<S: Store>(store: &S, registry: &FakeRegistry, at: &str) -> App<S, FakeRegistry> {
        let policy = Arc::new(gongji_shared::Policy::load_or_default(None).unwrap());
        App::new(store.clone(), registry.clone(), policy, clock(at))
    }

    fn premium(request_id: &str) -> (PaymentOrder, Command<PremiumPayment>) {
        let order = PaymentOrder {
            order: PremiumOrder {
                payer: id(PAYER),
                beneficiary: id(CHILD),
                year: gongji_shared::CoverageYear::parse(2025).unwrap(),
                back_payment: false,
            },
            expected: money("400.00"),
            other_means: None,
        };
        let command = Command::new(
            Idempotency::new(request_id, "PayPremium", request_id.as_bytes()),
            |p: &PremiumPayment| p.payment_id.clone().into_bytes(),
        );
        (order, command)
    }

    async fn prior_years<S: Store>(store: &S) -> String {
        let account = store.account(&id(PAYER)).await.unwrap().unwrap();
        account.prior_years.to_string()
    }

    async fn a_hold_reserves_until_it_expires_then_is_voided<S: Store>(store: S) {
        funded(&store).await;
        let registry = FakeRegistry::default();
        registry.state().authorization = Some(authorized());
        // A payment that crashed after its hold: 1000.00 reserved for 30 s.
        let draws = [Draw {
            bucket: Bucket::PriorYears,
            amount: money("1000.00"),
        }];
        let crashed = Hold::new(
            "m-crashed",
            &id(PAYER),
            &draws,
            Purpose::MedicalExpense,
            "r-crashed",
            clock(T0).now(),
            30_000,
        );
        store.place_hold(&crashed).await.unwrap();

        let (order, command) = premium("r-1");
        let during = app_at(&store, &registry, "2024-11-15T10:00:10+08:00");
        let error = during.pay_premium(order, command).await.unwrap_err();
        assert!(matches!(error, AppError::BalanceChanged), "{error:?}");
        assert_eq!(prior_years(&store).await, "1200.00");
        assert!(registry.state().uses.is_empty(), "refused before asking");
        // A debit of her own, with no hold of its own, leaves the hold untouched too.
        let own = MedicalOrder {
            beneficiary: id(PAYER),
            family_holder: None,
            institution_code: "H340500001".to_owned(),
            institution_kind: InstitutionKind::Hospital,
            amount: money("300.00"),
        };
        let command = Command::new(
            Idempotency::new("m-own", "PayMedicalExpense", b"m"),
            |p: &MedicalPayment| p.payment_id.clone().into_bytes(),
        );
        let error = during.pay_medical_expense(own, command).await.unwrap_err();
        assert!(matches!(error, AppError::BalanceChanged), "{error:?}");
        assert_eq!(prior_years(&store).await, "1200.00");

        let (order, command) = premium("r-2");
        let after = app_at(&store, &registry, "2024-11-15T10:00:31+08:00");
        let paid = after.pay_premium(order, command).await.unwrap();
        assert_eq!(prior_years(&store).await, "800.00");
        let ids = ["m-crashed".to_owned(), paid.movement_id.clone()];
        let states = store.hold_states(&ids, clock(T0).now()).await.unwrap();
        assert_eq!(
            states,
            [
                ("m-crashed".to_owned(), HoldState::Gone),
                (paid.movement_id.clone(), HoldState::Posted)
            ],
            "voided although it would be live at T0; the payment's own is posted"
        );
        let report = after.reconcile_binding_uses("binding-1").await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    }

    /// Nothing is debited on a hold voided (or expired) before the write, although
    /// binding-service said yes and recorded the use: the use without a debit is reported.
    async fn a_hold_gone_before_the_write_is_never_posted<S: Store>(store: S) {
        funded(&store).await;
        let registry = FakeRegistry::default();
        registry.state().authorization = Some(authorized());
        let voider = store.clone();
        registry.state().on_use = Some(Arc::new(move |request: &UseRequest| {
            let (store, movement_id) = (voider.clone(), request.movement_id.clone());
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    assert!(
                        store
                            .void_hold(&movement_id, clock(T0).now())
                            .await
                            .unwrap()
                    );
                })
            });
        }));
        let app = app_at(&store, &registry, T0);
        let (order, command) = premium("r-1");
        let error = app.pay_premium(order, command).await.unwrap_err();
        assert!(matches!(error, AppError::AuthorizationExpired), "{error:?}");
        assert_eq!(prior_years(&store).await, "1200.00");
        assert_eq!(app.saved_response("", "r-1").await.unwrap(), None);
        let lost = registry.state().uses[0].movement_id.clone();
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        assert_eq!(report.uses_without_debit, [lost]);
        assert!(report.debits_without_use.is_empty());
    }

    thread_local! {
        /// sqlx's statements run on this thread so far (a COMMIT aside; a BEGIN is not one).
        static STATEMENTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Counts sqlx's statement events (target `sqlx::query`, one per statement run) in
    /// [`STATEMENTS`] of the thread that ran them. Installed as the global subscriber of
    /// this test binary: a subscriber set on one thread only can miss events, as another
    /// test's thread may cache a callsite's interest meanwhile.
    struct StatementCounter;

    /// The statement an event summarizes.
    #[derive(Default)]
    struct Summary(String);

    impl tracing::field::Visit for Summary {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "summary" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() != "sqlx::query" {
                return;
            }
            let mut summary = Summary::default();
            event.record(&mut summary);
            if !summary.0.contains("COMMIT") {
                STATEMENTS.with(|n| n.set(n.get() + 1));
            }
        }
    }

    /// The statements `work` runs on this thread (a current-thread runtime's).
    async fn statements_of<T>(work: impl std::future::Future<Output = T>) -> (T, usize) {
        use tracing_subscriber::layer::SubscriberExt as _;
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(StatementCounter);
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only global subscriber of these tests");
        });
        let before = STATEMENTS.with(std::cell::Cell::get);
        let out = work.await;
        (out, STATEMENTS.with(std::cell::Cell::get) - before)
    }

    /// A premium paid from one bucket of an account, with binding-service faked, in
    /// PostgreSQL statements: the price's facts; the hold (its account and holds in one read,
    /// the lock having come with BEGIN, then its row); the write (one batch, then the
    /// balance). Each statement is a round trip, and round trips are what a payment costs.
    #[tokio::test]
    async fn postgres_a_premium_from_one_bucket_is_five_statements() {
        let Some((store, names)) = postgres().await else {
            return;
        };
        funded(&store).await;
        let registry = FakeRegistry::default();
        registry.state().authorization = Some(authorized());
        let app = app_at(&store, &registry, T0);
        let (order, command) = premium("r-1");
        let (paid, statements) = statements_of(app.pay_premium(order, command)).await;
        let paid = paid.unwrap();
        assert_eq!(paid.split.draws.len(), 1, "one bucket");
        assert_eq!(prior_years(&store).await, "800.00");
        assert_eq!(statements, 5);
        // Its calls to the store ran one after another on one connection, kept for the next
        // call instead of tested on its way back to the pool.
        assert_eq!(store.kept_connections(), 1);
        // It counts as idle, not in use.
        assert_eq!(
            gongji_shared::db::Database::pool_connections(&store).in_use,
            0
        );
        gongji_shared::testing::drop_databases(&names).await;
    }

    async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("payment.db").display());
        (
            SqliteStore::connect(&url, gongji_shared::vault::Vault::generate())
                .await
                .unwrap(),
            dir,
        )
    }

    /// A fresh PostgreSQL store and its database's name, or `None` when skipped.
    async fn postgres() -> Option<(PgStore, Vec<String>)> {
        let names = gongji_shared::testing::create_databases(&["payment_unit"]).await?;
        let url =
            gongji_shared::testing::database_url(&gongji_shared::testing::admin_url(), &names[0]);
        Some((
            PgStore::connect(&url, 5, gongji_shared::vault::Vault::generate())
                .await
                .unwrap(),
            names,
        ))
    }

    #[tokio::test]
    async fn a_binding_unknown_on_both_sides_is_not_found_and_on_one_side_reported() {
        let (store, _dir) = sqlite().await;
        funded(&store).await;
        let registry = FakeRegistry::default();
        registry.state().authorization = Some(authorized());
        let app = app_at(&store, &registry, T0);
        let error = app.reconcile_binding_uses("binding-x").await.unwrap_err();
        assert!(
            matches!(error, AppError::BindingNotFound { .. }),
            "{error:?}"
        );
        let (order, command) = premium("r-1");
        let paid = app.pay_premium(order, command).await.unwrap();
        // binding-service forgets the binding: the debit that relied on it has no use.
        registry.state().authorization.as_mut().unwrap().binding_id = "binding-2".to_owned();
        let report = app.reconcile_binding_uses("binding-1").await.unwrap();
        assert_eq!(report.debits_without_use, [paid.movement_id]);
    }

    #[tokio::test]
    async fn sqlite_a_hold_reserves_until_it_expires_then_is_voided() {
        let (store, _dir) = sqlite().await;
        a_hold_reserves_until_it_expires_then_is_voided(store).await;
    }

    #[tokio::test]
    async fn postgres_a_hold_reserves_until_it_expires_then_is_voided() {
        let Some((store, names)) = postgres().await else {
            return;
        };
        a_hold_reserves_until_it_expires_then_is_voided(store).await;
        gongji_shared::testing::drop_databases(&names).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_hold_gone_before_the_write_is_never_posted() {
        let (store, _dir) = sqlite().await;
        a_hold_gone_before_the_write_is_never_posted(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_hold_gone_before_the_write_is_never_posted() {
        let Some((store, names)) = postgres().await else {
            return;
        };
        a_hold_gone_before_the_write_is_never_posted(store).await;
        gongji_shared::testing::drop_databases(&names).await;
    }
}
