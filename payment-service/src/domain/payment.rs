//! Premium payments (P1 to P9).

use chrono::{DateTime, NaiveDate, Utc};
use gongji_shared::{CoverageYear, IdNumber, Money, RegionCode, policy::Bucket};

use super::{
    Book, Movement, MovementKind, Posting, RESIDENT_PREMIUMS, SettlementPurpose,
    premium::PremiumTerms,
    split::{Draw, Split},
};

/// How the other-means part was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Cash,
    Bank,
    WechatPay,
    Alipay,
}

impl Channel {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "CASH",
            Self::Bank => "BANK",
            Self::WechatPay => "WECHAT_PAY",
            Self::Alipay => "ALIPAY",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Cash, Self::Bank, Self::WechatPay, Self::Alipay]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// The other-means part as the caller declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherMeans {
    pub amount: Money,
    pub channel: Channel,
    pub reference: String,
}

/// Paid, or refunded (the year is unpaid again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    Paid,
    Refunded,
}

impl PaymentState {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "PAID",
            Self::Refunded => "REFUNDED",
        }
    }
}

/// A premium payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremiumPayment {
    pub payment_id: String,
    pub request_id: String,
    pub movement_id: String,
    pub payer: IdNumber,
    pub beneficiary: IdNumber,
    pub year: CoverageYear,
    pub state: PaymentState,
    pub terms: PremiumTerms,
    pub back_payment: bool,
    pub split: Split,
    pub other_means: Option<OtherMeans>,
    pub binding_id: String,
    pub binding_version: i64,
    pub payer_region: RegionCode,
    pub beneficiary_region: RegionCode,
    pub payment_date: NaiveDate,
    pub pay_time: DateTime<Utc>,
    pub refund_time: Option<DateTime<Utc>>,
    pub refund_reason: Option<String>,
}

/// Why the declared other-means part does not fit the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherMeansProblem {
    /// The account is short and nothing covers the rest.
    Shortfall(Money),
    /// Declared although the account covers everything.
    NotNeeded,
    /// Declared, but not exactly the rest.
    WrongAmount { expected: Money },
}

/// P4: the other-means part must be absent when the account covers all, and exactly the
/// rest when it does not.
pub fn check_other_means(
    split: &Split,
    declared: Option<&OtherMeans>,
) -> Result<(), OtherMeansProblem> {
    match declared {
        None if split.other_part.is_zero() => Ok(()),
        None => Err(OtherMeansProblem::Shortfall(split.other_part)),
        Some(_) if split.other_part.is_zero() => Err(OtherMeansProblem::NotNeeded),
        Some(o) if o.amount != split.other_part => Err(OtherMeansProblem::WrongAmount {
            expected: split.other_part,
        }),
        Some(_) => Ok(()),
    }
}

/// The ledger movement of a premium: the account part leaves the payer's buckets and enters
/// the resident premium fund of the beneficiary's region. The other-means part never
/// touches the ledger: it was paid outside it.
pub fn premium_movement(payment: &PremiumPayment) -> Movement {
    premium_postings(
        payment,
        MovementKind::Premium,
        &payment.movement_id,
        &payment.request_id,
        1,
    )
    .with_time(payment.pay_time, payment.payment_date)
}

/// The refund of a premium's account part (P9): each bucket gets back what was drawn from
/// it, as new entries; the resident fund gives it back.
///
/// Money drawn from the current-year bucket goes to prior-years instead when the year it
/// was paid in has been closed for the payer since (`paid_year_closed`): that is where it
/// would be now (P3).
pub fn refund_movement(
    payment: &PremiumPayment,
    movement_id: &str,
    request_id: &str,
    at: DateTime<Utc>,
    business_date: NaiveDate,
    paid_year_closed: bool,
) -> Movement {
    let mut movement = premium_postings(payment, MovementKind::Refund, movement_id, request_id, -1)
        .with_time(at, business_date);
    for posting in &mut movement.postings {
        if let Book::Personal { bucket, .. } = &mut posting.book {
            *bucket = super::bucket_back(*bucket, paid_year_closed);
        }
    }
    movement
}

fn premium_postings(
    payment: &PremiumPayment,
    kind: MovementKind,
    movement_id: &str,
    request_id: &str,
    sign: i64,
) -> Movement {
    let mut postings: Vec<Posting> = payment
        .split
        .draws
        .iter()
        .map(|d| Posting {
            book: Book::Personal {
                holder: payment.payer.clone(),
                bucket: d.bucket,
                region: payment.payer_region.clone(),
            },
            amount_fen: -sign * d.amount.fen(),
        })
        .collect();
    postings.push(Posting {
        book: Book::Fund {
            fund: RESIDENT_PREMIUMS,
            region: payment.beneficiary_region.clone(),
        },
        amount_fen: sign * payment.split.account_part.fen(),
    });
    Movement {
        movement_id: movement_id.to_owned(),
        kind,
        request_id: request_id.to_owned(),
        create_time: DateTime::<Utc>::MIN_UTC,
        business_date: NaiveDate::MIN,
        purpose: Some(SettlementPurpose::Premium),
        destination: Some(payment.beneficiary_region.clone()),
        memo: String::new(),
        postings,
    }
}

impl Movement {
    fn with_time(self, create_time: DateTime<Utc>, business_date: NaiveDate) -> Self {
        Self {
            create_time,
            business_date,
            ..self
        }
    }
}

/// Draws as stored: `PRIOR_YEARS:40000;CURRENT_YEAR:100`.
pub fn encode_draws(draws: &[Draw]) -> String {
    draws
        .iter()
        .map(|d| format!("{}:{}", d.bucket.as_str(), d.amount.fen()))
        .collect::<Vec<_>>()
        .join(";")
}

/// The inverse of [`encode_draws`].
pub fn decode_draws(text: &str) -> Option<Vec<Draw>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|part| {
            let (bucket, fen) = part.split_once(':')?;
            Some(Draw {
                bucket: Bucket::parse(bucket)?,
                amount: Money::from_fen(fen.parse().ok()?).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn split(account: &str, other: &str) -> Split {
        Split {
            draws: vec![Draw {
                bucket: Bucket::PriorYears,
                amount: m(account),
            }],
            account_part: m(account),
            other_part: m(other),
        }
    }

    fn cash(amount: &str) -> OtherMeans {
        OtherMeans {
            amount: m(amount),
            channel: Channel::Cash,
            reference: "r".into(),
        }
    }

    #[test]
    fn other_means_must_cover_the_rest_exactly() {
        assert_eq!(check_other_means(&split("400", "0"), None), Ok(()));
        assert_eq!(
            check_other_means(&split("150", "250"), None),
            Err(OtherMeansProblem::Shortfall(m("250")))
        );
        assert_eq!(
            check_other_means(&split("150", "250"), Some(&cash("250"))),
            Ok(())
        );
        assert_eq!(
            check_other_means(&split("150", "250"), Some(&cash("200"))),
            Err(OtherMeansProblem::WrongAmount { expected: m("250") })
        );
        assert_eq!(
            check_other_means(&split("400", "0"), Some(&cash("1"))),
            Err(OtherMeansProblem::NotNeeded)
        );
    }

    #[test]
    fn a_refund_mirrors_the_payment() {
        let payment = PremiumPayment {
            payment_id: "p".into(),
            request_id: "r".into(),
            movement_id: "m".into(),
            payer: IdNumber::parse("34052419800101001X").unwrap(),
            beneficiary: IdNumber::parse("11010519491231002X").unwrap(),
            year: CoverageYear::parse(2025).unwrap(),
            state: PaymentState::Paid,
            terms: PremiumTerms {
                premium: m("400"),
                window: gongji_shared::policy::DateWindow {
                    start: "2024-09-05".parse().unwrap(),
                    end: "2024-12-31".parse().unwrap(),
                },
                in_window: true,
                waiting_months: 0,
                cover: None,
            },
            back_payment: false,
            split: split("150", "250"),
            other_means: Some(cash("250")),
            binding_id: "b".into(),
            binding_version: 1,
            payer_region: RegionCode::parse("340500").unwrap(),
            beneficiary_region: RegionCode::parse("340100").unwrap(),
            payment_date: "2024-11-15".parse().unwrap(),
            pay_time: Utc::now(),
            refund_time: None,
            refund_reason: None,
        };
        let paid = premium_movement(&payment);
        let refund = refund_movement(
            &payment,
            "m2",
            "r2",
            Utc::now(),
            "2024-11-16".parse().unwrap(),
            false,
        );
        assert!(paid.is_balanced() && refund.is_balanced());
        let amounts = |m: &Movement| m.postings.iter().map(|p| p.amount_fen).collect::<Vec<_>>();
        assert_eq!(amounts(&paid), [-15_000, 15_000]);
        assert_eq!(amounts(&refund), [15_000, -15_000]);
        assert_eq!(refund.kind, MovementKind::Refund);

        // Paid from current-year money of a year closed since: it comes back as prior-years.
        let current = PremiumPayment {
            split: Split {
                draws: vec![Draw {
                    bucket: Bucket::CurrentYear,
                    amount: m("150"),
                }],
                ..payment.split.clone()
            },
            ..payment
        };
        let bucket = |m: &Movement| match &m.postings[0].book {
            Book::Personal { bucket, .. } => *bucket,
            Book::Fund { .. } => panic!("the account side comes first"),
        };
        let open = refund_movement(
            &current,
            "m3",
            "r3",
            Utc::now(),
            "2024-11-16".parse().unwrap(),
            false,
        );
        assert_eq!(bucket(&open), Bucket::CurrentYear);
        let closed = refund_movement(
            &current,
            "m4",
            "r4",
            Utc::now(),
            "2025-01-16".parse().unwrap(),
            true,
        );
        assert_eq!(bucket(&closed), Bucket::PriorYears);
        assert!(closed.is_balanced());
    }

    #[test]
    fn draws_round_trip_through_storage() {
        let draws = vec![
            Draw {
                bucket: Bucket::PriorYears,
                amount: m("150"),
            },
            Draw {
                bucket: Bucket::CurrentYear,
                amount: m("0.01"),
            },
        ];
        assert_eq!(decode_draws(&encode_draws(&draws)), Some(draws));
        assert_eq!(decode_draws(""), Some(vec![]));
        assert_eq!(decode_draws("NOPE:1"), None);
    }
}
