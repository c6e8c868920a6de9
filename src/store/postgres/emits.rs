//! The SQL of emits: events, their fan-out to subscribed webhooks, new deliveries.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::{Postgres, Transaction};

use super::Database;
use crate::catalog::WILDCARD;
use crate::store::emit::EmitSql;
use crate::store::model::{NewDelivery, Subscriber, millis, new_id, parse_subscribers};
use crate::store::{NewEvent, Result, StoreError};

impl EmitSql for Transaction<'_, Postgres> {
    /// The subscribers come back with the insert, as JSON: one statement. An id that is
    /// stored already, by this replica or another, inserts nothing and returns nothing
    /// (an emit of the same id on another replica that has not committed yet makes this
    /// one wait for it).
    async fn insert_events(
        &mut self,
        events: &[&NewEvent],
        now: i64,
    ) -> Result<HashMap<String, Vec<Subscriber>>> {
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO events (id, event_type, data, created_at) \
             SELECT id, event_type, data, $4 \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS e(id, event_type, data) \
             ON CONFLICT (id) DO NOTHING \
             RETURNING id, \
               (SELECT COALESCE(json_agg(json_build_object( \
                    'id', w.id, 'url', w.url, 'kind', w.kind)), '[]')::text \
                FROM webhooks w \
                WHERE w.is_active AND w.deleted_at IS NULL AND w.id IN ( \
                  SELECT s.webhook_id FROM webhook_events s \
                  WHERE s.event_type IN (events.event_type, $5))) AS subscribers",
        )
        .bind(ids)
        .bind(types)
        .bind(data)
        .bind(now)
        .bind(WILDCARD)
        .fetch_all(&mut **self)
        .await?;
        rows.into_iter()
            .map(|(id, subscribers)| {
                let subscribers = parse_subscribers(&id, &subscribers)?;
                Ok((id, subscribers))
            })
            .collect()
    }

    async fn insert_deliveries(
        &mut self,
        rows: &[NewDelivery<'_>],
        now: i64,
    ) -> Result<Vec<String>> {
        let ids: Vec<String> = rows.iter().map(|_| new_id("dlv")).collect();
        if rows.is_empty() {
            return Ok(ids);
        }
        let event_ids: Vec<&str> = rows.iter().map(|r| r.event.id.as_str()).collect();
        let webhook_ids: Vec<&str> = rows.iter().map(|r| r.webhook_id).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.event.event_type.as_str()).collect();
        let leases: Vec<Option<i64>> = rows.iter().map(|r| r.lease_until).collect();
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, \
               created_at, next_attempt_at, lease_until) \
             SELECT id, event_id, webhook_id, event_type, 'pending', $6, $6, lease_until \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
               AS d(id, event_id, webhook_id, event_type, lease_until)",
        )
        .bind(&ids)
        .bind(event_ids)
        .bind(webhook_ids)
        .bind(types)
        .bind(leases)
        .bind(now)
        .execute(&mut **self)
        .await?;
        Ok(ids)
    }

    async fn delivery_counts(&mut self, event_ids: &[&str]) -> Result<HashMap<String, u64>> {
        if event_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_id, COUNT(*) FROM deliveries WHERE event_id = ANY($1) \
             GROUP BY event_id",
        )
        .bind(event_ids)
        .fetch_all(&mut **self)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_id, count)| (event_id, u64::try_from(count).unwrap_or(0)))
            .collect())
    }
}

impl Database {
    pub(in crate::store) async fn emit_to_one(
        &self,
        webhook_id: &str,
        event: &NewEvent,
    ) -> Result<String> {
        let now = millis(Utc::now());
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
        tx.insert_events(&[event], now).await?;
        let delivery = NewDelivery {
            event,
            webhook_id,
            lease_until: None,
        };
        let id = tx
            .insert_deliveries(&[delivery], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Internal("a delivery was not written".to_owned()))?;
        tx.commit().await?;
        Ok(id)
    }
}
