//! Claims: due deliveries taken by the dispatcher until a lease runs out.

use chrono::{DateTime, Utc};

use sqlx::SqliteConnection;

use super::Database;
use crate::store::handoff::{CLAIM_CANDIDATES_PER_SLOT, NEXT_DUE_WINDOW};
use crate::store::model::{JobRow, claimed, from_millis, micros, millis};
use crate::store::pace::{self, PacedDue, PacedRow};
use crate::store::{ClaimLimits, ClaimScope, Claimed, NextDue, Result, StoreError};

/// What a claim returns of each delivery it takes: its job (a literal for `concat!`).
macro_rules! job_columns {
    () => {
        "id, event_id, event_type, retry_step, webhook_id, next_attempt_at, \
         (SELECT e.data FROM events e WHERE e.id = deliveries.event_id) AS data, \
         (SELECT e.created_at FROM events e WHERE e.id = deliveries.event_id) \
           AS event_created_at, \
         (SELECT w.url FROM webhooks w WHERE w.id = deliveries.webhook_id) AS url, \
         (SELECT w.kind FROM webhooks w WHERE w.id = deliveries.webhook_id) AS kind, \
         (SELECT w.deleted_at FROM webhooks w WHERE w.id = deliveries.webhook_id) \
           AS deleted_at"
    };
}

impl Database {
    /// Claims in the write turn, so that no other claim moves a pace in between.
    ///
    /// Without rate-limited webhooks due, one statement, run without BEGIN and COMMIT
    /// around it (a single statement is atomic by itself): with sqlx every statement is a
    /// round trip to a worker thread, and a claim with its transaction and a second query
    /// for the jobs took four. With some, one transaction: what each one's pace allows
    /// (`pace.rs`), the pace moved on, then the rest. A bulk resend running goes first,
    /// for a while ([`Database::hold_claims_back`]).
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
        scope: ClaimScope,
    ) -> Result<Claimed> {
        self.give_way_to_bulk_resends().await;
        let turn = self.write_turn().await?;
        let paced: Vec<PacedRow> = sqlx::query_as(
            "SELECT w.id AS webhook_id, w.rate_limit, p.next_at_us, EXISTS ( \
               SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id \
                 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1 \
                 AND (d.lease_until IS NULL OR d.lease_until <= ?1)) AS due \
             FROM webhooks w JOIN webhook_pace p ON p.webhook_id = w.id \
             WHERE w.rate_limit IS NOT NULL AND w.deleted_at IS NULL",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        let planned = pace::plan(&paced, limits, limit as usize, micros(now));
        if planned.is_empty() && scope == ClaimScope::Paced {
            return Ok(Claimed::default());
        }
        let (paced_rows, rows) = if planned.is_empty() {
            let mut writer = self.writer.acquire().await?;
            let rows = claim_unpaced(&mut writer, now, lease_until, limit, limits).await?;
            drop(writer);
            drop(turn);
            if !rows.is_empty() {
                self.written.notify_one();
            }
            (Vec::new(), rows)
        } else {
            let mut tx = self.begin_in_turn(turn).await?;
            let mut paced_rows = Vec::new();
            for planned in planned {
                let rows: Vec<JobRow> = sqlx::query_as(concat!(
                    "UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
                       SELECT id FROM deliveries WHERE webhook_id = ?2 \
                         AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?3 \
                         AND (lease_until IS NULL OR lease_until <= ?3) \
                       ORDER BY next_attempt_at LIMIT ?4) \
                     RETURNING ",
                    job_columns!()
                ))
                .bind(millis(lease_until))
                .bind(&planned.webhook_id)
                .bind(millis(now))
                .bind(i64::try_from(planned.take).unwrap_or(i64::MAX))
                .fetch_all(&mut **tx)
                .await?;
                let pace = planned.pace.after(micros(now), rows.len());
                sqlx::query("UPDATE webhook_pace SET next_at_us = ? WHERE webhook_id = ?")
                    .bind(pace.next_at_us)
                    .bind(&planned.webhook_id)
                    .execute(&mut **tx)
                    .await?;
                paced_rows.extend(rows);
            }
            let left = limit.saturating_sub(u32::try_from(paced_rows.len()).unwrap_or(u32::MAX));
            let rows = if left > 0 && scope == ClaimScope::All {
                claim_unpaced(&mut tx, now, lease_until, left, limits).await?
            } else {
                Vec::new()
            };
            tx.commit().await?;
            (paced_rows, rows)
        };
        claimed(paced_rows, rows)
    }

    pub(in crate::store) async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
        scope: ClaimScope,
    ) -> Result<NextDue> {
        let unpaced = match scope {
            ClaimScope::All => self.next_unpaced_due_at(now, full).await?,
            ClaimScope::Paced => None,
        };
        let paced: Vec<PacedDue> = sqlx::query_as(
            "SELECT w.id AS webhook_id, w.rate_limit, p.next_at_us, ( \
               SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.webhook_id = w.id \
                 AND d.next_attempt_at IS NOT NULL \
                 AND (d.lease_until IS NULL OR d.lease_until <= ?)) AS due_at \
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

    /// When the earliest due delivery of a webhook neither full nor rate-limited is due:
    /// the first such within a window of the earliest due deliveries of all, as a claim
    /// looks (see [`claim_unpaced`]); when the window holds none, per webhook.
    async fn next_unpaced_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
    ) -> Result<Option<i64>> {
        let full_json = full_json(full)?;
        let (earliest, window_end): (Option<i64>, Option<i64>) = sqlx::query_as(concat!(
            "WITH bound (end_at) AS (SELECT (",
            window_end!("?4", "?3"),
            ")) \
             SELECT (SELECT MIN(next_attempt_at) FROM deliveries \
                     WHERE next_attempt_at IS NOT NULL \
                       AND next_attempt_at <= COALESCE((SELECT end_at FROM bound), ?4) \
                       AND webhook_id NOT IN (SELECT value FROM json_each(?1)) \
                       AND webhook_id NOT IN (",
            paced_webhooks!(),
            ") AND (lease_until IS NULL OR lease_until <= ?2)), \
               (SELECT end_at FROM bound)"
        ))
        .bind(&full_json)
        .bind(millis(now))
        .bind(NEXT_DUE_WINDOW)
        .bind(i64::MAX)
        .fetch_one(&self.pool)
        .await?;
        if earliest.is_some() || window_end.is_none() {
            return Ok(earliest);
        }
        let earliest: Option<i64> = sqlx::query_scalar(concat!(
            due_webhooks!(),
            " SELECT MIN((SELECT MIN(d.next_attempt_at) FROM deliveries d \
                         WHERE d.webhook_id = w.webhook_id AND d.next_attempt_at IS NOT NULL \
                           AND (d.lease_until IS NULL OR d.lease_until <= ?2))) \
             FROM due_webhooks w \
             WHERE w.webhook_id IS NOT NULL \
               AND w.webhook_id NOT IN (SELECT value FROM json_each(?1)) \
               AND w.webhook_id NOT IN (",
            paced_webhooks!(),
            ")"
        ))
        .bind(&full_json)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(earliest)
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

/// Claims due deliveries of webhooks that are not rate-limited, within `limits`.
///
/// First one statement: the due deliveries of full and rate-limited webhooks
/// are passed over in the index alone (`deliveries_due` holds the webhook), and the share
/// is applied to the first [`CLAIM_CANDIDATES_PER_SLOT`] × `limit` due deliveries of the
/// others. It walks the index no further than a window of the earliest due deliveries of
/// all webhooks ([`ClaimLimits::claim_window`] of them, see `window_end!`). When the window yielded
/// fewer than `limit` and more lie beyond it, the rest is taken per webhook
/// ([`claim_per_webhook`]).
///
/// Walking on instead cost 40 ms a claim, in the write turn, past 100 000 deliveries
/// waiting their turn at a rate limit (BENCHMARKS.md, 2026-12-03).
async fn claim_unpaced(
    connection: &mut SqliteConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    limits: &ClaimLimits,
) -> Result<Vec<JobRow>> {
    let window = limits.claim_window(limit);
    let statement = sqlx::query_as(concat!(
        "UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
           SELECT id FROM ( \
             SELECT id, next_attempt_at, \
               ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS nth, \
               COALESCE(json_extract(?4, '$.\"' || webhook_id || '\"'), ?5) AS room \
             FROM ( \
               SELECT id, webhook_id, next_attempt_at FROM deliveries \
               WHERE next_attempt_at IS NOT NULL \
                 AND next_attempt_at <= COALESCE((",
        window_end!("?2", "?8"),
        "), ?2) \
                 AND webhook_id NOT IN (SELECT value FROM json_each(?3)) \
                 AND webhook_id NOT IN (",
        paced_webhooks!(),
        ") AND (lease_until IS NULL OR lease_until <= ?2) \
               ORDER BY next_attempt_at LIMIT ?6)) \
           WHERE nth <= room ORDER BY next_attempt_at LIMIT ?7) \
         RETURNING ",
        job_columns!()
    ));
    let mut rows = with_claim_binds(statement, lease_until, now, limits)?
        .bind(i64::from(limit).saturating_mul(CLAIM_CANDIDATES_PER_SLOT))
        .bind(i64::from(limit))
        .bind(window)
        .fetch_all(&mut *connection)
        .await?;
    let taken = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    if taken >= limit {
        return Ok(rows);
    }
    let window_end: Option<i64> =
        sqlx::query_scalar(concat!("SELECT (", window_end!("?1", "?2"), ")"))
            .bind(millis(now))
            .bind(window)
            .fetch_one(&mut *connection)
            .await?;
    if window_end.is_none() {
        // The window held every due delivery: nothing lies beyond it.
        return Ok(rows);
    }
    let limits = limits.after_taking(rows.iter().map(JobRow::webhook_id));
    rows.extend(claim_per_webhook(connection, now, lease_until, limit - taken, &limits).await?);
    Ok(rows)
}

/// Claims up to `limit` due deliveries in all, earliest first, from the webhooks that
/// have any and are neither full nor rate-limited, each within its room: one index range
/// per such webhook (`deliveries_due_by_webhook`), the webhooks found by skipping through
/// that index from one to the next. Its cost grows with the webhooks that have deliveries due or under
/// way, not with how many of them wait, which is why it is the fallback and not the rule.
async fn claim_per_webhook(
    connection: &mut SqliteConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    limits: &ClaimLimits,
) -> Result<Vec<JobRow>> {
    let statement = sqlx::query_as(concat!(
        due_webhooks!(),
        " UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
           SELECT id FROM ( \
             SELECT d.id, d.next_attempt_at, \
               ROW_NUMBER() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at) AS nth, \
               COALESCE(json_extract(?4, '$.\"' || d.webhook_id || '\"'), ?5) AS room \
             FROM due_webhooks w JOIN deliveries d ON d.id IN ( \
               SELECT id FROM deliveries WHERE webhook_id = w.webhook_id \
                 AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?2 \
                 AND (lease_until IS NULL OR lease_until <= ?2) \
               ORDER BY next_attempt_at LIMIT ?6) \
             WHERE w.webhook_id IS NOT NULL \
               AND w.webhook_id NOT IN (SELECT value FROM json_each(?3)) \
               AND w.webhook_id NOT IN (",
        paced_webhooks!(),
        ")) WHERE nth <= room ORDER BY next_attempt_at LIMIT ?6) \
         RETURNING ",
        job_columns!()
    ));
    let rows = with_claim_binds(statement, lease_until, now, limits)?
        .bind(i64::from(limit))
        .fetch_all(&mut *connection)
        .await?;
    Ok(rows)
}

/// A claim statement with what both kinds share bound as `?1` to `?5`: the lease's end,
/// now, the full webhooks, each listed webhook's room, and the share of any other.
fn with_claim_binds<'q>(
    statement: ClaimStatement<'q>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: &ClaimLimits,
) -> Result<ClaimStatement<'q>> {
    Ok(statement
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(full_json(&limits.full)?)
        .bind(room_json(limits))
        .bind(i64::try_from(limits.per_webhook).unwrap_or(i64::MAX)))
}

type ClaimStatement<'q> =
    sqlx::query::QueryAs<'q, sqlx::Sqlite, JobRow, sqlx::sqlite::SqliteArguments>;

/// The full webhooks, as a JSON array for `json_each`.
fn full_json(full: &[String]) -> Result<String> {
    serde_json::to_string(full).map_err(|err| StoreError::Internal(format!("claim limits: {err}")))
}

/// Each listed webhook's room, as a JSON object for `json_extract`.
fn room_json(limits: &ClaimLimits) -> String {
    let room: serde_json::Map<String, serde_json::Value> = limits
        .room
        .iter()
        .map(|(webhook_id, room)| (webhook_id.clone(), (*room).into()))
        .collect();
    serde_json::Value::Object(room).to_string()
}
