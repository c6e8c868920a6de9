//! The SQL of emits: events, their fan-out to subscribed webhooks, new deliveries.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection, Transaction};

use super::{Database, ROWS_PER_STATEMENT};
use crate::catalog::WILDCARD;
use crate::store::emit::{EmitSql, FannedOut};
use crate::store::model::{Subscriber, millis, new_id};
use crate::store::{Audit, NewEvent, Result, StoreError};

/// The subscribers of a new event, as the insert returned them (a JSON array), by id.
fn parse_subscribers(event_id: &str, json: &str) -> Result<Vec<Subscriber>> {
    let mut subscribers: Vec<Subscriber> = serde_json::from_str(json)
        .map_err(|err| StoreError::Corrupt(format!("subscribers of {event_id}: {err}")))?;
    subscribers.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(subscribers)
}

/// A delivery to insert; claimed until `lease_until` when it is handed over at once.
struct NewDelivery<'a> {
    event: &'a NewEvent,
    webhook_id: &'a str,
    lease_until: Option<i64>,
}

impl EmitSql for Transaction<'_, Sqlite> {
    /// Two statements: the events, returning their subscribers, then the deliveries.
    async fn insert_fan_out(
        &mut self,
        events: &[&NewEvent],
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<HashMap<String, Vec<FannedOut>>> {
        let created = insert_events(self, events, now).await?;
        // An id repeated within the batch is created once.
        let mut seen = HashSet::new();
        let mut rows: Vec<(&NewEvent, &Subscriber)> = Vec::new();
        for event in events {
            if let Some(subscribers) = created.get(event.id.as_str())
                && seen.insert(event.id.as_str())
            {
                rows.extend(subscribers.iter().map(|subscriber| (*event, subscriber)));
            }
        }
        let new_deliveries: Vec<NewDelivery<'_>> = rows
            .iter()
            .map(|(event, subscriber)| NewDelivery {
                event,
                webhook_id: &subscriber.id,
                lease_until: lease_until.filter(|_| !subscriber.paced),
            })
            .collect();
        let ids = insert_deliveries(self, &new_deliveries, now).await?;
        let mut fanned: HashMap<String, Vec<FannedOut>> =
            created.keys().map(|id| (id.clone(), Vec::new())).collect();
        for ((event, subscriber), delivery_id) in rows.into_iter().zip(ids) {
            fanned.entry(event.id.clone()).or_default().push(FannedOut {
                delivery_id,
                webhook: subscriber.clone(),
            });
        }
        Ok(fanned)
    }

    async fn release(&mut self, delivery_ids: &[String]) -> Result<()> {
        for chunk in delivery_ids.chunks(ROWS_PER_STATEMENT) {
            let mut update: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE deliveries SET lease_until = NULL WHERE id IN (");
            let mut ids = update.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            update.push(")");
            update.build().execute(&mut **self).await?;
        }
        Ok(())
    }

    async fn delivery_counts(&mut self, event_ids: &[&str]) -> Result<HashMap<String, u64>> {
        let mut counts = HashMap::with_capacity(event_ids.len());
        for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
            let mut query: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT event_id, COUNT(*) FROM deliveries WHERE event_id IN (");
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            query.push(") GROUP BY event_id");
            let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(&mut **self).await?;
            for (event_id, count) in rows {
                counts.insert(event_id, u64::try_from(count).unwrap_or(0));
            }
        }
        Ok(counts)
    }
}

/// Inserts the events whose ids are new; returns each new id with the active webhooks
/// subscribed to its type, sorted by id. The subscribers come back with the insert
/// (`RETURNING` with a subquery): one statement, where a separate query was one more
/// round trip to SQLite's worker thread per emit.
async fn insert_events(
    connection: &mut SqliteConnection,
    events: &[&NewEvent],
    now: i64,
) -> Result<HashMap<String, Vec<Subscriber>>> {
    let mut created = HashMap::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO events (id, event_type, data, created_at) ");
        insert.push_values(chunk, |mut values, event| {
            values
                .push_bind(&event.id)
                .push_bind(&event.event_type)
                .push_bind(&event.data)
                .push_bind(now);
        });
        insert.push(
            " ON CONFLICT (id) DO NOTHING RETURNING id, \
             (SELECT json_group_array(json_object('id', w.id, 'url', w.url, 'kind', w.kind, \
                'paced', json(CASE WHEN w.rate_limit IS NULL THEN 'false' ELSE 'true' END))) \
              FROM webhooks w \
              WHERE w.is_active AND w.deleted_at IS NULL AND w.id IN ( \
                SELECT s.webhook_id FROM webhook_events s \
                WHERE s.event_type IN (events.event_type, ",
        );
        insert.push_bind(WILDCARD);
        insert.push("))) AS subscribers");
        for row in insert.build().fetch_all(&mut *connection).await? {
            let id: String = row.try_get("id")?;
            let subscribers: String = row.try_get("subscribers")?;
            created.insert(id.clone(), parse_subscribers(&id, &subscribers)?);
        }
    }
    Ok(created)
}

/// Inserts one pending delivery per row; returns their ids, in order.
async fn insert_deliveries(
    connection: &mut SqliteConnection,
    rows: &[NewDelivery<'_>],
    now: i64,
) -> Result<Vec<String>> {
    let ids: Vec<String> = rows.iter().map(|_| new_id("dlv")).collect();
    let rows: Vec<(&String, &NewDelivery<'_>)> = ids.iter().zip(rows).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, \
             created_at, next_attempt_at, lease_until) ",
        );
        insert.push_values(chunk, |mut values, (id, row)| {
            values
                .push_bind(*id)
                .push_bind(&row.event.id)
                .push_bind(row.webhook_id)
                .push_bind(&row.event.event_type)
                .push_bind("pending")
                .push_bind(now)
                .push_bind(now)
                .push_bind(row.lease_until);
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(ids)
}

impl Database {
    pub(in crate::store) async fn emit_to_one(
        &self,
        webhook_id: &str,
        event: &NewEvent,
        audit: &Audit,
    ) -> Result<String> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ? AND deleted_at IS NULL")
                .bind(webhook_id)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        insert_events(&mut tx, &[event], now).await?;
        let delivery = NewDelivery {
            event,
            webhook_id,
            lease_until: None,
        };
        let id = insert_deliveries(&mut tx, &[delivery], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Internal("a delivery was not written".to_owned()))?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }
}
