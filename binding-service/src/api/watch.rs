//! WatchBindingEvents: the audit trail streamed in commit order, resumable from a cursor.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures::Stream;
use gongji_proto::binding::v1::WatchBindingEventsResponse;
use gongji_shared::rpc::ApiError;
use tokio::sync::{Semaphore, watch};
use tonic::Status;

use super::{convert, failure, status};
use crate::{app::App, store::Events};

/// Events read per query while streaming.
const WATCH_BATCH: u32 = 100;
/// Events buffered per stream before the reader waits for the client.
const WATCH_BUFFER: usize = 64;
/// How often a stream looks for events committed by other replicas.
const WATCH_POLL_MS: u64 = 500;
/// Event streams one caller may hold at once: no caller can take every slot.
pub const MAX_WATCHERS_PER_CALLER: usize = 16;

/// The stream a WatchBindingEvents call answers with.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<WatchBindingEventsResponse, Status>> + Send>>;

/// What bounds and ends event streams.
#[derive(Clone)]
pub struct Watchers {
    /// Turns true when the server begins to shut down: event streams end then.
    stopping: watch::Receiver<bool>,
    /// Bounds the event streams open at once.
    permits: Arc<Semaphore>,
    /// Streams open per caller.
    per_caller: Arc<Mutex<HashMap<String, usize>>>,
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
    /// At most `max` streams at once, all ended when `stopping` turns true.
    pub fn new(stopping: watch::Receiver<bool>, max: usize) -> Self {
        Self {
            stopping,
            permits: Arc::new(Semaphore::new(max)),
            per_caller: Arc::default(),
        }
    }

    /// A stream of every event after `after`, then of each new one as it commits, for
    /// `caller`.
    pub(super) fn watch<S: Events + Clone, P: Clone + Send + Sync + 'static>(
        &self,
        app: &App<S, P>,
        caller: &str,
        after: i64,
    ) -> Result<EventStream, Status> {
        if after < 0 {
            return Err(status(
                ApiError::invalid_argument(
                    "INVALID_CURSOR",
                    "after_sequence",
                    "after_sequence must not be negative",
                )
                .with_metadata("after_sequence", after),
            ));
        }
        let slot = self.caller_slot(caller)?;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            status(ApiError::resource_exhausted(
                "TOO_MANY_WATCHERS",
                "too many event streams are open; retry later",
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let app = app.clone();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            let (_permit, _slot) = (permit, slot);
            stream_events(app, stopping, after, tx).await;
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

impl Watchers {
    /// Takes one of `caller`'s slots, unless it holds them all.
    fn caller_slot(&self, caller: &str) -> Result<CallerSlot, Status> {
        let mut open = self
            .per_caller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(caller.to_owned()).or_insert(0);
        if *n >= MAX_WATCHERS_PER_CALLER {
            return Err(status(
                ApiError::resource_exhausted(
                    "TOO_MANY_WATCHERS_FOR_CALLER",
                    "this caller holds as many event streams as one caller may; close one first",
                )
                .with_metadata("caller", caller)
                .with_metadata("max_watchers_per_caller", MAX_WATCHERS_PER_CALLER),
            ));
        }
        *n += 1;
        Ok(CallerSlot {
            caller: caller.to_owned(),
            per_caller: Arc::clone(&self.per_caller),
        })
    }
}

/// Sends every event after `cursor`, in sequence order, then waits for more: woken by local
/// commits, and polling for those of other replicas. Ends when the client goes away or the
/// server stops (UNAVAILABLE: resume elsewhere from the last sequence received).
async fn stream_events<S: Events, P>(
    app: App<S, P>,
    mut stopping: watch::Receiver<bool>,
    mut cursor: i64,
    tx: tokio::sync::mpsc::Sender<Result<WatchBindingEventsResponse, Status>>,
) {
    loop {
        // Registered before reading, so a commit between the read and the wait still wakes us.
        let notified = app.events().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let events = match app.events_after(cursor, WATCH_BATCH).await {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Err(failure(e))).await;
                return;
            }
        };
        let full = events.len() == WATCH_BATCH as usize;
        for event in events {
            cursor = event.sequence;
            let message = WatchBindingEventsResponse {
                event: Some(convert::event_to_pb(&event)),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
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
                    .send(Err(status(ApiError::unavailable(
                        "SHUTTING_DOWN",
                        "the server is shutting down; resume from the last sequence received",
                    ))))
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
