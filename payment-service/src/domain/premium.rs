//! The resident premium: amount, collection window, waiting period and cover (P2, P5 to P7).
//!
//! QuotePremium and PayPremium both call [`terms`], so a quote is exactly what a payment
//! made at the same moment would do.

use chrono::{Datelike, Months, NaiveDate};
use gongji_shared::{CoverageYear, Money, Policy, RegionCode, policy::DateWindow};

/// A premium payment this system recorded for the beneficiary (paid, not refunded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidYear {
    pub year: CoverageYear,
    pub back_payment: bool,
}

/// Everything the computation needs.
pub struct TermsInput<'a> {
    pub policy: &'a Policy,
    pub year: CoverageYear,
    /// The beneficiary's insurance region: its premium and window apply.
    pub region: &'a RegionCode,
    /// The payment date (Asia/Shanghai).
    pub today: NaiveDate,
    /// From the beneficiary's ID number.
    pub birth_date: NaiveDate,
    pub back_payment: bool,
    /// The beneficiary's paid years in this system.
    pub history: &'a [PaidYear],
}

/// What paying now buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PremiumTerms {
    pub premium: Money,
    pub window: DateWindow,
    pub in_window: bool,
    pub waiting_months: u32,
    /// First and last day of cover; `None` for a back-payment, which buys no cover.
    pub cover: Option<(NaiveDate, NaiveDate)>,
}

/// Why a premium cannot be paid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PremiumRefusal {
    /// The policy has no premium for the year (or, for a back-payment, for this year's rate),
    /// or its collection window has not opened.
    CoverageYearNotOpen,
    /// Cover would start after the year ends, or the year is over.
    NoBenefitInCoverageYear { would_start: Option<NaiveDate> },
    /// A back-payment is only for a year before the current one.
    BackPaymentNotPast,
    /// The beneficiary's region is outside the policy's province: none of its figures apply.
    RegionOutsidePolicy,
    /// A back-payment for a year before the beneficiary was born.
    BackPaymentBeforeBirth { birth_year: i32 },
    /// A back-payment for a year before the first coverage year the policy knows.
    BackPaymentBeforePolicy { first_year: Option<CoverageYear> },
    /// A back-payment further back than the policy allows.
    BackPaymentTooOld { max_years_back: u32 },
}

/// Computes the premium, window, waiting months and cover of paying for `year` on `today`.
pub fn terms(input: &TermsInput<'_>) -> Result<PremiumTerms, PremiumRefusal> {
    if input.policy.pooling_region(input.region).is_none() {
        return Err(PremiumRefusal::RegionOutsidePolicy);
    }
    if input.back_payment {
        return back_payment_terms(input);
    }
    let terms = input
        .policy
        .premium_rate(input.year, input.region)
        .ok_or(PremiumRefusal::CoverageYearNotOpen)?;
    if input.today < terms.window.start {
        return Err(PremiumRefusal::CoverageYearNotOpen);
    }
    let (first, last) = (input.year.first_day(), input.year.last_day());
    if input.today > last {
        return Err(PremiumRefusal::NoBenefitInCoverageYear { would_start: None });
    }
    let in_window = terms.window.contains(input.today);
    let waiting = input.policy.waiting_period();
    let newborn = input.birth_date <= input.today
        && (input.today - input.birth_date).num_days() <= i64::from(waiting.newborn_grace_days);
    let (waiting_months, start) = if in_window {
        (0, first)
    } else if newborn {
        // Covered from birth (or from 1 January if born the year before).
        (0, input.birth_date.max(first))
    } else {
        let months = waiting_months(input);
        let start = input
            .today
            .checked_add_months(Months::new(months))
            .ok_or(PremiumRefusal::NoBenefitInCoverageYear { would_start: None })?;
        (months, start.max(first))
    };
    if start > last {
        return Err(PremiumRefusal::NoBenefitInCoverageYear {
            would_start: Some(start),
        });
    }
    Ok(PremiumTerms {
        premium: terms.amount,
        window: terms.window,
        in_window,
        waiting_months,
        cover: Some((start, last)),
    })
}

/// A back-payment (补缴) for a past year at the current year's rate: no cover.
fn back_payment_terms(input: &TermsInput<'_>) -> Result<PremiumTerms, PremiumRefusal> {
    let year = input.year.get();
    if year >= input.today.year() {
        return Err(PremiumRefusal::BackPaymentNotPast);
    }
    let birth_year = input.birth_date.year();
    if year < birth_year {
        return Err(PremiumRefusal::BackPaymentBeforeBirth { birth_year });
    }
    let first_year = input.policy.first_coverage_year();
    if first_year.is_none_or(|first| input.year < first) {
        return Err(PremiumRefusal::BackPaymentBeforePolicy { first_year });
    }
    let max_years_back = input.policy.waiting_period().max_back_payment_years;
    if i64::from(input.today.year() - year) > i64::from(max_years_back) {
        return Err(PremiumRefusal::BackPaymentTooOld { max_years_back });
    }
    let current =
        CoverageYear::parse(input.today.year()).map_err(|_| PremiumRefusal::CoverageYearNotOpen)?;
    let terms = input
        .policy
        .premium_rate(current, input.region)
        .ok_or(PremiumRefusal::CoverageYearNotOpen)?;
    Ok(PremiumTerms {
        premium: terms.amount,
        window: terms.window,
        in_window: false,
        waiting_months: 0,
        cover: None,
    })
}

/// Fixed months plus the variable months of the years without cover since the last
/// regular payment, less the back-paid ones (P7). With no earlier payment in this system
/// nothing is known of gaps, and only the fixed period applies.
fn waiting_months(input: &TermsInput<'_>) -> u32 {
    let w = input.policy.waiting_period();
    let (counted, back_paid) = gap_years(input);
    let variable = (counted * w.variable_months_per_gap_year)
        .saturating_sub(back_paid * w.months_removed_per_back_paid_year);
    w.fixed_months + variable
}

/// The years without cover since the last regular payment that the waiting period counts
/// (the policy says whether the first one does), and the back-paid years among them; none
/// without an earlier regular payment, as nothing is known of gaps then.
fn gap_years(input: &TermsInput<'_>) -> (u32, u32) {
    let w = input.policy.waiting_period();
    let year = input.year.get();
    let last_regular = input
        .history
        .iter()
        .filter(|p| !p.back_payment && p.year.get() < year)
        .map(|p| p.year.get())
        .max();
    let Some(last_regular) = last_regular else {
        return (0, 0);
    };
    let gap_years = u32::try_from(year - last_regular - 1).unwrap_or(0);
    let back_paid = u32::try_from(
        input
            .history
            .iter()
            .filter(|p| p.back_payment && p.year.get() > last_regular && p.year.get() < year)
            .count(),
    )
    .unwrap_or(u32::MAX);
    let counted = if w.first_gap_year_counts {
        gap_years
    } else {
        gap_years.saturating_sub(1)
    };
    (counted, back_paid)
}

/// What a quote says of the beneficiary's continuity (P7, U3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuity {
    /// Years paid (here or anywhere the registry knows of) in a row, up to the year before
    /// the coverage year.
    pub consecutive_years: u32,
    /// The years without cover the waiting period counts.
    pub gap_years: u32,
    /// The waiting months of paying inside the collection window instead.
    pub waiting_months_in_window: u32,
    /// When the continuity incentive is at stake: what a gap this year would cost.
    pub incentive: Option<IncentiveAtStake>,
}

/// What a gap would cost under the continuity incentive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncentiveAtStake {
    /// The raise of next year's critical-illness cap that paying this year keeps, and a
    /// year without cover loses.
    pub raise_kept: Money,
    pub source: String,
    pub unconfirmed: bool,
}

/// The continuity of paying for `input.year` now (not for a back-payment, which buys no
/// cover and keeps no continuity going).
pub fn continuity(input: &TermsInput<'_>, terms: &PremiumTerms) -> Continuity {
    let year = input.year.get();
    let consecutive_years = (1..=year)
        .take_while(|back| input.history.iter().any(|p| p.year.get() == year - back))
        .count();
    let consecutive_years = u32::try_from(consecutive_years).unwrap_or(u32::MAX);
    // The same rules, on a day inside the window.
    let in_window = TermsInput {
        today: terms.window.end.max(terms.window.start),
        ..*input
    };
    let waiting_months_in_window = match self::terms(&in_window) {
        Ok(t) => t.waiting_months,
        Err(_) => 0,
    };
    let incentive = input.policy.continuity_incentive().and_then(|i| {
        let years = (consecutive_years + 1).saturating_sub(i.qualifying_years);
        let raise_fen = i.raise_per_year.fen().checked_mul(i64::from(years))?;
        let raise_kept = Money::from_fen(raise_fen).ok()?;
        (years > 0 && !input.back_payment).then(|| IncentiveAtStake {
            raise_kept,
            source: i.source.clone(),
            unconfirmed: i.unconfirmed,
        })
    });
    Continuity {
        consecutive_years,
        gap_years: gap_years(input).0,
        waiting_months_in_window,
        incentive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn year(y: i32) -> CoverageYear {
        CoverageYear::parse(y).unwrap()
    }

    fn paid(y: i32, back_payment: bool) -> PaidYear {
        PaidYear {
            year: year(y),
            back_payment,
        }
    }

    /// The continuity of paying for 2025 on `today` after `history`.
    fn continuity_of(today: &str, history: &[PaidYear]) -> Continuity {
        let policy = Policy::anhui_default().unwrap();
        let region = RegionCode::parse("340500").unwrap();
        let input = TermsInput {
            policy: &policy,
            year: year(2025),
            region: &region,
            today: date(today),
            birth_date: date("2010-01-01"),
            back_payment: false,
            history,
        };
        continuity(&input, &terms(&input).unwrap())
    }

    #[test]
    fn four_years_in_a_row_put_the_incentive_at_stake() {
        let history: Vec<PaidYear> = (2021..=2024).map(|y| paid(y, false)).collect();
        let c = continuity_of("2024-11-15", &history);
        assert_eq!((c.consecutive_years, c.gap_years), (4, 0));
        let incentive = c.incentive.expect("at stake");
        assert_eq!(incentive.raise_kept.to_string(), "1000.00");
        assert!(incentive.unconfirmed && !incentive.source.is_empty());
        // Three in a row: nothing accumulated yet.
        assert!(
            continuity_of("2024-11-15", &history[1..])
                .incentive
                .is_none()
        );
        // Back-paid years count as paid.
        let mut mixed = history.clone();
        mixed[1] = paid(2022, true);
        assert_eq!(continuity_of("2024-11-15", &mixed).consecutive_years, 4);
    }

    #[test]
    fn a_gap_breaks_the_run_and_late_payment_waits_where_the_window_would_not() {
        let history = [paid(2020, false), paid(2021, false), paid(2022, false)];
        let c = continuity_of("2025-03-10", &history);
        assert_eq!(c.consecutive_years, 0, "2024 was not paid");
        assert!(c.incentive.is_none());
        // 2023 and 2024 without cover; the first gap year adds no month by this policy.
        assert_eq!(c.gap_years, 1);
        assert_eq!(c.waiting_months_in_window, 0);
        let late = run("2025-03-10", "2010-01-01", &history).unwrap();
        assert_eq!(
            late.waiting_months, 4,
            "3 fixed and 1 for the counted gap year"
        );
    }

    fn run(today: &str, birth: &str, history: &[PaidYear]) -> Result<PremiumTerms, PremiumRefusal> {
        let policy = Policy::anhui_default().unwrap();
        let region = RegionCode::parse("340500").unwrap();
        terms(&TermsInput {
            policy: &policy,
            year: year(2025),
            region: &region,
            today: date(today),
            birth_date: date(birth),
            back_payment: false,
            history,
        })
    }

    #[test]
    fn paying_in_the_window_covers_the_whole_year() {
        let t = run("2024-11-15", "2015-06-01", &[]).unwrap();
        assert!(t.in_window);
        assert_eq!(t.premium.to_string(), "400.00");
        assert_eq!(t.waiting_months, 0);
        assert_eq!(t.cover, Some((date("2025-01-01"), date("2025-12-31"))));
    }

    #[test]
    fn the_last_window_day_is_in_and_the_next_day_is_late() {
        assert!(run("2024-12-31", "2015-06-01", &[]).unwrap().in_window);
        let late = run("2025-01-01", "2015-06-01", &[]).unwrap();
        assert!(!late.in_window);
        assert_eq!(late.waiting_months, 3);
        assert_eq!(late.cover, Some((date("2025-04-01"), date("2025-12-31"))));
    }

    #[test]
    fn before_the_window_the_year_is_not_open() {
        assert_eq!(
            run("2024-09-04", "2015-06-01", &[]),
            Err(PremiumRefusal::CoverageYearNotOpen)
        );
    }

    #[test]
    fn gap_years_add_variable_months_and_back_payments_remove_them() {
        // Last paid 2021: 2022, 2023, 2024 without cover; the first gap year does not count.
        let t = run("2025-03-10", "2015-06-01", &[paid(2021, false)]).unwrap();
        assert_eq!(t.waiting_months, 3 + 2);
        let t = run(
            "2025-03-10",
            "2015-06-01",
            &[paid(2021, false), paid(2023, true)],
        )
        .unwrap();
        assert_eq!(t.waiting_months, 3 + 1);
    }

    #[test]
    fn a_newborn_within_90_days_is_covered_from_birth() {
        let t = run("2025-03-01", "2025-01-15", &[]).unwrap();
        assert_eq!(t.waiting_months, 0);
        assert_eq!(t.cover, Some((date("2025-01-15"), date("2025-12-31"))));
        let after = run("2025-05-01", "2025-01-15", &[]).unwrap();
        assert_eq!(after.waiting_months, 3);
    }

    #[test]
    fn cover_that_would_start_after_the_year_is_refused() {
        assert_eq!(
            run("2025-10-15", "2015-06-01", &[]),
            Err(PremiumRefusal::NoBenefitInCoverageYear {
                would_start: Some(date("2026-01-15"))
            })
        );
        assert_eq!(
            run("2026-01-02", "2015-06-01", &[]),
            Err(PremiumRefusal::NoBenefitInCoverageYear { would_start: None })
        );
    }

    fn back_pay(today: &str, birth: &str, y: i32) -> Result<PremiumTerms, PremiumRefusal> {
        let policy = Policy::anhui_default().unwrap();
        let region = RegionCode::parse("340500").unwrap();
        terms(&TermsInput {
            policy: &policy,
            year: year(y),
            region: &region,
            today: date(today),
            birth_date: date(birth),
            back_payment: true,
            history: &[],
        })
    }

    #[test]
    fn a_back_payment_stays_within_birth_policy_and_reach() {
        // The default policy knows 2025 to 2027 and lets back-payments reach 3 years.
        assert_eq!(
            back_pay("2027-03-01", "2026-02-01", 2025),
            Err(PremiumRefusal::BackPaymentBeforeBirth { birth_year: 2026 })
        );
        assert!(back_pay("2027-03-01", "2026-02-01", 2026).is_ok());
        assert_eq!(
            back_pay("2027-03-01", "2018-01-10", 2024),
            Err(PremiumRefusal::BackPaymentBeforePolicy {
                first_year: Some(year(2025))
            })
        );
        let paid = back_pay("2027-03-01", "2018-01-10", 2025).unwrap();
        assert_eq!(
            (paid.premium.to_string(), paid.cover),
            ("400.00".to_owned(), None)
        );
        assert_eq!(
            back_pay("2027-03-01", "2018-01-10", 2027),
            Err(PremiumRefusal::BackPaymentNotPast)
        );
    }

    #[test]
    fn a_newborn_is_covered_from_birth_on_day_90_and_waits_on_day_91() {
        // Born 2025-01-15: day 90 is 2025-04-15.
        let day_90 = run("2025-04-15", "2025-01-15", &[]).unwrap();
        assert_eq!(day_90.waiting_months, 0);
        assert_eq!(day_90.cover, Some((date("2025-01-15"), date("2025-12-31"))));
        let day_91 = run("2025-04-16", "2025-01-15", &[]).unwrap();
        assert_eq!(day_91.waiting_months, 3);
        assert_eq!(day_91.cover, Some((date("2025-07-16"), date("2025-12-31"))));
    }

    #[test]
    fn when_the_first_gap_year_counts_every_gap_year_adds_a_month() {
        let text = gongji_shared::policy::ANHUI_DEFAULT_TOML.replace(
            "first_gap_year_counts = false",
            "first_gap_year_counts = true",
        );
        let policy = Policy::parse(&text, "test").unwrap();
        let region = RegionCode::parse("340500").unwrap();
        let history = [paid(2021, false)];
        let t = terms(&TermsInput {
            policy: &policy,
            year: year(2025),
            region: &region,
            today: date("2025-03-10"),
            birth_date: date("2015-06-01"),
            back_payment: false,
            history: &history,
        })
        .unwrap();
        assert_eq!(t.waiting_months, 3 + 3, "2022, 2023 and 2024 all count");
    }

    #[test]
    fn back_paid_years_never_take_the_waiting_period_below_its_fixed_months() {
        let t = run(
            "2025-03-10",
            "2015-06-01",
            &[
                paid(2021, false),
                paid(2022, true),
                paid(2023, true),
                paid(2024, true),
            ],
        )
        .unwrap();
        assert_eq!(
            t.waiting_months, 3,
            "two variable months, three back-paid years"
        );
    }

    #[test]
    fn a_county_pays_its_city_s_premium_and_another_province_none() {
        let policy = Policy::anhui_default().unwrap();
        let quote = |region: &str| {
            terms(&TermsInput {
                policy: &policy,
                year: year(2025),
                region: &RegionCode::parse(region).unwrap(),
                today: date("2025-01-10"),
                birth_date: date("2015-06-01"),
                back_payment: false,
                history: &[],
            })
        };
        let county = quote("340521").unwrap();
        assert!(!county.in_window, "Ma'anshan's window ended 2024-12-31");
        assert_eq!(county.window.end, date("2024-12-31"));
        assert!(
            quote("340100").unwrap().in_window,
            "the province window runs to February"
        );
        assert_eq!(quote("110105"), Err(PremiumRefusal::RegionOutsidePolicy));
    }

    #[test]
    fn a_back_payment_reaches_back_no_further_than_the_policy_says() {
        let mut text = gongji_shared::policy::ANHUI_DEFAULT_TOML.to_owned();
        for y in 2020..=2024 {
            text.push_str(&format!(
                "\n[[premiums]]\ncoverage_year = {y}\namount = \"400.00\"\nwindow_start = \"{}-09-01\"\nwindow_end = \"{}-12-31\"\n",
                y - 1,
                y - 1
            ));
        }
        let policy = Policy::parse(&text, "test").unwrap();
        let region = RegionCode::parse("340500").unwrap();
        let back_pay = |y: i32| {
            terms(&TermsInput {
                policy: &policy,
                year: year(y),
                region: &region,
                today: date("2027-03-01"),
                birth_date: date("2015-06-01"),
                back_payment: true,
                history: &[],
            })
        };
        assert!(back_pay(2024).is_ok(), "3 years back");
        assert_eq!(
            back_pay(2023),
            Err(PremiumRefusal::BackPaymentTooOld { max_years_back: 3 })
        );
    }
}
