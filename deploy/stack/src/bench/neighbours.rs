//! What other processes on this host take of its CPU while a run goes on. On a small host
//! shared with other services (this one runs a message broker and other databases beside
//! PostgreSQL), a burst of one of them can hold up every call of a paced run for a few
//! hundred milliseconds, and the run's p99 with them. A thread reads every process's CPU
//! time from `/proc` each `WINDOW_MS` and keeps the busiest window and who was busiest in
//! it, so that a reader of the figures can tell such a run from a slow service.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::cpu;

/// One window. `/proc` counts in 10 ms ticks: 500 ms on 2 CPUs is 100 of them.
const WINDOW_MS: u64 = 500;

/// Other processes' share of the host's CPU during a run.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Neighbours {
    /// Over the whole run (0 to 1).
    pub share: f64,
    /// In its busiest window.
    pub peak_share: f64,
    /// The command that took most in that window, and its share.
    pub peak_busiest: Option<(String, f64)>,
}

/// CPU ticks of every other process, by process ID, with its command name.
type Ticks = HashMap<u32, (String, u64)>;

/// Reads the ticks of every process but the run's own: this one and PostgreSQL's.
fn others() -> Ticks {
    let own = std::process::id();
    cpu::processes()
        .filter(|(pid, comm, _)| *pid != own && comm != cpu::POSTGRES)
        .map(|(pid, comm, ticks)| (pid, (comm, ticks)))
        .collect()
}

/// Ticks spent between two readings, in all and by command name. A process that started
/// in between counts whole; one that ended is lost (its parent's children's times count it
/// once the parent has waited for it).
fn spent(before: &Ticks, after: &Ticks) -> (u64, HashMap<String, u64>) {
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let mut all = 0;
    for (pid, (comm, t)) in after {
        let earlier = before.get(pid).map_or(0, |(_, t)| *t);
        let d = t.saturating_sub(earlier);
        if d > 0 {
            all += d;
            *by_name.entry(comm.clone()).or_default() += d;
        }
    }
    (all, by_name)
}

/// The share of `cpus` CPUs that `ticks` are over `elapsed`.
fn share_of(ticks: u64, elapsed: Duration, cpus: usize) -> f64 {
    let capacity = elapsed.as_secs_f64() * cpu::TICKS_PER_S * cpus as f64;
    if capacity <= 0.0 {
        0.0
    } else {
        (ticks as f64 / capacity).min(1.0)
    }
}

/// A running probe; `stop` ends it and says what it saw.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Neighbours>,
}

impl Probe {
    /// Starts reading.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                let (started, mut at) = (Instant::now(), Instant::now());
                let mut last = others();
                let (mut all, mut neighbours) = (0, Neighbours::default());
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(WINDOW_MS));
                    let (now, now_at) = (others(), Instant::now());
                    let (ticks, by_name) = spent(&last, &now);
                    all += ticks;
                    let share = share_of(ticks, now_at - at, cpus);
                    if share > neighbours.peak_share {
                        neighbours.peak_share = share;
                        neighbours.peak_busiest = by_name
                            .into_iter()
                            .max_by_key(|(_, t)| *t)
                            .map(|(name, t)| (name, share_of(t, now_at - at, cpus)));
                    }
                    (last, at) = (now, now_at);
                }
                neighbours.share = share_of(all, at - started, cpus);
                neighbours
            }
        });
        Self { stop, thread }
    }

    /// Stops reading (within one window).
    pub fn stop(self) -> Option<Neighbours> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ticks(rows: &[(u32, &str, u64)]) -> Ticks {
        rows.iter()
            .map(|(pid, comm, t)| (*pid, ((*comm).to_owned(), *t)))
            .collect()
    }

    #[test]
    fn the_time_spent_is_each_process_s_growth_and_a_new_one_s_whole() {
        let before = ticks(&[(1, "beam.smp", 100), (2, "redis", 50), (3, "gone", 9)]);
        let after = ticks(&[(1, "beam.smp", 130), (2, "redis", 52), (4, "sh", 3)]);
        let (all, by_name) = spent(&before, &after);
        assert_eq!(all, 30 + 2 + 3);
        assert_eq!(by_name.get("beam.smp"), Some(&30));
        assert_eq!(by_name.get("sh"), Some(&3));
        assert_eq!(by_name.get("gone"), None);
    }

    #[test]
    fn a_share_is_of_every_cpu_over_the_window() {
        // 2 CPUs for 500 ms: 100 ticks.
        assert_eq!(share_of(25, Duration::from_millis(500), 2), 0.25);
        assert_eq!(share_of(250, Duration::from_millis(500), 2), 1.0);
        assert_eq!(share_of(5, Duration::ZERO, 2), 0.0);
    }

    #[test]
    fn others_leave_out_this_process() {
        let others = others();
        assert!(!others.contains_key(&std::process::id()));
        assert!(others.values().all(|(comm, _)| comm != cpu::POSTGRES));
    }
}
