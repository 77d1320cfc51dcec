//! Many debits racing for a few accounts: no account is ever overdrawn, every balance
//! equals its entries and what the callers were told, and the ledger verifies clean. And
//! registry changes racing new bindings: no binding outlives the enrollment it depends on.

use std::collections::HashMap;

use gongji_proto::{
    binding::v1::{BindingState, EnrollmentStatus, GetBindingRequest, UpsertInsuredPersonRequest},
    payment::v1::{
        GetAccountRequest, InstitutionKind, PayMedicalExpenseRequest, VerifyLedgerRequest,
    },
};
use rust_decimal::Decimal;
use tonic::Code;

use crate::{
    binding, both_backends, fixtures,
    payment::pay,
    support::{Backend, Clients, IN_WINDOW, TestEnv},
};

both_backends!(
    two_hundred_concurrent_debits_never_overdraw,
    no_binding_survives_a_termination_that_races_it,
    concurrent_checks_each_answer_their_own_pair,
);

const PAYERS: u32 = 4;
/// The default policy's beneficiary cap.
const CHILDREN_PER_PAYER: u32 = 6;
const DEBITS: usize = 200;
const FUNDS: &str = "2000.00";

enum Debit {
    Premium {
        payer: String,
        child: String,
        n: usize,
    },
    Medical {
        payer: String,
        child: String,
        n: usize,
    },
}

/// Registers a payer (employee-insured, account funded with `funds`) of birth sequence
/// `payer`, and a child of each sequence in `children` bound to them: the payer's ID number,
/// and each child's with its binding's ID.
async fn payer_with_children(
    c: &mut Clients,
    payer: u32,
    children: impl Iterator<Item = u32>,
    funds: &str,
) -> (String, Vec<(String, String)>) {
    let payer = fixtures::id_number("19800101", payer);
    fixtures::register(c, fixtures::person(&payer, "付款人", Some("340500"), None)).await;
    fixtures::fund(c, &payer, funds).await;
    let mut bound = Vec::new();
    for k in children {
        let child = fixtures::id_number("20120101", k);
        fixtures::register(c, fixtures::person(&child, "孩子", None, Some("340500"))).await;
        let mut bind = fixtures::bind_child(&fixtures::opaque("bind"), &child, "孩子");
        bind.authorizer_id_number = payer.clone();
        let binding = c
            .bindings
            .create_binding(bind)
            .await
            .expect("bind")
            .into_inner()
            .binding
            .expect("binding");
        bound.push((child, binding.binding_id));
    }
    (payer, bound)
}

async fn two_hundred_concurrent_debits_never_overdraw(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let mut families = Vec::new();
    for p in 1..=PAYERS {
        let children = (1..=CHILDREN_PER_PAYER).map(|k| 200 + p * 10 + k);
        let (payer, bound) = payer_with_children(&mut c, 100 + p, children, FUNDS).await;
        families.extend(bound.into_iter().map(|(child, _)| (payer.clone(), child)));
    }

    // One premium per child, the rest medical expenses, spread over the families.
    let debits: Vec<Debit> = (0..DEBITS)
        .map(|n| {
            let (payer, child) = families[n % families.len()].clone();
            if n < families.len() {
                Debit::Premium { payer, child, n }
            } else {
                Debit::Medical { payer, child, n }
            }
        })
        .collect();
    let tasks: Vec<_> = debits
        .into_iter()
        .map(|debit| {
            let mut c = c.clone();
            tokio::spawn(async move {
                match debit {
                    Debit::Premium { payer, child, n } => {
                        let result = c
                            .premiums
                            .pay_premium(pay(&format!("premium-{n}"), &payer, &child, 2025))
                            .await;
                        let taken = result.map(|r| {
                            r.into_inner()
                                .payment
                                .expect("payment")
                                .quote
                                .expect("quote")
                                .account_part
                        });
                        (payer, taken)
                    }
                    Debit::Medical { payer, child, n } => {
                        let result = c
                            .medical
                            .pay_medical_expense(PayMedicalExpenseRequest {
                                request_id: format!("medical-{n}"),
                                beneficiary_id_number: child,
                                family_account_holder_id_number: payer.clone(),
                                institution_code: "P340500009".into(),
                                institution_kind: InstitutionKind::Pharmacy as i32,
                                amount: "37.00".into(),
                            })
                            .await;
                        let taken = result.map(|r| {
                            let payment = r.into_inner().payment.expect("payment");
                            payment
                                .family_account_draws
                                .iter()
                                .map(|d| d.amount.parse::<Decimal>().expect("amount"))
                                .sum::<Decimal>()
                                .to_string()
                        });
                        (payer, taken)
                    }
                }
            })
        })
        .collect();

    let mut told: HashMap<String, Decimal> = HashMap::new();
    let mut succeeded = 0;
    for task in tasks {
        let (payer, taken) = task.await.expect("task");
        match taken {
            Ok(amount) => {
                succeeded += 1;
                *told.entry(payer).or_default() += amount.parse::<Decimal>().expect("amount");
            }
            Err(status) => assert!(
                matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists
                ),
                "an unexpected failure: {status:?}"
            ),
        }
    }
    assert!(succeeded > 0);
    assert!(
        succeeded < DEBITS,
        "the accounts ran dry, so some debits were refused"
    );

    let funds: Decimal = FUNDS.parse().expect("funds");
    for (payer, _) in families.iter().step_by(CHILDREN_PER_PAYER as usize) {
        let account = c
            .accounts
            .get_account(GetAccountRequest {
                holder_id_number: payer.clone(),
            })
            .await
            .expect("account")
            .into_inner()
            .account
            .expect("account");
        let balance: Decimal = account.prior_years_balance.parse().expect("balance");
        assert!(balance >= Decimal::ZERO, "never overdrawn");
        let spent = told.get(payer).copied().unwrap_or_default();
        assert_eq!(
            balance,
            funds - spent,
            "the balance is what the callers were told"
        );
    }
    let report = c
        .settlement
        .verify_ledger(VerifyLedgerRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    env.finish().await;
}

/// Rounds of a binding application racing its authorizer's termination.
const RACES: u32 = 24;

async fn no_binding_survives_a_termination_that_races_it(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    let mut pairs = Vec::new();
    for round in 0..RACES {
        let payer = fixtures::id_number("19800101", 300 + round);
        let child = fixtures::id_number("20120101", 300 + round);
        fixtures::register(
            &mut c,
            fixtures::person(&payer, "付款人", Some("340500"), None),
        )
        .await;
        fixtures::register(
            &mut c,
            fixtures::person(&child, "孩子", None, Some("340500")),
        )
        .await;
        fixtures::fund(&mut c, &payer, "100.00").await;
        pairs.push((payer, child));
    }
    let mut created = 0;
    for (round, (payer, child)) in pairs.iter().enumerate() {
        let mut bind_client = c.clone();
        let mut sync_client = c.clone();
        let mut bind = fixtures::bind_child(&fixtures::opaque("race-bind"), child, "孩子");
        bind.authorizer_id_number = payer.clone();
        let mut terminated = fixtures::person(payer, "付款人", Some("340500"), None);
        if let Some(e) = terminated.employee_enrollment.as_mut() {
            e.status = EnrollmentStatus::Terminated as i32;
        }
        // Stagger the termination across the application's path, round by round.
        let delay_ms = (round % 8) as u64;
        let (binding, sync) = tokio::join!(bind_client.bindings.create_binding(bind), async {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            sync_client
                .registry
                .upsert_insured_person(UpsertInsuredPersonRequest {
                    request_id: fixtures::opaque("race-terminate"),
                    person: Some(terminated),
                })
                .await
        });
        sync.expect("the registry change always lands");
        let Ok(binding) = binding else { continue };
        created += 1;
        let id = binding.into_inner().binding.expect("binding").binding_id;
        let now = c
            .bindings
            .get_binding(GetBindingRequest { binding_id: id })
            .await
            .expect("binding")
            .into_inner()
            .binding
            .expect("binding");
        assert_eq!(
            now.state,
            BindingState::Ended as i32,
            "round {round}: a binding created beside the termination is ended by it"
        );
    }
    // Either may win a round; some applications must have won for the check to mean anything.
    assert!(created > 0, "no application won a round");
    env.finish().await;
}

/// Times each pair is checked at once.
const CHECKS_PER_PAIR: usize = 4;

/// Checks asked at the same moment may be read together (PostgreSQL reads them in one
/// statement): each caller still gets its own pair's answer, binding and beneficiary.
async fn concurrent_checks_each_answer_their_own_pair(backend: Backend) {
    let Some(env) = TestEnv::start(backend, IN_WINDOW).await else {
        return;
    };
    let mut c = env.clients_owned();
    // Two payers with three children each; a stranger nobody registered.
    let mut payers = Vec::new();
    let mut children = Vec::new();
    let mut bound = HashMap::new();
    for p in 0..2u32 {
        let (payer, own) =
            payer_with_children(&mut c, 400 + p, (0..3).map(|k| 400 + p * 10 + k), "100.00").await;
        for (child, binding_id) in own {
            bound.insert((payer.clone(), child.clone()), binding_id);
            children.push(child);
        }
        payers.push(payer);
    }
    let stranger = fixtures::id_number("20120101", 499);
    children.push(stranger.clone());

    // Every payer with every child, each several times, all at once.
    let mut pairs = Vec::new();
    for payer in &payers {
        for child in &children {
            for _ in 0..CHECKS_PER_PAIR {
                pairs.push((payer.clone(), child.clone()));
            }
        }
    }
    let tasks: Vec<_> = pairs
        .into_iter()
        .map(|(payer, child)| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let answer = binding::check(&mut c, &payer, &child).await;
                (payer, child, answer)
            })
        })
        .collect();
    for task in tasks {
        let (payer, child, answer) = task.await.expect("task");
        let denials = binding::denials(&answer);
        match bound.get(&(payer.clone(), child.clone())) {
            Some(binding_id) => {
                assert!(answer.authorized, "{payer} for {child}: {denials:?}");
                assert_eq!(&answer.binding_id, binding_id, "the pair's own binding");
            }
            None if child == stranger => {
                assert_eq!(
                    denials,
                    ["BINDING_NOT_FOUND", "PERSON_NOT_FOUND"],
                    "{payer} for {child}"
                );
            }
            None => {
                assert_eq!(denials, ["BINDING_NOT_FOUND"], "{payer} for {child}");
                assert!(answer.binding_id.is_empty());
            }
        }
        assert_eq!(
            answer.authorizer_region_code, "340500",
            "{payer} is registered"
        );
        match answer.beneficiary {
            Some(beneficiary) => {
                assert_eq!(beneficiary.id_number, child, "the pair's own beneficiary")
            }
            None => assert_eq!(child, stranger),
        }
    }
    env.finish().await;
}
