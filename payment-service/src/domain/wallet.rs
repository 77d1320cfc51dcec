//! The cross-province family wallet (共济钱包, U2, U4): transfers from an authorizer's account
//! into the family mutual-aid wallet of a relative insured in another province, within the
//! policy's figures, waiting for the receiving province's confirmation.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{IdNumber, Money, RegionCode, policy::WalletRule};

use super::{
    Account, Book, Movement, MovementKind, OUTBOUND_WALLETS, Posting, SettlementPurpose,
    split::Draw,
};

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// Waiting for the receiving province's confirmation.
    Pending,
    Confirmed,
    /// Gone back to the account.
    Returned,
}

/// A transfer into a family wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletTransfer {
    pub transfer_id: String,
    pub request_id: String,
    pub movement_id: String,
    pub authorizer: IdNumber,
    pub beneficiary: IdNumber,
    pub amount: Money,
    pub draws: Vec<Draw>,
    /// The beneficiary's province, as a region code (`320000`).
    pub destination: RegionCode,
    pub binding_id: String,
    pub binding_version: i64,
    pub state: TransferState,
    pub create_time: DateTime<Utc>,
    pub business_date: NaiveDate,
    pub confirm_deadline: DateTime<Utc>,
}

/// Why a transfer is refused before anything is asked or held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletRefusal {
    /// Outside the hours transfers are taken.
    Closed,
    /// Over what one transfer may move.
    OverPerTransfer,
    /// The day's transfers are used up.
    DailyCountReached,
}

/// U2: whether a transfer of `amount`, at `time` of day (Asia/Shanghai), after `made_today`
/// transfers of the authorizer today, is within the wallet's figures.
pub fn check(
    rule: &WalletRule,
    amount: Money,
    time: chrono::NaiveTime,
    made_today: u32,
) -> Result<(), WalletRefusal> {
    if !rule.is_open(time) {
        return Err(WalletRefusal::Closed);
    }
    if amount > rule.max_per_transfer {
        return Err(WalletRefusal::OverPerTransfer);
    }
    if made_today >= rule.max_transfers_per_day {
        return Err(WalletRefusal::DailyCountReached);
    }
    Ok(())
}

/// The province of a region, as a region code: `320100` is in `320000`.
pub fn province_of(region: &RegionCode) -> Option<RegionCode> {
    RegionCode::parse(&format!("{}0000", region.province())).ok()
}

impl TransferState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Returned => "RETURNED",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "CONFIRMED" => Some(Self::Confirmed),
            "RETURNED" => Some(Self::Returned),
            _ => None,
        }
    }
}

/// The movement of a transfer: the authorizer's draws out, the outbound fund of the
/// destination province in.
pub fn transfer_movement(t: &WalletTransfer, authorizer: &Account) -> Movement {
    let mut postings: Vec<Posting> = t
        .draws
        .iter()
        .map(|d| Posting {
            book: authorizer.book(d.bucket),
            amount_fen: -d.amount.fen(),
        })
        .collect();
    postings.push(Posting {
        book: Book::Fund {
            fund: OUTBOUND_WALLETS,
            region: t.destination.clone(),
        },
        amount_fen: t.amount.fen(),
    });
    Movement {
        movement_id: t.movement_id.clone(),
        kind: MovementKind::WalletTransfer,
        request_id: t.request_id.clone(),
        create_time: t.create_time,
        business_date: t.business_date,
        purpose: Some(SettlementPurpose::FamilyWallet),
        destination: Some(t.destination.clone()),
        memo: String::new(),
        postings,
    }
}

/// What becomes of a pending transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The receiving province confirmed it.
    Confirm,
    /// It goes back to the account (not confirmed in time, or an operator's decision).
    Return,
}

/// The movement that takes a transfer back: the outbound fund out, the authorizer's buckets
/// in, each as drawn, except that current-year money goes to prior years once the
/// authorizer's year of the transfer has been closed.
pub fn return_movement(
    t: &WalletTransfer,
    authorizer: &Account,
    year_closed: bool,
    movement_id: &str,
    request_id: &str,
    at: DateTime<Utc>,
    business_date: NaiveDate,
) -> Movement {
    let mut postings: Vec<Posting> = t
        .draws
        .iter()
        .map(|d| Posting {
            book: authorizer.book(super::bucket_back(d.bucket, year_closed)),
            amount_fen: d.amount.fen(),
        })
        .collect();
    postings.push(Posting {
        book: Book::Fund {
            fund: OUTBOUND_WALLETS,
            region: t.destination.clone(),
        },
        amount_fen: -t.amount.fen(),
    });
    Movement {
        movement_id: movement_id.to_owned(),
        kind: MovementKind::Refund,
        request_id: request_id.to_owned(),
        create_time: at,
        business_date,
        purpose: Some(SettlementPurpose::FamilyWallet),
        destination: Some(t.destination.clone()),
        memo: String::new(),
        postings,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;

    fn rule() -> WalletRule {
        WalletRule {
            max_per_transfer: Money::parse("2000.00").unwrap(),
            max_transfers_per_day: 3,
            open_from: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
            open_until: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            confirm_within_hours: 72,
        }
    }

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn transfers_are_taken_within_the_hours_the_amount_and_the_count() {
        let (r, m) = (rule(), |s: &str| Money::parse(s).unwrap());
        assert_eq!(check(&r, m("2000.00"), at(21, 59), 2), Ok(()));
        assert_eq!(check(&r, m("1.00"), at(6, 0), 0), Ok(()));
        assert_eq!(
            check(&r, m("1.00"), at(22, 1), 0),
            Err(WalletRefusal::Closed)
        );
        assert_eq!(
            check(&r, m("1.00"), at(22, 0), 0),
            Err(WalletRefusal::Closed)
        );
        assert_eq!(
            check(&r, m("1.00"), at(5, 59), 0),
            Err(WalletRefusal::Closed)
        );
        assert_eq!(
            check(&r, m("2000.01"), at(10, 0), 0),
            Err(WalletRefusal::OverPerTransfer)
        );
        assert_eq!(
            check(&r, m("1.00"), at(10, 0), 3),
            Err(WalletRefusal::DailyCountReached)
        );
    }

    #[test]
    fn a_region_belongs_to_its_province() {
        let nanjing = RegionCode::parse("320100").unwrap();
        assert_eq!(province_of(&nanjing).unwrap().as_str(), "320000");
    }
}
