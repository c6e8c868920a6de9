//! Claims: due deliveries taken by the dispatcher until a lease runs out.

use chrono::{DateTime, Utc};

use super::Database;
use crate::store::model::{JobRow, claimed, from_millis, millis};
use crate::store::{ClaimLimits, Claimed, Result, StoreError};

/// How many due deliveries a claim looks at per delivery it may take, so that webhooks
/// at their share's end do not make it look at every due delivery.
const CLAIM_CANDIDATES_PER_SLOT: i64 = 4;

impl Database {
    /// One statement, run in the write turn without BEGIN and COMMIT around it (a single
    /// statement is atomic by itself): with sqlx every statement is a round trip to a
    /// worker thread, and a claim with its transaction and a second query for the jobs
    /// took four.
    ///
    /// The due deliveries of full webhooks are passed over in the index alone
    /// (`deliveries_due` holds the webhook); the share is applied to the first
    /// [`CLAIM_CANDIDATES_PER_SLOT`] × `limit` due deliveries of the others.
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
    ) -> Result<Claimed> {
        let full = serde_json::to_string(&limits.full)
            .map_err(|err| StoreError::Internal(format!("claim limits: {err}")))?;
        let room: serde_json::Map<String, serde_json::Value> = limits
            .room
            .iter()
            .map(|(webhook_id, room)| (webhook_id.clone(), (*room).into()))
            .collect();
        let room = serde_json::Value::Object(room).to_string();
        let turn = self.write_turn().await?;
        let mut writer = self.writer.acquire().await?;
        let rows: Vec<JobRow> = sqlx::query_as(
            "UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT id, next_attempt_at, \
                   ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS nth, \
                   COALESCE(json_extract(?4, '$.\"' || webhook_id || '\"'), ?5) AS room \
                 FROM ( \
                   SELECT id, webhook_id, next_attempt_at FROM deliveries \
                   WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?2 \
                     AND webhook_id NOT IN (SELECT value FROM json_each(?3)) \
                     AND (lease_until IS NULL OR lease_until <= ?2) \
                   ORDER BY next_attempt_at LIMIT ?6)) \
               WHERE nth <= room ORDER BY next_attempt_at LIMIT ?7) \
             RETURNING id, event_id, event_type, retry_step, webhook_id, next_attempt_at, \
               (SELECT e.data FROM events e WHERE e.id = deliveries.event_id) AS data, \
               (SELECT e.created_at FROM events e WHERE e.id = deliveries.event_id) \
                 AS event_created_at, \
               (SELECT w.url FROM webhooks w WHERE w.id = deliveries.webhook_id) AS url, \
               (SELECT w.kind FROM webhooks w WHERE w.id = deliveries.webhook_id) AS kind, \
               (SELECT w.deleted_at FROM webhooks w WHERE w.id = deliveries.webhook_id) \
                 AS deleted_at",
        )
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(full)
        .bind(room)
        .bind(i64::try_from(limits.per_webhook).unwrap_or(i64::MAX))
        .bind(i64::from(limit).saturating_mul(CLAIM_CANDIDATES_PER_SLOT))
        .bind(i64::from(limit))
        .fetch_all(&mut *writer)
        .await?;
        drop(writer);
        drop(turn);
        if !rows.is_empty() {
            self.written.notify_one();
        }
        claimed(rows)
    }

    pub(in crate::store) async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
    ) -> Result<Option<DateTime<Utc>>> {
        let full = serde_json::to_string(full)
            .map_err(|err| StoreError::Internal(format!("claim limits: {err}")))?;
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries \
             WHERE next_attempt_at IS NOT NULL \
               AND webhook_id NOT IN (SELECT value FROM json_each(?)) \
               AND (lease_until IS NULL OR lease_until <= ?)",
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
        let mut tx = self.begin_write().await?;
        let postponed = sqlx::query(
            "UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL \
             WHERE id = ? AND next_attempt_at IS NOT NULL AND lease_until IS NOT NULL",
        )
        .bind(millis(until))
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(postponed.rows_affected() > 0)
    }

    /// Drops every claim: only for the file's one owner, at start.
    pub(in crate::store) async fn release_all_claims(&self) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let released =
            sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL")
                .execute(&mut **tx)
                .await?;
        tx.commit().await?;
        Ok(released.rows_affected())
    }
}
