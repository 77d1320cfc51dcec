//! Family features (issue 12), over real gRPC with both services.

use std::time::Duration;

use gongji_proto::binding::v1::EnrollmentStatus;
use gongji_proto::payment::v1::{
    AccountEntry, AccountEvent, AccountStatement, Bucket, CloseYearRequest, CreditAccountRequest,
    EntryKind, FamilyUseKind, GetAccountStatementRequest, ListAccountEntriesRequest,
    ListFamilyUsageRequest, ListFamilyUsageResponse, ListUnpaidPremiumsRequest, PremiumPayment,
    RefundPremiumPaymentRequest, UnpaidPremium, UsagePurpose, WatchAccountEventsRequest,
    WatchAccountEventsResponse,
};
use gongji_shared::{Clock, rpc::peer::PeerInterceptor};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    both_backends,
    fixtures::{self, CHILD, CHILD_NAME, EMPLOYEE, EMPLOYEE_NAME, SPOUSE_NAME, fen},
    payment::{medical, pay},
    support::{Backend, Clients, IN_WINDOW, TestEnv, acting_for, assert_error, clients_with},
};

const P: &str = "payment.gongji";

both_backends!(
    account_entries_say_whom_a_family_debit_was_for,
    family_usage_lists_each_side_with_every_filter,
    family_usage_refuses_what_it_cannot_list,
    account_events_stream_in_commit_order_and_resume_across_a_restart,
    a_statement_reconciles_after_every_kind_of_movement,
    reminders_list_unpaid_family_premiums_until_paid_here_or_elsewhere,
    a_quote_shows_continuity_and_what_a_gap_would_cost
);

/// The employee pays the child's 2025 premium from her account.
async fn pay_for_child(c: &mut Clients, request_id: &str) -> PremiumPayment {
    c.premiums
        .pay_premium(pay(request_id, EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment")
}

/// A finance operator refunds a premium payment.
async fn refund(c: &mut Clients, request_id: &str, payment_id: String, reason: &str) {
    c.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: request_id.into(),
            payment_id,
            reason: reason.into(),
        })
        .await
        .expect("refund");
}

async fn entries(c: &mut Clients, holder: &str) -> Vec<AccountEntry> {
    c.accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: holder.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries
}

/// A premium paid for the child and refunded, and a medical expense of the spouse's paid
/// partly from the employee's account: each of her entries names the family member, the
/// binding and (for the medical expense) the institution; her credit and the spouse's own
/// part name nobody.
async fn account_entries_say_whom_a_family_debit_was_for(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let child_binding = fixtures::family(&mut c, "1000.00").await;
    let paid = pay_for_child(&mut c, "p").await;
    refund(&mut c, "refund", paid.payment_id, "enrollment cancelled").await;
    let (spouse, spouse_binding) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");

    let hers: Vec<(i32, String, String, String, String)> = entries(&mut c, EMPLOYEE)
        .await
        .into_iter()
        .map(|e| {
            (
                e.kind,
                e.amount,
                e.family_beneficiary_id_number,
                e.binding_id,
                e.institution_code,
            )
        })
        .collect();
    let child = |kind: EntryKind, amount: &str| {
        (
            kind as i32,
            amount.to_owned(),
            CHILD.to_owned(),
            child_binding.binding_id.clone(),
            String::new(),
        )
    };
    assert_eq!(
        hers,
        [
            (
                EntryKind::MedicalExpense as i32,
                "-70.00".to_owned(),
                spouse.clone(),
                spouse_binding.binding_id.clone(),
                "H340500001".to_owned(),
            ),
            child(EntryKind::Refund, "400.00"),
            child(EntryKind::Premium, "-400.00"),
            (
                EntryKind::Credit as i32,
                "1000.00".to_owned(),
                String::new(),
                String::new(),
                String::new()
            ),
        ],
        "newest first"
    );
    let his = entries(&mut c, &spouse).await;
    assert!(
        his.iter()
            .all(|e| e.family_beneficiary_id_number.is_empty() && e.binding_id.is_empty()),
        "his own part names nobody: {his:?}"
    );
    env.finish().await;
}

/// A usage listing of the authorizer (and optionally one beneficiary) over a range.
pub fn usage(
    authorizer: &str,
    beneficiary: &str,
    start: &str,
    end: &str,
) -> ListFamilyUsageRequest {
    ListFamilyUsageRequest {
        authorizer_id_number: authorizer.into(),
        beneficiary_id_number: beneficiary.into(),
        start_date: start.into(),
        end_date: end.into(),
        purpose: UsagePurpose::Unspecified as i32,
        page_size: 0,
        page_token: String::new(),
    }
}

pub async fn list(c: &mut Clients, request: ListFamilyUsageRequest) -> ListFamilyUsageResponse {
    c.accounts
        .list_family_usage(request)
        .await
        .expect("usage")
        .into_inner()
}

/// (kind, purpose, beneficiary, amount, business date) of each use, in order.
fn rows(r: &ListFamilyUsageResponse) -> Vec<(i32, i32, String, String, String)> {
    r.uses
        .iter()
        .map(|u| {
            (
                u.kind,
                u.purpose,
                u.beneficiary_id_number.clone(),
                u.amount.clone(),
                u.business_date.clone(),
            )
        })
        .collect()
}

/// (beneficiary, purpose, debited, refunded, net, count) of each total.
pub fn totals(r: &ListFamilyUsageResponse) -> Vec<(String, i32, String, String, String, i64)> {
    let mut t: Vec<_> = r
        .totals
        .iter()
        .map(|t| {
            (
                t.beneficiary_id_number.clone(),
                t.purpose,
                t.debited_amount.clone(),
                t.refunded_amount.clone(),
                t.net_amount.clone(),
                t.debit_count,
            )
        })
        .collect();
    t.sort();
    t
}

/// On 2024-11-15 the employee pays the child's 2025 premium, it is refunded, and she pays it
/// again; the spouse's 100.00 medical expense takes 70.00 from her account. On 2025-01-10 his
/// 80.00 expense is all hers. Each side lists what it may, with every filter; the totals match
/// her ledger's family entries; names are whole for a caller that sees names and masked for a
/// citizen channel.
async fn family_usage_lists_each_side_with_every_filter(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let first = pay_for_child(&mut c, "p1").await;
    refund(
        &mut c,
        "refund",
        first.payment_id.clone(),
        "paid twice by mistake",
    )
    .await;
    c.premiums
        .pay_premium(pay("p2", EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay again");
    let (spouse, _) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("a later day");
    c.medical
        .pay_medical_expense(medical("m2", &spouse, EMPLOYEE, "80.00"))
        .await
        .expect("medical later");

    let (debit, refund) = (FamilyUseKind::Debit as i32, FamilyUseKind::Refund as i32);
    let (premium, med) = (
        UsagePurpose::Premium as i32,
        UsagePurpose::MedicalExpense as i32,
    );
    let row = |kind, purpose, who: &str, amount: &str, day: &str| {
        (
            kind,
            purpose,
            who.to_owned(),
            amount.to_owned(),
            day.to_owned(),
        )
    };
    let all = vec![
        row(debit, med, &spouse, "80.00", "2025-01-10"),
        row(debit, med, &spouse, "70.00", "2024-11-15"),
        row(debit, premium, CHILD, "400.00", "2024-11-15"),
        row(refund, premium, CHILD, "400.00", "2024-11-15"),
        row(debit, premium, CHILD, "400.00", "2024-11-15"),
    ];
    // The default range is the 12 months up to today.
    let everything = list(&mut c, usage(EMPLOYEE, "", "", "")).await;
    assert_eq!(rows(&everything), all, "newest first");
    assert!(everything.next_page_token.is_empty());
    let expected_totals = vec![
        (
            CHILD.to_owned(),
            premium,
            "800.00".to_owned(),
            "400.00".to_owned(),
            "400.00".to_owned(),
            2,
        ),
        (
            spouse.clone(),
            med,
            "150.00".to_owned(),
            "0.00".to_owned(),
            "150.00".to_owned(),
            2,
        ),
    ];
    let mut expected_totals_sorted = expected_totals.clone();
    expected_totals_sorted.sort();
    assert_eq!(totals(&everything), expected_totals_sorted);
    let u = &everything.uses[0];
    assert_eq!(
        (
            u.authorizer_name.as_str(),
            u.beneficiary_name.as_str(),
            u.institution_code.as_str()
        ),
        (EMPLOYEE_NAME, SPOUSE_NAME, "H340500001")
    );
    assert_eq!(everything.uses[2].beneficiary_name, CHILD_NAME);
    assert!(everything.uses[2].institution_code.is_empty());

    // Checked against the ledger: per beneficiary, her family entries sum to minus the net.
    for (who, _, _, _, net, _) in &expected_totals {
        let ledger: i64 = entries(&mut c, EMPLOYEE)
            .await
            .iter()
            .filter(|e| &e.family_beneficiary_id_number == who)
            .map(|e| fen(&e.amount))
            .sum();
        assert_eq!(ledger, -fen(net), "{who}");
    }

    // A purpose.
    let mut only_medical = usage(EMPLOYEE, "", "2024-01-01", "2025-12-31");
    only_medical.purpose = med;
    let medical_uses = list(&mut c, only_medical).await;
    assert_eq!(rows(&medical_uses), all[..2].to_vec());
    assert_eq!(medical_uses.totals.len(), 1);
    // One beneficiary of hers.
    let child_uses = list(&mut c, usage(EMPLOYEE, CHILD, "2024-01-01", "2025-12-31")).await;
    assert_eq!(rows(&child_uses), all[2..].to_vec());
    // Date ranges: up to the year's end, from the new year, a 3-month filter.
    let earlier = list(&mut c, usage(EMPLOYEE, "", "2024-01-01", "2024-12-31")).await;
    assert_eq!(rows(&earlier), all[1..].to_vec());
    assert_eq!(
        totals(&earlier)
            .iter()
            .find(|t| t.0 == spouse)
            .map(|t| t.2.clone()),
        Some("70.00".to_owned()),
        "totals cover the range only"
    );
    let later = list(&mut c, usage(EMPLOYEE, "", "2025-01-01", "")).await;
    assert_eq!(rows(&later), all[..1].to_vec());
    let three_months = list(&mut c, usage(EMPLOYEE, "", "2024-10-11", "2025-01-10")).await;
    assert_eq!(rows(&three_months), all);
    let none = list(&mut c, usage(EMPLOYEE, "", "2025-01-11", "2025-03-31")).await;
    assert!(none.uses.is_empty() && none.totals.is_empty());

    // Pages of two: the same uses, each page with the whole range's totals.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let mut request = usage(EMPLOYEE, "", "", "");
        request.page_size = 2;
        request.page_token = token;
        let page = list(&mut c, request).await;
        assert!(page.uses.len() <= 2);
        assert_eq!(totals(&page), expected_totals_sorted);
        paged.extend(rows(&page));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, all);

    // The beneficiary's side: what was paid for him, by anyone, or by her.
    let his = list(&mut c, usage("", &spouse, "", "")).await;
    assert_eq!(rows(&his), all[..2].to_vec());
    let his_from_her = list(&mut c, usage(EMPLOYEE, &spouse, "", "")).await;
    assert_eq!(rows(&his_from_her), all[..2].to_vec());

    // A citizen channel acting for a person: each sees their own side, names masked.
    let token = env.identity.caller_token("gov-app", 600);
    let mut channel = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let hers = channel
        .accounts
        .list_family_usage(acting_for(EMPLOYEE, usage(EMPLOYEE, "", "", "")))
        .await
        .expect("she lists hers")
        .into_inner();
    assert_eq!(rows(&hers), all);
    assert_eq!(hers.uses[0].beneficiary_name, "赵*");
    assert_eq!(hers.totals.len(), 2);
    let his = channel
        .accounts
        .list_family_usage(acting_for(&spouse, usage("", &spouse, "", "")))
        .await
        .expect("he lists his")
        .into_inner();
    assert_eq!(rows(&his), all[..2].to_vec());
    assert_eq!(his.totals.len(), 1, "his own totals only");
    for (person, request) in [
        // He may not list her usage, nor what she paid for the child.
        (spouse.as_str(), usage(EMPLOYEE, "", "", "")),
        (spouse.as_str(), usage(EMPLOYEE, CHILD, "", "")),
        // She may not list what others paid for him.
        (EMPLOYEE, usage("", &spouse, "", "")),
    ] {
        assert_error(
            channel
                .accounts
                .list_family_usage(acting_for(person, request))
                .await,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            P,
        );
    }
    env.finish().await;
}

/// Every bad listing gets its own reason.
async fn family_usage_refuses_what_it_cannot_list(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let invalid = Code::InvalidArgument;
    let cases = [
        (usage("", "", "", ""), "PARTY_REQUIRED"),
        (usage("123", "", "", ""), "INVALID_ID_NUMBER"),
        (usage("", "340504198707200021", "", ""), "INVALID_ID_NUMBER"),
        (usage(EMPLOYEE, "", "2024-13-01", ""), "INVALID_DATE"),
        (usage(EMPLOYEE, "", "", "2024/11/15"), "INVALID_DATE"),
        (
            usage(EMPLOYEE, "", "2024-11-16", "2024-11-15"),
            "INVALID_DATE_RANGE",
        ),
        (
            usage(EMPLOYEE, "", "2020-01-01", "2024-11-15"),
            "INVALID_DATE_RANGE",
        ),
        (
            ListFamilyUsageRequest {
                purpose: 9,
                ..usage(EMPLOYEE, "", "", "")
            },
            "INVALID_PURPOSE",
        ),
        (
            ListFamilyUsageRequest {
                page_size: 101,
                ..usage(EMPLOYEE, "", "", "")
            },
            "INVALID_PAGE_SIZE",
        ),
        (
            ListFamilyUsageRequest {
                page_token: "x".into(),
                ..usage(EMPLOYEE, "", "", "")
            },
            "INVALID_PAGE_TOKEN",
        ),
    ];
    for (request, reason) in cases {
        assert_error(
            c.accounts.list_family_usage(request).await,
            invalid,
            reason,
            P,
        );
    }
    // Nobody's usage is empty, not an error.
    let empty = list(&mut c, usage(EMPLOYEE, "", "", "")).await;
    assert!(empty.uses.is_empty() && empty.totals.is_empty());
    env.finish().await;
}

type Events = tonic::Streaming<WatchAccountEventsResponse>;

async fn watch(c: &mut Clients, after: i64, holder: &str) -> Events {
    c.accounts
        .watch_account_events(WatchAccountEventsRequest {
            after_position: after,
            holder_id_number: holder.into(),
        })
        .await
        .expect("watch")
        .into_inner()
}

async fn next_event(stream: &mut Events) -> AccountEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("open stream")
        .expect("ok")
        .event
        .expect("event")
}

/// (holder, kind, net amount, purpose, family member of the entries) of an event.
fn event_of(e: &AccountEvent) -> (String, i32, String, i32, String) {
    (
        e.holder_id_number.clone(),
        e.kind,
        e.amount.clone(),
        e.purpose,
        e.entries
            .iter()
            .map(|x| x.family_beneficiary_id_number.clone())
            .find(|b| !b.is_empty())
            .unwrap_or_default(),
    )
}

async fn credit(c: &mut Clients, request_id: &str, holder: &str, amount: &str) {
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: request_id.into(),
            holder_id_number: holder.into(),
            amount: amount.into(),
            bucket: Bucket::CurrentYear as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
}

/// Every movement streams in the order it committed, one event per account it touched (a
/// medical expense's two share a position); a stream resumed after a position gets exactly
/// what came after, including a credit made just before payment-service restarted and a year
/// closing made after; a holder's stream holds their account only; a citizen channel streams
/// only the account of the person it acts for.
async fn account_events_stream_in_commit_order_and_resume_across_a_restart(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let paid = pay_for_child(&mut c, "p").await;
    let (spouse, _) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");
    credit(&mut c, "c-current", EMPLOYEE, "50.00").await;

    let (credit_kind, premium_kind, medical_kind, refund_kind, closing_kind) = (
        EntryKind::Credit as i32,
        EntryKind::Premium as i32,
        EntryKind::MedicalExpense as i32,
        EntryKind::Refund as i32,
        EntryKind::CloseYear as i32,
    );
    let (none, premium, med) = (
        UsagePurpose::Unspecified as i32,
        UsagePurpose::Premium as i32,
        UsagePurpose::MedicalExpense as i32,
    );
    let ev = |holder: &str, kind, amount: &str, purpose, family: &str| {
        (
            holder.to_owned(),
            kind,
            amount.to_owned(),
            purpose,
            family.to_owned(),
        )
    };
    let mut all = watch(&mut c, 0, "").await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(next_event(&mut all).await);
    }
    let positions: Vec<i64> = seen.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    assert_eq!(
        positions[3], positions[4],
        "one medical movement, two accounts"
    );
    assert_eq!(
        positions
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        5
    );
    let mut medical_events: Vec<_> = seen[3..5].iter().map(event_of).collect();
    medical_events.sort();
    let mut expected_medical = vec![
        ev(EMPLOYEE, medical_kind, "-70.00", med, &spouse),
        ev(&spouse, medical_kind, "-30.00", med, ""),
    ];
    expected_medical.sort();
    assert_eq!(
        [&seen[..3], &seen[5..]]
            .concat()
            .iter()
            .map(event_of)
            .collect::<Vec<_>>(),
        vec![
            ev(EMPLOYEE, credit_kind, "1000.00", none, ""),
            ev(EMPLOYEE, premium_kind, "-400.00", premium, CHILD),
            ev(&spouse, credit_kind, "30.00", none, ""),
            ev(EMPLOYEE, credit_kind, "50.00", none, ""),
        ],
        "in commit order"
    );
    assert_eq!(medical_events, expected_medical);
    assert!(
        !seen[1].entries[0].binding_id.is_empty(),
        "a family debit names its binding"
    );

    // A movement made while watching arrives too.
    refund(&mut c, "refund", paid.payment_id, "enrollment cancelled").await;
    let refunded = next_event(&mut all).await;
    assert_eq!(
        event_of(&refunded),
        ev(EMPLOYEE, refund_kind, "400.00", premium, CHILD)
    );
    assert!(refunded.position > positions[5]);

    // A credit, then payment-service restarts at once (a day later), perhaps before it numbered
    // the credit; the open stream ends; the year 2024 closes afterwards.
    credit(&mut c, "c-late", EMPLOYEE, "10.00").await;
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("restart");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = all.next().await {
            if item.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when its server stops");
    c.accounts
        .close_year(CloseYearRequest {
            request_id: "close-2024".into(),
            holder_id_number: EMPLOYEE.into(),
            year: 2024,
        })
        .await
        .expect("close 2024");
    // Resumed after the refund, for her account only: the credit and the closing, nothing else.
    let mut hers = watch(&mut c, refunded.position, EMPLOYEE).await;
    let late = next_event(&mut hers).await;
    assert_eq!(
        event_of(&late),
        ev(EMPLOYEE, credit_kind, "10.00", none, "")
    );
    let closing = next_event(&mut hers).await;
    assert_eq!(
        event_of(&closing),
        ev(EMPLOYEE, closing_kind, "0.00", none, "")
    );
    assert!(late.position > refunded.position && closing.position > late.position);
    let moved: Vec<(i32, String)> = closing
        .entries
        .iter()
        .map(|e| (e.bucket, e.amount.clone()))
        .collect();
    assert_eq!(
        moved,
        [
            (Bucket::CurrentYear as i32, "-60.00".to_owned()),
            (Bucket::PriorYears as i32, "60.00".to_owned())
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(600), hers.next())
            .await
            .is_err(),
        "nothing more for her"
    );

    // A citizen channel streams the account of the person it acts for, and no other.
    let token = env.identity.caller_token("gov-app", 600);
    let mut channel = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let mut own = channel
        .accounts
        .watch_account_events(acting_for(
            &spouse,
            WatchAccountEventsRequest {
                after_position: 0,
                holder_id_number: spouse.clone(),
            },
        ))
        .await
        .expect("his own")
        .into_inner();
    assert_eq!(
        event_of(&next_event(&mut own).await),
        ev(&spouse, credit_kind, "30.00", none, "")
    );
    for holder in ["", EMPLOYEE] {
        assert_error(
            channel
                .accounts
                .watch_account_events(acting_for(
                    &spouse,
                    WatchAccountEventsRequest {
                        after_position: 0,
                        holder_id_number: holder.into(),
                    },
                ))
                .await,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            P,
        );
    }
    assert_error(
        c.accounts
            .watch_account_events(WatchAccountEventsRequest {
                after_position: -1,
                holder_id_number: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_CURSOR",
        P,
    );
    env.finish().await;
}

async fn statement(
    c: &mut Clients,
    holder: &str,
    year: i32,
) -> Result<AccountStatement, tonic::Status> {
    c.accounts
        .get_account_statement(GetAccountStatementRequest {
            holder_id_number: holder.into(),
            year,
        })
        .await
        .map(|r| r.into_inner().statement.expect("statement"))
}

/// (current-year, prior-years) of a statement's balances.
fn pair(b: Option<&gongji_proto::payment::v1::BucketBalances>) -> (String, String) {
    let b = b.expect("balances");
    (b.current_year.clone(), b.prior_years.clone())
}

/// 2024: her account is credited 1,000.00 (prior years) and 200.00 (current year); she pays
/// the child's premium, has it refunded and pays again; 70.00 of the spouse's expense and
/// 20.00 of her own come from it. 2025: the year 2024 closes (180.00 moves), 300.00 comes in,
/// and 50.00 more goes to the spouse. Each year's statement shows every figure, reconciles,
/// and the current one closes at her balances; VerifyLedger finds every statement sound.
async fn a_statement_reconciles_after_every_kind_of_movement(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    credit(&mut c, "c-2024", EMPLOYEE, "200.00").await;
    let first = pay_for_child(&mut c, "p1").await;
    refund(&mut c, "r1", first.payment_id, "paid twice by mistake").await;
    pay_for_child(&mut c, "p2").await;
    let (spouse, _) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    c.medical
        .pay_medical_expense(medical("m1", &spouse, EMPLOYEE, "100.00"))
        .await
        .expect("medical");
    c.medical
        .pay_medical_expense(medical("own", EMPLOYEE, "", "20.00"))
        .await
        .expect("her own");

    let year_2024 = statement(&mut c, EMPLOYEE, 2024).await.expect("2024");
    let premium = UsagePurpose::Premium as i32;
    let med = UsagePurpose::MedicalExpense as i32;
    let line = |who: &str, purpose, debited: &str, refunded: &str| {
        (
            who.to_owned(),
            purpose,
            debited.to_owned(),
            refunded.to_owned(),
        )
    };
    let lines = |s: &AccountStatement| -> Vec<(String, i32, String, String)> {
        let mut l: Vec<_> = s
            .family_usage
            .iter()
            .map(|f| {
                (
                    f.beneficiary_id_number.clone(),
                    f.purpose,
                    f.debited_amount.clone(),
                    f.refunded_amount.clone(),
                )
            })
            .collect();
        l.sort();
        l
    };
    let mut expected = vec![
        line(CHILD, premium, "800.00", "400.00"),
        line(&spouse, med, "70.00", "0.00"),
    ];
    expected.sort();
    assert!(!year_2024.complete, "2024 is still running");
    assert_eq!(
        pair(year_2024.opening.as_ref()),
        ("0.00".into(), "0.00".into())
    );
    assert_eq!(
        (
            year_2024.credits.as_str(),
            year_2024.own_spending.as_str(),
            year_2024.family_debited.as_str(),
            year_2024.refunds.as_str()
        ),
        ("1200.00", "20.00", "870.00", "400.00")
    );
    assert_eq!(lines(&year_2024), expected);
    assert!(year_2024.year_closings.is_empty());
    assert_eq!(
        pair(year_2024.closing.as_ref()),
        ("180.00".into(), "530.00".into())
    );
    // Checked against her entries: the year's entries sum to closing minus opening.
    let net: i64 = entries(&mut c, EMPLOYEE)
        .await
        .iter()
        .map(|e| fen(&e.amount))
        .sum();
    assert_eq!(net, fen("710.00"));

    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("a new year");
    c.accounts
        .close_year(CloseYearRequest {
            request_id: "close-2024".into(),
            holder_id_number: EMPLOYEE.into(),
            year: 2024,
        })
        .await
        .expect("close 2024");
    credit(&mut c, "c-2025", EMPLOYEE, "300.00").await;
    c.medical
        .pay_medical_expense(medical("m2", &spouse, EMPLOYEE, "50.00"))
        .await
        .expect("medical 2025");

    let again = statement(&mut c, EMPLOYEE, 2024).await.expect("2024 again");
    assert!(again.complete, "2024 has ended");
    assert_eq!(
        pair(again.closing.as_ref()),
        ("180.00".into(), "530.00".into()),
        "a year's figures stay as they were"
    );
    let year_2025 = statement(&mut c, EMPLOYEE, 2025).await.expect("2025");
    assert_eq!(
        pair(year_2025.opening.as_ref()),
        pair(again.closing.as_ref()),
        "a year opens where the last one closed"
    );
    assert_eq!(
        (
            year_2025.credits.as_str(),
            year_2025.own_spending.as_str(),
            year_2025.family_debited.as_str(),
            year_2025.refunds.as_str()
        ),
        ("300.00", "0.00", "50.00", "0.00")
    );
    assert_eq!(lines(&year_2025), vec![line(&spouse, med, "50.00", "0.00")]);
    assert_eq!(
        year_2025
            .year_closings
            .iter()
            .map(|y| (y.closed_year, y.moved_amount.clone()))
            .collect::<Vec<_>>(),
        [(2024, "180.00".to_owned())]
    );
    assert_eq!(
        pair(year_2025.closing.as_ref()),
        crate::payment::balances(&mut c, EMPLOYEE).await,
        "this year's statement closes at her balances"
    );
    assert_eq!(
        pair(year_2025.closing.as_ref()),
        ("300.00".into(), "660.00".into())
    );
    crate::payment::verify_clean(&mut c).await;

    let precondition = Code::FailedPrecondition;
    for (holder, year, code, reason) in [
        (EMPLOYEE, 2026, precondition, "YEAR_NOT_STARTED"),
        (EMPLOYEE, 2023, precondition, "YEAR_BEFORE_ACCOUNT"),
        (EMPLOYEE, 1999, Code::InvalidArgument, "INVALID_YEAR"),
        ("123", 2025, Code::InvalidArgument, "INVALID_ID_NUMBER"),
        (CHILD, 2025, Code::NotFound, "ACCOUNT_NOT_FOUND"),
    ] {
        assert_error(statement(&mut c, holder, year).await, code, reason, P);
    }
    env.finish().await;
}

async fn unpaid(
    c: &mut Clients,
    authorizer: &str,
    year: i32,
) -> Result<Vec<UnpaidPremium>, tonic::Status> {
    c.premiums
        .list_unpaid_premiums(ListUnpaidPremiumsRequest {
            authorizer_id_number: authorizer.into(),
            coverage_year: year,
        })
        .await
        .map(|r| r.into_inner().unpaid)
}

/// She is bound to pay for two children and her husband. The children's 2025 premiums are
/// unpaid (each with the quote and the window's end), his is not due (he is employee-insured).
/// Once she pays the first child's and the tax bureau's payment of the second's reaches the
/// registry, nothing is left.
async fn reminders_list_unpaid_family_premiums_until_paid_here_or_elsewhere(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let first_binding = fixtures::family(&mut c, "1000.00").await;
    let second = fixtures::id_number("20200202", 4);
    let second_name = "李子涵";
    fixtures::register(
        &mut c,
        fixtures::person(&second, second_name, None, Some("340500")),
    )
    .await;
    let second_binding = c
        .bindings
        .create_binding(fixtures::bind_child("bind-second", &second, second_name))
        .await
        .expect("bind the second child")
        .into_inner()
        .binding
        .expect("binding");
    fixtures::spouse(&mut c).await;

    let quoted = crate::payment::quote(&mut c, CHILD, 2025, false)
        .await
        .expect("quote");
    let both = unpaid(&mut c, EMPLOYEE, 2025).await.expect("reminders");
    let summary: Vec<(String, String, String, String, String)> = both
        .iter()
        .map(|u| {
            (
                u.beneficiary_id_number.clone(),
                u.beneficiary_name.clone(),
                u.binding_id.clone(),
                u.window_end_date.clone(),
                u.refusal_reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                CHILD.to_owned(),
                CHILD_NAME.to_owned(),
                first_binding.binding_id.clone(),
                quoted.window_end_date.clone(),
                String::new()
            ),
            (
                second.clone(),
                second_name.to_owned(),
                second_binding.binding_id.clone(),
                quoted.window_end_date.clone(),
                String::new()
            ),
        ],
        "the children, not the employee-insured husband"
    );
    assert_eq!(both[0].quote.as_ref(), Some(&quoted));

    // While her employee enrollment is suspended her account pays for nobody: still unpaid,
    // with the quote (other means can pay) and the reason her account cannot.
    fixtures::register(&mut c, fixtures::employee_with(EnrollmentStatus::Suspended)).await;
    let refused = unpaid(&mut c, EMPLOYEE, 2025).await.expect("reminders");
    assert_eq!(
        refused
            .iter()
            .map(|u| (u.refusal_reason.as_str(), u.window_end_date.as_str()))
            .collect::<Vec<_>>(),
        [("NOT_AUTHORIZED", quoted.window_end_date.as_str()); 2]
    );
    fixtures::register(&mut c, fixtures::employee_with(EnrollmentStatus::Normal)).await;

    // Paid here.
    c.premiums
        .pay_premium(pay("p", EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay");
    let left: Vec<String> = unpaid(&mut c, EMPLOYEE, 2025)
        .await
        .expect("reminders")
        .into_iter()
        .map(|u| u.beneficiary_id_number)
        .collect();
    assert_eq!(left, std::slice::from_ref(&second));
    // Paid elsewhere: the core system syncs the year the tax bureau collected.
    let mut synced = fixtures::person(&second, second_name, None, Some("340500"));
    synced.resident_paid_years = vec![2025];
    fixtures::register(&mut c, synced).await;
    assert!(
        unpaid(&mut c, EMPLOYEE, 2025)
            .await
            .expect("reminders")
            .is_empty()
    );

    // Her channel asks for her reminders only.
    let token = env.identity.caller_token("gov-app", 600);
    let mut channel = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let request = || ListUnpaidPremiumsRequest {
        authorizer_id_number: EMPLOYEE.into(),
        coverage_year: 2025,
    };
    channel
        .premiums
        .list_unpaid_premiums(acting_for(EMPLOYEE, request()))
        .await
        .expect("hers");
    assert_error(
        channel
            .premiums
            .list_unpaid_premiums(acting_for(CHILD, request()))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_NOT_PARTY",
        P,
    );
    for (authorizer, year, code, reason) in [
        ("123", 2025, Code::InvalidArgument, "INVALID_ID_NUMBER"),
        (
            EMPLOYEE,
            1999,
            Code::InvalidArgument,
            "INVALID_COVERAGE_YEAR",
        ),
        (
            EMPLOYEE,
            2030,
            Code::FailedPrecondition,
            "COVERAGE_YEAR_NOT_OPEN",
        ),
    ] {
        assert_error(unpaid(&mut c, authorizer, year).await, code, reason, P);
    }
    env.finish().await;
}

/// The child's 2021 to 2024 premiums were paid through other channels: a quote of 2025 counts
/// four years in a row, no gap, no waiting inside the window, and puts 1,000.00 of the
/// continuity incentive at stake (policy data, marked unconfirmed, with its source). A gap in
/// 2024 breaks the run; a payment's record carries none of this.
async fn a_quote_shows_continuity_and_what_a_gap_would_cost(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let mut child = fixtures::person(CHILD, CHILD_NAME, None, Some("340500"));
    child.resident_paid_years = vec![2021, 2022, 2023, 2024];
    fixtures::register(&mut c, child.clone()).await;
    let quote = crate::payment::quote(&mut c, CHILD, 2025, false)
        .await
        .expect("quote");
    assert_eq!(
        (
            quote.consecutive_paid_years,
            quote.gap_years,
            quote.waiting_months_in_window
        ),
        (4, 0, 0)
    );
    let incentive = quote.continuity_incentive.clone().expect("at stake");
    assert_eq!(incentive.raise_kept, "1000.00");
    assert!(incentive.unconfirmed && !incentive.source.is_empty());

    child.resident_paid_years = vec![2021, 2022, 2023];
    fixtures::register(&mut c, child).await;
    let broken = crate::payment::quote(&mut c, CHILD, 2025, false)
        .await
        .expect("quote");
    assert_eq!(broken.consecutive_paid_years, 0);
    assert!(broken.continuity_incentive.is_none());

    let paid = pay_for_child(&mut c, "p").await;
    let recorded = paid.quote.expect("quote");
    assert_eq!(
        (
            recorded.consecutive_paid_years,
            recorded.continuity_incentive
        ),
        (0, None),
        "a payment's record keeps what was paid, not the advice"
    );
    env.finish().await;
}
