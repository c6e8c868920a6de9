//! Claims: due deliveries taken by one replica's dispatcher until a lease runs out.

use chrono::{DateTime, Utc};

use super::Database;
use crate::store::model::{JobRow, claimed, from_millis, millis};
use crate::store::{ClaimLimits, Claimed, Result};

/// How many due deliveries a claim looks at per delivery it may take, so that webhooks
/// at their share's end do not make it look at every due delivery.
const CLAIM_CANDIDATES_PER_SLOT: i64 = 4;

impl Database {
    /// One statement. The candidates are locked with `SKIP LOCKED`: a replica claiming at
    /// the same moment takes other deliveries instead of waiting, and once this one
    /// commits, the lease keeps every replica off them until it runs out.
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
    ) -> Result<Claimed> {
        let (room_ids, room): (Vec<&str>, Vec<i64>) = limits
            .room
            .iter()
            .map(|(webhook_id, room)| {
                (
                    webhook_id.as_str(),
                    i64::try_from(*room).unwrap_or(i64::MAX),
                )
            })
            .unzip();
        let rows: Vec<JobRow> = sqlx::query_as(
            "WITH candidates AS ( \
               SELECT id, webhook_id, next_attempt_at FROM deliveries \
               WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
                 AND webhook_id <> ALL($3::text[]) \
                 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY next_attempt_at LIMIT $7 \
               FOR UPDATE SKIP LOCKED), \
             chosen AS ( \
               SELECT id FROM ( \
                 SELECT c.id, c.next_attempt_at, \
                   ROW_NUMBER() OVER (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at) \
                     AS nth, \
                   COALESCE(r.room, $6) AS room \
                 FROM candidates c \
                 LEFT JOIN UNNEST($4::text[], $5::bigint[]) AS r(webhook_id, room) \
                   ON r.webhook_id = c.webhook_id) ranked \
               WHERE nth <= room ORDER BY next_attempt_at LIMIT $8) \
             UPDATE deliveries d SET lease_until = $1 \
             FROM chosen, events e, webhooks w \
             WHERE d.id = chosen.id AND e.id = d.event_id AND w.id = d.webhook_id \
             RETURNING d.id, d.event_id, d.event_type, d.retry_step, d.webhook_id, \
               d.next_attempt_at, e.data, e.created_at AS event_created_at, w.url, w.kind, \
               w.deleted_at",
        )
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(&limits.full)
        .bind(room_ids)
        .bind(room)
        .bind(i64::try_from(limits.per_webhook).unwrap_or(i64::MAX))
        .bind(i64::from(limit).saturating_mul(CLAIM_CANDIDATES_PER_SLOT))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        claimed(rows)
    }

    pub(in crate::store) async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
    ) -> Result<Option<DateTime<Utc>>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries \
             WHERE next_attempt_at IS NOT NULL AND webhook_id <> ALL($1::text[]) \
               AND (lease_until IS NULL OR lease_until <= $2)",
        )
        .bind(full)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        at.map(from_millis).transpose()
    }

    pub(in crate::store) async fn postpone(
        &self,
        delivery_id: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let postponed = sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1, lease_until = NULL \
             WHERE id = $2 AND next_attempt_at IS NOT NULL AND lease_until IS NOT NULL",
        )
        .bind(millis(until))
        .bind(delivery_id)
        .execute(&self.pool)
        .await?;
        Ok(postponed.rows_affected() > 0)
    }
}
