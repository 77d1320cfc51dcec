//! The cross-province family wallet (issue 13, U2, U4): transfers into the family mutual-aid
//! wallet of a relative insured in another province, within the policy's hours and figures.

use gongji_proto::{
    binding::v1::{self as b, BindingState, CheckAuthorizationRequest, LimitPeriod},
    payment::v1::{
        Bucket, ConfirmWalletTransferRequest, GetWalletStatementRequest, GetWalletTransferRequest,
        ReturnWalletTransferRequest, SettleBusinessDayRequest, SettleWalletMonthRequest,
        TransferToFamilyWalletRequest, UsagePurpose, WalletTransfer, WalletTransferState,
    },
};
use gongji_shared::Clock;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    both_backends, family,
    fixtures::{self, EMPLOYEE},
    limits::{limit, set_limits},
    payment::{balances, verify_clean},
    support::{Backend, Clients, TestEnv, acting_for, assert_error},
};

const P: &str = "payment.gongji";
/// A minute before the wallet closes for the night, under the policy version that has it.
const LATE_EVENING: &str = "2026-11-16T21:59:00+08:00";

both_backends!(
    wallet_transfers_keep_to_the_hours_the_amount_and_the_count,
    wallet_transfers_start_on_the_policy_date,
    wallet_transfers_unconfirmed_in_time_go_back,
    wallet_month_is_stated_once_settled_and_a_second_run_reproduces_it
);

/// The employee's child (李小明, eight), insured in Nanjing, Jiangsu.
fn kid() -> String {
    fixtures::id_number("20180606", 5)
}

/// The employee with 10,000.00 of prior-years money and her child in Jiangsu, registered.
async fn employee_and_kid(c: &mut Clients) -> String {
    fixtures::employee(c).await;
    fixtures::fund(c, EMPLOYEE, "10000.00").await;
    let kid = kid();
    fixtures::register(c, fixtures::person(&kid, "李小明", None, Some("320100"))).await;
    kid
}

async fn bind(c: &mut Clients, kid: &str) -> Result<b::Binding, Status> {
    c.bindings
        .create_binding(fixtures::bind_child("bind-kid", kid, "李小明"))
        .await
        .map(|r| r.into_inner().binding.expect("binding"))
}

fn transfer(
    request_id: &str,
    kid: &str,
    amount: &str,
) -> tonic::Request<TransferToFamilyWalletRequest> {
    acting_for(
        EMPLOYEE,
        TransferToFamilyWalletRequest {
            request_id: request_id.into(),
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: kid.into(),
            amount: amount.into(),
        },
    )
}

async fn sent(
    c: &mut Clients,
    request: tonic::Request<TransferToFamilyWalletRequest>,
) -> WalletTransfer {
    c.wallet
        .transfer_to_family_wallet(request)
        .await
        .expect("transfer")
        .into_inner()
        .transfer
        .expect("transfer")
}

fn metadata(status: &Status, key: &str) -> String {
    status
        .get_error_details()
        .error_info()
        .and_then(|i| i.metadata.get(key).cloned())
        .unwrap_or_default()
}

/// At 21:59: 2,000.00 is the most one transfer moves, three the most a day; a retry answers
/// the same; the authorizer's wallet limit holds; the binding serves the wallet only; at 22:01
/// the wallet is closed. The usage and the ledger show every transfer.
async fn wallet_transfers_keep_to_the_hours_the_amount_and_the_count(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, LATE_EVENING).await else {
        return;
    };
    let mut c = env.clients_owned();
    let kid = employee_and_kid(&mut c).await;
    let binding = bind(&mut c, &kid)
        .await
        .expect("a minor in Jiangsu: bound at once");
    assert_eq!(binding.state, BindingState::Active as i32);

    let status = assert_error(
        c.wallet
            .transfer_to_family_wallet(transfer("w0", &kid, "2000.01"))
            .await,
        Code::FailedPrecondition,
        "WALLET_TRANSFER_LIMIT_EXCEEDED",
        P,
    );
    assert_eq!(metadata(&status, "max_per_transfer"), "2000.00");
    let first = sent(&mut c, transfer("w1", &kid, "2000.00")).await;
    assert_eq!(first.state, WalletTransferState::Pending as i32);
    assert_eq!(first.destination_province_code, "320000");
    assert_eq!(first.binding_id, binding.binding_id);
    assert_eq!(
        first
            .draws
            .iter()
            .map(|d| (d.bucket, d.amount.as_str()))
            .collect::<Vec<_>>(),
        [(Bucket::PriorYears as i32, "2000.00")]
    );
    let (created, deadline) = (
        first.create_time.expect("t"),
        first.confirm_deadline.expect("d"),
    );
    assert_eq!(deadline.seconds - created.seconds, 72 * 3_600);
    assert_eq!(
        sent(&mut c, transfer("w1", &kid, "2000.00")).await,
        first,
        "a retry"
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "8000.00");

    // Her own cap on the wallet: 2,150.00 a month leaves 150.00.
    set_limits(
        &mut c,
        "cap",
        &binding.binding_id,
        vec![limit(
            b::Purpose::FamilyWallet,
            LimitPeriod::Month,
            "2150.00",
        )],
    )
    .await;
    let status = assert_error(
        c.wallet
            .transfer_to_family_wallet(transfer("w2", &kid, "200.00"))
            .await,
        Code::FailedPrecondition,
        "FAMILY_LIMIT_REACHED",
        P,
    );
    assert_eq!(metadata(&status, "remaining"), "150.00");
    sent(&mut c, transfer("w3", &kid, "100.00")).await;
    sent(&mut c, transfer("w4", &kid, "50.00")).await;
    let status = assert_error(
        c.wallet
            .transfer_to_family_wallet(transfer("w5", &kid, "0.01"))
            .await,
        Code::FailedPrecondition,
        "WALLET_DAILY_LIMIT_REACHED",
        P,
    );
    assert_eq!(metadata(&status, "max_transfers_per_day"), "3");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "7850.00");

    // Only she moves her money; the transfer is hers and his to read.
    assert_error(
        c.wallet
            .transfer_to_family_wallet(acting_for(&kid, transfer("w6", &kid, "1.00").into_inner()))
            .await,
        Code::PermissionDenied,
        "ACTING_PERSON_NOT_PARTY",
        P,
    );
    let read = c
        .wallet
        .get_wallet_transfer(GetWalletTransferRequest {
            transfer_id: first.transfer_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .transfer
        .expect("transfer");
    assert_eq!(read, first);
    // The binding to a relative in another province serves the wallet only.
    let check = c
        .bindings
        .check_authorization(CheckAuthorizationRequest {
            authorizer_id_number: EMPLOYEE.into(),
            beneficiary_id_number: kid.clone(),
            purpose: b::Purpose::MedicalExpense as i32,
        })
        .await
        .expect("check")
        .into_inner();
    assert!(!check.authorized);
    assert!(
        check
            .denials
            .iter()
            .any(|d| d.reason == "PURPOSE_NOT_ALLOWED"),
        "{:?}",
        check.denials
    );
    let usage = family::list(&mut c, family::usage(EMPLOYEE, &kid, "", "")).await;
    assert_eq!(
        family::totals(&usage),
        [(
            kid.clone(),
            UsagePurpose::FamilyWallet as i32,
            "2150.00".into(),
            "0.00".into(),
            "2150.00".into(),
            3
        )]
    );
    verify_clean(&mut c).await;

    // Two minutes later the wallet is closed for the night.
    env.stack
        .restart_with_clock(Clock::parse("2026-11-16T22:01:00+08:00").expect("clock"))
        .await
        .expect("22:01");
    let status = assert_error(
        c.wallet
            .transfer_to_family_wallet(transfer("w7", &kid, "1.00"))
            .await,
        Code::FailedPrecondition,
        "WALLET_CLOSED",
        P,
    );
    assert_eq!(
        (
            metadata(&status, "open_from"),
            metadata(&status, "open_until")
        ),
        ("06:00".into(), "22:00".into())
    );
    env.finish().await;
}

/// Before the policy version of 2026-10-01 a relative in another province cannot be bound and
/// the wallet does not exist; from that day both work.
async fn wallet_transfers_start_on_the_policy_date(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, "2026-09-30T10:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    let kid = employee_and_kid(&mut c).await;
    let refused = bind(&mut c, &kid).await.expect_err("not before the date");
    assert_eq!(
        tonic_types::StatusExt::get_error_details(&refused)
            .error_info()
            .map(|i| i.reason.clone()),
        Some("REGION_NOT_ALLOWED".into())
    );
    assert_error(
        c.wallet
            .transfer_to_family_wallet(transfer("w1", &kid, "100.00"))
            .await,
        Code::FailedPrecondition,
        "WALLET_NOT_AVAILABLE",
        P,
    );
    env.stack
        .restart_with_clock(Clock::parse("2026-10-01T10:00:00+08:00").expect("clock"))
        .await
        .expect("the policy date");
    let mut again = fixtures::bind_child("bind-kid-2", &kid, "李小明");
    again.verification_method = 0;
    c.bindings
        .create_binding(again)
        .await
        .expect("bound from the date");
    let first = sent(&mut c, transfer("w2", &kid, "100.00")).await;
    assert_eq!(first.business_date, "2026-10-01");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "9900.00");
    verify_clean(&mut c).await;
    env.finish().await;
}

async fn state_of(c: &mut Clients, transfer_id: &str) -> i32 {
    c.wallet
        .get_wallet_transfer(GetWalletTransferRequest {
            transfer_id: transfer_id.into(),
        })
        .await
        .expect("get")
        .into_inner()
        .transfer
        .expect("transfer")
        .state
}

/// Three transfers: the receiving province confirms the first, refuses the second (an
/// operator returns it), and never answers for the third, which goes back by itself after 72
/// hours. What came back is usage and limit credited back, and the ledger holds.
async fn wallet_transfers_unconfirmed_in_time_go_back(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, "2026-11-16T10:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    let kid = employee_and_kid(&mut c).await;
    bind(&mut c, &kid).await.expect("bound");
    let confirmed = sent(&mut c, transfer("w1", &kid, "500.00")).await;
    let refused = sent(&mut c, transfer("w2", &kid, "300.00")).await;
    let unanswered = sent(&mut c, transfer("w3", &kid, "200.00")).await;
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "9000.00");

    let confirm = |request_id: &str, id: &str| ConfirmWalletTransferRequest {
        request_id: request_id.into(),
        transfer_id: id.into(),
    };
    let done = c
        .wallet
        .confirm_wallet_transfer(confirm("c1", &confirmed.transfer_id))
        .await
        .expect("confirm")
        .into_inner()
        .transfer
        .expect("transfer");
    assert_eq!(done.state, WalletTransferState::Confirmed as i32);
    let again = c
        .wallet
        .confirm_wallet_transfer(confirm("c1", &confirmed.transfer_id))
        .await
        .expect("retry")
        .into_inner()
        .transfer
        .expect("transfer");
    assert_eq!(again, done, "a retry answers the same");
    let back = c
        .wallet
        .return_wallet_transfer(ReturnWalletTransferRequest {
            request_id: "r1".into(),
            transfer_id: refused.transfer_id.clone(),
        })
        .await
        .expect("return")
        .into_inner()
        .transfer
        .expect("transfer");
    assert_eq!(back.state, WalletTransferState::Returned as i32);
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "9300.00");
    for (request, id) in [("c2", &confirmed.transfer_id), ("c3", &refused.transfer_id)] {
        let status = assert_error(
            c.wallet.confirm_wallet_transfer(confirm(request, id)).await,
            Code::FailedPrecondition,
            "TRANSFER_NOT_PENDING",
            P,
        );
        assert!(!metadata(&status, "state").is_empty());
    }
    assert_error(
        c.wallet
            .confirm_wallet_transfer(confirm("c4", "no-such-transfer"))
            .await,
        Code::NotFound,
        "TRANSFER_NOT_FOUND",
        P,
    );

    // 73 hours on, the unanswered transfer has gone back by itself; the others stay as they are.
    env.stack
        .restart_with_clock(Clock::parse("2026-11-19T11:00:00+08:00").expect("clock"))
        .await
        .expect("73 hours on");
    assert_eq!(
        state_of(&mut c, &unanswered.transfer_id).await,
        WalletTransferState::Returned as i32
    );
    assert_eq!(
        state_of(&mut c, &confirmed.transfer_id).await,
        WalletTransferState::Confirmed as i32
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "9500.00");
    let usage = family::list(&mut c, family::usage(EMPLOYEE, &kid, "", "")).await;
    assert_eq!(
        family::totals(&usage),
        [(
            kid.clone(),
            UsagePurpose::FamilyWallet as i32,
            "1000.00".into(),
            "500.00".into(),
            "500.00".into(),
            3
        )]
    );
    verify_clean(&mut c).await;
    env.finish().await;
}

fn month(request_id: &str, month: &str) -> SettleWalletMonthRequest {
    SettleWalletMonthRequest {
        request_id: request_id.into(),
        month: month.into(),
    }
}

/// November: 800.00 goes to Jiangsu in two transfers, 300.00 of it comes back. On 1 December
/// the month waits for its days to be settled; then its statement says so, per province, and a
/// second run reproduces it, digest and all.
async fn wallet_month_is_stated_once_settled_and_a_second_run_reproduces_it(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, "2026-11-16T10:00:00+08:00").await else {
        return;
    };
    let mut c = env.clients_owned();
    let kid = employee_and_kid(&mut c).await;
    bind(&mut c, &kid).await.expect("bound");
    sent(&mut c, transfer("w1", &kid, "500.00")).await;
    let back = sent(&mut c, transfer("w2", &kid, "300.00")).await;
    c.wallet
        .return_wallet_transfer(ReturnWalletTransferRequest {
            request_id: "r1".into(),
            transfer_id: back.transfer_id.clone(),
        })
        .await
        .expect("return");
    env.stack
        .restart_with_clock(Clock::parse("2026-12-01T10:00:00+08:00").expect("clock"))
        .await
        .expect("December");
    let status = assert_error(
        c.wallet.settle_wallet_month(month("m0", "2026-11")).await,
        Code::FailedPrecondition,
        "MONTH_NOT_SETTLED",
        P,
    );
    assert_eq!(metadata(&status, "first_unsettled_date"), "2026-11-01");
    for day in 1..=30 {
        c.settlement
            .settle_business_day(SettleBusinessDayRequest {
                request_id: format!("settle-{day}"),
                business_date: format!("2026-11-{day:02}"),
            })
            .await
            .expect("settle the day");
    }
    let first = c
        .wallet
        .settle_wallet_month(month("m1", "2026-11"))
        .await
        .expect("state the month")
        .into_inner()
        .statement
        .expect("statement");
    let lines: Vec<_> = first
        .lines
        .iter()
        .map(|l| {
            (
                l.destination_province_code.as_str(),
                l.transferred_amount.as_str(),
                l.returned_amount.as_str(),
                l.net_amount.as_str(),
                l.transfer_count,
                l.return_count,
            )
        })
        .collect();
    assert_eq!(lines, [("320000", "800.00", "300.00", "500.00", 2, 1)]);
    assert_eq!(first.digest.len(), 64);
    let second = c
        .wallet
        .settle_wallet_month(month("m2", "2026-11"))
        .await
        .expect("run again")
        .into_inner()
        .statement
        .expect("statement");
    assert_eq!(
        second, first,
        "a second run reproduces the statement and its digest"
    );
    let read = c
        .wallet
        .get_wallet_statement(GetWalletStatementRequest {
            month: "2026-11".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .statement
        .expect("statement");
    assert_eq!(read, first);
    for (request, code, reason) in [
        (
            month("m3", "2026-12"),
            Code::FailedPrecondition,
            "MONTH_NOT_SETTLED",
        ),
        (
            month("m4", "2026-13"),
            Code::InvalidArgument,
            "INVALID_MONTH",
        ),
        (
            month("m5", "2026-1"),
            Code::InvalidArgument,
            "INVALID_MONTH",
        ),
    ] {
        assert_error(c.wallet.settle_wallet_month(request).await, code, reason, P);
    }
    assert_error(
        c.wallet
            .get_wallet_statement(GetWalletStatementRequest {
                month: "2026-10".into(),
            })
            .await,
        Code::NotFound,
        "STATEMENT_NOT_FOUND",
        P,
    );
    verify_clean(&mut c).await;
    env.finish().await;
}
