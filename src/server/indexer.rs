//! Keeps the payload search index up to date: drains the queue of events emitted since
//! (see `store/search.rs`), a batch per transaction, without pause while there is more.
//!
//! Idle, it sleeps until this process writes emits, then waits [`GATHER`] so that a
//! stream of emits is indexed in batches rather than one transaction each: a new event
//! is searchable about [`GATHER`] after its emit. It also looks every [`POLL`] for events
//! no emit here told of: queued by another replica that stopped before indexing them,
//! or by a migration.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::Store;

/// Events indexed per transaction.
const BATCH: u32 = 500;
/// How long the indexer lets emits gather once told of one.
const GATHER: Duration = Duration::from_millis(200);
/// How long an idle indexer waits at most before looking at the queue.
const POLL: Duration = Duration::from_secs(5);

/// Runs until aborted (at shutdown); a batch cut short is rolled back and taken again.
pub(super) fn spawn(store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match store.index_events(BATCH).await {
                Ok(taken) if taken == u64::from(BATCH) => tokio::task::yield_now().await,
                Ok(_) => {
                    if tokio::time::timeout(POLL, store.emits_written())
                        .await
                        .is_ok()
                    {
                        tokio::time::sleep(GATHER).await;
                    }
                }
                Err(err) => {
                    tracing::warn!("indexing events for search failed: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
