//! The account event feed (WatchAccountEvents): movements numbered after they commit, and
//! read back by position.

use std::{sync::Arc, time::Duration};

use gongji_shared::IdNumber;
use tokio::sync::Notify;

use super::{App, AppError};
use crate::{
    domain::AccountEvent,
    store::{AccountFeed, SEQUENCE_BATCH},
};

/// How often the sequencer looks for committed movements to number.
pub const SEQUENCE_INTERVAL_MS: u64 = 100;
/// Most batches one sequencing round numbers before it yields: a bound on its work.
const MAX_BATCHES_PER_ROUND: u32 = 50;

impl<S: AccountFeed, R> App<S, R> {
    /// Numbers the movements committed since the last round (a bounded amount), and wakes
    /// the streams if there were any. Returns how many.
    pub async fn sequence_feed(&self) -> Result<u32, AppError> {
        let mut numbered = 0;
        for _ in 0..MAX_BATCHES_PER_ROUND {
            let n = self.store.sequence().await?;
            numbered += n;
            if n < SEQUENCE_BATCH {
                break;
            }
        }
        if numbered > 0 {
            self.feed.notify_waiters();
        }
        Ok(numbered)
    }

    /// Numbers movements every [`SEQUENCE_INTERVAL_MS`], for as long as the service runs.
    pub async fn sequence_feed_forever(self) {
        loop {
            if let Err(e) = self.sequence_feed().await {
                tracing::warn!(error = %e, "the account feed could not be numbered; retrying");
            }
            tokio::time::sleep(Duration::from_millis(SEQUENCE_INTERVAL_MS)).await;
        }
    }

    /// The events of up to `limit` movements after `after`, only `holder`'s if given.
    pub async fn account_events(
        &self,
        after: i64,
        holder: Option<&IdNumber>,
        limit: u32,
    ) -> Result<Vec<AccountEvent>, AppError> {
        Ok(self.store.events_after(after, holder, limit).await?)
    }
}

impl<S, R> App<S, R> {
    /// Woken after the sequencer numbers movements.
    pub fn feed_numbered(&self) -> Arc<Notify> {
        Arc::clone(&self.feed)
    }
}
