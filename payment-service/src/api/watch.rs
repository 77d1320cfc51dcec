//! WatchAccountEvents' feed: the account events of numbered movements, by position. The
//! streaming itself (bounds, resuming, shutdown) is `gongji_shared::rpc::watch`.

use std::sync::Arc;

use gongji_proto::payment::v1::WatchAccountEventsResponse;
use gongji_shared::{
    IdNumber,
    rpc::watch::{Batch, Feed},
};
use tokio::sync::Notify;
use tonic::Status;

use super::{convert, failure};
use crate::{
    app::{App, Registry},
    store::Store,
};

/// The account events of one service's store, of every account or of one holder's.
pub(super) struct AccountEventFeed<S, R> {
    pub(super) app: App<S, R>,
    pub(super) holder: Option<IdNumber>,
}

impl<S: Store, R: Registry> Feed for AccountEventFeed<S, R> {
    type Item = WatchAccountEventsResponse;

    async fn after(&self, cursor: i64, limit: u32) -> Result<Batch<Self::Item>, Status> {
        let events = self
            .app
            .account_events(cursor, self.holder.as_ref(), limit)
            .await
            .map_err(failure)?;
        let mut positions: Batch<Self::Item> = Vec::new();
        for event in &events {
            let message = WatchAccountEventsResponse {
                event: Some(convert::account_event_to_pb(event)),
            };
            match positions.last_mut() {
                Some((position, messages)) if *position == event.position => {
                    messages.push(message);
                }
                _ => positions.push((event.position, vec![message])),
            }
        }
        Ok(positions)
    }

    fn written(&self) -> Arc<Notify> {
        self.app.feed_numbered()
    }
}
