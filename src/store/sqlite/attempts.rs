//! Recording attempts: the history, each delivery's next step, each webhook's health.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{Database, ROWS_PER_STATEMENT};
use crate::store::model::{AttemptRow, from_millis, health_changes};
use crate::store::{AttemptToRecord, Result};

impl Database {
    /// Two statements per batch of attempts, and one for the health of their webhooks:
    /// with sqlx's SQLite driver every statement is a hop to its worker thread, and those
    /// hops, not SQLite, were the cost.
    pub(in crate::store) async fn record_attempts(
        &self,
        attempts: &[AttemptToRecord<'_>],
    ) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
        let rows: Vec<AttemptRow<'_>> = attempts.iter().map(AttemptRow::new).collect();
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO delivery_attempts (delivery_id, started_at, duration_ms, status_code, \
                 error, request_headers, response_headers, response_body) ",
            );
            insert.push_values(chunk, |mut values, row| {
                values
                    .push_bind(row.delivery_id)
                    .push_bind(row.started_at)
                    .push_bind(row.duration_ms)
                    .push_bind(row.status_code)
                    .push_bind(row.attempt.error.as_deref())
                    .push_bind(&row.request_headers)
                    .push_bind(&row.response_headers)
                    .push_bind(row.attempt.response_body.as_deref());
            });
            insert.build().execute(&mut **tx).await?;
            // VALUES columns are column1, column2, … in SQLite. A delivery that was
            // cancelled while its attempt was under way (its webhook deactivated or
            // deleted: it is `failed` already) keeps its cancellation unless the attempt
            // delivered it: it is not scheduled again. SET reads the row as it was.
            let mut update: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE deliveries SET \
                   status = CASE WHEN deliveries.status = 'failed' AND v.column2 != 'succeeded' \
                     THEN 'failed' ELSE v.column2 END, \
                   status_code = v.column3, \
                   attempts = attempts + 1, retry_step = retry_step + 1, \
                   last_attempt_at = v.column4, last_duration_ms = v.column5, \
                   next_attempt_at = CASE WHEN deliveries.status = 'failed' THEN NULL \
                     ELSE v.column6 END, \
                   last_error = CASE WHEN deliveries.status = 'failed' AND v.column2 = 'retrying' \
                     THEN deliveries.last_error ELSE v.column7 END, \
                   lease_until = NULL \
                 FROM (",
            );
            update.push_values(chunk, |mut values, row| {
                values
                    .push_bind(row.delivery_id)
                    .push_bind(row.status.as_str())
                    .push_bind(row.status_code)
                    .push_bind(row.started_at)
                    .push_bind(row.duration_ms)
                    .push_bind(row.next_attempt_at)
                    .push_bind(row.attempt.error.as_deref());
            });
            update.push(") AS v WHERE deliveries.id = v.column1");
            update.build().execute(&mut **tx).await?;
        }
        let failing_since = update_health(&mut tx, attempts).await?;
        tx.commit().await?;
        Ok(failing_since)
    }
}

/// Applies a batch's health changes: one statement, whatever the batch's size. A
/// success in the batch restarts `failing_since` from the failures after it; otherwise
/// the earliest failure since the last success stays.
async fn update_health(
    tx: &mut Transaction<'_, Sqlite>,
    attempts: &[AttemptToRecord<'_>],
) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
    let changes = health_changes(attempts);
    let mut failing_since = HashMap::with_capacity(changes.len());
    for chunk in changes.chunks(ROWS_PER_STATEMENT) {
        let mut upsert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO webhook_health (webhook_id, last_attempt_at, last_status_code, \
             last_error, last_success_at, failing_since, failed_total) ",
        );
        upsert.push_values(chunk, |mut values, (webhook_id, change)| {
            values
                .push_bind(*webhook_id)
                .push_bind(change.last_attempt_at)
                .push_bind(change.last_status_code)
                .push_bind(change.last_error)
                .push_bind(change.last_success_at)
                .push_bind(change.failing_since)
                .push_bind(change.failed);
        });
        // SQLite's two-argument MAX is NULL when either is: hence the COALESCEs.
        upsert.push(
            " ON CONFLICT (webhook_id) DO UPDATE SET \
               last_status_code = CASE \
                 WHEN excluded.last_attempt_at >= COALESCE(webhook_health.last_attempt_at, 0) \
                 THEN excluded.last_status_code ELSE webhook_health.last_status_code END, \
               last_error = CASE \
                 WHEN excluded.last_attempt_at >= COALESCE(webhook_health.last_attempt_at, 0) \
                 THEN excluded.last_error ELSE webhook_health.last_error END, \
               last_attempt_at = MAX(COALESCE(webhook_health.last_attempt_at, 0), \
                 excluded.last_attempt_at), \
               last_success_at = COALESCE(MAX(webhook_health.last_success_at, \
                 excluded.last_success_at), webhook_health.last_success_at, \
                 excluded.last_success_at), \
               failing_since = CASE WHEN excluded.last_success_at IS NOT NULL \
                 THEN excluded.failing_since \
                 ELSE COALESCE(webhook_health.failing_since, excluded.failing_since) END, \
               failed_total = webhook_health.failed_total + excluded.failed_total \
             RETURNING webhook_id, failing_since",
        );
        let rows: Vec<(String, Option<i64>)> = upsert.build_query_as().fetch_all(&mut **tx).await?;
        for (webhook_id, since) in rows {
            failing_since.insert(webhook_id, since.map(from_millis).transpose()?);
        }
    }
    Ok(failing_since)
}
