//! The SQL of emits: events, their fan-out to subscribed webhooks, new deliveries.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::PgConnection;

use super::Database;
use crate::catalog::WILDCARD;
use crate::store::emit::{EmitSql, FannedOut};
use crate::store::model::{Subscriber, millis, new_id};
use crate::store::{Audit, NewEvent, Result, StoreError};

/// A new delivery as the fan-out statement returns it; `delivery_id` is `None` for an
/// event that no webhook subscribes to.
#[derive(sqlx::FromRow)]
struct FanOutRow {
    event_id: String,
    delivery_id: Option<String>,
    webhook_id: Option<String>,
    url: Option<String>,
    kind: Option<String>,
    paced: Option<bool>,
}

impl EmitSql for PgConnection {
    /// One statement, atomic without a transaction around it: the events are inserted,
    /// and the deliveries of those that are new, in one round trip. An id that is stored
    /// already, by this replica or another, inserts nothing and returns nothing (an emit of
    /// the same id on another replica that has not committed yet makes this one wait for
    /// it). Delivery ids are made here as in [`new_id`]: the batch's time as a ULID's first
    /// ten characters, then 64 random bits, so that they sort by creation time with the
    /// others.
    async fn insert_fan_out(
        &mut self,
        events: &[&NewEvent],
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<HashMap<String, Vec<FannedOut>>> {
        // In id order: two replicas inserting the same ids in opposite orders would each
        // wait for the other's uncommitted row, and one would fail with a deadlock.
        let mut events = events.to_vec();
        events.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let time_prefix = ulid_time_prefix(now);
        let rows: Vec<FanOutRow> = sqlx::query_as(
            "WITH new_events AS ( \
               INSERT INTO events (id, event_type, data, created_at) \
               SELECT id, event_type, data, $4 \
               FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY \
                 AS e(id, event_type, data, n) \
               ORDER BY n \
               ON CONFLICT (id) DO NOTHING \
               RETURNING id, event_type), \
             fan_out AS ( \
               SELECT DISTINCT ON (e.id, w.id) e.id AS event_id, e.event_type, \
                 w.id AS webhook_id, w.url, w.kind, w.rate_limit IS NOT NULL AS paced, \
                 'dlv_' || $5 || upper(substr(md5(random()::text || e.id || w.id), 1, 16)) \
                   AS delivery_id \
               FROM new_events e \
               JOIN webhook_events s ON s.event_type IN (e.event_type, $6) \
               JOIN webhooks w ON w.id = s.webhook_id \
                 AND w.is_active AND w.deleted_at IS NULL), \
             inserted AS ( \
               INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, \
                 created_at, next_attempt_at, lease_until) \
               SELECT delivery_id, event_id, webhook_id, event_type, 'pending', $4, $4, \
                 CASE WHEN paced THEN NULL ELSE $7 END \
               FROM fan_out) \
             SELECT e.id AS event_id, f.delivery_id, f.webhook_id, f.url, f.kind, f.paced \
             FROM new_events e LEFT JOIN fan_out f ON f.event_id = e.id",
        )
        .bind(ids)
        .bind(types)
        .bind(data)
        .bind(now)
        .bind(time_prefix)
        .bind(WILDCARD)
        .bind(lease_until)
        .fetch_all(&mut *self)
        .await?;
        let mut fanned: HashMap<String, Vec<FannedOut>> = HashMap::new();
        for row in rows {
            let deliveries = fanned.entry(row.event_id).or_default();
            if let (Some(delivery_id), Some(id), Some(url), Some(kind)) =
                (row.delivery_id, row.webhook_id, row.url, row.kind)
            {
                deliveries.push(FannedOut {
                    delivery_id,
                    webhook: Subscriber {
                        id,
                        url,
                        kind,
                        paced: row.paced.unwrap_or(false),
                    },
                });
            }
        }
        for deliveries in fanned.values_mut() {
            deliveries.sort_unstable_by(|a, b| a.webhook.id.cmp(&b.webhook.id));
        }
        Ok(fanned)
    }

    async fn release(&mut self, delivery_ids: &[String]) -> Result<()> {
        sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE id = ANY($1)")
            .bind(delivery_ids)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn delivery_counts(&mut self, event_ids: &[&str]) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_id, COUNT(*) FROM deliveries WHERE event_id = ANY($1) \
             GROUP BY event_id",
        )
        .bind(event_ids)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_id, count)| (event_id, u64::try_from(count).unwrap_or(0)))
            .collect())
    }
}

/// The first ten characters of a ULID made at `now` (unix milliseconds): its time.
fn ulid_time_prefix(now: i64) -> String {
    let ulid = ulid::Ulid::from_parts(u64::try_from(now).unwrap_or(0), 0).to_string();
    ulid[..10].to_owned()
}

impl Database {
    pub(in crate::store) async fn emit_to_one(
        &self,
        webhook_id: &str,
        event: &NewEvent,
        audit: &Audit,
    ) -> Result<String> {
        let now = millis(Utc::now());
        let delivery_id = new_id("dlv");
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
        )
        .bind(webhook_id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO events (id, event_type, data, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(&event.data)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, \
               created_at, next_attempt_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
        )
        .bind(&delivery_id)
        .bind(&event.id)
        .bind(webhook_id)
        .bind(&event.event_type)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(delivery_id)
    }
}
