//! Family features (issue 12), over real gRPC with both services.

use gongji_proto::payment::v1::{
    AccountEntry, EntryKind, ListAccountEntriesRequest, RefundPremiumPaymentRequest,
};

use crate::{
    both_backends,
    fixtures::{self, CHILD, EMPLOYEE},
    payment::{medical, pay},
    support::{Backend, Clients, IN_WINDOW, TestEnv},
};

both_backends!(account_entries_say_whom_a_family_debit_was_for);

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
    let paid = c
        .premiums
        .pay_premium(pay("p", EMPLOYEE, CHILD, 2025))
        .await
        .expect("pay")
        .into_inner()
        .payment
        .expect("payment");
    c.premiums
        .refund_premium_payment(RefundPremiumPaymentRequest {
            request_id: "refund".into(),
            payment_id: paid.payment_id,
            reason: "enrollment cancelled".into(),
        })
        .await
        .expect("refund");
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
