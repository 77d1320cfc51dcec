//! Accounts and the double-entry ledger.
//!
//! Every movement writes entries that sum to zero: the personal-account side (per bucket)
//! and, for money entering or leaving the accounts, a fund side (the region's contribution
//! source, resident premium fund, designated institutions). A bucket's balance is the sum
//! of its entries; the stored balance is a cache the store keeps equal in the same
//! transaction, with a CHECK that it never goes below zero. Fund totals come from the
//! entries only: there is no fund-balance row for every payment to update.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{IdNumber, Money, RegionCode, policy::Bucket};

/// A personal account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub holder: IdNumber,
    pub region: RegionCode,
    pub current_year: Money,
    pub prior_years: Money,
    pub open_time: DateTime<Utc>,
}

impl Account {
    /// A bucket's balance.
    pub fn balance(&self, bucket: Bucket) -> Money {
        match bucket {
            Bucket::CurrentYear => self.current_year,
            Bucket::PriorYears => self.prior_years,
        }
    }

    /// The sum of the given buckets.
    pub fn usable(&self, buckets: &[Bucket]) -> Money {
        buckets.iter().fold(Money::ZERO, |sum, b| {
            sum.checked_add(self.balance(*b)).unwrap_or(sum)
        })
    }

    /// The book of one of its buckets.
    pub fn book(&self, bucket: Bucket) -> Book {
        Book::Personal {
            holder: self.holder.clone(),
            bucket,
            region: self.region.clone(),
        }
    }
}

/// What a movement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    Credit,
    Premium,
    MedicalExpense,
    Refund,
    CloseYear,
    /// Into a relative's family wallet in another province (U4).
    WalletTransfer,
}

impl MovementKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "CREDIT",
            Self::Premium => "PREMIUM",
            Self::MedicalExpense => "MEDICAL_EXPENSE",
            Self::Refund => "REFUND",
            Self::CloseYear => "CLOSE_YEAR",
            Self::WalletTransfer => "WALLET_TRANSFER",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Credit,
            Self::Premium,
            Self::MedicalExpense,
            Self::Refund,
            Self::CloseYear,
            Self::WalletTransfer,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What settled money was for (S1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettlementPurpose {
    /// Into the resident fund of the beneficiary's region.
    Premium,
    /// To institutions in the beneficiary's region.
    MedicalExpense,
    /// To the outbound inter-province fund of the beneficiary's province (U4).
    FamilyWallet,
}

impl SettlementPurpose {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Premium => "PREMIUM",
            Self::MedicalExpense => "MEDICAL_EXPENSE",
            Self::FamilyWallet => "FAMILY_WALLET",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PREMIUM" => Some(Self::Premium),
            "MEDICAL_EXPENSE" => Some(Self::MedicalExpense),
            "FAMILY_WALLET" => Some(Self::FamilyWallet),
            _ => None,
        }
    }
}

/// One side of one movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Book {
    /// A personal account's bucket, in the account's region.
    Personal {
        holder: IdNumber,
        bucket: Bucket,
        region: RegionCode,
    },
    /// A fund of a region: [`EMPLOYEE_CONTRIBUTIONS`], [`RESIDENT_PREMIUMS`], [`INSTITUTIONS`].
    Fund {
        fund: &'static str,
        region: RegionCode,
    },
}

/// The bucket money drawn from `drawn` goes back to: the same one, except that current-year
/// money goes to prior years once the holder's year it was drawn in has been closed (its
/// current-year money was moved there, P3).
pub fn bucket_back(drawn: Bucket, year_closed: bool) -> Bucket {
    match drawn {
        Bucket::CurrentYear if year_closed => Bucket::PriorYears,
        bucket => bucket,
    }
}

/// Where contributions come from (the employee fund of the holder's region).
pub const EMPLOYEE_CONTRIBUTIONS: &str = "EMPLOYEE_CONTRIBUTIONS";
/// Where resident premiums go (the beneficiary's region).
pub const RESIDENT_PREMIUMS: &str = "RESIDENT_PREMIUMS";
/// Where medical expenses go (designated institutions of the beneficiary's region).
pub const INSTITUTIONS: &str = "INSTITUTIONS";
/// Where family wallet transfers go until the provinces settle: the outbound inter-province
/// fund of the beneficiary's province (its region is the province's, e.g. 320000).
pub const OUTBOUND_WALLETS: &str = "OUTBOUND_WALLETS";

/// A ledger entry about to be written: signed fen (positive in, negative out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub book: Book,
    pub amount_fen: i64,
}

/// A balanced set of postings with what they were for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub movement_id: String,
    pub kind: MovementKind,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    /// Asia/Shanghai business day.
    pub business_date: NaiveDate,
    /// What it settles as; `None` for money that stays inside the accounts' fund.
    pub purpose: Option<SettlementPurpose>,
    /// The region money goes to (the beneficiary's), for settlement.
    pub destination: Option<RegionCode>,
    /// What the caller said it was for (credits); empty otherwise.
    pub memo: String,
    pub postings: Vec<Posting>,
}

impl Movement {
    /// Whether the postings sum to zero (double entry).
    pub fn is_balanced(&self) -> bool {
        self.postings
            .iter()
            .map(|p| i128::from(p.amount_fen))
            .sum::<i128>()
            == 0
    }

    /// What the movement puts into `holder`'s account, over all buckets (fen).
    pub fn credited_to(&self, holder: &IdNumber) -> i64 {
        self.postings
            .iter()
            .filter(|p| matches!(&p.book, Book::Personal { holder: h, .. } if h == holder))
            .map(|p| p.amount_fen)
            .filter(|a| *a > 0)
            .sum()
    }
}

/// An account-side entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    pub entry_id: i64,
    pub movement_id: String,
    pub kind: MovementKind,
    pub bucket: Bucket,
    pub amount_fen: i64,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    pub business_date: NaiveDate,
    /// What the caller said the movement was for (credits); empty otherwise.
    pub memo: String,
    /// The authenticated caller that made the movement (empty before callers were).
    pub caller: String,
    /// For a family debit from this account, or its refund: whom it was for.
    pub family: Option<FamilyUse>,
}

/// One movement on one account, as the account event feed gives it: its position in the
/// feed, the holder, what a payment was for, and the account's entries of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    pub position: i64,
    pub holder: gongji_shared::IdNumber,
    /// What a payment or its refund was for; `None` for credits and year closings.
    pub purpose: Option<SettlementPurpose>,
    /// At least one.
    pub entries: Vec<AccountEntry>,
}

impl AccountEvent {
    /// The net change to the account (fen).
    pub fn amount_fen(&self) -> i64 {
        self.entries.iter().map(|e| e.amount_fen).sum()
    }
}

/// Whom a family debit was for: the family member, the binding it relied on, and for a
/// medical expense the institution paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyUse {
    pub beneficiary: gongji_shared::IdNumber,
    pub binding_id: String,
    pub institution_code: Option<String>,
}

/// A credit into one bucket, balanced by the contribution fund of the holder's region.
pub fn credit(account: &Account, bucket: Bucket, amount: Money, base: Movement) -> Movement {
    Movement {
        postings: vec![
            Posting {
                book: account.book(bucket),
                amount_fen: amount.fen(),
            },
            Posting {
                book: Book::Fund {
                    fund: EMPLOYEE_CONTRIBUTIONS,
                    region: account.region.clone(),
                },
                amount_fen: -amount.fen(),
            },
        ],
        purpose: None,
        destination: None,
        ..base
    }
}

/// The current-year bucket's history as year closing (P3) needs it, in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CurrentYearHistory {
    /// Everything that came into the bucket on or before the year's last day
    /// (Asia/Shanghai): credits, refunds.
    pub credited_by_year_end_fen: i64,
    /// Everything that ever left it: payments, and the closings of years before.
    pub spent_fen: i64,
}

/// What closing the year moves (P3): the current-year money the account had at the end of
/// that year and still has. Money leaves the bucket oldest first, so what is left of the
/// year's money is what came in by its end less everything spent since the bucket began,
/// never more than the bucket holds now; money credited after the year stays.
pub fn year_end_balance(account: &Account, history: CurrentYearHistory) -> Money {
    let left = history
        .credited_by_year_end_fen
        .saturating_sub(history.spent_fen)
        .clamp(0, account.current_year.fen());
    Money::from_fen(left).unwrap_or(Money::ZERO)
}

/// Closing a year: its year-end current-year balance (see [`year_end_balance`]) moves into
/// prior-years; `None` when there is nothing to move.
pub fn close_year(
    account: &Account,
    history: CurrentYearHistory,
    base: Movement,
) -> Option<Movement> {
    let amount = year_end_balance(account, history).fen();
    debug_assert!(amount <= account.current_year.fen());
    (amount > 0).then(|| Movement {
        postings: vec![
            Posting {
                book: account.book(Bucket::CurrentYear),
                amount_fen: -amount,
            },
            Posting {
                book: account.book(Bucket::PriorYears),
                amount_fen: amount,
            },
        ],
        purpose: None,
        destination: None,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            holder: IdNumber::parse("34052419800101001X").unwrap(),
            region: RegionCode::parse("340500").unwrap(),
            current_year: Money::parse("10.00").unwrap(),
            prior_years: Money::parse("500.00").unwrap(),
            open_time: Utc::now(),
        }
    }

    pub(crate) fn base(kind: MovementKind) -> Movement {
        Movement {
            movement_id: "m".into(),
            kind,
            request_id: "r".into(),
            create_time: Utc::now(),
            business_date: "2024-11-15".parse().unwrap(),
            purpose: None,
            destination: None,
            memo: String::new(),
            postings: vec![],
        }
    }

    #[test]
    fn usable_sums_only_the_named_buckets() {
        let a = account();
        assert_eq!(a.usable(&[Bucket::PriorYears]).to_string(), "500.00");
        assert_eq!(
            a.usable(&[Bucket::PriorYears, Bucket::CurrentYear])
                .to_string(),
            "510.00"
        );
    }

    #[test]
    fn a_credit_is_balanced() {
        let m = credit(
            &account(),
            Bucket::PriorYears,
            Money::parse("1.23").unwrap(),
            base(MovementKind::Credit),
        );
        assert!(m.is_balanced());
        assert_eq!(m.postings[0].amount_fen, 123);
    }

    fn history(credited_by_year_end_fen: i64, spent_fen: i64) -> CurrentYearHistory {
        CurrentYearHistory {
            credited_by_year_end_fen,
            spent_fen,
        }
    }

    #[test]
    fn closing_a_year_moves_its_year_end_balance_and_stays_balanced() {
        // 10.00 current-year, all of it credited by the year's end.
        let m = close_year(&account(), history(1000, 0), base(MovementKind::CloseYear)).unwrap();
        assert!(m.is_balanced());
        assert_eq!(m.postings[0].amount_fen, -1000);
        assert_eq!(m.postings[1].amount_fen, 1000);
        let mut empty = account();
        empty.current_year = Money::ZERO;
        assert_eq!(
            close_year(&empty, history(1000, 0), base(MovementKind::CloseYear)),
            None
        );
    }

    #[test]
    fn year_end_balances_leave_later_money_where_it_is() {
        let mut a = account();
        a.current_year = Money::parse("300.00").unwrap();
        // Credited after the year's end: nothing moves.
        assert_eq!(year_end_balance(&a, history(0, 0)), Money::ZERO);
        // 100.00 by the year's end, 200.00 after: 100.00 moves.
        assert_eq!(
            year_end_balance(&a, history(10_000, 0)).to_string(),
            "100.00"
        );
        // 100.00 by the year's end, 80.00 spent since: 20.00 of it is left.
        assert_eq!(
            year_end_balance(&a, history(10_000, 8_000)).to_string(),
            "20.00"
        );
        // Spent more than the year brought: nothing of it is left.
        assert_eq!(year_end_balance(&a, history(10_000, 50_000)), Money::ZERO);
        // Never more than the bucket holds.
        assert_eq!(
            year_end_balance(&a, history(90_000, 0)).to_string(),
            "300.00"
        );
    }
}
