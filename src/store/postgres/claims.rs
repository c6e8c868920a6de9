//! Claims: due deliveries taken by one replica's dispatcher until a lease runs out.

use chrono::{DateTime, Utc};

use super::Database;
use crate::store::model::{JobRow, claimed, from_millis, micros, millis};
use crate::store::pace::{self, PacedDue, PacedRow};
use crate::store::{ClaimLimits, ClaimScope, Claimed, NextDue, Result};

/// How many due deliveries a claim looks at per delivery it may take, so that webhooks
/// at their share's end do not make it look at every due delivery.
const CLAIM_CANDIDATES_PER_SLOT: i64 = 4;

/// What a claim returns of each delivery it takes, `d` joined with its event `e` and
/// webhook `w` (a literal for `concat!`).
macro_rules! job_columns {
    () => {
        "d.id, d.event_id, d.event_type, d.retry_step, d.webhook_id, d.next_attempt_at, \
         e.data, e.created_at AS event_created_at, w.url, w.kind, w.deleted_at"
    };
}

/// The webhooks a claim paces, as a subquery: rate-limited and not deleted (a deleted
/// webhook's deliveries fail without a request).
macro_rules! paced_webhooks {
    () => {
        "SELECT id FROM webhooks WHERE rate_limit IS NOT NULL AND deleted_at IS NULL"
    };
}

impl Database {
    /// Rate-limited webhooks first, in a transaction that locks their pace rows: every
    /// replica's claim takes what the shared pace allows and moves it on, so together they
    /// keep to one budget (a pace another replica holds at that moment is skipped, not
    /// waited for). Then the others, in one statement.
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
        scope: ClaimScope,
    ) -> Result<Claimed> {
        let paced: Vec<PacedRow> = sqlx::query_as(
            "SELECT w.id AS webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, \
               EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id \
                 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $1 \
                 AND (d.lease_until IS NULL OR d.lease_until <= $1)) AS due \
             FROM webhooks w JOIN webhook_pace p ON p.webhook_id = w.id \
             WHERE w.rate_limit IS NOT NULL AND w.deleted_at IS NULL",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        let mut paced_rows = Vec::new();
        if !pace::plan(&paced, limits, limit as usize, micros(now)).is_empty() {
            let due: Vec<&str> = paced
                .iter()
                .filter(|row| row.due)
                .map(|row| row.webhook_id.as_str())
                .collect();
            let mut tx = self.pool.begin().await?;
            let locked: Vec<PacedRow> = sqlx::query_as(
                "SELECT p.webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, \
                   TRUE AS due \
                 FROM webhook_pace p JOIN webhooks w ON w.id = p.webhook_id \
                 WHERE p.webhook_id = ANY($1) AND w.rate_limit IS NOT NULL \
                 ORDER BY p.webhook_id FOR UPDATE OF p SKIP LOCKED",
            )
            .bind(&due)
            .fetch_all(&mut *tx)
            .await?;
            let now = Utc::now();
            for planned in pace::plan(&locked, limits, limit as usize, micros(now)) {
                let rows: Vec<JobRow> = sqlx::query_as(concat!(
                    "WITH chosen AS ( \
                       SELECT id FROM deliveries WHERE webhook_id = $2 \
                         AND next_attempt_at IS NOT NULL AND next_attempt_at <= $3 \
                         AND (lease_until IS NULL OR lease_until <= $3) \
                       ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     UPDATE deliveries d SET lease_until = $1 \
                     FROM chosen, events e, webhooks w \
                     WHERE d.id = chosen.id AND e.id = d.event_id AND w.id = d.webhook_id \
                     RETURNING ",
                    job_columns!()
                ))
                .bind(millis(lease_until))
                .bind(&planned.webhook_id)
                .bind(millis(now))
                .bind(i64::try_from(planned.take).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                let pace = planned.pace.after(micros(now), rows.len());
                sqlx::query("UPDATE webhook_pace SET next_at_us = $1 WHERE webhook_id = $2")
                    .bind(pace.next_at_us)
                    .bind(&planned.webhook_id)
                    .execute(&mut *tx)
                    .await?;
                paced_rows.extend(rows);
            }
            tx.commit().await?;
        }
        let left = limit.saturating_sub(u32::try_from(paced_rows.len()).unwrap_or(u32::MAX));
        let rows = if left > 0 && scope == ClaimScope::All {
            self.claim_unpaced(now, lease_until, left, limits).await?
        } else {
            Vec::new()
        };
        claimed(paced_rows, rows)
    }

    /// One statement. The candidates are locked with `SKIP LOCKED`: a replica claiming at
    /// the same moment takes other deliveries instead of waiting, and once this one
    /// commits, the lease keeps every replica off them until it runs out.
    async fn claim_unpaced(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
    ) -> Result<Vec<JobRow>> {
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
        let rows = sqlx::query_as(concat!(
            "WITH candidates AS ( \
               SELECT id, webhook_id, next_attempt_at FROM deliveries \
               WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $2 \
                 AND webhook_id <> ALL($3::text[]) \
                 AND webhook_id NOT IN (",
            paced_webhooks!(),
            ") AND (lease_until IS NULL OR lease_until <= $2) \
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
             RETURNING ",
            job_columns!()
        ))
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
        Ok(rows)
    }

    pub(in crate::store) async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
        scope: ClaimScope,
    ) -> Result<NextDue> {
        let unpaced: Option<i64> = match scope {
            ClaimScope::Paced => None,
            ClaimScope::All => {
                sqlx::query_scalar(concat!(
                    "SELECT MIN(next_attempt_at) FROM deliveries \
                     WHERE next_attempt_at IS NOT NULL AND webhook_id <> ALL($1::text[]) \
                       AND webhook_id NOT IN (",
                    paced_webhooks!(),
                    ") AND (lease_until IS NULL OR lease_until <= $2)"
                ))
                .bind(full)
                .bind(millis(now))
                .fetch_one(&self.pool)
                .await?
            }
        };
        let paced: Vec<PacedDue> = sqlx::query_as(
            "SELECT w.id AS webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, ( \
               SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.webhook_id = w.id \
                 AND d.next_attempt_at IS NOT NULL \
                 AND (d.lease_until IS NULL OR d.lease_until <= $1)) AS due_at \
             FROM webhooks w JOIN webhook_pace p ON p.webhook_id = w.id \
             WHERE w.rate_limit IS NOT NULL AND w.deleted_at IS NULL",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(NextDue {
            unpaced: unpaced.map(from_millis).transpose()?,
            paced: pace::next_start(&paced, full)
                .map(from_millis)
                .transpose()?,
        })
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
