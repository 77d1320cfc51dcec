//! Medical expenses that can be corrected (issue 13): listing them, refunding them.

use gongji_proto::{
    binding::v1::{LimitPeriod, Purpose as LimitPurpose},
    payment::v1::{
        BatchUpsertDesignatedInstitutionsRequest, Bucket, BucketDraw, CloseYearRequest,
        CreditAccountRequest, DesignatedInstitution, InstitutionKind, ListAccountEntriesRequest,
        ListMedicalExpensePaymentsRequest, ListMedicalExpensePaymentsResponse,
        MedicalExpensePayment, PayMedicalExpenseRequest, RefundMedicalExpensePaymentRequest,
        RefundMedicalExpensePaymentResponse, SettleBusinessDayRequest, SettlementPurpose,
        UsagePurpose,
    },
};
use gongji_shared::{Clock, rpc::peer::PeerInterceptor};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    both_backends, family,
    fixtures::{self, EMPLOYEE, fen},
    limits::{family_fen, limit, own_fen, set_limits},
    payment::{balances, medical, verify_clean},
    support::{Backend, Clients, IN_WINDOW, TestEnv, acting_for, assert_error, clients_with},
};

const P: &str = "payment.gongji";
const HOSPITAL: &str = "H340500001";
const PHARMACY: &str = "P340500009";

both_backends!(
    medical_payments_are_listed_by_beneficiary_family_account_and_institution,
    medical_refunds_go_back_in_reverse_order_and_restore_limits_and_usage,
    a_refund_after_the_year_closed_goes_to_prior_years_and_is_settled,
    concurrent_partial_refunds_never_return_more_than_was_paid,
    medical_expenses_are_paid_at_designated_institutions_only
);

fn by(beneficiary: &str, family: &str, institution: &str) -> ListMedicalExpensePaymentsRequest {
    ListMedicalExpensePaymentsRequest {
        beneficiary_id_number: beneficiary.into(),
        family_account_holder_id_number: family.into(),
        institution_code: institution.into(),
        start_date: "2024-01-01".into(),
        end_date: "2025-12-31".into(),
        page_size: 0,
        page_token: String::new(),
    }
}

async fn listed(c: &mut Clients, request: ListMedicalExpensePaymentsRequest) -> Vec<String> {
    let r: ListMedicalExpensePaymentsResponse = c
        .medical
        .list_medical_expense_payments(request)
        .await
        .expect("list")
        .into_inner();
    r.payments.into_iter().map(|p| p.request_id).collect()
}

/// The spouse pays at the hospital (partly from her account) and at a pharmacy (from his own),
/// she pays at the hospital from her own, and on a later day he pays at the hospital again.
/// Each filter, alone and together, with a date range and in pages, lists what it should,
/// newest first; a person's channel and a hospital see only theirs.
async fn medical_payments_are_listed_by_beneficiary_family_account_and_institution(
    backend: Backend,
) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let (spouse, _) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    let pay = |request_id: &str, who: &str, family: &str, institution: &str, amount: &str| {
        let mut r = medical(request_id, who, family, amount);
        r.institution_code = institution.into();
        if institution == PHARMACY {
            r.institution_kind = InstitutionKind::Pharmacy as i32;
        }
        r
    };
    for request in [
        pay("m1", &spouse, EMPLOYEE, HOSPITAL, "100.00"),
        pay("m2", &spouse, "", PHARMACY, "20.00"),
        pay("m3", EMPLOYEE, "", HOSPITAL, "50.00"),
    ] {
        c.medical.pay_medical_expense(request).await.expect("pay");
    }
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("a later day");
    c.medical
        .pay_medical_expense(pay("m4", &spouse, EMPLOYEE, HOSPITAL, "80.00"))
        .await
        .expect("pay later");

    assert_eq!(
        listed(&mut c, by(&spouse, "", "")).await,
        ["m4", "m2", "m1"]
    );
    assert_eq!(listed(&mut c, by("", EMPLOYEE, "")).await, ["m4", "m1"]);
    assert_eq!(
        listed(&mut c, by("", "", HOSPITAL)).await,
        ["m4", "m3", "m1"]
    );
    assert_eq!(
        listed(&mut c, by(&spouse, "", HOSPITAL)).await,
        ["m4", "m1"]
    );
    let mut last_year = by(&spouse, "", "");
    last_year.end_date = "2024-12-31".into();
    assert_eq!(listed(&mut c, last_year).await, ["m2", "m1"]);
    let mut default_range = by(&spouse, "", "");
    (default_range.start_date, default_range.end_date) = (String::new(), String::new());
    assert_eq!(listed(&mut c, default_range).await, ["m4", "m2", "m1"]);
    // Pages of one.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..4 {
        let mut request = by(&spouse, "", "");
        request.page_size = 1;
        request.page_token = token;
        let page = c
            .medical
            .list_medical_expense_payments(request)
            .await
            .expect("page")
            .into_inner();
        paged.extend(page.payments.into_iter().map(|p| p.request_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, ["m4", "m2", "m1"]);

    // His channel sees his payments, not hers, nor an institution's.
    let token = env.identity.caller_token("gov-app", 600);
    let mut channel = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let his = channel
        .medical
        .list_medical_expense_payments(acting_for(&spouse, by(&spouse, "", "")))
        .await
        .expect("his")
        .into_inner();
    assert_eq!(his.payments.len(), 3);
    for request in [by("", EMPLOYEE, ""), by("", "", HOSPITAL)] {
        assert_error(
            channel
                .medical
                .list_medical_expense_payments(acting_for(&spouse, request))
                .await,
            Code::PermissionDenied,
            "ACTING_PERSON_NOT_PARTY",
            P,
        );
    }
    // The hospital lists its own institution's payments only.
    let token = env.identity.caller_token("hospital-h340500001", 600);
    let mut hospital = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    assert_eq!(
        listed(&mut hospital, by("", "", HOSPITAL)).await,
        ["m4", "m3", "m1"]
    );
    for request in [by("", "", PHARMACY), by(&spouse, "", "")] {
        assert_error(
            hospital
                .medical
                .list_medical_expense_payments(request)
                .await,
            Code::PermissionDenied,
            "INSTITUTION_NOT_CALLERS",
            P,
        );
    }
    // Bad listings.
    let invalid = Code::InvalidArgument;
    let mut reversed = by(&spouse, "", "");
    reversed.start_date = "2025-02-01".into();
    reversed.end_date = "2025-01-31".into();
    let mut bad_token = by(&spouse, "", "");
    bad_token.page_token = "x".into();
    for (request, reason) in [
        (by("", "", ""), "FILTER_REQUIRED"),
        (by("", "", "H-1"), "INVALID_INSTITUTION"),
        (by("123", "", ""), "INVALID_ID_NUMBER"),
        (reversed, "INVALID_DATE_RANGE"),
        (bad_token, "INVALID_PAGE_TOKEN"),
    ] {
        assert_error(
            c.medical.list_medical_expense_payments(request).await,
            invalid,
            reason,
            P,
        );
    }
    env.finish().await;
}

fn refund(request_id: &str, payment_id: &str, amount: &str) -> RefundMedicalExpensePaymentRequest {
    RefundMedicalExpensePaymentRequest {
        request_id: request_id.into(),
        payment_id: payment_id.into(),
        amount: amount.into(),
        reason: "charge reversed".into(),
    }
}

async fn refunded(
    c: &mut Clients,
    request: RefundMedicalExpensePaymentRequest,
) -> RefundMedicalExpensePaymentResponse {
    c.medical
        .refund_medical_expense_payment(request)
        .await
        .expect("refund")
        .into_inner()
}

async fn paid(c: &mut Clients, request: PayMedicalExpenseRequest) -> MedicalExpensePayment {
    c.medical
        .pay_medical_expense(request)
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment")
}

fn parts(draws: &[BucketDraw]) -> Vec<(i32, String)> {
    draws.iter().map(|d| (d.bucket, d.amount.clone())).collect()
}

fn metadata(status: &Status, key: &str) -> String {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

/// Her account pays for her husband's hospital bill up to her 150.00 monthly limit, after his
/// own 30.00, and other means the rest. The hospital reverses 30.00 (the other-means 20.00 and
/// 10.00 of hers), which frees 10.00 of her limit for his next bill; then the rest: 140.00 back
/// to her, 30.00 to him. A retry answers the same, more is refused, the usage and the limit
/// are credited back, and the ledger holds.
async fn medical_refunds_go_back_in_reverse_order_and_restore_limits_and_usage(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let (spouse, binding) = fixtures::spouse(&mut c).await;
    fixtures::fund(&mut c, &spouse, "30.00").await;
    set_limits(
        &mut c,
        "limit",
        &binding.binding_id,
        vec![limit(
            LimitPurpose::MedicalExpense,
            LimitPeriod::Month,
            "150.00",
        )],
    )
    .await;
    let m1 = paid(&mut c, medical("m1", &spouse, EMPLOYEE, "200.00")).await;
    assert_eq!(
        (own_fen(&m1), family_fen(&m1), m1.other_means_part.as_str()),
        (3_000, 15_000, "20.00")
    );
    let mut at_pharmacy = medical("m2", &spouse, EMPLOYEE, "50.00");
    at_pharmacy.institution_code = PHARMACY.into();
    at_pharmacy.institution_kind = InstitutionKind::Pharmacy as i32;
    let m2 = paid(&mut c, at_pharmacy).await;
    assert_eq!(family_fen(&m2), 0, "the limit is used up");

    // The hospital reverses 30.00: what was drawn last comes back first.
    let token = env.identity.caller_token("hospital-h340500001", 600);
    let mut hospital = clients_with(&env.stack, PeerInterceptor::with_token(&token), None).await;
    let first = refunded(&mut hospital, refund("r1", &m1.payment_id, "30.00")).await;
    let r1 = first.refund.expect("refund");
    assert_eq!(r1.other_means_owed_back, "20.00");
    assert_eq!(
        parts(&r1.family_account_parts),
        [(Bucket::PriorYears as i32, "10.00".into())]
    );
    assert!(r1.own_account_parts.is_empty());
    assert_eq!(
        (r1.amount.as_str(), r1.refunded_total.as_str()),
        ("30.00", "30.00")
    );
    assert!(!r1.movement_id.is_empty());
    assert_eq!(first.payment.expect("payment").refunded_amount, "30.00");
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "860.00");
    // Not another institution's payment.
    assert_error(
        hospital
            .medical
            .refund_medical_expense_payment(refund("r-pharmacy", &m2.payment_id, ""))
            .await,
        Code::PermissionDenied,
        "INSTITUTION_NOT_CALLERS",
        P,
    );

    // The 10.00 back is 10.00 of her limit again.
    let m3 = paid(&mut c, medical("m3", &spouse, EMPLOYEE, "10.00")).await;
    assert_eq!(family_fen(&m3), 1_000);

    // The rest of the bill: hers last drawn first, then his own.
    let rest = refunded(&mut c, refund("r2", &m1.payment_id, "")).await;
    let r2 = rest.refund.clone().expect("refund");
    assert_eq!(r2.other_means_owed_back, "0.00");
    assert_eq!(
        parts(&r2.family_account_parts),
        [(Bucket::PriorYears as i32, "140.00".into())]
    );
    assert_eq!(
        parts(&r2.own_account_parts),
        [(Bucket::PriorYears as i32, "30.00".into())]
    );
    assert_eq!(
        (r2.amount.as_str(), r2.refunded_total.as_str()),
        ("170.00", "200.00")
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "990.00");
    assert_eq!(balances(&mut c, &spouse).await.1, "30.00");
    // A retry answers the same and moves nothing; the same ID for another refund is refused.
    assert_eq!(
        refunded(&mut c, refund("r2", &m1.payment_id, "")).await,
        rest
    );
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "990.00");
    assert_error(
        c.medical
            .refund_medical_expense_payment(refund("r2", &m3.payment_id, ""))
            .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        P,
    );
    // Nothing past what was paid.
    assert_error(
        c.medical
            .refund_medical_expense_payment(refund("r3", &m1.payment_id, "0.01"))
            .await,
        Code::FailedPrecondition,
        "ALREADY_REFUNDED",
        P,
    );
    let status = assert_error(
        c.medical
            .refund_medical_expense_payment(refund("r4", &m3.payment_id, "10.01"))
            .await,
        Code::FailedPrecondition,
        "REFUND_EXCEEDS_PAYMENT",
        P,
    );
    assert_eq!(
        (
            metadata(&status, "requested"),
            metadata(&status, "refundable")
        ),
        ("10.01".into(), "10.00".into())
    );
    // Bad requests change nothing.
    let mut no_reason = refund("r5", &m3.payment_id, "1.00");
    no_reason.reason = String::new();
    for (request, code, reason) in [
        (
            refund("r6", &m3.payment_id, "-1.00"),
            Code::InvalidArgument,
            "INVALID_AMOUNT",
        ),
        (
            refund("r7", &m3.payment_id, "0"),
            Code::InvalidArgument,
            "INVALID_AMOUNT",
        ),
        (no_reason, Code::InvalidArgument, "INVALID_REASON"),
        (
            refund("r8", "", ""),
            Code::InvalidArgument,
            "INVALID_PAYMENT_ID",
        ),
        (
            refund("r9", "no-such-payment", ""),
            Code::NotFound,
            "PAYMENT_NOT_FOUND",
        ),
    ] {
        assert_error(
            c.medical.refund_medical_expense_payment(request).await,
            code,
            reason,
            P,
        );
    }
    let m3_now = c
        .medical
        .get_medical_expense_payment(gongji_proto::payment::v1::GetMedicalExpensePaymentRequest {
            payment_id: m3.payment_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(m3_now.refunded_amount, "0.00");

    // Her usage: 160.00 paid for him, 150.00 of it back; her entries say whom it was for.
    let usage = family::list(&mut c, family::usage(EMPLOYEE, &spouse, "", "")).await;
    assert_eq!(
        family::totals(&usage),
        [(
            spouse.clone(),
            UsagePurpose::MedicalExpense as i32,
            "160.00".into(),
            "150.00".into(),
            "10.00".into(),
            2
        )]
    );
    let entries = c
        .accounts
        .list_account_entries(ListAccountEntriesRequest {
            holder_id_number: EMPLOYEE.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    assert_eq!(
        (
            entries[0].amount.as_str(),
            entries[0].family_beneficiary_id_number.as_str(),
            entries[0].institution_code.as_str()
        ),
        ("140.00", spouse.as_str(), HOSPITAL)
    );
    // Her limit has 140.00 left this month: his next bill takes his own 30.00, then that.
    let m4 = paid(&mut c, medical("m4", &spouse, EMPLOYEE, "200.00")).await;
    assert_eq!((own_fen(&m4), family_fen(&m4)), (3_000, 14_000));
    assert_eq!(fen(&m4.other_means_part), 3_000);
    verify_clean(&mut c).await;
    env.finish().await;
}

/// He pays 60.00 from his current-year money in 2024; the year is closed in January, moving
/// what was left to prior years. The refund then goes to prior years too (his current-year
/// bucket is the new year's), and the day's settlement counts it.
async fn a_refund_after_the_year_closed_goes_to_prior_years_and_is_settled(backend: Backend) {
    let Some(mut env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "10.00").await;
    c.accounts
        .credit_account(CreditAccountRequest {
            request_id: "current".into(),
            holder_id_number: EMPLOYEE.into(),
            amount: "100.00".into(),
            bucket: Bucket::CurrentYear as i32,
            memo: String::new(),
        })
        .await
        .expect("credit");
    let m1 = paid(&mut c, medical("m1", EMPLOYEE, "", "60.00")).await;
    assert_eq!(
        parts(&m1.own_account_draws),
        [(Bucket::CurrentYear as i32, "60.00".into())]
    );
    env.stack
        .restart_with_clock(Clock::parse("2025-01-10T10:00:00+08:00").expect("clock"))
        .await
        .expect("the new year");
    c.accounts
        .close_year(CloseYearRequest {
            request_id: "close".into(),
            holder_id_number: EMPLOYEE.into(),
            year: 2024,
        })
        .await
        .expect("close 2024");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("0.00".into(), "50.00".into())
    );
    let r = refunded(&mut c, refund("r1", &m1.payment_id, "")).await;
    let refund = r.refund.expect("refund");
    assert_eq!(
        parts(&refund.own_account_parts),
        [(Bucket::CurrentYear as i32, "60.00".into())],
        "the parts name the bucket drawn"
    );
    assert_eq!(refund.business_date, "2025-01-10");
    assert_eq!(
        balances(&mut c, EMPLOYEE).await,
        ("0.00".into(), "110.00".into()),
        "the money of a closed year goes back to prior years"
    );
    verify_clean(&mut c).await;
    env.stack
        .restart_with_clock(Clock::parse("2025-01-11T10:00:00+08:00").expect("clock"))
        .await
        .expect("the next day");
    let settlement = c
        .settlement
        .settle_business_day(SettleBusinessDayRequest {
            request_id: "settle".into(),
            business_date: "2025-01-10".into(),
        })
        .await
        .expect("settle")
        .into_inner()
        .settlement
        .expect("settlement");
    let line = settlement
        .lines
        .iter()
        .find(|l| l.purpose == SettlementPurpose::MedicalExpense as i32)
        .expect("the refund's line");
    assert_eq!(
        (
            line.gross_amount.as_str(),
            line.refunded_amount.as_str(),
            line.net_amount.as_str(),
            line.refund_count
        ),
        ("0.00", "60.00", "-60.00", 1)
    );
    env.finish().await;
}

/// Ten partial refunds of 30.00 race on a 200.00 bill: six are made, four refused, and the
/// accounts get back exactly what they paid.
async fn concurrent_partial_refunds_never_return_more_than_was_paid(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::family(&mut c, "1000.00").await;
    let (spouse, _) = fixtures::spouse(&mut c).await;
    let m1 = paid(&mut c, medical("m1", &spouse, EMPLOYEE, "200.00")).await;
    assert_eq!(family_fen(&m1), 20_000);
    let refunds = (0..10).map(|i| {
        let mut c = c.clone();
        let request = refund(&format!("r{i}"), &m1.payment_id, "30.00");
        tokio::spawn(async move { c.medical.refund_medical_expense_payment(request).await })
    });
    let mut made = 0;
    for r in futures::future::join_all(refunds).await {
        match r.expect("task") {
            Ok(_) => made += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(made, 6);
    assert_eq!(balances(&mut c, EMPLOYEE).await.1, "980.00");
    verify_clean(&mut c).await;
    env.finish().await;
}

fn designated(code: &str, kind: InstitutionKind, from: &str, until: &str) -> DesignatedInstitution {
    DesignatedInstitution {
        institution_code: code.into(),
        institution_kind: kind as i32,
        region_code: "340500".into(),
        name: "马鞍山市中心医院".into(),
        designated_from: from.into(),
        designated_until: until.into(),
    }
}

fn sync(
    request_id: &str,
    institutions: Vec<DesignatedInstitution>,
) -> BatchUpsertDesignatedInstitutionsRequest {
    BatchUpsertDesignatedInstitutionsRequest {
        request_id: request_id.into(),
        institutions,
    }
}

/// M1: a charge is paid only at an institution the core system designated, as that kind, on
/// the day. Unknown codes, the other kind, a designation not begun or ended are refused with
/// nothing moved; a sync is all or none, and a retry answers the same.
async fn medical_expenses_are_paid_at_designated_institutions_only(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    fixtures::employee(&mut c).await;
    fixtures::fund(&mut c, EMPLOYEE, "500.00").await;
    let at = |request_id: &str, code: &str, kind: InstitutionKind| {
        let mut r = medical(request_id, EMPLOYEE, "", "10.00");
        r.institution_code = code.into();
        r.institution_kind = kind as i32;
        r
    };
    let refused = |status: Status, cause: &str| {
        assert_eq!(metadata(&status, "cause"), cause, "{status:?}");
        status
    };
    let not_designated = Code::FailedPrecondition;
    let hospital = InstitutionKind::Hospital;
    let status = assert_error(
        c.medical
            .pay_medical_expense(at("u1", "H340599999", hospital))
            .await,
        not_designated,
        "INSTITUTION_NOT_DESIGNATED",
        P,
    );
    assert_eq!(
        metadata(&refused(status, "UNKNOWN"), "institution_code"),
        "H340599999"
    );
    let status = assert_error(
        c.medical
            .pay_medical_expense(at("u2", PHARMACY, hospital))
            .await,
        not_designated,
        "INSTITUTION_NOT_DESIGNATED",
        P,
    );
    assert_eq!(
        metadata(&refused(status, "OTHER_KIND"), "designated_kind"),
        "PHARMACY"
    );

    // A new hospital designated from next month; the demo hospital's designation ended
    // yesterday.
    let first = vec![
        designated("H340500002", hospital, "2024-12-01", ""),
        designated(HOSPITAL, hospital, "2000-01-01", "2024-11-14"),
    ];
    let synced = c
        .medical
        .batch_upsert_designated_institutions(sync("s1", first.clone()))
        .await
        .expect("sync")
        .into_inner();
    assert_eq!(synced.upserted_count, 2);
    assert_eq!(
        c.medical
            .batch_upsert_designated_institutions(sync("s1", first))
            .await
            .expect("retry")
            .into_inner(),
        synced
    );
    for (request_id, code) in [("u3", "H340500002"), ("u4", HOSPITAL)] {
        let status = assert_error(
            c.medical
                .pay_medical_expense(at(request_id, code, hospital))
                .await,
            not_designated,
            "INSTITUTION_NOT_DESIGNATED",
            P,
        );
        assert_eq!(
            metadata(&refused(status, "NOT_ON_DAY"), "business_date"),
            "2024-11-15"
        );
    }
    assert_eq!(
        balances(&mut c, EMPLOYEE).await.1,
        "500.00",
        "nothing moved"
    );
    // Designated again, open-ended: paid.
    c.medical
        .batch_upsert_designated_institutions(sync(
            "s2",
            vec![designated(HOSPITAL, hospital, "2000-01-01", "")],
        ))
        .await
        .expect("sync again");
    let m = paid(&mut c, at("u5", HOSPITAL, hospital)).await;
    assert_eq!(own_fen(&m), 1_000);

    // A bad sync stores nothing, not even its good institutions.
    let good = designated("H340500003", hospital, "2024-01-01", "");
    let bad = |f: fn(&mut DesignatedInstitution)| {
        let mut d = designated("H340500004", hospital, "2024-01-01", "");
        f(&mut d);
        vec![good.clone(), d]
    };
    for (i, (institutions, reason)) in [
        (Vec::new(), "INVALID_BATCH_SIZE"),
        (vec![good.clone(); 501], "INVALID_BATCH_SIZE"),
        (vec![good.clone(), good.clone()], "DUPLICATE_INSTITUTION"),
        (
            bad(|d| d.designated_until = "2023-12-31".into()),
            "INVALID_DATE_RANGE",
        ),
        (
            bad(|d| d.designated_from = "2024-13-01".into()),
            "INVALID_DATE",
        ),
        (
            bad(|d| d.institution_code = "H-1".into()),
            "INVALID_INSTITUTION",
        ),
        (bad(|d| d.institution_kind = 0), "INVALID_INSTITUTION"),
        (bad(|d| d.region_code = "34".into()), "INVALID_REGION_CODE"),
        (bad(|d| d.name = " ".into()), "INVALID_NAME"),
    ]
    .into_iter()
    .enumerate()
    {
        let status = assert_error(
            c.medical
                .batch_upsert_designated_institutions(sync(&format!("bad{i}"), institutions))
                .await,
            Code::InvalidArgument,
            reason,
            P,
        );
        if !["INVALID_BATCH_SIZE", "DUPLICATE_INSTITUTION"].contains(&reason) {
            assert_eq!(metadata(&status, "index"), "1", "{reason}");
        }
    }
    assert_error(
        c.medical
            .batch_upsert_designated_institutions(sync("s2", vec![good.clone()]))
            .await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        P,
    );
    let status = assert_error(
        c.medical
            .pay_medical_expense(at("u6", "H340500003", hospital))
            .await,
        not_designated,
        "INSTITUTION_NOT_DESIGNATED",
        P,
    );
    refused(status, "UNKNOWN");
    verify_clean(&mut c).await;
    env.finish().await;
}
