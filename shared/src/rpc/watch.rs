//! Resumable event streams (WatchBindingEvents, WatchAccountEvents): everything after a
//! cursor, in the order the service gives positions, then each new item as it comes. The
//! streams are bounded per server and per caller, and end when the server stops.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::Stream;
use tokio::sync::{Notify, Semaphore, watch};
use tonic::Status;

use super::ApiError;

/// Items read per query while streaming.
pub const WATCH_BATCH: u32 = 100;
/// Items buffered per stream before the reader waits for the client.
const WATCH_BUFFER: usize = 64;
/// How often a stream looks for items written by other replicas.
const WATCH_POLL_MS: u64 = 500;
/// Streams one caller may hold at once: no caller can take every slot.
pub const MAX_WATCHERS_PER_CALLER: usize = 16;

/// A stream answering a Watch call.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Positions in order, each with its messages.
pub type Batch<T> = Vec<(i64, Vec<T>)>;

/// Where a stream reads from.
pub trait Feed: Send + 'static {
    /// One message of the stream.
    type Item: Send + 'static;

    /// Up to `limit` positions after `cursor`, in order, each with its messages (one
    /// position may carry several: they are sent together, and resuming after it skips
    /// them all).
    fn after(
        &self,
        cursor: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Batch<Self::Item>, Status>> + Send;

    /// Woken when this replica writes something new.
    fn written(&self) -> Arc<Notify>;
}

/// What bounds and ends streams.
#[derive(Clone)]
pub struct Watchers {
    /// The error domain of the service's answers.
    domain: &'static str,
    /// Turns true when the server begins to shut down: streams end then.
    stopping: watch::Receiver<bool>,
    /// Bounds the streams open at once.
    permits: Arc<Semaphore>,
    /// Streams open per caller.
    per_caller: Arc<Mutex<HashMap<String, usize>>>,
    /// The bound of `permits`.
    max: usize,
}

/// One caller's slot, given back when its stream ends.
struct CallerSlot {
    caller: String,
    per_caller: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut open = self
            .per_caller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

impl Watchers {
    /// At most `max` streams at once, all ended when `stopping` turns true; errors under
    /// `domain`.
    pub fn new(domain: &'static str, stopping: watch::Receiver<bool>, max: usize) -> Self {
        Self {
            domain,
            stopping,
            permits: Arc::new(Semaphore::new(max)),
            per_caller: Arc::default(),
            max,
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// A stream of `feed` after `after` (the request's `cursor_field`), then of each new
    /// position as it is written, for `caller`.
    pub fn watch<F: Feed>(
        &self,
        feed: F,
        caller: &str,
        after: i64,
        cursor_field: &str,
    ) -> Result<WatchStream<F::Item>, Status> {
        if after < 0 {
            return Err(ApiError::invalid_argument(
                "INVALID_CURSOR",
                cursor_field,
                format!("{cursor_field} must not be negative"),
            )
            .with_metadata(cursor_field, after)
            .into_status(self.domain));
        }
        let slot = self.caller_slot(caller)?;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            ApiError::resource_exhausted(
                "TOO_MANY_WATCHERS",
                "too many event streams are open; retry later",
            )
            .into_status(self.domain)
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let stopping = self.stopping.clone();
        let domain = self.domain;
        tokio::spawn(async move {
            let (_permit, _slot) = (permit, slot);
            stream(feed, stopping, after, tx, domain).await;
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// Takes one of `caller`'s slots, unless it holds them all.
    fn caller_slot(&self, caller: &str) -> Result<CallerSlot, Status> {
        let mut open = self
            .per_caller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(caller.to_owned()).or_insert(0);
        if *n >= MAX_WATCHERS_PER_CALLER {
            return Err(ApiError::resource_exhausted(
                "TOO_MANY_WATCHERS_FOR_CALLER",
                "this caller holds as many event streams as one caller may; close one first",
            )
            .with_metadata("caller", caller)
            .with_metadata("max_watchers_per_caller", MAX_WATCHERS_PER_CALLER)
            .into_status(self.domain));
        }
        *n += 1;
        Ok(CallerSlot {
            caller: caller.to_owned(),
            per_caller: Arc::clone(&self.per_caller),
        })
    }
}

/// Sends everything after `cursor`, in position order, then waits for more: woken by this
/// replica's writes, and polling for those of others. Ends when the client goes away or the
/// server stops (UNAVAILABLE: resume elsewhere from the last position received).
async fn stream<F: Feed>(
    feed: F,
    mut stopping: watch::Receiver<bool>,
    mut cursor: i64,
    tx: tokio::sync::mpsc::Sender<Result<F::Item, Status>>,
    domain: &'static str,
) {
    let written = feed.written();
    loop {
        // Registered before reading, so a write between the read and the wait still wakes us.
        let notified = written.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let batch = match feed.after(cursor, WATCH_BATCH).await {
            Ok(batch) => batch,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        let full = batch.len() == WATCH_BATCH as usize;
        for (position, items) in batch {
            debug_assert!(position > cursor, "positions only grow");
            cursor = position;
            for item in items {
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(std::time::Duration::from_millis(WATCH_POLL_MS)) => {}
            () = tx.closed() => return,
            () = stopped(&mut stopping) => {
                let _ = tx
                    .send(Err(ApiError::unavailable(
                        "SHUTTING_DOWN",
                        "the server is shutting down; resume from the last position received",
                    )
                    .into_status(domain)))
                    .await;
                return;
            }
        }
    }
}

/// Resolves once the server begins to shut down.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is gone too.
    let _ = stopping.wait_for(|s| *s).await;
}
