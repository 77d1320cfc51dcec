//! The TOML form of a policy, and its validation into the model with line-numbered errors.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    ops::Range,
};

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::{
    BindingRules, Bucket, ConsentRule, ContinuityIncentive, DateWindow, FamilyLimitPolicy, Policy,
    Pooling, PremiumRate, PremiumYear, Purpose, ReviewMode, WaitingPeriod, WalletRule,
};
use crate::domain::{
    CoverageYear, Money, RegionCode, Relationship,
    limits::{FamilyLimit, FamilyLimits, LimitPeriod},
};

/// Most beneficiaries one authorizer may ever have, whatever a policy says.
const MAX_BENEFICIARIES_LIMIT: u32 = 50;
/// Oldest age a consent rule may start at.
const MAX_AGE: u32 = 30;
/// Longest a binding request may wait for the beneficiary's answer.
const MAX_CONSENT_EXPIRY_DAYS: u32 = 90;
/// Most wallet transfers a day a policy may allow.
const MAX_WALLET_TRANSFERS_PER_DAY: u32 = 100;
/// Longest a wallet transfer may wait for confirmation: 30 days.
const MAX_WALLET_CONFIRM_HOURS: u32 = 720;
/// Most months any waiting-period parameter may hold.
const MAX_WAITING_MONTHS: u32 = 12;
/// A bound on how far back a policy may let back-payments reach.
const MAX_BACK_PAYMENT_YEARS: u32 = 30;
/// Most continuous years an incentive may ask for before it starts.
const MAX_QUALIFYING_YEARS: u32 = 50;

/// A policy that cannot be used, with the place that says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    origin: String,
    line: Option<usize>,
    message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "policy {}:{}: {}", self.origin, line, self.message),
            None => write!(f, "policy {}: {}", self.origin, self.message),
        }
    }
}

impl PolicyError {
    pub(super) fn unreadable(origin: &str, why: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            line: None,
            message: format!("cannot read: {why}"),
        }
    }

    /// The 1-based line the error names, if any.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    province_code: Spanned<String>,
    rules: Vec<Spanned<RawRules>>,
    premiums: Vec<Spanned<RawPremium>>,
    waiting_period: Spanned<RawWaiting>,
    pooling: Spanned<RawPooling>,
    #[serde(default)]
    continuity_incentive: Option<Spanned<RawIncentive>>,
    #[serde(default)]
    family_limits: Option<Spanned<RawFamilyLimits>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamilyLimits {
    max_monthly: Option<Spanned<String>>,
    max_yearly: Option<Spanned<String>>,
    default_monthly: Option<Spanned<String>>,
    default_yearly: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncentive {
    qualifying_years: Spanned<u32>,
    raise_per_year: Spanned<String>,
    source: Spanned<String>,
    unconfirmed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    effective_from: Spanned<String>,
    allowed_relationships: Spanned<Vec<Spanned<String>>>,
    cross_province_funds_sharing: bool,
    usable_buckets: Spanned<Vec<Spanned<String>>>,
    max_beneficiaries: Spanned<u32>,
    review_mode: Spanned<String>,
    purposes: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    consent: Option<RawConsent>,
    #[serde(default)]
    wallet: Option<RawWallet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWallet {
    max_per_transfer: Spanned<String>,
    max_transfers_per_day: Spanned<u32>,
    open_from: Spanned<String>,
    open_until: Spanned<String>,
    confirm_within_hours: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    from_age: Spanned<u32>,
    expiry_days: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPremium {
    coverage_year: Spanned<i32>,
    amount: Spanned<String>,
    window_start: Spanned<String>,
    window_end: Spanned<String>,
    #[serde(default)]
    regions: Vec<Spanned<RawRegion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    region_code: Spanned<String>,
    amount: Option<Spanned<String>>,
    window_start: Spanned<String>,
    window_end: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiting {
    fixed_months: Spanned<u32>,
    variable_months_per_gap_year: Spanned<u32>,
    first_gap_year_counts: bool,
    months_removed_per_back_paid_year: Spanned<u32>,
    newborn_grace_days: Spanned<u32>,
    max_back_payment_years: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPooling {
    exceptions: Vec<Spanned<RawPoolingException>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoolingException {
    region_code: Spanned<String>,
    pooling_region: Spanned<String>,
}

/// Turns byte spans into line-numbered errors.
struct Checker<'a> {
    source: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let start = span.start.min(self.source.len());
        let line = self.source[..start].bytes().filter(|b| *b == b'\n').count() + 1;
        PolicyError {
            origin: self.origin.to_owned(),
            line: Some(line),
            message: message.into(),
        }
    }

    fn date(&self, raw: &Spanned<String>, what: &str) -> Result<NaiveDate, PolicyError> {
        raw.get_ref().parse().map_err(|_| {
            self.error(
                raw.span(),
                format!("{what} {:?} is not a YYYY-MM-DD date", raw.get_ref()),
            )
        })
    }

    fn money(&self, raw: &Spanned<String>) -> Result<Money, PolicyError> {
        Money::parse(raw.get_ref())
            .map_err(|e| self.error(raw.span(), format!("amount {:?}: {e}", raw.get_ref())))
    }

    fn window(
        &self,
        start: &Spanned<String>,
        end: &Spanned<String>,
    ) -> Result<DateWindow, PolicyError> {
        let window = DateWindow {
            start: self.date(start, "window_start")?,
            end: self.date(end, "window_end")?,
        };
        if window.start > window.end {
            return Err(self.error(end.span(), "window_end is before window_start"));
        }
        Ok(window)
    }

    fn bounded(
        &self,
        raw: &Spanned<u32>,
        name: &str,
        range: Range<u32>,
    ) -> Result<u32, PolicyError> {
        let value = *raw.get_ref();
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self.error(
                raw.span(),
                format!(
                    "{name} is {value}; it must be from {} to {}",
                    range.start,
                    range.end - 1
                ),
            ))
        }
    }

    fn list<T: Ord + Copy>(
        &self,
        raw: &Spanned<Vec<Spanned<String>>>,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, PolicyError> {
        if raw.get_ref().is_empty() {
            return Err(self.error(raw.span(), format!("{what} must not be empty")));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(raw.get_ref().len());
        for item in raw.get_ref() {
            let value = parse(item.get_ref()).ok_or_else(|| {
                self.error(item.span(), format!("unknown {what} {:?}", item.get_ref()))
            })?;
            if !seen.insert(value) {
                return Err(self.error(
                    item.span(),
                    format!("{what} {:?} is listed twice", item.get_ref()),
                ));
            }
            out.push(value);
        }
        Ok(out)
    }
}

pub(super) fn parse(source: &str, origin: &str) -> Result<Policy, PolicyError> {
    let check = Checker { source, origin };
    let raw: RawPolicy = toml::from_str(source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        check.error(span, e.message().to_owned())
    })?;

    let province = raw.province_code.get_ref();
    if province.len() != 2 || RegionCode::parse(&format!("{province}0000")).is_err() {
        return Err(check.error(
            raw.province_code.span(),
            "province_code must be a 2-digit province code",
        ));
    }

    let rules = rules(&check, &raw.rules)?;
    let pooling = pooling(&check, raw.pooling.get_ref(), province)?;
    let premiums = premiums(&check, &raw.premiums, &pooling)?;
    let w = raw.waiting_period.get_ref();
    let waiting_period = WaitingPeriod {
        fixed_months: check.bounded(&w.fixed_months, "fixed_months", 0..MAX_WAITING_MONTHS + 1)?,
        variable_months_per_gap_year: check.bounded(
            &w.variable_months_per_gap_year,
            "variable_months_per_gap_year",
            0..MAX_WAITING_MONTHS + 1,
        )?,
        first_gap_year_counts: w.first_gap_year_counts,
        months_removed_per_back_paid_year: check.bounded(
            &w.months_removed_per_back_paid_year,
            "months_removed_per_back_paid_year",
            0..MAX_WAITING_MONTHS + 1,
        )?,
        newborn_grace_days: check.bounded(&w.newborn_grace_days, "newborn_grace_days", 0..367)?,
        max_back_payment_years: check.bounded(
            &w.max_back_payment_years,
            "max_back_payment_years",
            0..MAX_BACK_PAYMENT_YEARS + 1,
        )?,
    };

    let continuity_incentive = match &raw.continuity_incentive {
        None => None,
        Some(spanned) => {
            let i = spanned.get_ref();
            let source = i.source.get_ref().trim();
            if source.is_empty() {
                return Err(
                    check.error(i.source.span(), "source names where the figures come from")
                );
            }
            Some(ContinuityIncentive {
                qualifying_years: check.bounded(
                    &i.qualifying_years,
                    "qualifying_years",
                    0..MAX_QUALIFYING_YEARS + 1,
                )?,
                raise_per_year: check.money(&i.raise_per_year)?,
                source: source.to_owned(),
                unconfirmed: i.unconfirmed,
            })
        }
    };

    let family_limits = match &raw.family_limits {
        None => FamilyLimitPolicy::default(),
        Some(spanned) => {
            let f = spanned.get_ref();
            let money =
                |raw: &Option<Spanned<String>>| raw.as_ref().map(|m| check.money(m)).transpose();
            let (max_monthly, max_yearly) = (money(&f.max_monthly)?, money(&f.max_yearly)?);
            let defaults = [
                (LimitPeriod::Month, money(&f.default_monthly)?, max_monthly),
                (LimitPeriod::Year, money(&f.default_yearly)?, max_yearly),
            ];
            let mut limits = Vec::new();
            for (period, amount, max) in defaults {
                let Some(amount) = amount else { continue };
                if amount.is_zero() || max.is_some_and(|m| amount > m) {
                    return Err(check.error(
                        spanned.span(),
                        "a default limit is positive and at most its maximum",
                    ));
                }
                limits.push(FamilyLimit {
                    purpose: None,
                    period,
                    amount,
                });
            }
            FamilyLimitPolicy {
                max_monthly,
                max_yearly,
                defaults: FamilyLimits::parse(limits)
                    .map_err(|e| check.error(spanned.span(), e.to_string()))?,
            }
        }
    };

    Ok(Policy {
        province_code: province.clone(),
        rules,
        premiums,
        waiting_period,
        pooling,
        continuity_incentive,
        family_limits,
    })
}

fn rules(check: &Checker<'_>, raw: &[Spanned<RawRules>]) -> Result<Vec<BindingRules>, PolicyError> {
    let mut out: Vec<BindingRules> = Vec::with_capacity(raw.len());
    if raw.is_empty() {
        return Err(check.error(0..0, "at least one [[rules]] version is required"));
    }
    for spanned in raw {
        let r = spanned.get_ref();
        let effective_from = check.date(&r.effective_from, "effective_from")?;
        if let Some(previous) = out.last()
            && previous.effective_from >= effective_from
        {
            return Err(check.error(
                r.effective_from.span(),
                "rules versions must be in increasing effective_from order, without repeats",
            ));
        }
        let review_mode = match r.review_mode.get_ref().as_str() {
            "AUTOMATIC" => ReviewMode::Automatic,
            "MANUAL" => ReviewMode::Manual,
            other => {
                return Err(check.error(
                    r.review_mode.span(),
                    format!("unknown review_mode {other:?}; expected AUTOMATIC or MANUAL"),
                ));
            }
        };
        out.push(BindingRules {
            effective_from,
            allowed_relationships: check.list(&r.allowed_relationships, "relationship", |s| {
                s.parse::<Relationship>().ok()
            })?,
            cross_province_funds_sharing: r.cross_province_funds_sharing,
            usable_buckets: check.list(&r.usable_buckets, "bucket", Bucket::parse)?,
            max_beneficiaries: check.bounded(
                &r.max_beneficiaries,
                "max_beneficiaries",
                1..MAX_BENEFICIARIES_LIMIT + 1,
            )?,
            review_mode,
            purposes: check.list(&r.purposes, "purpose", |s| match s {
                "PREMIUM" => Some(Purpose::Premium),
                "MEDICAL_EXPENSE" => Some(Purpose::MedicalExpense),
                "FAMILY_WALLET" => Some(Purpose::FamilyWallet),
                _ => None,
            })?,
            consent: match &r.consent {
                Some(c) => Some(ConsentRule {
                    from_age: check.bounded(&c.from_age, "consent.from_age", 1..MAX_AGE + 1)?,
                    expiry_days: check.bounded(
                        &c.expiry_days,
                        "consent.expiry_days",
                        1..MAX_CONSENT_EXPIRY_DAYS + 1,
                    )?,
                }),
                None => None,
            },
            wallet: match &r.wallet {
                Some(w) => Some(wallet(check, w)?),
                None => None,
            },
        });
    }
    Ok(out)
}

/// The wallet's figures: a positive amount per transfer, a count per day, a time window that
/// opens before it closes, a confirmation time.
fn wallet(check: &Checker<'_>, w: &RawWallet) -> Result<WalletRule, PolicyError> {
    let time = |s: &Spanned<String>, field: &str| {
        chrono::NaiveTime::parse_from_str(s.get_ref(), "%H:%M")
            .map_err(|_| check.error(s.span(), format!("wallet.{field} is a time written HH:MM")))
    };
    let max_per_transfer = Money::parse(w.max_per_transfer.get_ref())
        .ok()
        .filter(|m| !m.is_zero())
        .ok_or_else(|| {
            check.error(
                w.max_per_transfer.span(),
                "wallet.max_per_transfer is an amount above zero, e.g. \"2000.00\"",
            )
        })?;
    let (open_from, open_until) = (
        time(&w.open_from, "open_from")?,
        time(&w.open_until, "open_until")?,
    );
    if open_from >= open_until {
        return Err(check.error(w.open_until.span(), "wallet.open_until is after open_from"));
    }
    Ok(WalletRule {
        max_per_transfer,
        max_transfers_per_day: check.bounded(
            &w.max_transfers_per_day,
            "wallet.max_transfers_per_day",
            1..MAX_WALLET_TRANSFERS_PER_DAY + 1,
        )?,
        open_from,
        open_until,
        confirm_within_hours: check.bounded(
            &w.confirm_within_hours,
            "wallet.confirm_within_hours",
            1..MAX_WALLET_CONFIRM_HOURS + 1,
        )?,
    })
}

/// The pooling exceptions: each inside the province, each region listed once.
fn pooling(check: &Checker<'_>, raw: &RawPooling, province: &str) -> Result<Pooling, PolicyError> {
    let mut exceptions = BTreeMap::new();
    for spanned in &raw.exceptions {
        let e = spanned.get_ref();
        let code = |s: &Spanned<String>, field: &str| {
            let code = RegionCode::parse(s.get_ref())
                .map_err(|err| check.error(s.span(), format!("{field}: {err}")))?;
            if code.province() != province {
                return Err(check.error(
                    s.span(),
                    format!("{field} {code} is outside province {province}"),
                ));
            }
            Ok(code)
        };
        let region = code(&e.region_code, "region_code")?;
        let pool = code(&e.pooling_region, "pooling_region")?;
        if exceptions.insert(region.clone(), pool).is_some() {
            return Err(check.error(
                e.region_code.span(),
                format!("region {region} is given twice"),
            ));
        }
    }
    Ok(Pooling {
        province: province.to_owned(),
        exceptions,
    })
}

fn premiums(
    check: &Checker<'_>,
    raw: &[Spanned<RawPremium>],
    pooling: &Pooling,
) -> Result<BTreeMap<CoverageYear, PremiumYear>, PolicyError> {
    let province = pooling.province.as_str();
    let mut out = BTreeMap::new();
    // Windows seen so far per region key ("" for the province default), with the year.
    let mut windows: Vec<(String, CoverageYear, DateWindow, Range<usize>)> = Vec::new();
    for spanned in raw {
        let p = spanned.get_ref();
        let year = CoverageYear::parse(*p.coverage_year.get_ref())
            .map_err(|e| check.error(p.coverage_year.span(), e.to_string()))?;
        if out.contains_key(&year) {
            return Err(check.error(
                p.coverage_year.span(),
                format!("coverage_year {year} is given twice"),
            ));
        }
        let default = PremiumRate {
            amount: check.money(&p.amount)?,
            window: check.window(&p.window_start, &p.window_end)?,
        };
        windows.push((String::new(), year, default.window, p.window_start.span()));
        let mut overrides = BTreeMap::new();
        for region_raw in &p.regions {
            let r = region_raw.get_ref();
            let code = RegionCode::parse(r.region_code.get_ref())
                .map_err(|e| check.error(r.region_code.span(), format!("region_code: {e}")))?;
            if code.province() != province {
                return Err(check.error(
                    r.region_code.span(),
                    format!("region {code} is outside province {province}"),
                ));
            }
            // Figures belong to pooling regions: one given for a county would never apply.
            match pooling.pool_of(&code) {
                Some(pool) if pool == code => {}
                pool => {
                    return Err(check.error(
                        r.region_code.span(),
                        format!(
                            "region {code} pools with {}; give its figures under that pooling region",
                            pool.map_or_else(|| "no region".to_owned(), |p| p.to_string())
                        ),
                    ));
                }
            }
            let terms = PremiumRate {
                amount: match &r.amount {
                    Some(amount) => check.money(amount)?,
                    None => default.amount,
                },
                window: check.window(&r.window_start, &r.window_end)?,
            };
            windows.push((code.to_string(), year, terms.window, r.window_start.span()));
            if overrides.insert(code.clone(), terms).is_some() {
                return Err(check.error(
                    r.region_code.span(),
                    format!("region {code} is given twice for {year}"),
                ));
            }
        }
        out.insert(year, PremiumYear { default, overrides });
    }
    check_overlaps(check, &out, &windows)?;
    Ok(out)
}

/// Two coverage years' collection windows must not overlap for any region, or a payment
/// date would not say which year it buys. `windows` holds each window as written: region
/// key ("" for the province default), year, window, span.
fn check_overlaps(
    check: &Checker<'_>,
    years: &BTreeMap<CoverageYear, PremiumYear>,
    windows: &[(String, CoverageYear, DateWindow, Range<usize>)],
) -> Result<(), PolicyError> {
    let regions: BTreeSet<&str> = windows.iter().map(|(region, ..)| region.as_str()).collect();
    for region in regions {
        let code = RegionCode::parse(region).ok();
        // The window in force for this region in each year, with the span that wrote it.
        let effective: Vec<(CoverageYear, DateWindow, Range<usize>)> = years
            .iter()
            .map(|(year, terms)| {
                let written = |key: &str| {
                    windows
                        .iter()
                        .find(|(r, y, ..)| r == key && y == year)
                        .map(|(.., span)| span.clone())
                };
                match code.as_ref().and_then(|c| terms.overrides.get(c)) {
                    Some(t) => (*year, t.window, written(region).unwrap_or(0..0)),
                    None => (*year, terms.default.window, written("").unwrap_or(0..0)),
                }
            })
            .collect();
        for (i, (year, window, span)) in effective.iter().enumerate() {
            if let Some((other_year, ..)) =
                effective[..i].iter().find(|(_, w, _)| w.overlaps(window))
            {
                let whom = if region.is_empty() {
                    "the province default".to_owned()
                } else {
                    format!("region {region}")
                };
                return Err(check.error(
                    span.clone(),
                    format!(
                        "the {year} collection window of {whom} overlaps its {other_year} window"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::ANHUI_DEFAULT_TOML;

    fn error_of(source: &str) -> PolicyError {
        parse(source, "test.toml").expect_err("the policy should be refused")
    }

    #[test]
    fn family_limits_are_optional_with_defaults_within_maxima() {
        let base = super::super::ANHUI_DEFAULT_TOML;
        let none = parse(base, "test.toml").unwrap();
        assert!(none.family_limits().defaults.is_empty());
        assert_eq!(none.family_limits().max_monthly, None);
        let with = base.replace(
            "[family_limits]",
            "[family_limits]\nmax_monthly = \"2000.00\"\ndefault_monthly = \"500.00\"",
        );
        let policy = parse(&with, "test.toml").unwrap();
        assert_eq!(
            policy.family_limits().defaults.to_string(),
            "ALL MONTH 500.00"
        );
        assert_eq!(
            policy
                .family_limits()
                .maximum(crate::domain::limits::LimitPeriod::Month),
            Some(Money::parse("2000.00").unwrap())
        );
        let above = base.replace(
            "[family_limits]",
            "[family_limits]\nmax_monthly = \"100.00\"\ndefault_monthly = \"500.00\"",
        );
        assert!(error_of(&above).to_string().contains("at most its maximum"));
    }

    fn line_of(source: &str, needle: &str) -> usize {
        source.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn a_negative_amount_is_refused_with_its_line() {
        let source = ANHUI_DEFAULT_TOML.replacen("amount = \"400.00\"", "amount = \"-400.00\"", 1);
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "-400.00")));
        assert!(err.to_string().contains("must not be negative"), "{err}");
    }

    #[test]
    fn an_unknown_relationship_is_refused_with_its_line() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "\"SPOUSE\", \"PARENT\", \"CHILD\"]",
            "\"SPOUSE\", \"COUSIN\"]",
            1,
        );
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "COUSIN")));
        assert!(err.to_string().contains("COUSIN"), "{err}");
    }

    #[test]
    fn overlapping_windows_are_refused_with_the_later_line() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "window_start = \"2025-09-01\"",
            "window_start = \"2025-02-01\"",
            1,
        );
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "2025-02-01")));
        assert!(err.to_string().contains("overlaps"), "{err}");
    }

    #[test]
    fn a_city_window_overlapping_the_next_year_is_refused() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "window_end = \"2024-12-31\"",
            "window_end = \"2025-09-02\"",
            1,
        );
        let err = error_of(&source);
        assert!(err.to_string().contains("overlaps"), "{err}");
    }

    #[test]
    fn malformed_toml_is_refused_with_its_line() {
        let source = format!("{ANHUI_DEFAULT_TOML}\n[oops\n");
        let err = error_of(&source);
        assert_eq!(err.line(), Some(source.lines().count()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "max_beneficiaries = 6",
            "max_beneficiaries = 6\nmax_benefits = 3",
            1,
        );
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "max_benefits")));
    }

    #[test]
    fn rules_out_of_order_are_refused() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "effective_from = \"2026-01-01\"",
            "effective_from = \"2023-01-01\"",
            1,
        );
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "2023-01-01")));
    }

    #[test]
    fn a_window_ending_before_it_starts_is_refused() {
        let source = ANHUI_DEFAULT_TOML.replacen(
            "window_end = \"2026-12-31\"",
            "window_end = \"2026-08-01\"",
            1,
        );
        let err = error_of(&source);
        assert_eq!(err.line(), Some(line_of(&source, "2026-08-01")));
    }

    #[test]
    fn a_city_outside_the_province_is_refused() {
        let source =
            ANHUI_DEFAULT_TOML.replacen("region_code = \"340500\"", "region_code = \"320500\"", 1);
        let err = error_of(&source);
        assert!(err.to_string().contains("outside province"), "{err}");
    }
}
