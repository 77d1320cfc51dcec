//! Splitting an amount over an account's usable buckets, in the policy's order (P3, P4).

use gongji_shared::{Money, policy::Bucket};

use super::Account;

/// Money drawn from one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    pub bucket: Bucket,
    pub amount: Money,
}

/// How an amount is paid: draws from the account, then the rest by other means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub draws: Vec<Draw>,
    pub account_part: Money,
    pub other_part: Money,
}

/// Draws `amount` from `buckets` in order, each up to its balance; the rest is other means.
/// Empty draws are left out.
pub fn split(amount: Money, account: Option<&Account>, buckets: &[Bucket]) -> Split {
    let mut rest = amount;
    let mut draws = Vec::new();
    if let Some(account) = account {
        for bucket in buckets {
            let take = account.balance(*bucket).min(rest);
            if !take.is_zero() {
                draws.push(Draw {
                    bucket: *bucket,
                    amount: take,
                });
                rest = rest.checked_sub(take).unwrap_or(Money::ZERO);
            }
        }
    }
    let account_part = amount.checked_sub(rest).unwrap_or(Money::ZERO);
    debug_assert_eq!(account_part.fen() + rest.fen(), amount.fen());
    Split {
        draws,
        account_part,
        other_part: rest,
    }
}

/// `split` with the account part kept within `cap` (an authorizer's limit): the draws in
/// order up to the cap, the rest to other means.
pub fn capped(split: Split, cap: Option<Money>) -> Split {
    let Some(cap) = cap.filter(|c| *c < split.account_part) else {
        return split;
    };
    let amount = split
        .account_part
        .checked_add(split.other_part)
        .unwrap_or(split.account_part);
    let mut left = cap;
    let mut draws = Vec::new();
    for draw in split.draws {
        let take = draw.amount.min(left);
        if !take.is_zero() {
            draws.push(Draw {
                bucket: draw.bucket,
                amount: take,
            });
            left = left.checked_sub(take).unwrap_or(Money::ZERO);
        }
    }
    Split {
        draws,
        account_part: cap,
        other_part: amount.checked_sub(cap).unwrap_or(Money::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use gongji_shared::{IdNumber, RegionCode};

    use super::*;

    fn account(current: &str, prior: &str) -> Account {
        Account {
            holder: IdNumber::parse("34052419800101001X").unwrap(),
            region: RegionCode::parse("340500").unwrap(),
            current_year: Money::parse(current).unwrap(),
            prior_years: Money::parse(prior).unwrap(),
            open_time: Utc::now(),
        }
    }

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn a_rich_account_pays_everything_from_the_first_bucket() {
        let s = split(m("400"), Some(&account("0", "1000")), &[Bucket::PriorYears]);
        assert_eq!(
            s.draws,
            vec![Draw {
                bucket: Bucket::PriorYears,
                amount: m("400")
            }]
        );
        assert_eq!(s.other_part, Money::ZERO);
    }

    #[test]
    fn a_short_account_leaves_the_rest_to_other_means() {
        let s = split(
            m("400"),
            Some(&account("1000", "150.50")),
            &[Bucket::PriorYears],
        );
        assert_eq!(s.account_part, m("150.50"));
        assert_eq!(s.other_part, m("249.50"));
    }

    #[test]
    fn buckets_are_drawn_in_the_given_order() {
        let s = split(
            m("400"),
            Some(&account("300", "150")),
            &[Bucket::PriorYears, Bucket::CurrentYear],
        );
        assert_eq!(
            s.draws,
            vec![
                Draw {
                    bucket: Bucket::PriorYears,
                    amount: m("150")
                },
                Draw {
                    bucket: Bucket::CurrentYear,
                    amount: m("250")
                },
            ]
        );
    }

    #[test]
    fn no_account_means_all_other_means() {
        let s = split(m("12.34"), None, &[Bucket::PriorYears]);
        assert!(s.draws.is_empty());
        assert_eq!(s.other_part, m("12.34"));
    }

    #[test]
    fn a_cap_takes_the_draws_in_order_and_leaves_the_rest_to_other_means() {
        let m = |s: &str| Money::parse(s).unwrap();
        let split = Split {
            draws: vec![
                Draw {
                    bucket: Bucket::CurrentYear,
                    amount: m("30.00"),
                },
                Draw {
                    bucket: Bucket::PriorYears,
                    amount: m("70.00"),
                },
            ],
            account_part: m("100.00"),
            other_part: m("20.00"),
        };
        let c = capped(split.clone(), Some(m("50.00")));
        assert_eq!(
            c.draws.iter().map(|d| d.amount).collect::<Vec<_>>(),
            [m("30.00"), m("20.00")]
        );
        assert_eq!((c.account_part, c.other_part), (m("50.00"), m("70.00")));
        assert_eq!(capped(split.clone(), Some(m("100.00"))), split);
        assert_eq!(capped(split.clone(), None), split);
        let none = capped(split, Some(Money::ZERO));
        assert!(none.draws.is_empty() && none.account_part.is_zero());
    }
}
