//! The authorization fence (P1: "an ACTIVE binding at the moment of debit").
//!
//! A family debit happens in three steps across two databases: payment-service reserves the
//! amount as a [`Hold`]; binding-service authorizes the use and records it under the lock a
//! revocation takes; payment-service posts the hold as the debit. A denial voids the hold; a
//! hold never posted expires. So every debit that commits was authorized while the binding
//! was active, and once a revocation has committed no new use, hence no new debit, can be
//! taken. [`reconcile`] checks the two records against each other afterwards.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use gongji_shared::{IdNumber, Money, policy::Purpose};

use super::split::Draw;

/// An amount reserved on an account for one family debit, before binding-service is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The movement the hold becomes when posted; binding-service records the use under it.
    pub movement_id: String,
    pub holder: IdNumber,
    /// What the debit will take, bucket by bucket.
    pub draws: Vec<Draw>,
    pub purpose: Purpose,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    /// After this the hold reserves nothing and can no longer be posted.
    pub expire_time: DateTime<Utc>,
    /// The authorizer's limits the hold must keep within, if any apply.
    pub cap: Option<LimitCap>,
}

/// The limits a family debit keeps within: of one binding, counted over the periods holding
/// `today` (Asia/Shanghai).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCap {
    pub binding_id: String,
    pub limits: gongji_shared::domain::limits::FamilyLimits,
    pub today: chrono::NaiveDate,
}

impl Hold {
    /// A hold of `draws` from `at`, for `timeout_ms`.
    pub fn new(
        movement_id: &str,
        holder: &IdNumber,
        draws: &[Draw],
        purpose: Purpose,
        request_id: &str,
        at: DateTime<Utc>,
        timeout_ms: u64,
    ) -> Self {
        let timeout = Duration::milliseconds(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        Self {
            movement_id: movement_id.to_owned(),
            holder: holder.clone(),
            draws: draws.to_vec(),
            purpose,
            request_id: request_id.to_owned(),
            create_time: at,
            expire_time: at.checked_add_signed(timeout).unwrap_or(at),
            cap: None,
        }
    }

    /// The hold, kept within `cap`.
    pub fn within(self, cap: Option<LimitCap>) -> Self {
        Self { cap, ..self }
    }

    /// The whole amount held.
    pub fn amount(&self) -> Money {
        self.draws
            .iter()
            .map(|d| d.amount)
            .fold(Money::ZERO, |sum, a| sum.checked_add(a).unwrap_or(sum))
    }
}

/// The binding binding-service authorized a use under: what the posted debit records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub movement_id: String,
    pub binding_id: String,
    pub binding_version: i64,
    /// When the debit is written: the hold must not have expired by then.
    pub at: DateTime<Utc>,
}

/// What became of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Reserved, not yet posted or voided, and not expired.
    Live,
    Posted,
    /// Voided after a denial or a failure, or expired unposted.
    Gone,
}

/// One use binding-service recorded for a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUse {
    pub movement_id: String,
    pub binding_id: String,
    pub binding_version: i64,
    pub amount: Money,
}

/// One family debit as this service recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyDebit {
    pub movement_id: String,
    pub amount: Money,
}

/// Both records of one binding, compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub debits_checked: u32,
    pub uses_checked: u32,
    /// Family debits binding-service recorded no use for (or one of another amount).
    pub debits_without_use: Vec<String>,
    /// Uses whose hold was voided or expired, or is unknown here: authorized, never debited.
    pub uses_without_debit: Vec<String>,
    /// Uses whose hold is still live: the payment is in flight; checked next time.
    pub in_flight: Vec<String>,
}

impl Reconciliation {
    /// Whether every debit has its use and every settled use its debit.
    pub fn is_clean(&self) -> bool {
        self.debits_without_use.is_empty() && self.uses_without_debit.is_empty()
    }
}

/// Compares a binding's family debits with its recorded uses. `hold` tells what became of
/// the hold of a use that has no debit.
pub fn reconcile(
    debits: &[FamilyDebit],
    uses: &[RecordedUse],
    hold: impl Fn(&str) -> Option<HoldState>,
) -> Reconciliation {
    let used: BTreeMap<&str, Money> = uses
        .iter()
        .map(|u| (u.movement_id.as_str(), u.amount))
        .collect();
    let debited: BTreeSet<&str> = debits.iter().map(|d| d.movement_id.as_str()).collect();
    let mut report = Reconciliation {
        debits_checked: u32::try_from(debits.len()).unwrap_or(u32::MAX),
        uses_checked: u32::try_from(uses.len()).unwrap_or(u32::MAX),
        ..Reconciliation::default()
    };
    for debit in debits {
        if used.get(debit.movement_id.as_str()) != Some(&debit.amount) {
            report.debits_without_use.push(debit.movement_id.clone());
        }
    }
    for u in uses {
        if debited.contains(u.movement_id.as_str()) {
            continue;
        }
        match hold(&u.movement_id) {
            Some(HoldState::Live) => report.in_flight.push(u.movement_id.clone()),
            _ => report.uses_without_debit.push(u.movement_id.clone()),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use gongji_shared::policy::Bucket;

    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn debit(id: &str, amount: &str) -> FamilyDebit {
        FamilyDebit {
            movement_id: id.to_owned(),
            amount: money(amount),
        }
    }

    fn used(id: &str, amount: &str) -> RecordedUse {
        RecordedUse {
            movement_id: id.to_owned(),
            binding_id: "b-1".to_owned(),
            binding_version: 1,
            amount: money(amount),
        }
    }

    #[test]
    fn a_hold_expires_after_its_timeout_and_holds_its_draws() {
        let at = DateTime::parse_from_rfc3339("2025-03-01T10:00:00+08:00")
            .unwrap()
            .to_utc();
        let draws = [
            Draw {
                bucket: Bucket::PriorYears,
                amount: money("300.00"),
            },
            Draw {
                bucket: Bucket::CurrentYear,
                amount: money("100.50"),
            },
        ];
        let id = IdNumber::parse("11010519491231002X").unwrap();
        let hold = Hold::new("m-1", &id, &draws, Purpose::Premium, "r-1", at, 30_000);
        assert_eq!(hold.expire_time - hold.create_time, Duration::seconds(30));
        assert_eq!(hold.amount().to_string(), "400.50");
    }

    #[test]
    fn matching_records_are_clean() {
        let report = reconcile(
            &[debit("m-1", "10.00"), debit("m-2", "20.00")],
            &[used("m-2", "20.00"), used("m-1", "10.00")],
            |_| None,
        );
        assert!(report.is_clean(), "{report:?}");
        assert_eq!((report.debits_checked, report.uses_checked), (2, 2));
    }

    #[test]
    fn a_debit_without_its_use_or_with_another_amount_is_reported() {
        let report = reconcile(
            &[debit("m-1", "10.00"), debit("m-2", "20.00")],
            &[used("m-2", "25.00")],
            |_| None,
        );
        assert_eq!(report.debits_without_use, ["m-1", "m-2"]);
        assert!(!report.is_clean());
    }

    #[test]
    fn a_use_without_a_debit_is_reported_once_its_hold_is_gone_not_while_live() {
        let report = reconcile(&[], &[used("m-1", "10.00"), used("m-2", "10.00")], |id| {
            Some(if id == "m-1" {
                HoldState::Live
            } else {
                HoldState::Gone
            })
        });
        assert_eq!(report.in_flight, ["m-1"]);
        assert_eq!(report.uses_without_debit, ["m-2"]);
        let unknown = reconcile(&[], &[used("m-3", "1.00")], |_| None);
        assert_eq!(unknown.uses_without_debit, ["m-3"]);
    }
}
