//! CPU time a run spends, split between this process (the load client and both services,
//! or the waited-for `pgbench`) and the PostgreSQL server's processes on this host, read
//! from `/proc`. Divided by the run's calls it says where a call's time goes: a ratio of
//! rates alone cannot tell the database's share from ours.

use std::path::Path;

/// Clock ticks per second of `/proc`'s times (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_S: f64 = 100.0;
/// Most processes read in one sample: a bound on the work of one reading of `/proc`.
const MAX_PROCESSES: usize = 65_536;
/// The command name of PostgreSQL's server processes.
pub const POSTGRES: &str = "postgres";

/// CPU ticks so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    own_ticks: u64,
    /// `None` when no PostgreSQL process is visible here (the server runs elsewhere).
    postgres_ticks: Option<u64>,
}

/// CPU microseconds per call between two samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PerCall {
    pub own_us: f64,
    pub postgres_us: Option<f64>,
}

/// This process's ticks (its threads and its waited-for children) and those of every
/// process named `postgres` (the running ones, and through the postmaster's children
/// times, the backends that have exited: a `pgbench` run's end with its connections).
pub fn sample() -> Sample {
    let own_ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks_of(&s))
        .map_or(0, |(_, ticks)| ticks);
    let mut postgres_ticks = None;
    for (_, comm, ticks) in processes() {
        if comm == POSTGRES {
            *postgres_ticks.get_or_insert(0) += ticks;
        }
    }
    Sample {
        own_ticks,
        postgres_ticks,
    }
}

impl Sample {
    /// The CPU per call from `before` to this sample; `None` when there were no calls.
    pub fn per_call_since(&self, before: &Sample, calls: usize) -> Option<PerCall> {
        if calls == 0 {
            return None;
        }
        let us = |ticks: u64| ticks as f64 / TICKS_PER_S * 1e6 / calls as f64;
        Some(PerCall {
            own_us: us(self.own_ticks.saturating_sub(before.own_ticks)),
            postgres_us: match (self.postgres_ticks, before.postgres_ticks) {
                (Some(after), Some(before)) => Some(us(after.saturating_sub(before))),
                _ => None,
            },
        })
    }
}

/// Every process's ID, command name and ticks (its own and its waited-for children's), read
/// from `/proc`: at most `MAX_PROCESSES` entries of it.
pub fn processes() -> impl Iterator<Item = (u32, String, u64)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .take(MAX_PROCESSES)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let (comm, ticks) = read_stat(&entry.path().join("stat"))?;
            Some((pid, comm, ticks))
        })
}

fn read_stat(path: &Path) -> Option<(String, u64)> {
    ticks_of(&std::fs::read_to_string(path).ok()?)
}

/// The command name and the user, system and waited-for children's ticks of a
/// `/proc/PID/stat` line. The name stands between the first `(` and the last `)`, and may
/// hold spaces and parentheses itself.
fn ticks_of(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After the name: state (field 3) onwards; utime, stime, cutime, cstime are 14 to 17.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    let ticks = [field(14)?, field(15)?, field(16)?, field(17)?]
        .iter()
        .map(|t| u64::try_from(*t).unwrap_or(0))
        .sum();
    Some((comm, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_its_four_times_even_with_a_bracketed_name() {
        let line = "4242 (post (gres) S 1 4242 4242 0 -1 4194560 310 0 0 0 7 5 11 13 20 0 1 0 \
                    99 1000 10 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            ticks_of(line),
            Some(("post (gres".to_owned(), 7 + 5 + 11 + 13))
        );
        assert_eq!(ticks_of("4242 (cut"), None);
        assert_eq!(ticks_of("4242 (short) S 1 2"), None);
    }

    #[test]
    fn the_cpu_per_call_is_the_difference_over_the_calls() {
        let before = Sample {
            own_ticks: 100,
            postgres_ticks: Some(50),
        };
        let after = Sample {
            own_ticks: 300,
            postgres_ticks: Some(150),
        };
        assert_eq!(
            after.per_call_since(&before, 1_000),
            Some(PerCall {
                own_us: 2_000.0,
                postgres_us: Some(1_000.0),
            })
        );
        let elsewhere = Sample {
            own_ticks: 300,
            postgres_ticks: None,
        };
        assert_eq!(
            elsewhere
                .per_call_since(&before, 1_000)
                .and_then(|c| c.postgres_us),
            None
        );
        assert_eq!(after.per_call_since(&before, 0), None);
    }

    #[test]
    fn this_process_spends_cpu_and_a_sample_sees_it() {
        let before = sample();
        let start = std::time::Instant::now();
        let mut x = 0_u64;
        // Busy until the kernel has charged a tick (10 ms), however slow a shared machine.
        while sample().own_ticks == before.own_ticks {
            assert!(start.elapsed().as_secs() < 30, "no CPU time seen");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let per_call = sample().per_call_since(&before, 1).unwrap();
        assert!(per_call.own_us >= 1e6 / TICKS_PER_S, "{per_call:?}");
    }
}
