//! Per-caller request rates: a token bucket per known caller, holding one second's worth.

use std::{collections::HashMap, sync::Mutex, time::Instant};

/// Most callers tracked; only callers of the caller file get here, and it is bounded too.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every caller seen.
#[derive(Debug, Default)]
pub(super) struct Rates(Mutex<HashMap<String, Bucket>>);

impl Rates {
    /// Takes one request from `identity`'s bucket of `per_second`; when it is empty, the
    /// milliseconds until it holds one again.
    pub(super) fn take(&self, identity: &str, per_second: u32) -> Option<u64> {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        let mut buckets = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(identity) {
            buckets.clear();
        }
        let bucket = buckets.entry(identity.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refilled).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        let wait_s = (1.0 - bucket.tokens) / rate;
        Some((wait_s * 1000.0).ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_rate_and_then_a_delay_others_are_apart() {
        let rates = Rates::default();
        for _ in 0..3 {
            assert_eq!(rates.take("a", 3), None);
        }
        let delay_ms = rates.take("a", 3).expect("empty");
        assert!((1..=334).contains(&delay_ms), "{delay_ms}");
        assert_eq!(rates.take("b", 3), None, "another caller has its own");
    }
}
