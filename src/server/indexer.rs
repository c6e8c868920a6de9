//! Keeps the payload search index up to date: drains the queue of events emitted since
//! (see `store/search.rs`), a batch per transaction, at most [`IDLE`] behind when idle
//! and without pause while there is more.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::Store;

/// Events indexed per transaction.
const BATCH: u32 = 500;
/// How long the indexer waits when the queue is empty.
const IDLE: Duration = Duration::from_millis(200);

/// Runs until aborted (at shutdown); a batch cut short is rolled back and taken again.
pub(super) fn spawn(store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match store.index_events(BATCH).await {
                Ok(taken) if taken == u64::from(BATCH) => tokio::task::yield_now().await,
                Ok(_) => tokio::time::sleep(IDLE).await,
                Err(err) => {
                    tracing::warn!("indexing events for search failed: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
