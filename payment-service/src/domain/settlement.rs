//! Settlement between regions (清算, S1) and the ledger's invariants (S2).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use gongji_shared::RegionCode;
use sha2::{Digest, Sha256};

use super::{MovementKind, SettlementPurpose};

/// One account-side entry of a settled movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledEntry {
    pub entry_id: i64,
    pub movement_id: String,
    pub kind: MovementKind,
    /// The account's region: money leaves its employee fund.
    pub source: RegionCode,
    /// The beneficiary's region.
    pub destination: RegionCode,
    pub purpose: SettlementPurpose,
    /// As posted: negative for a payment, positive for a refund.
    pub amount_fen: i64,
}

/// Totals for one source region, destination region and purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub source: RegionCode,
    pub destination: RegionCode,
    pub purpose: SettlementPurpose,
    pub gross_fen: i64,
    pub refunded_fen: i64,
    pub payment_count: i64,
    pub refund_count: i64,
}

impl Line {
    /// Gross less refunds.
    pub fn net_fen(&self) -> i64 {
        self.gross_fen - self.refunded_fen
    }
}

/// The settlement of one business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub business_date: NaiveDate,
    pub lines: Vec<Line>,
    pub movement_count: i64,
    /// Hex SHA-256 over the settled entries in entry order.
    pub digest: String,
}

/// Aggregates a day's entries: lines ordered by source region, destination region and
/// purpose name (as stored lines are read back), refunds netted, and a digest that the
/// same entries always reproduce.
pub fn settle(business_date: NaiveDate, entries: &[SettledEntry]) -> Settlement {
    let mut sorted: Vec<&SettledEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.entry_id);
    let mut hasher = Sha256::new();
    hasher.update(format!("gongji-settlement-v1|{business_date}\n"));
    type Key = (RegionCode, RegionCode, SettlementPurpose);
    let mut lines: BTreeMap<Key, (Line, Vec<&str>, Vec<&str>)> = BTreeMap::new();
    let mut movements: Vec<&str> = Vec::new();
    for e in &sorted {
        hasher.update(format!(
            "{}|{}|{}|{}|{}|{}|{}\n",
            e.entry_id,
            e.movement_id,
            e.kind.as_str(),
            e.source,
            e.destination,
            e.purpose.as_str(),
            e.amount_fen
        ));
        movements.push(&e.movement_id);
        let key = (e.source.clone(), e.destination.clone(), e.purpose);
        let (line, payments, refunds) = lines.entry(key).or_insert_with(|| {
            (
                Line {
                    source: e.source.clone(),
                    destination: e.destination.clone(),
                    purpose: e.purpose,
                    gross_fen: 0,
                    refunded_fen: 0,
                    payment_count: 0,
                    refund_count: 0,
                },
                Vec::new(),
                Vec::new(),
            )
        });
        if e.kind == MovementKind::Refund {
            line.refunded_fen += e.amount_fen;
            refunds.push(&e.movement_id);
        } else {
            line.gross_fen -= e.amount_fen;
            payments.push(&e.movement_id);
        }
    }
    movements.sort_unstable();
    movements.dedup();
    let mut lines: Vec<Line> = lines
        .into_values()
        .map(|(mut line, mut payments, mut refunds)| {
            payments.sort_unstable();
            payments.dedup();
            refunds.sort_unstable();
            refunds.dedup();
            line.payment_count = i64::try_from(payments.len()).unwrap_or(i64::MAX);
            line.refund_count = i64::try_from(refunds.len()).unwrap_or(i64::MAX);
            line
        })
        .collect();
    // The one documented order, the same as stored lines are read back in.
    lines.sort_by(|a, b| {
        (&a.source, &a.destination, a.purpose.as_str()).cmp(&(
            &b.source,
            &b.destination,
            b.purpose.as_str(),
        ))
    });
    Settlement {
        business_date,
        lines,
        movement_count: i64::try_from(movements.len()).unwrap_or(i64::MAX),
        digest: hex::encode(hasher.finalize()),
    }
}

/// What the store measured of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFacts {
    /// Accounts whose cached balance differs from the sum of their entries, per bucket.
    pub balances_off: Vec<String>,
    /// Buckets below zero.
    pub negative_balances: Vec<String>,
    /// Movements whose postings do not sum to zero.
    pub unbalanced_movements: Vec<String>,
    /// All debits of payments (premiums and medical expenses), in fen.
    pub payment_debits_fen: i64,
    /// Refunds of payments, in fen.
    pub refunds_fen: i64,
    /// Gross and refunded totals of every settlement.
    pub settled_gross_fen: i64,
    pub settled_refunded_fen: i64,
    /// Debits and refunds of movements not settled yet.
    pub unsettled_debits_fen: i64,
    pub unsettled_refunds_fen: i64,
    /// Beneficiary-years with more than one paid premium.
    pub duplicate_premiums: Vec<String>,
    /// Settled days whose entries no longer reproduce the stored digest.
    pub digests_off: Vec<String>,
    /// Accounts whose statement of the current year does not reconcile with their entries
    /// and balances.
    pub statements_off: Vec<String>,
}

/// How far one of VerifyLedger's sweeps has gone: each call checks the next bounded page of
/// accounts, of movements, of premium payments and of settled days, after these positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep<T> {
    /// Not started: from the first.
    Start,
    /// Checked up to and including this position.
    After(T),
    /// Every row checked.
    Done,
}

impl<T> Sweep<T> {
    pub fn is_done(&self) -> bool {
        matches!(self, Sweep::Done)
    }

    /// The position after which the next page starts, or `start` for the first page.
    pub fn after_or(&self, start: T) -> T
    where
        T: Clone,
    {
        match self {
            Sweep::After(t) => t.clone(),
            Sweep::Start | Sweep::Done => start,
        }
    }

    /// Where the sweep stands after a page of `got` rows (of at most `limit`) ending at `last`.
    pub fn next(got: usize, limit: usize, last: Option<T>) -> Self {
        match last {
            Some(last) if got >= limit => Sweep::After(last),
            _ => Sweep::Done,
        }
    }
}

/// Where a VerifyLedger pass stands: one position per sweep. Accounts go by their number
/// (never their holder's ID number, which the cursor would carry to the caller), movements by
/// ID, premium payments by position, settled days by date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCursor {
    pub accounts: Sweep<i64>,
    pub movements: Sweep<String>,
    pub premiums: Sweep<i64>,
    pub days: Sweep<NaiveDate>,
}

impl VerifyCursor {
    /// A pass from the beginning.
    pub fn start() -> Self {
        Self {
            accounts: Sweep::Start,
            movements: Sweep::Start,
            premiums: Sweep::Start,
            days: Sweep::Start,
        }
    }

    /// Whether every sweep is done: the pass is complete.
    pub fn is_done(&self) -> bool {
        self.accounts.is_done()
            && self.movements.is_done()
            && self.premiums.is_done()
            && self.days.is_done()
    }
}

/// Rows one VerifyLedger call checks at most, per sweep: its work and memory stay bounded
/// whatever the size of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyLimits {
    pub accounts: usize,
    pub movements: usize,
    pub premiums: usize,
    pub days: usize,
}

impl VerifyLimits {
    /// Most accounts whose balances one call sums.
    pub const ACCOUNTS: usize = 2_000;
    /// Most movements whose postings one call sums.
    pub const MOVEMENTS: usize = 5_000;
    /// Most premium payments one call checks for a second payment.
    pub const PREMIUMS: usize = 5_000;

    /// The standard pages, with `days` settled days.
    pub fn with_days(days: usize) -> Self {
        Self {
            accounts: Self::ACCOUNTS,
            movements: Self::MOVEMENTS,
            premiums: Self::PREMIUMS,
            days,
        }
    }
}

/// The checks VerifyLedger runs, in order.
pub const CHECKS: [&str; 7] = [
    "BALANCE_EQUALS_ENTRIES",
    "NO_NEGATIVE_BALANCE",
    "DEBITS_EQUAL_CREDITS",
    "SETTLED_PLUS_UNSETTLED_EQUALS_ALL",
    "ONE_PREMIUM_PER_BENEFICIARY_AND_YEAR",
    "SETTLEMENT_DIGESTS_REPRODUCE",
    "STATEMENTS_RECONCILE",
];

/// Turns the facts into (check, detail) violations; empty when the ledger is sound.
pub fn verify(f: &LedgerFacts) -> Vec<(&'static str, String)> {
    let mut violations = Vec::new();
    let list = |check: &'static str,
                items: &[String],
                what: &str,
                out: &mut Vec<(&'static str, String)>| {
        out.extend(items.iter().map(|i| (check, format!("{what} {i}"))));
    };
    list(
        CHECKS[0],
        &f.balances_off,
        "balance differs from its entries:",
        &mut violations,
    );
    list(
        CHECKS[1],
        &f.negative_balances,
        "negative balance:",
        &mut violations,
    );
    list(
        CHECKS[2],
        &f.unbalanced_movements,
        "postings do not sum to zero: movement",
        &mut violations,
    );
    if f.settled_gross_fen + f.unsettled_debits_fen != f.payment_debits_fen
        || f.settled_refunded_fen + f.unsettled_refunds_fen != f.refunds_fen
    {
        violations.push((
            CHECKS[3],
            format!(
                "debits {} != settled {} + unsettled {}; refunds {} != settled {} + unsettled {}",
                f.payment_debits_fen,
                f.settled_gross_fen,
                f.unsettled_debits_fen,
                f.refunds_fen,
                f.settled_refunded_fen,
                f.unsettled_refunds_fen
            ),
        ));
    }
    list(
        CHECKS[4],
        &f.duplicate_premiums,
        "more than one premium:",
        &mut violations,
    );
    list(
        CHECKS[5],
        &f.digests_off,
        "digest no longer reproduces for",
        &mut violations,
    );
    list(
        CHECKS[6],
        &f.statements_off,
        "this year's statement does not reconcile:",
        &mut violations,
    );
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        id: i64,
        movement: &str,
        kind: MovementKind,
        source: &str,
        amount: i64,
    ) -> SettledEntry {
        SettledEntry {
            entry_id: id,
            movement_id: movement.into(),
            kind,
            source: RegionCode::parse(source).unwrap(),
            destination: RegionCode::parse("340500").unwrap(),
            purpose: SettlementPurpose::Premium,
            amount_fen: amount,
        }
    }

    fn day() -> NaiveDate {
        "2024-11-15".parse().unwrap()
    }

    #[test]
    fn lines_net_refunds_and_count_movements() {
        let entries = [
            entry(1, "a", MovementKind::Premium, "340500", -30_000),
            entry(2, "a", MovementKind::Premium, "340500", -10_000),
            entry(3, "b", MovementKind::Premium, "340500", -40_000),
            entry(4, "c", MovementKind::Refund, "340500", 40_000),
            entry(5, "d", MovementKind::Premium, "340100", -40_000),
        ];
        let s = settle(day(), &entries);
        assert_eq!(s.movement_count, 4);
        assert_eq!(s.lines.len(), 2);
        let hefei = &s.lines[0];
        assert_eq!((hefei.source.as_str(), hefei.gross_fen), ("340100", 40_000));
        let maanshan = &s.lines[1];
        assert_eq!(
            (
                maanshan.gross_fen,
                maanshan.refunded_fen,
                maanshan.net_fen()
            ),
            (80_000, 40_000, 40_000)
        );
        assert_eq!((maanshan.payment_count, maanshan.refund_count), (2, 1));
    }

    #[test]
    fn the_digest_is_reproducible_and_order_independent_but_content_sensitive() {
        let a = [
            entry(1, "a", MovementKind::Premium, "340500", -100),
            entry(2, "b", MovementKind::Premium, "340500", -200),
        ];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(settle(day(), &a).digest, settle(day(), &b).digest);
        let mut c = a.clone();
        c[1].amount_fen = -201;
        assert_ne!(settle(day(), &a).digest, settle(day(), &c).digest);
    }

    #[test]
    fn a_sound_ledger_has_no_violations_and_a_gap_is_reported() {
        let sound = LedgerFacts {
            payment_debits_fen: 100,
            settled_gross_fen: 60,
            unsettled_debits_fen: 40,
            ..Default::default()
        };
        assert!(verify(&sound).is_empty());
        let gap = LedgerFacts {
            unsettled_debits_fen: 39,
            ..sound
        };
        assert_eq!(verify(&gap)[0].0, "SETTLED_PLUS_UNSETTLED_EQUALS_ALL");
    }
}
