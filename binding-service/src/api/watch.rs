//! WatchBindingEvents' feed: the audit trail in commit order, each event at its sequence.
//! The streaming itself (bounds, resuming, shutdown) is `gongji_shared::rpc::watch`.

use std::sync::Arc;

use gongji_proto::binding::v1::WatchBindingEventsResponse;
use gongji_shared::rpc::watch::{Batch, Feed};
use tokio::sync::Notify;
use tonic::Status;

use super::{convert, failure};
use crate::{app::App, store::Events};

/// The binding events of one service's store.
pub(super) struct EventFeed<S, P> {
    pub(super) app: App<S, P>,
}

impl<S: Events + Clone, P: Clone + Send + Sync + 'static> Feed for EventFeed<S, P> {
    type Item = WatchBindingEventsResponse;

    async fn after(&self, cursor: i64, limit: u32) -> Result<Batch<Self::Item>, Status> {
        let events = self
            .app
            .events_after(cursor, limit)
            .await
            .map_err(failure)?;
        Ok(events
            .iter()
            .map(|event| {
                let message = WatchBindingEventsResponse {
                    event: Some(convert::event_to_pb(event)),
                };
                (event.sequence, vec![message])
            })
            .collect())
    }

    fn written(&self) -> Arc<Notify> {
        self.app.events()
    }
}
