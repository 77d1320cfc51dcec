//! The yearly statement of a personal account (年度对账单): opening balances per bucket, what
//! came in and went out in the year by kind, family usage per beneficiary and purpose, year
//! closings, and closing balances. Built from the account's entries alone, so it reconciles
//! with them by construction; [`Statement::reconciles`] says whether it does.

use std::collections::BTreeMap;

use gongji_shared::{IdNumber, policy::Bucket, policy::Purpose};

use super::{MovementKind, usage::UseKind};

/// The sum of a group of one account's entries, as the store reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRow {
    pub bucket: Bucket,
    pub kind: MovementKind,
    /// Whether the entries' business days fall in the year (else before it).
    pub in_year: bool,
    /// For a family debit from the account, or its refund: its kind, purpose and whom it
    /// was for.
    pub family: Option<(UseKind, Purpose, IdNumber)>,
    /// For a year closing: the year it closed.
    pub closed_year: Option<i32>,
    /// Signed fen.
    pub amount_fen: i64,
}

/// Both buckets' balances (fen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub current_fen: i64,
    pub prior_fen: i64,
}

impl Balances {
    fn add(&mut self, bucket: Bucket, fen: i64) {
        match bucket {
            Bucket::CurrentYear => self.current_fen += fen,
            Bucket::PriorYears => self.prior_fen += fen,
        }
    }

    pub fn total_fen(&self) -> i64 {
        self.current_fen + self.prior_fen
    }
}

/// What the account paid for one family member for one purpose in the year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyLine {
    pub debited_fen: i64,
    pub refunded_fen: i64,
}

/// The yearly statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    pub opening: Balances,
    /// Contributions and transfers in.
    pub credits_fen: i64,
    /// The holder's own medical expenses (positive: money out).
    pub own_spending_fen: i64,
    /// Family debits per beneficiary and purpose.
    pub family: BTreeMap<(IdNumber, Purpose), FamilyLine>,
    /// Every refund into the account (family ones are also in their line's refunded_fen).
    pub refunds_fen: i64,
    /// Year closings in the year: the year each closed, and what moved from current-year to
    /// prior-years.
    pub closings: BTreeMap<i32, i64>,
    pub closing: Balances,
    /// What the year closings changed in total: zero, as they only move between buckets.
    closings_net_fen: i64,
}

impl Statement {
    /// The statement of the rows of one account.
    pub fn of(rows: &[StatementRow]) -> Self {
        let mut s = Self::default();
        for row in rows {
            if !row.in_year {
                s.opening.add(row.bucket, row.amount_fen);
                continue;
            }
            match (row.kind, &row.family) {
                (MovementKind::Credit, _) => s.credits_fen += row.amount_fen,
                (
                    MovementKind::Premium
                    | MovementKind::MedicalExpense
                    | MovementKind::WalletTransfer,
                    Some((_, purpose, who)),
                ) => {
                    s.family
                        .entry((who.clone(), *purpose))
                        .or_default()
                        .debited_fen -= row.amount_fen;
                }
                (
                    MovementKind::Premium
                    | MovementKind::MedicalExpense
                    | MovementKind::WalletTransfer,
                    None,
                ) => {
                    s.own_spending_fen -= row.amount_fen;
                }
                (MovementKind::Refund, family) => {
                    s.refunds_fen += row.amount_fen;
                    if let Some((_, purpose, who)) = family {
                        s.family
                            .entry((who.clone(), *purpose))
                            .or_default()
                            .refunded_fen += row.amount_fen;
                    }
                }
                (MovementKind::CloseYear, _) => {
                    s.closings_net_fen += row.amount_fen;
                    if row.bucket == Bucket::PriorYears {
                        *s.closings
                            .entry(row.closed_year.unwrap_or_default())
                            .or_default() += row.amount_fen;
                    }
                }
            }
        }
        s.closing = s.opening;
        for row in rows.iter().filter(|r| r.in_year) {
            s.closing.add(row.bucket, row.amount_fen);
        }
        s
    }

    /// All family debits of the year.
    pub fn family_debited_fen(&self) -> i64 {
        self.family.values().map(|l| l.debited_fen).sum()
    }

    /// Whether the year's flows, by kind, take the opening balances to the closing ones (every
    /// entry counted once), year closings only move money between the buckets, and the
    /// closing balances are `balances` (the account's own, when the statement runs to its last
    /// entry).
    pub fn reconciles(&self, balances: Option<Balances>) -> bool {
        let flows =
            self.credits_fen + self.refunds_fen - self.own_spending_fen - self.family_debited_fen();
        self.opening.total_fen() + flows == self.closing.total_fen()
            && self.closings_net_fen == 0
            && balances.is_none_or(|b| b == self.closing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> IdNumber {
        IdNumber::parse(s).unwrap()
    }

    fn row(bucket: Bucket, kind: MovementKind, in_year: bool, amount_fen: i64) -> StatementRow {
        StatementRow {
            bucket,
            kind,
            in_year,
            family: None,
            closed_year: None,
            amount_fen,
        }
    }

    #[test]
    fn a_year_of_every_kind_reconciles() {
        let child = id("340504201801100012");
        let family = |kind, amount_fen| StatementRow {
            family: Some((kind, Purpose::Premium, child.clone())),
            ..row(
                Bucket::PriorYears,
                if kind == UseKind::Debit {
                    MovementKind::Premium
                } else {
                    MovementKind::Refund
                },
                true,
                amount_fen,
            )
        };
        let rows = vec![
            row(Bucket::PriorYears, MovementKind::Credit, false, 100_000),
            row(Bucket::CurrentYear, MovementKind::Credit, true, 5_000),
            family(UseKind::Debit, -40_000),
            family(UseKind::Refund, 40_000),
            family(UseKind::Debit, -40_000),
            row(
                Bucket::CurrentYear,
                MovementKind::MedicalExpense,
                true,
                -1_000,
            ),
            StatementRow {
                closed_year: Some(2024),
                ..row(Bucket::CurrentYear, MovementKind::CloseYear, true, -4_000)
            },
            StatementRow {
                closed_year: Some(2024),
                ..row(Bucket::PriorYears, MovementKind::CloseYear, true, 4_000)
            },
        ];
        let s = Statement::of(&rows);
        assert_eq!(s.opening.total_fen(), 100_000);
        assert_eq!(
            (s.credits_fen, s.own_spending_fen, s.refunds_fen),
            (5_000, 1_000, 40_000)
        );
        assert_eq!(
            s.family[&(child.clone(), Purpose::Premium)],
            FamilyLine {
                debited_fen: 80_000,
                refunded_fen: 40_000
            }
        );
        assert_eq!(s.closings[&2024], 4_000);
        assert_eq!(
            s.closing,
            Balances {
                current_fen: 0,
                prior_fen: 64_000
            }
        );
        assert!(s.reconciles(Some(s.closing)));
        assert!(!s.reconciles(Some(Balances {
            current_fen: 1,
            prior_fen: 64_000
        })));
    }
}
