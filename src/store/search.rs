//! Payload search, the stored half: events are queued for the index by a trigger in the
//! emit's own transaction, so the emit path pays one small insert; the indexer drains the
//! queue after commit, a batch per transaction (`server/indexer.rs` drives it). A process
//! that stops leaves the rest queued for its next start, or for another replica.

use super::{Result, Store};

impl Store {
    /// Indexes up to `limit` queued events; `limit` when more may be waiting, fewer when
    /// the queue is drained.
    pub async fn index_events(&self, limit: u32) -> Result<u64> {
        on_backend!(self, db => db.index_events(limit).await)
    }

    /// Returns once this process has written emits since the last call (at once if it
    /// has meanwhile). Events emitted through other processes are not told of: their own
    /// indexers take them.
    pub async fn emits_written(&self) {
        self.shared.emits_written.notified().await;
    }

    /// How many events wait to be indexed.
    pub async fn search_backlog(&self) -> Result<u64> {
        on_backend!(self, db => db.search_backlog().await)
    }
}
