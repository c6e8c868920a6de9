//! Recording attempts: the history, each delivery's next step, each webhook's health.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Database;
use crate::store::model::{AttemptRow, from_millis, health_changes};
use crate::store::{AttemptToRecord, Result};

impl Database {
    /// One statement for the whole batch, whatever its size: the attempts, each
    /// delivery's next step and the webhooks' health, written together (data-modifying
    /// `WITH`), atomic without a transaction around it. Three statements in a transaction
    /// were five round trips to the server for each batch.
    pub(in crate::store) async fn record_attempts(
        &self,
        attempts: &[AttemptToRecord<'_>],
    ) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
        let mut rows: Vec<AttemptRow<'_>> = attempts.iter().map(AttemptRow::new).collect();
        // In key order: concurrent writers then lock deliveries in one order.
        rows.sort_unstable_by(|a, b| a.delivery_id.cmp(b.delivery_id));
        let column = |f: &dyn Fn(&AttemptRow<'_>) -> Option<i64>| -> Vec<Option<i64>> {
            rows.iter().map(f).collect()
        };
        let delivery_ids: Vec<&str> = rows.iter().map(|r| r.delivery_id).collect();
        let started_at = column(&|r| Some(r.started_at));
        let duration_ms = column(&|r| Some(r.duration_ms));
        let status_codes = column(&|r| r.status_code);
        let next_attempt_at = column(&|r| r.next_attempt_at);
        let errors: Vec<Option<&str>> = rows.iter().map(|r| r.attempt.error.as_deref()).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        let request_headers: Vec<&str> = rows.iter().map(|r| r.request_headers.as_str()).collect();
        let response_headers: Vec<&str> =
            rows.iter().map(|r| r.response_headers.as_str()).collect();
        let bodies: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.attempt.response_body.as_deref())
            .collect();
        let changes = health_changes(attempts);
        let webhook_ids: Vec<&str> = changes.iter().map(|(id, _)| *id).collect();
        let last_attempt_at: Vec<i64> = changes.iter().map(|(_, c)| c.last_attempt_at).collect();
        let last_status_codes: Vec<Option<i64>> =
            changes.iter().map(|(_, c)| c.last_status_code).collect();
        let last_errors: Vec<Option<&str>> = changes.iter().map(|(_, c)| c.last_error).collect();
        let last_success_at: Vec<Option<i64>> =
            changes.iter().map(|(_, c)| c.last_success_at).collect();
        let failing_since: Vec<Option<i64>> =
            changes.iter().map(|(_, c)| c.failing_since).collect();
        let failed: Vec<i64> = changes.iter().map(|(_, c)| c.failed).collect();

        // A delivery that was cancelled while its attempt was under way (its webhook
        // deactivated or deleted: it is `failed` already) keeps its cancellation unless
        // the attempt delivered it: it is not scheduled again. SET reads the row as it was.
        // A success in the batch restarts a webhook's `failing_since` from the failures
        // after it; otherwise the earliest failure since the last success stays.
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "WITH attempts AS ( \
               INSERT INTO delivery_attempts (delivery_id, started_at, duration_ms, \
                 status_code, error, request_headers, response_headers, response_body) \
               SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], \
                 $5::text[], $6::text[], $7::text[], $8::text[])), \
             moved AS ( \
               UPDATE deliveries d SET \
                 status = CASE WHEN d.status = 'failed' AND v.status <> 'succeeded' \
                   THEN 'failed' ELSE v.status END, \
                 status_code = v.status_code, \
                 attempts = d.attempts + 1, retry_step = d.retry_step + 1, \
                 last_attempt_at = v.started_at, last_duration_ms = v.duration_ms, \
                 next_attempt_at = CASE WHEN d.status = 'failed' THEN NULL \
                   ELSE v.next_attempt_at END, \
                 last_error = CASE WHEN d.status = 'failed' AND v.status = 'retrying' \
                   THEN d.last_error ELSE v.error END, \
                 lease_until = NULL \
               FROM UNNEST($1::text[], $9::text[], $4::bigint[], $2::bigint[], \
                 $3::bigint[], $10::bigint[], $5::text[]) \
                 AS v(id, status, status_code, started_at, duration_ms, next_attempt_at, \
                   error) \
               WHERE d.id = v.id) \
             INSERT INTO webhook_health AS h (webhook_id, last_attempt_at, last_status_code, \
               last_success_at, failing_since, failed_total, last_error) \
             SELECT * FROM UNNEST($11::text[], $12::bigint[], $13::bigint[], $14::bigint[], \
               $15::bigint[], $16::bigint[], $17::text[]) \
             ON CONFLICT (webhook_id) DO UPDATE SET \
               last_status_code = CASE \
                 WHEN excluded.last_attempt_at >= COALESCE(h.last_attempt_at, 0) \
                 THEN excluded.last_status_code ELSE h.last_status_code END, \
               last_error = CASE \
                 WHEN excluded.last_attempt_at >= COALESCE(h.last_attempt_at, 0) \
                 THEN excluded.last_error ELSE h.last_error END, \
               last_attempt_at = GREATEST(h.last_attempt_at, excluded.last_attempt_at), \
               last_success_at = GREATEST(h.last_success_at, excluded.last_success_at), \
               failing_since = CASE WHEN excluded.last_success_at IS NOT NULL \
                 THEN excluded.failing_since \
                 ELSE COALESCE(h.failing_since, excluded.failing_since) END, \
               failed_total = h.failed_total + excluded.failed_total \
             RETURNING webhook_id, failing_since",
        )
        .bind(&delivery_ids)
        .bind(&started_at)
        .bind(&duration_ms)
        .bind(&status_codes)
        .bind(&errors)
        .bind(request_headers)
        .bind(response_headers)
        .bind(bodies)
        .bind(statuses)
        .bind(&next_attempt_at)
        .bind(webhook_ids)
        .bind(last_attempt_at)
        .bind(last_status_codes)
        .bind(last_success_at)
        .bind(failing_since)
        .bind(failed)
        .bind(last_errors)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(webhook_id, since)| Ok((webhook_id, since.map(from_millis).transpose()?)))
            .collect()
    }
}
