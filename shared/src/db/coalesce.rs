//! Concurrent reads of one kind, gathered into one statement. Under load a hot read's cost
//! is mostly per round trip, not per row: a wake-up on each side, a snapshot, an executor
//! set-up, the pool's checkout. A [`Coalescer`] queues each caller's key; a few lanes each
//! take whatever is waiting (up to a batch) and read it in one statement.
//!
//! Freshness is kept: a key is taken from the queue only after its caller put it there, and
//! the statement that reads it starts after that, so it sees every commit that came before
//! the call, as a read of its own would. A lone caller waits for nobody: an idle lane takes
//! it at once, so light load pays no delay, and batches form only when calls overlap.
//!
//! A lane may hold what it reads with (a database connection) from one batch to the next
//! while calls keep coming, and gives it back once nothing has come for a short linger:
//! sqlx's pool tests a connection when it is given back (and, idle a while, when it is
//! taken), round trips to the server that a held connection does not make. Each lane holds
//! at most one thing, and none once idle for the linger.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::{Mutex, mpsc, oneshot};

/// Most keys waiting for a lane: a bound on memory; a caller beyond it waits to queue.
pub const MAX_QUEUED: usize = 1_024;

/// An error every waiter of a failed batch receives a copy of.
pub trait BatchError: Sized {
    /// A copy for another waiter of the same batch, of the same kind (an outage stays one).
    fn copy(&self) -> Self;
    /// The lanes are gone (they stop only when a read panicked, or the coalescer is being
    /// dropped).
    fn lanes_gone() -> Self;
}

/// One caller's key and where its answer goes.
struct Waiter<K, V, E> {
    key: K,
    answer: oneshot::Sender<Result<V, E>>,
}

/// Gathers concurrent reads into batches; see the module's comment.
pub struct Coalescer<K, V, E> {
    queue: mpsc::Sender<Waiter<K, V, E>>,
}

impl<K, V, E> Coalescer<K, V, E>
where
    K: Send + 'static,
    V: Send + 'static,
    E: BatchError + Send + 'static,
{
    /// Starts `lanes` lanes (at least one), each reading up to `max_batch` keys at a time
    /// with `read`, which answers each key in order. The lanes stop when the coalescer is
    /// dropped.
    pub fn spawn<F, Fut>(lanes: usize, max_batch: usize, read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>, E>> + Send + 'static,
    {
        Self::spawn_holding(lanes, max_batch, 0, move |_: Option<()>, keys| {
            let read = read(keys);
            async move { (None, read.await) }
        })
    }

    /// As [`Coalescer::spawn`], but each lane passes `read` what it kept after its last
    /// batch (`None` at first, and after the lane gave it back) and keeps what `read`
    /// returns beside the batch's answers. A lane gives back what it keeps when no call has
    /// come for it within `linger_ms` of its last batch.
    pub fn spawn_holding<S, F, Fut>(lanes: usize, max_batch: usize, linger_ms: u64, read: F) -> Self
    where
        S: Send + 'static,
        F: Fn(Option<S>, Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Option<S>, Result<Vec<V>, E>)> + Send + 'static,
    {
        assert!(lanes >= 1 && max_batch >= 1, "a coalescer reads something");
        let (queue, waiting) = mpsc::channel(MAX_QUEUED);
        let waiting = Arc::new(Mutex::new(waiting));
        let read = Arc::new(read);
        let linger = Duration::from_millis(linger_ms);
        for _ in 0..lanes {
            tokio::spawn(lane(waiting.clone(), max_batch, linger, read.clone()));
        }
        Self { queue }
    }

    /// The answer to `key`, read in whatever batch a lane takes it into.
    pub async fn read(&self, key: K) -> Result<V, E> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Waiter { key, answer })
            .await
            .map_err(|_| E::lanes_gone())?;
        answered.await.unwrap_or_else(|_| Err(E::lanes_gone()))
    }
}

/// Takes what is waiting, up to `max_batch`, reads it, answers each waiter; until the queue
/// closes.
async fn lane<K, V, E, S, F, Fut>(
    waiting: Arc<Mutex<mpsc::Receiver<Waiter<K, V, E>>>>,
    max_batch: usize,
    linger: Duration,
    read: Arc<F>,
) where
    E: BatchError,
    F: Fn(Option<S>, Vec<K>) -> Fut,
    Fut: Future<Output = (Option<S>, Result<Vec<V>, E>)>,
{
    let mut batch = Vec::with_capacity(max_batch);
    let mut held = None;
    loop {
        // One lane at a time takes from the queue; the others read meanwhile. A lane waits
        // for its turn and for a call holding what it kept for the linger, then gives it
        // back and goes on waiting: an idle lane holds nothing. (A wait that can finish at
        // once does, whatever the deadline: `timeout_at` polls it first. Both waits can be
        // dropped unfinished: a lock not yet granted is not taken, and nothing is received.)
        let deadline = tokio::time::Instant::now() + linger;
        let mut queue = match held {
            Some(_) => match tokio::time::timeout_at(deadline, waiting.lock()).await {
                Ok(queue) => queue,
                Err(_) => {
                    held = None;
                    waiting.lock().await
                }
            },
            None => waiting.lock().await,
        };
        let taken = match held {
            Some(_) => {
                match tokio::time::timeout_at(deadline, queue.recv_many(&mut batch, max_batch))
                    .await
                {
                    Ok(taken) => taken,
                    Err(_) => {
                        held = None;
                        queue.recv_many(&mut batch, max_batch).await
                    }
                }
            }
            None => queue.recv_many(&mut batch, max_batch).await,
        };
        drop(queue);
        if taken == 0 {
            return;
        }
        // A caller that went away (its deadline passed) is not read for.
        batch.retain(|w| !w.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (keys, answers): (Vec<K>, Vec<_>) = batch.drain(..).map(|w| (w.key, w.answer)).unzip();
        let (kept, result) = read(held.take(), keys).await;
        held = kept;
        match result {
            Ok(values) => {
                assert_eq!(values.len(), answers.len(), "one answer per key, in order");
                for (answer, value) in answers.into_iter().zip(values) {
                    // A caller that left meanwhile does not want it.
                    let _ = answer.send(Ok(value));
                }
            }
            Err(error) => {
                let mut answers = answers.into_iter();
                let first = answers.next();
                for answer in answers {
                    let _ = answer.send(Err(error.copy()));
                }
                if let Some(answer) = first {
                    let _ = answer.send(Err(error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failed(u32);

    impl BatchError for Failed {
        fn copy(&self) -> Self {
            Failed(self.0)
        }
        fn lanes_gone() -> Self {
            Failed(0)
        }
    }

    type Batches = Arc<std::sync::Mutex<Vec<Vec<u32>>>>;

    /// A coalescer whose read records each batch it starts, waits for a permit of `gate`,
    /// then doubles each key, or fails the batch when it holds 13.
    fn doubling(
        lanes: usize,
        max_batch: usize,
    ) -> (
        Arc<Coalescer<u32, u32, Failed>>,
        Arc<tokio::sync::Semaphore>,
        Batches,
    ) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let batches = Batches::default();
        let c = Coalescer::spawn(lanes, max_batch, {
            let gate = gate.clone();
            let batches = batches.clone();
            move |keys: Vec<u32>| {
                let gate = gate.clone();
                batches.lock().unwrap().push(keys.clone());
                async move {
                    let _permit = gate.acquire().await.unwrap();
                    if keys.contains(&13) {
                        return Err(Failed(13));
                    }
                    Ok(keys.into_iter().map(|k| k * 2).collect())
                }
            }
        });
        (Arc::new(c), gate, batches)
    }

    fn read(
        c: &Arc<Coalescer<u32, u32, Failed>>,
        key: u32,
    ) -> tokio::task::JoinHandle<Result<u32, Failed>> {
        let c = c.clone();
        tokio::spawn(async move { c.read(key).await })
    }

    /// Until `n` batches have started.
    async fn started(batches: &Batches, n: usize) {
        while batches.lock().unwrap().len() < n {
            tokio::task::yield_now().await;
        }
    }

    /// Until `n` keys wait in the queue.
    async fn queued(c: &Coalescer<u32, u32, Failed>, n: usize) {
        while c.queue.capacity() > MAX_QUEUED - n {
            tokio::task::yield_now().await;
        }
    }

    /// Reads 1, and 2 to 7 while 1 is read, through a one-lane coalescer of batches of four
    /// whose reads double and wait for `gate`: the first alone, then the six that queued
    /// meanwhile, at most four at a time.
    async fn one_then_six_more(
        c: &Arc<Coalescer<u32, u32, Failed>>,
        gate: &tokio::sync::Semaphore,
        batches: &Batches,
    ) {
        let first = read(c, 1);
        started(batches, 1).await;
        let rest: Vec<_> = (2..=7).map(|k| read(c, k)).collect();
        queued(c, 6).await;
        gate.add_permits(3);
        assert_eq!(first.await.unwrap(), Ok(2));
        for (k, r) in (2..=7).zip(rest) {
            assert_eq!(r.await.unwrap(), Ok(k * 2));
        }
        assert_eq!(
            *batches.lock().unwrap(),
            vec![vec![1], vec![2, 3, 4, 5], vec![6, 7]]
        );
    }

    #[tokio::test]
    async fn a_lone_read_goes_alone_and_overlapping_reads_share_batches_in_order() {
        let (c, gate, batches) = doubling(1, 4);
        one_then_six_more(&c, &gate, &batches).await;
    }

    #[tokio::test]
    async fn every_waiter_of_a_failed_batch_gets_the_error_and_the_next_batch_reads() {
        let (c, gate, batches) = doubling(1, 8);
        let first = read(&c, 1);
        started(&batches, 1).await;
        let failing: Vec<_> = [12, 13, 14].into_iter().map(|k| read(&c, k)).collect();
        queued(&c, 3).await;
        gate.add_permits(3);
        assert_eq!(first.await.unwrap(), Ok(2));
        for r in failing {
            assert_eq!(r.await.unwrap(), Err(Failed(13)));
        }
        assert_eq!(read(&c, 5).await.unwrap(), Ok(10));
        assert_eq!(batches.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn lanes_read_side_by_side_and_a_caller_that_left_is_not_read_for() {
        let (c, gate, batches) = doubling(2, 8);
        let held = read(&c, 1);
        started(&batches, 1).await;
        // The second lane reads while the first waits.
        let beside = read(&c, 2);
        started(&batches, 2).await;
        gate.add_permits(1);
        assert_eq!(beside.await.unwrap(), Ok(4));
        assert_eq!(held.await.unwrap(), Ok(2));

        let (c, gate, batches) = doubling(1, 8);
        let held = read(&c, 1);
        started(&batches, 1).await;
        let left = read(&c, 5);
        queued(&c, 1).await;
        left.abort();
        assert!(left.await.unwrap_err().is_cancelled());
        gate.add_permits(2);
        assert_eq!(held.await.unwrap(), Ok(2));
        assert_eq!(read(&c, 9).await.unwrap(), Ok(18));
        assert_eq!(*batches.lock().unwrap(), vec![vec![1], vec![9]]);
    }

    /// Connection numbers, in the order they were used or given back.
    type Log = Arc<std::sync::Mutex<Vec<u32>>>;

    /// What a lane holds in [`holding`]: a numbered connection that records when it is
    /// given back.
    struct Held(u32, Log);

    impl Drop for Held {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    /// A one-lane coalescer of [`holding`], with what it records.
    struct Holding {
        c: Arc<Coalescer<u32, u32, Failed>>,
        gate: Arc<tokio::sync::Semaphore>,
        batches: Batches,
        /// The connection each batch was read on.
        read_on: Log,
        given_back: Log,
    }

    /// A one-lane coalescer whose read opens a numbered connection when it is handed none,
    /// records each batch and the connection it reads on, waits for a permit of the gate,
    /// doubles each key and keeps the connection, for `linger_ms` once idle.
    fn holding(max_batch: usize, linger_ms: u64) -> Holding {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (batches, read_on, given_back) = (Batches::default(), Log::default(), Log::default());
        let opened = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = Coalescer::spawn_holding(1, max_batch, linger_ms, {
            let (gate, batches) = (gate.clone(), batches.clone());
            let (read_on, given_back) = (read_on.clone(), given_back.clone());
            move |held: Option<Held>, keys: Vec<u32>| {
                let held = held.unwrap_or_else(|| {
                    let n = opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    Held(n, given_back.clone())
                });
                read_on.lock().unwrap().push(held.0);
                batches.lock().unwrap().push(keys.clone());
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await.unwrap();
                    (Some(held), Ok(keys.into_iter().map(|k| k * 2).collect()))
                }
            }
        });
        Holding {
            c: Arc::new(c),
            gate,
            batches,
            read_on,
            given_back,
        }
    }

    /// Until `n` connections have been given back (a lane that never gives back fails here).
    async fn given_back_count(given_back: &Log, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while given_back.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(waited.await.is_ok(), "{n} connections given back");
    }

    #[tokio::test]
    async fn a_lane_keeps_its_connection_while_calls_keep_coming_and_gives_it_back_when_idle() {
        let h = holding(4, 20);
        one_then_six_more(&h.c, &h.gate, &h.batches).await;
        // Three batches back to back on the one connection, given back once nothing waits.
        given_back_count(&h.given_back, 1).await;
        assert_eq!(*h.read_on.lock().unwrap(), vec![1, 1, 1]);
        assert_eq!(*h.given_back.lock().unwrap(), vec![1]);
        // A later call finds the lane idle and holding nothing: it reads on a new connection.
        h.gate.add_permits(1);
        assert_eq!(read(&h.c, 8).await.unwrap(), Ok(16));
        given_back_count(&h.given_back, 2).await;
        assert_eq!(*h.read_on.lock().unwrap(), vec![1, 1, 1, 2]);
        assert_eq!(*h.given_back.lock().unwrap(), vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_keeps_its_connection_for_the_linger_and_not_after() {
        let h = holding(4, 10);
        h.gate.add_permits(3);
        assert_eq!(read(&h.c, 1).await.unwrap(), Ok(2));
        // A call within the linger of the last batch reads on the same connection (the
        // paused clock moves only as far as asked)...
        tokio::time::sleep(Duration::from_millis(9)).await;
        assert!(h.given_back.lock().unwrap().is_empty());
        assert_eq!(read(&h.c, 2).await.unwrap(), Ok(4));
        assert_eq!(*h.read_on.lock().unwrap(), vec![1, 1]);
        // ...which it gives back once the linger passes with no call, and a later call
        // reads on a new one.
        tokio::time::sleep(Duration::from_millis(11)).await;
        assert_eq!(*h.given_back.lock().unwrap(), vec![1]);
        assert_eq!(read(&h.c, 3).await.unwrap(), Ok(6));
        assert_eq!(*h.read_on.lock().unwrap(), vec![1, 1, 2]);
    }

    #[tokio::test]
    async fn a_read_after_the_lanes_panicked_is_told_they_are_gone() {
        let c = Coalescer::<u32, u32, Failed>::spawn(1, 2, |_keys: Vec<u32>| async {
            panic!("a read that breaks its lane")
        });
        assert_eq!(c.read(1).await, Err(Failed(0)));
        assert_eq!(c.read(2).await, Err(Failed(0)));
    }
}
