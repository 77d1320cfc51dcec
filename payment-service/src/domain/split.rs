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
}
