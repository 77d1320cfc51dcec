//! Connections kept warm from one call to the next. sqlx tests every connection given back
//! to its pool: a round trip to the server, with a wake-up on each side, once per call that
//! used one (a payment's four calls to its store paid four). A call that ends with its
//! connection at rest (its transaction committed, or its read read to the end) gives it to
//! [`Warm::keep`] instead, and the next call takes it back untested, as the pool hands out
//! a connection used a moment ago (see `liveness`): it was tested when it was last given
//! back to the pool, or has been used since by a call that ended well.
//!
//! A kept connection is out of the pool: at most `max_kept` are kept, each for at most the
//! linger, after which it goes back to the pool (and is tested there). So an idle service
//! holds none a linger after its last call, calls that take from the pool itself wait at
//! most that long for one, and the pool closes once the linger has passed. A call that
//! fails drops its connection, which goes back to the pool the usual way (rolled back and
//! tested), never here.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use sqlx::{Connection as _, Database, Pool, pool::PoolConnection};

use super::liveness;

/// How long a connection is kept for the next call before it goes back to the pool.
pub const KEEP_LINGER_MS: u64 = 10;

/// How many connections a pool of `max_connections` keeps warm: half of them (at least one),
/// so that kept connections, idle until their linger ends, never take the whole pool.
pub fn max_kept(max_connections: u32) -> usize {
    usize::try_from(max_connections / 2)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// A pool with a few connections kept warm; see the module's comment.
pub struct Warm<DB: Database> {
    pool: Pool<DB>,
    shared: Arc<Shared<DB>>,
}

impl<DB: Database> Clone for Warm<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<DB: Database> {
    max_kept: usize,
    linger: Duration,
    state: Mutex<State<DB>>,
}

struct State<DB: Database> {
    /// Oldest first.
    kept: Vec<(PoolConnection<DB>, Instant)>,
    /// Whether a task is giving back the connections kept past the linger.
    sweeping: bool,
}

impl<DB: Database> Warm<DB> {
    /// Keeps up to `max_kept` connections of `pool` for `linger_ms` each; with 0, none (every
    /// call takes from the pool and gives back to it).
    pub fn new(pool: Pool<DB>, max_kept: usize, linger_ms: u64) -> Self {
        Self {
            pool,
            shared: Arc::new(Shared {
                max_kept,
                linger: Duration::from_millis(linger_ms),
                state: Mutex::new(State {
                    kept: Vec::with_capacity(max_kept),
                    sweeping: false,
                }),
            }),
        }
    }

    /// The pool, for calls that give their connection back to it.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The connection kept last, if one was kept within the linger (tested first if an
    /// outage was seen lately, as the pool would); else one from the pool.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        while let Some((mut connection, kept_at)) = self.take() {
            let idle_ms = u64::try_from(kept_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            if !liveness::must_test_now(idle_ms) || connection.ping().await.is_ok() {
                return Ok(connection);
            }
            // Dead: the pool closes it when its own test fails too.
            drop(connection);
        }
        self.pool.acquire().await
    }

    /// Keeps `connection` for the next call. Only a connection at rest: no transaction open,
    /// every result read.
    pub fn keep(&self, connection: PoolConnection<DB>) {
        if self.shared.max_kept == 0 || self.pool_is_short() {
            return drop(connection);
        }
        let (evicted, start_sweeping) = {
            let mut state = self.shared.lock();
            state.kept.push((connection, Instant::now()));
            let over = state.kept.len().saturating_sub(self.shared.max_kept);
            let evicted: Vec<_> = state.kept.drain(..over).collect();
            let start_sweeping = !state.sweeping;
            state.sweeping = true;
            (evicted, start_sweeping)
        };
        // Given back to the pool outside the lock.
        drop(evicted);
        if start_sweeping {
            tokio::spawn(sweep(Arc::clone(&self.shared)));
        }
    }

    /// Gives every kept connection back to the pool now (before closing it: closing waits
    /// for every connection out of the pool).
    pub fn release_all(&self) {
        let kept: Vec<_> = self.shared.lock().kept.drain(..).collect();
        drop(kept);
    }

    /// How many connections are kept now.
    pub fn kept(&self) -> usize {
        self.shared.lock().kept.len()
    }

    /// Whether every connection the pool may open is out and none is idle: calls may be
    /// waiting for one, in order, and a kept connection would pass them by (under load that
    /// starved them: at 32 clients the slowest 1% of payments waited five times the median).
    fn pool_is_short(&self) -> bool {
        self.pool.num_idle() == 0 && self.pool.size() >= self.pool.options().get_max_connections()
    }

    fn take(&self) -> Option<(PoolConnection<DB>, Instant)> {
        let mut state = self.shared.lock();
        match state.kept.last() {
            Some((_, at)) if at.elapsed() < self.shared.linger => state.kept.pop(),
            // The newest is past the linger, and so is every other: the sweeper's.
            _ => None,
        }
    }
}

impl<DB: Database> Shared<DB> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<DB>> {
        // The state is a list of connections: one left by a panic is still a valid list.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives back to the pool every connection kept past the linger, once a linger, until none
/// is kept.
async fn sweep<DB: Database>(shared: Arc<Shared<DB>>) {
    loop {
        tokio::time::sleep(shared.linger).await;
        let (stale, done) = {
            let mut state = shared.lock();
            let cut = state
                .kept
                .iter()
                .take_while(|(_, at)| at.elapsed() >= shared.linger)
                .count();
            let stale: Vec<_> = state.kept.drain(..cut).collect();
            let done = state.kept.is_empty();
            if done {
                state.sweeping = false;
            }
            (stale, done)
        };
        drop(stale);
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, postgres::PgConnection};

    use super::*;

    async fn pool(size: u32) -> Option<Pool<Postgres>> {
        super::super::test_server(size).await.map(|(_, pool)| pool)
    }

    async fn pid(connection: &mut PgConnection) -> i32 {
        sqlx::query_as::<_, (i32,)>("SELECT pg_backend_pid()")
            .fetch_one(connection)
            .await
            .unwrap()
            .0
    }

    /// Takes a connection, uses it, keeps it; its server process.
    async fn use_and_keep(warm: &Warm<Postgres>) -> i32 {
        let mut connection = warm.acquire().await.unwrap();
        let used = pid(&mut connection).await;
        warm.keep(connection);
        used
    }

    #[tokio::test]
    async fn a_kept_connection_serves_the_next_call_then_goes_back_to_the_pool_after_the_linger() {
        let Some(pool) = pool(2).await else { return };
        let warm = Warm::new(pool.clone(), 1, 200);
        let kept_pid = use_and_keep(&warm).await;
        assert_eq!((warm.kept(), pool.size(), pool.num_idle()), (1, 1, 0));
        // Taken again within the linger: the same connection, still out of the pool.
        let mut again = warm.acquire().await.unwrap();
        assert_eq!(pid(&mut again).await, kept_pid);
        assert_eq!(warm.kept(), 0);
        warm.keep(again);
        // Past the linger the sweeper gives it back: idle in the pool, none kept.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!((warm.kept(), pool.num_idle()), (0, 1));
        // Then a call takes it from the pool.
        let mut later = warm.acquire().await.unwrap();
        assert_eq!(pid(&mut later).await, kept_pid);
        drop(later);
        pool.close().await;
    }

    #[tokio::test]
    async fn at_most_max_kept_are_kept_the_oldest_given_back_and_none_with_zero() {
        let Some(pool) = pool(4).await else { return };
        let warm = Warm::new(pool.clone(), 2, 60_000);
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut c = warm.acquire().await.unwrap();
            let p = pid(&mut c).await;
            held.push((c, p));
        }
        let pids: Vec<i32> = held.iter().map(|(_, p)| *p).collect();
        for (c, _) in held {
            warm.keep(c);
        }
        // The first kept went back to the pool when the third came.
        assert_eq!(warm.kept(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.num_idle(), 1);
        // The newest is taken first.
        let mut newest = warm.acquire().await.unwrap();
        assert_eq!(pid(&mut newest).await, pids[2]);
        drop(newest);
        let none = Warm::new(pool.clone(), 0, 60_000);
        let c = none.acquire().await.unwrap();
        none.keep(c);
        assert_eq!(none.kept(), 0);
        warm.release_all();
        assert_eq!(warm.kept(), 0);
        // Closing waits for every connection: it returns once the kept ones are back.
        tokio::time::timeout(Duration::from_secs(5), pool.close())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn with_every_connection_out_of_the_pool_none_is_kept() {
        let Some(pool) = pool(2).await else { return };
        let warm = Warm::new(pool.clone(), 2, 60_000);
        let (a, b) = (warm.acquire().await.unwrap(), warm.acquire().await.unwrap());
        // The pool is short: a call may be waiting for a connection, so it goes back there.
        warm.keep(a);
        assert_eq!(warm.kept(), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.num_idle(), 1);
        // With one idle in the pool, nobody waits: the other is kept.
        warm.keep(b);
        assert_eq!(warm.kept(), 1);
        warm.release_all();
        pool.close().await;
    }

    #[tokio::test]
    async fn soon_after_an_outage_a_kept_connection_is_tested_and_a_dead_one_replaced() {
        let Some(pool) = pool(2).await else { return };
        let warm = Warm::new(pool.clone(), 1, 60_000);
        let lost = use_and_keep(&warm).await;
        // The server ends the kept connection (waiting until its process has exited).
        let mut other = pool.acquire().await.unwrap();
        let ended: (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1, 5000)")
            .bind(lost)
            .fetch_one(&mut *other)
            .await
            .unwrap();
        assert!(ended.0);
        drop(other);
        liveness::note_outage();
        // Tested before it is handed out: the dead one is dropped, a live one comes instead.
        let mut next = warm.acquire().await.unwrap();
        assert_ne!(pid(&mut next).await, lost);
        assert_eq!(warm.kept(), 0);
        drop(next);
        pool.close().await;
    }
}
