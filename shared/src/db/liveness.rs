//! When a pooled PostgreSQL connection is tested before it is handed out. A test is a round
//! trip to the server (a ping), and sqlx tests every connection again when it is given back:
//! testing each one on the way out too cost a payment some five round trips (about 15% of
//! the benchmark's CPU per PayPremium at 8 clients, load client included, and 3 to 10% of
//! PostgreSQL's, in runs side by side).
//!
//! So, as HikariCP does, a connection used a moment ago is trusted: it was tested when it
//! was given back. One idle for a while is tested, and for a while after any outage was
//! seen (a connection lost, the server refusing or shutting down) every connection is: a
//! server that restarted ended every pooled connection at once, and the first call that
//! finds one dead turns the tests back on, so the calls after it get live connections.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use sqlx::{Connection as _, pool::PoolConnectionMetadata, postgres::PgConnection};

/// A connection idle at least this long is tested before it is handed out (HikariCP's
/// window is 500 ms).
pub const TEST_IDLE_AFTER_MS: u64 = 1_000;
/// For this long after an outage was seen, every connection is tested.
pub const TEST_ALL_AFTER_OUTAGE_MS: u64 = 10_000;

/// Where this process's clock of outages starts.
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// When the last outage was seen, in milliseconds after `EPOCH`, plus one; 0 if none was.
static LAST_OUTAGE: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    millis(EPOCH.get_or_init(Instant::now).elapsed())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Records that an outage was seen now (any database of this process: a test too many is
/// only a round trip).
pub fn note_outage() {
    LAST_OUTAGE.store(now_ms().saturating_add(1), Ordering::Relaxed);
}

/// Milliseconds since the last outage seen, if one was.
fn since_outage_ms() -> Option<u64> {
    match LAST_OUTAGE.load(Ordering::Relaxed) {
        0 => None,
        seen => Some(now_ms().saturating_sub(seen - 1)),
    }
}

/// Whether a connection idle for `idle_ms` is tested, `since_outage_ms` after the last
/// outage seen (`None`: none was).
pub fn must_test(idle_ms: u64, since_outage_ms: Option<u64>) -> bool {
    idle_ms >= TEST_IDLE_AFTER_MS || since_outage_ms.is_some_and(|s| s < TEST_ALL_AFTER_OUTAGE_MS)
}

/// Whether a connection idle for `idle_ms` is tested now.
pub fn must_test_now(idle_ms: u64) -> bool {
    must_test(idle_ms, since_outage_ms())
}

/// The pool's `before_acquire`: tests the connection when [`must_test`] says so; one that
/// fails is closed and the pool hands out another (or opens one).
pub fn before_acquire(
    connection: &mut PgConnection,
    meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if !must_test(millis(meta.idle_for), since_outage_ms()) {
            return Ok(true);
        }
        Ok(connection.ping().await.is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_tested_when_idle_a_while_or_soon_after_an_outage() {
        assert!(!must_test(0, None));
        assert!(!must_test(TEST_IDLE_AFTER_MS - 1, None));
        assert!(must_test(TEST_IDLE_AFTER_MS, None));
        assert!(must_test(0, Some(0)));
        assert!(must_test(0, Some(TEST_ALL_AFTER_OUTAGE_MS - 1)));
        assert!(!must_test(0, Some(TEST_ALL_AFTER_OUTAGE_MS)));
        assert!(must_test(
            TEST_IDLE_AFTER_MS,
            Some(TEST_ALL_AFTER_OUTAGE_MS)
        ));
    }

    #[test]
    fn an_outage_noted_is_seen_at_once() {
        note_outage();
        assert!(since_outage_ms().is_some_and(|s| s < TEST_ALL_AFTER_OUTAGE_MS));
    }

    #[tokio::test]
    async fn connections_lost_while_pooled_fail_at_most_one_call_then_are_replaced() {
        // The pool as the services make it, of two connections.
        let Some((admin, pool)) = super::super::test_server(2).await else {
            return;
        };
        let pid_sql = "SELECT pg_backend_pid()";
        // Both connections opened and used, then idle in the pool.
        let (mut a, mut b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        let mut lost = Vec::new();
        for c in [&mut a, &mut b] {
            let (pid,): (i32,) = sqlx::query_as(pid_sql).fetch_one(&mut **c).await.unwrap();
            lost.push(pid);
        }
        drop((a, b));
        // The server ends both (waiting until each process has exited: before that it could
        // still serve a query), as a restart would.
        let mut other = PgConnection::connect(&admin).await.unwrap();
        for pid in &lost {
            let ended: (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1, 5000)")
                .bind(pid)
                .fetch_one(&mut other)
                .await
                .unwrap();
            assert!(ended.0);
        }
        // Used a moment ago, a connection is handed out untested (unless an outage was seen
        // lately): the first call may find one dead, and as a store error that notes the
        // outage. Every call after it is handed a live connection, the other dead one too.
        let call = || async {
            sqlx::query_as::<_, (i32,)>(pid_sql)
                .fetch_one(&pool)
                .await
                .map_err(super::super::StoreError::<()>::from)
        };
        match call().await {
            Ok((pid,)) => assert!(!lost.contains(&pid)),
            Err(error) => {
                assert!(error.is_outage(), "{error:?}");
                assert!(since_outage_ms().is_some_and(|s| s < TEST_ALL_AFTER_OUTAGE_MS));
            }
        }
        for _ in 0..2 {
            let (pid,) = call().await.unwrap();
            assert!(!lost.contains(&pid));
        }
        pool.close().await;
    }
}
