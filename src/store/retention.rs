//! Retention: finished deliveries older than the retention period go, with their
//! attempts and the events no delivery is left of, in small batches so that emits and
//! the dispatcher's writes go on between them. Pending and retrying deliveries are never
//! pruned. The hourly counts behind `GET /stats` outlive the rows they count (see
//! `migrations/*/…_retention.sql`), for [`COUNTS_KEPT`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::model::millis;
use super::{Result, Store};

/// Deliveries deleted per transaction: a few milliseconds of the writer's time.
const BATCH: i64 = 200;
/// The pause between batches, so that pruning takes a share of the writer, not all of it:
/// it is never urgent.
const PAUSE: Duration = Duration::from_millis(10);
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
        let counts_before =
            millis(now - TimeDelta::from_std(COUNTS_KEPT).unwrap_or(TimeDelta::MAX));
        on_backend!(self, db => db.prune_counts(counts_before).await)?;
        Ok(pruned)
    }
}
