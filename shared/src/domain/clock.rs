//! The services' clock: the system time, or a time fixed at start-up for demos and tests.
//!
//! Every date the rules use (collection windows, business days, policy versions) is an
//! Asia/Shanghai calendar date, whatever the host's time zone.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use chrono_tz::Asia::Shanghai;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The host's clock.
    System,
    /// Frozen at one instant (`--clock 2024-11-15T10:00:00+08:00`).
    Fixed(DateTime<Utc>),
    /// For tests (feature `testing`): from `start`, one second later at every reading, so a
    /// test sees whether a use case read the clock more than once where it must not.
    #[cfg(feature = "testing")]
    Stepping {
        start: DateTime<Utc>,
        readings: Readings,
    },
}

/// How often a stepping clock was read; clocks are equal when they share it.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy)]
pub struct Readings(&'static std::sync::atomic::AtomicI64);

#[cfg(feature = "testing")]
impl PartialEq for Readings {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

#[cfg(feature = "testing")]
impl Eq for Readings {}

/// The text is not an RFC 3339 time with an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a clock is \"system\" or an RFC 3339 time with offset, e.g. 2024-11-15T10:00:00+08:00")]
pub struct ClockError;

impl Clock {
    /// Parses `"system"` or an RFC 3339 time.
    pub fn parse(input: &str) -> Result<Self, ClockError> {
        if input.eq_ignore_ascii_case("system") {
            return Ok(Self::System);
        }
        DateTime::parse_from_rfc3339(input)
            .map(|t| Self::Fixed(t.with_timezone(&Utc).trunc_subsecs(6)))
            .map_err(|_| ClockError)
    }

    /// The current instant, to the microsecond: what both databases keep, so a value read
    /// back equals the one written.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now().trunc_subsecs(6),
            Self::Fixed(at) => *at,
            #[cfg(feature = "testing")]
            Self::Stepping { start, readings } => {
                let n = readings.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                *start + chrono::Duration::seconds(n)
            }
        }
    }

    /// A stepping clock from `start` (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn stepping(start: DateTime<Utc>) -> Self {
        Self::Stepping {
            start,
            readings: Readings(Box::leak(Box::new(std::sync::atomic::AtomicI64::new(0)))),
        }
    }

    /// Today's Asia/Shanghai date.
    pub fn today(&self) -> NaiveDate {
        shanghai_date(self.now())
    }
}

/// The Asia/Shanghai calendar date of an instant.
pub fn shanghai_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Shanghai).date_naive()
}

/// The Asia/Shanghai time of day of an instant.
pub fn shanghai_time(at: DateTime<Utc>) -> chrono::NaiveTime {
    at.with_timezone(&Shanghai).time()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stays_put() {
        let clock = Clock::parse("2024-11-15T10:00:00+08:00").unwrap();
        assert_eq!(clock.now(), clock.now());
        assert_eq!(clock.today().to_string(), "2024-11-15");
    }

    #[test]
    fn dates_are_shanghai_dates_not_utc_dates() {
        // 23:59 on 31 December in Shanghai is still 31 December there, 15:59 UTC.
        let late = Clock::parse("2024-12-31T23:59:00+08:00").unwrap();
        assert_eq!(late.today().to_string(), "2024-12-31");
        // 00:01 on 1 January in Shanghai is 31 December in UTC.
        let early = Clock::parse("2025-01-01T00:01:00+08:00").unwrap();
        assert_eq!(early.today().to_string(), "2025-01-01");
        assert_eq!(early.now().date_naive().to_string(), "2024-12-31");
    }

    #[test]
    fn instants_carry_at_most_microseconds() {
        use chrono::Timelike;
        assert_eq!(Clock::System.now().nanosecond() % 1_000, 0);
        let fixed = Clock::parse("2024-11-15T10:00:00.123456789+08:00").unwrap();
        assert_eq!(fixed.now().nanosecond(), 123_456_000);
    }

    #[test]
    fn system_and_garbage_parse_as_expected() {
        assert_eq!(Clock::parse("system"), Ok(Clock::System));
        assert_eq!(Clock::parse("2024-11-15"), Err(ClockError));
        assert_eq!(Clock::parse("tomorrow"), Err(ClockError));
    }
}
