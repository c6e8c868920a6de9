//! Retention: finished deliveries older than the retention period go, with their
//! attempts and the events no delivery is left of, in small batches so that emits and
//! the dispatcher's writes go on between them; so do events older than it that no
//! delivery was ever made for. Pending and retrying deliveries are never
//! pruned. The hourly counts behind `GET /stats` outlive the rows they count (see
//! `migrations/*/…_retention.sql`), for [`COUNTS_KEPT`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::model::millis;
use super::{Result, Store, query};

/// Deliveries deleted per transaction: a few milliseconds of the writer's time.
const BATCH: i64 = 200;
/// The pause between batches, so that pruning takes a share of the writer, not all of it:
/// it is never urgent.
const PAUSE: Duration = Duration::from_millis(10);
/// Events read per chunk of the pass that finds events no delivery was made for.
const SCAN: i64 = 1_000;
/// Chunks of that pass per prune round (a minute apart): a million events are passed
/// over in ten rounds.
const SCAN_CHUNKS: usize = 100;
/// How long the hourly counts are kept: the success-rate chart's history.
pub const COUNTS_KEPT: Duration = Duration::from_secs(400 * 86_400);

impl Store {
    /// Deletes every finished delivery that finished before `now - retention`, with its
    /// attempts, and events left without deliveries; and hourly counts older than
    /// [`COUNTS_KEPT`]. Returns how many deliveries went.
    pub async fn prune(&self, now: DateTime<Utc>, retention: Duration) -> Result<u64> {
        let cutoff = now - TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
        let cutoff_ms = millis(cutoff);
        let cutoff_id = format!(
            "dlv_{}",
            ulid::Ulid::from_parts(u64::try_from(cutoff_ms).unwrap_or(0), 0)
        );
        let mut pruned = 0;
        // Each full batch deletes rows that nothing adds back (nothing newer than the
        // cutoff qualifies), so the batches end.
        loop {
            let deleted =
                on_backend!(self, db => db.prune_batch(cutoff_ms, &cutoff_id, BATCH).await)?;
            pruned += deleted;
            if deleted < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        // An event no delivery was ever made for (a type nobody subscribed to) goes with
        // no delivery: a pass over the events finds those past the cutoff, a few chunks
        // each round, on from where the last round stopped.
        self.prune_undelivered_events(cutoff_ms).await?;
        let counts_before =
            millis(now - TimeDelta::from_std(COUNTS_KEPT).unwrap_or(TimeDelta::MAX));
        on_backend!(self, db => db.prune_counts(counts_before).await)?;
        Ok(pruned)
    }

    /// Up to [`SCAN_CHUNKS`] chunks of the pass over events that deletes those emitted
    /// before `cutoff` that have no delivery. Returns how many went.
    async fn prune_undelivered_events(&self, cutoff: i64) -> Result<u64> {
        let mut after = self
            .shared
            .undelivered_scan
            .lock()
            .map(|after| after.clone())
            .unwrap_or_default();
        let mut pruned = 0;
        for _ in 0..SCAN_CHUNKS {
            let chunk =
                on_backend!(self, db => query::events_after(db.pool(), &after, SCAN).await)?;
            let full = i64::try_from(chunk.len()).unwrap_or(i64::MAX) >= SCAN;
            let next = chunk.last().map(|(id, _)| id.clone());
            let old: Vec<String> = chunk
                .into_iter()
                .filter(|(_, created_at)| *created_at < cutoff)
                .map(|(id, _)| id)
                .collect();
            if !old.is_empty() {
                pruned += on_backend!(self, db => db.delete_undelivered(&old).await)?;
            }
            match next.filter(|_| full) {
                Some(next) => after = next,
                // The end of the events: the next round starts the pass again.
                None => {
                    after.clear();
                    break;
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
        if let Ok(mut scan) = self.shared.undelivered_scan.lock() {
            *scan = after;
        }
        Ok(pruned)
    }
}
