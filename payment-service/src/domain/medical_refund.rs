//! Medical-expense refunds (a hospital reverses a charge, whole or in part): what goes back
//! where. The money returns in reverse order of drawing: the other-means part first (drawn
//! last, owed back to whoever paid it), then the family account's draws, last drawn first,
//! then the beneficiary's own. So repeated partial refunds walk back one sequence, and what
//! they return together never passes what each part paid.

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{Money, policy::Bucket};

use super::{
    Account, Movement, MovementKind, Posting, SettlementPurpose, medical::MedicalPayment,
    split::Draw,
};

/// A refund of a medical-expense payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalRefund {
    pub refund_id: String,
    pub request_id: String,
    pub payment_id: String,
    /// The movement returning the account parts; `None` when only other means are owed back.
    pub movement_id: Option<String>,
    pub amount: Money,
    pub parts: RefundParts,
    /// What the payment has had refunded, this refund included.
    pub refunded_total: Money,
    pub reason: String,
    pub refund_time: DateTime<Utc>,
    pub business_date: NaiveDate,
}

/// Where a refund's money goes, per part of the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundParts {
    /// Back to the beneficiary's own account, per bucket it was drawn from.
    pub own: Vec<Draw>,
    /// Back to the family account, per bucket it was drawn from.
    pub family: Vec<Draw>,
    /// Owed back to the payer through the other means that paid it.
    pub other_means: Money,
}

impl RefundParts {
    fn fen(&self) -> i64 {
        let draws: i64 = self
            .own
            .iter()
            .chain(&self.family)
            .map(|d| d.amount.fen())
            .sum();
        draws + self.other_means.fen()
    }
}

/// Why a refund cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRefusal {
    /// The whole payment is refunded already.
    NothingLeft,
    /// More than is left to refund was asked.
    Exceeds { refundable: Money },
}

/// What a refund of `amount` (all that is left when `None`) returns of `payment`, of which
/// `refunded` was returned before.
pub fn refund_parts(
    payment: &MedicalPayment,
    refunded: Money,
    amount: Option<Money>,
) -> Result<RefundParts, RefundRefusal> {
    let refundable = payment
        .amount
        .checked_sub(refunded)
        .ok_or(RefundRefusal::NothingLeft)?;
    if refundable.is_zero() {
        return Err(RefundRefusal::NothingLeft);
    }
    let amount = amount.unwrap_or(refundable);
    if amount.fen() > refundable.fen() {
        return Err(RefundRefusal::Exceeds { refundable });
    }
    // The parts in reverse order of drawing; each takes what of the window [refunded,
    // refunded + amount) falls on it. (Each difference below is of a smaller amount from a
    // larger one, so none falls back to zero.)
    let (mut skip, mut take) = (refunded, amount);
    let mut parts = RefundParts {
        own: Vec::new(),
        family: Vec::new(),
        other_means: Money::ZERO,
    };
    let reversed = std::iter::once((Side::Other, Bucket::PriorYears, payment.other_part))
        .chain(
            payment
                .family_draws
                .iter()
                .rev()
                .map(|d| (Side::Family, d.bucket, d.amount)),
        )
        .chain(
            payment
                .own_draws
                .iter()
                .rev()
                .map(|d| (Side::Own, d.bucket, d.amount)),
        );
    for (side, bucket, paid) in reversed {
        let skipped = skip.min(paid);
        skip = skip.checked_sub(skipped).unwrap_or(Money::ZERO);
        let back = take.min(paid.checked_sub(skipped).unwrap_or(Money::ZERO));
        take = take.checked_sub(back).unwrap_or(Money::ZERO);
        if back.is_zero() {
            continue;
        }
        match side {
            Side::Other => parts.other_means = back,
            Side::Family => parts.family.push(Draw {
                bucket,
                amount: back,
            }),
            Side::Own => parts.own.push(Draw {
                bucket,
                amount: back,
            }),
        }
    }
    // The parts add up to the payment (P-invariant of M2), so the window always fits.
    debug_assert!(take.is_zero());
    debug_assert_eq!(parts.fen(), amount.fen());
    Ok(parts)
}

#[derive(Clone, Copy)]
enum Side {
    Other,
    Family,
    Own,
}

/// The movement of a refund: the account parts back in, the institutions of the payment's
/// destination out. A current-year draw goes back to prior years when the holder's year of
/// the payment has been closed since (its current-year money was moved there). `None` when
/// no account gets anything back.
pub fn refund_movement(
    payment: &MedicalPayment,
    refund: &MedicalRefund,
    own: Option<(&Account, bool)>,
    family: Option<(&Account, bool)>,
) -> Option<Movement> {
    let mut postings = Vec::new();
    for (account, draws) in [(own, &refund.parts.own), (family, &refund.parts.family)] {
        let Some((account, year_closed)) = account else {
            continue;
        };
        for d in draws {
            postings.push(Posting {
                book: account.book(super::bucket_back(d.bucket, year_closed)),
                amount_fen: d.amount.fen(),
            });
        }
    }
    super::medical::institutions_movement(Movement {
        movement_id: refund.movement_id.clone()?,
        kind: MovementKind::Refund,
        request_id: refund.request_id.clone(),
        create_time: refund.refund_time,
        business_date: refund.business_date,
        purpose: Some(SettlementPurpose::MedicalExpense),
        destination: payment.destination.clone(),
        memo: String::new(),
        postings,
    })
}

#[cfg(test)]
mod tests {
    use gongji_shared::{IdNumber, RegionCode};

    use super::*;
    use crate::domain::{Book, medical::InstitutionKind};

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn draw(bucket: Bucket, amount: &str) -> Draw {
        Draw {
            bucket,
            amount: m(amount),
        }
    }

    /// 100.00: own 20 (current) + 10 (prior), family 50 (prior), other means 20.
    fn payment() -> MedicalPayment {
        MedicalPayment {
            payment_id: "p".into(),
            request_id: "r".into(),
            movement_id: Some("mv".into()),
            beneficiary: IdNumber::parse("11010519491231002X").unwrap(),
            family_holder: Some(IdNumber::parse("34052419800101001X").unwrap()),
            institution_code: "H1".into(),
            institution_kind: InstitutionKind::Hospital,
            amount: m("100"),
            own_draws: vec![
                draw(Bucket::CurrentYear, "20"),
                draw(Bucket::PriorYears, "10"),
            ],
            family_draws: vec![draw(Bucket::PriorYears, "50")],
            other_part: m("20"),
            refunded: Money::ZERO,
            binding_id: "b".into(),
            binding_version: 1,
            destination: Some(RegionCode::parse("340500").unwrap()),
            pay_time: Utc::now(),
            business_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        }
    }

    #[test]
    fn partial_refunds_walk_back_in_reverse_order_of_drawing() {
        let p = payment();
        let first = refund_parts(&p, Money::ZERO, Some(m("30"))).unwrap();
        assert_eq!(first.other_means, m("20"), "other means were drawn last");
        assert_eq!(first.family, [draw(Bucket::PriorYears, "10")]);
        assert!(first.own.is_empty());
        let second = refund_parts(&p, m("30"), Some(m("55"))).unwrap();
        assert_eq!(second.other_means, Money::ZERO);
        assert_eq!(second.family, [draw(Bucket::PriorYears, "40")]);
        assert_eq!(
            second.own,
            [
                draw(Bucket::PriorYears, "10"),
                draw(Bucket::CurrentYear, "5")
            ],
            "the own account's prior years were drawn after its current year"
        );
        let rest = refund_parts(&p, m("85"), None).unwrap();
        assert_eq!(rest.own, [draw(Bucket::CurrentYear, "15")]);
        assert_eq!(rest.fen(), m("15").fen());
    }

    #[test]
    fn a_whole_refund_returns_every_part() {
        let parts = refund_parts(&payment(), Money::ZERO, None).unwrap();
        assert_eq!(parts.other_means, m("20"));
        assert_eq!(parts.family, [draw(Bucket::PriorYears, "50")]);
        assert_eq!(
            parts.own,
            [
                draw(Bucket::PriorYears, "10"),
                draw(Bucket::CurrentYear, "20")
            ]
        );
    }

    #[test]
    fn nothing_past_what_was_paid() {
        let p = payment();
        assert_eq!(
            refund_parts(&p, m("90"), Some(m("10.01"))),
            Err(RefundRefusal::Exceeds {
                refundable: m("10")
            })
        );
        assert_eq!(
            refund_parts(&p, m("100"), None),
            Err(RefundRefusal::NothingLeft)
        );
        assert_eq!(
            refund_parts(&p, m("100"), Some(m("0.01"))),
            Err(RefundRefusal::NothingLeft)
        );
    }

    #[test]
    fn a_closed_year_takes_current_year_money_back_to_prior_years() {
        let p = payment();
        let parts = refund_parts(&p, Money::ZERO, None).unwrap();
        let refund = MedicalRefund {
            refund_id: "f".into(),
            request_id: "rr".into(),
            payment_id: "p".into(),
            movement_id: Some("mr".into()),
            amount: m("100"),
            parts,
            refunded_total: m("100"),
            reason: "reversed".into(),
            refund_time: Utc::now(),
            business_date: NaiveDate::from_ymd_opt(2027, 1, 5).unwrap(),
        };
        let own = Account {
            holder: p.beneficiary.clone(),
            region: RegionCode::parse("340500").unwrap(),
            current_year: Money::ZERO,
            prior_years: Money::ZERO,
            open_time: Utc::now(),
        };
        let family = Account {
            holder: p.family_holder.clone().unwrap(),
            ..own.clone()
        };
        let movement =
            refund_movement(&p, &refund, Some((&own, true)), Some((&family, false))).unwrap();
        assert!(movement.is_balanced());
        assert_eq!(movement.kind, MovementKind::Refund);
        assert_eq!(movement.credited_to(&own.holder), 3_000);
        assert_eq!(movement.credited_to(&family.holder), 5_000);
        assert!(
            movement.postings.iter().all(|p| !matches!(
                p.book,
                Book::Personal {
                    bucket: Bucket::CurrentYear,
                    ..
                }
            )),
            "the own account's year is closed: its current-year draw goes to prior years"
        );
        let fund: i64 = movement
            .postings
            .iter()
            .filter(|p| matches!(p.book, Book::Fund { .. }))
            .map(|p| p.amount_fen)
            .sum();
        assert_eq!(fund, -8_000, "the other-means part is owed back, not moved");
    }
}
