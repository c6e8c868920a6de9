//! Events, deliveries and attempts.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite};

use super::handoff::{ClaimLimits, HandedJob, Handoff, Refused};
use super::{
    HOUR_MILLIS, QueuedEmit, Result, Store, StoreError, WriteTurn, from_millis, millis, new_id,
    optional_time,
};
use crate::api::{
    Attempt, CodeClass, Delivery, DeliveryQuery, DeliveryStatus, StatsBucket, StatsPoint,
    WebhookKind,
};
use crate::catalog::WILDCARD;

/// An event to store and fan out.
#[derive(Debug)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    /// The event's `data`, as JSON text.
    pub data: String,
}

/// What emitting an event did.
#[derive(Debug, PartialEq, Eq)]
pub struct Emitted {
    pub event_id: String,
    pub deliveries: u64,
    /// False when an event with this id already existed: nothing new was created.
    pub created: bool,
    /// New deliveries the dispatcher must be told to claim: not handed to it at once (see
    /// [`Handoff`]), and not waiting only for their webhook to have room, which it
    /// notices by itself.
    pub unclaimed: u64,
}

/// An active webhook subscribed to a new event, as the emit's insert returns it.
#[derive(Debug, serde::Deserialize)]
struct Subscriber {
    id: String,
    url: String,
    kind: String,
}

/// Everything the dispatcher needs to make one attempt.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The event's `data`, as JSON text.
    pub data: String,
    pub event_created_at: DateTime<Utc>,
    pub webhook_id: String,
    pub url: String,
    pub kind: WebhookKind,
    pub webhook_deleted: bool,
    /// Attempts made so far in the current retry cycle.
    pub retry_step: u32,
}

/// An attempt as the dispatcher made it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    RetryAt(DateTime<Utc>),
    Failed,
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, status, status_code, attempts, created_at, \
         last_attempt_at, last_duration_ms, next_attempt_at, last_error"
    };
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery> {
    let status: String = row.try_get("status")?;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status {status:?}")))?;
    let status_code = row
        .try_get::<Option<i64>, _>("status_code")?
        .and_then(|code| u16::try_from(code).ok());
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        status,
        status_code,
        success: status == DeliveryStatus::Succeeded,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        created_at: from_millis(row.try_get("created_at")?)?,
        last_attempt_at: optional_time(row, "last_attempt_at")?,
        last_duration_ms: row
            .try_get::<Option<i64>, _>("last_duration_ms")?
            .and_then(|ms| u64::try_from(ms).ok()),
        next_attempt_at: optional_time(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
    })
}

fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn headers_from_json(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("attempt headers: {err}")))
}

fn job_from_row(row: &SqliteRow) -> Result<DeliveryJob> {
    let kind: String = row.try_get("kind")?;
    Ok(DeliveryJob {
        delivery_id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        data: row.try_get("data")?,
        event_created_at: from_millis(row.try_get("event_created_at")?)?,
        webhook_id: row.try_get("webhook_id")?,
        url: row.try_get("url")?,
        kind: WebhookKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook kind {kind:?}")))?,
        webhook_deleted: row.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
        retry_step: u32::try_from(row.try_get::<i64, _>("retry_step")?).unwrap_or(u32::MAX),
    })
}

/// How many due deliveries a claim looks at per delivery it may take, so that webhooks
/// at their share's end do not make it look at every due delivery.
const CLAIM_CANDIDATES_PER_SLOT: i64 = 4;

/// Rows per multi-row statement (or ids per `IN` list), within SQLite's bound-parameter
/// limit.
const ROWS_PER_STATEMENT: usize = 256;

/// One attempt as the batch statements bind it.
struct AttemptRow<'a> {
    delivery_id: &'a str,
    attempt: &'a AttemptRecord,
    status: DeliveryStatus,
    status_code: Option<i64>,
    started_at: i64,
    duration_ms: i64,
    next_attempt_at: Option<i64>,
}

impl<'a> AttemptRow<'a> {
    fn new(delivery_id: &'a str, attempt: &'a AttemptRecord, outcome: AttemptOutcome) -> Self {
        let (status, next_attempt_at) = match outcome {
            AttemptOutcome::Succeeded => (DeliveryStatus::Succeeded, None),
            AttemptOutcome::RetryAt(at) => (DeliveryStatus::Retrying, Some(millis(at))),
            AttemptOutcome::Failed => (DeliveryStatus::Failed, None),
        };
        Self {
            delivery_id,
            attempt,
            status,
            status_code: attempt.status_code.map(i64::from),
            started_at: millis(attempt.started_at),
            duration_ms: i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX),
            next_attempt_at,
        }
    }
}

/// What a claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<DeliveryJob>,
    /// When the longest-waiting of them fell due.
    pub oldest_due_at: Option<DateTime<Utc>>,
}

/// An attempt the dispatcher made, to record.
#[derive(Debug, Clone, Copy)]
pub struct AttemptToRecord<'a> {
    pub delivery_id: &'a str,
    pub webhook_id: &'a str,
    pub record: &'a AttemptRecord,
    pub outcome: AttemptOutcome,
}

/// What one batch of attempts tells of one webhook's health.
#[derive(Debug, Default, PartialEq, Eq)]
struct HealthChange {
    last_attempt_at: i64,
    last_status_code: Option<i64>,
    last_success_at: Option<i64>,
    /// The first failed attempt after the batch's last success (or in the batch, when it
    /// has none).
    failing_since: Option<i64>,
}

/// Folds a batch of attempts into one change per webhook, in the order they started.
fn health_changes<'a>(attempts: &[AttemptToRecord<'a>]) -> HashMap<&'a str, HealthChange> {
    let mut ordered: Vec<&AttemptToRecord<'a>> = attempts.iter().collect();
    ordered.sort_by_key(|a| a.record.started_at);
    let mut changes: HashMap<&str, HealthChange> = HashMap::new();
    for attempt in ordered {
        let at = millis(attempt.record.started_at);
        let change = changes.entry(attempt.webhook_id).or_default();
        change.last_attempt_at = at;
        change.last_status_code = attempt.record.status_code.map(i64::from);
        if attempt.outcome == AttemptOutcome::Succeeded {
            change.last_success_at = Some(at);
            change.failing_since = None;
        } else if change.failing_since.is_none() {
            change.failing_since = Some(at);
        }
    }
    changes
}

/// Applies a batch's [`HealthChange`]s: one statement, whatever the batch's size. A
/// success in the batch restarts `failing_since` from the failures after it; otherwise
/// the earliest failure since the last success stays.
async fn update_health(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    attempts: &[AttemptToRecord<'_>],
) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
    let changes: Vec<(&str, HealthChange)> = health_changes(attempts).into_iter().collect();
    let mut failing_since = HashMap::with_capacity(changes.len());
    for chunk in changes.chunks(ROWS_PER_STATEMENT) {
        let mut upsert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO webhook_health (webhook_id, last_attempt_at, last_status_code, \
             last_success_at, failing_since) ",
        );
        upsert.push_values(chunk, |mut values, (webhook_id, change)| {
            values
                .push_bind(*webhook_id)
                .push_bind(change.last_attempt_at)
                .push_bind(change.last_status_code)
                .push_bind(change.last_success_at)
                .push_bind(change.failing_since);
        });
        // SQLite's two-argument MAX is NULL when either is: hence the COALESCEs.
        upsert.push(
            " ON CONFLICT (webhook_id) DO UPDATE SET \
               last_status_code = CASE \
                 WHEN excluded.last_attempt_at >= COALESCE(webhook_health.last_attempt_at, 0) \
                 THEN excluded.last_status_code ELSE webhook_health.last_status_code END, \
               last_attempt_at = MAX(COALESCE(webhook_health.last_attempt_at, 0), \
                 excluded.last_attempt_at), \
               last_success_at = COALESCE(MAX(webhook_health.last_success_at, \
                 excluded.last_success_at), webhook_health.last_success_at, \
                 excluded.last_success_at), \
               failing_since = CASE WHEN excluded.last_success_at IS NOT NULL \
                 THEN excluded.failing_since \
                 ELSE COALESCE(webhook_health.failing_since, excluded.failing_since) END \
             RETURNING webhook_id, failing_since",
        );
        for row in upsert.build().fetch_all(&mut **tx).await? {
            failing_since.insert(
                row.try_get::<String, _>("webhook_id")?,
                optional_time(&row, "failing_since")?,
            );
        }
    }
    Ok(failing_since)
}

/// Tells queued emits apart (two may carry the same event id).
static NEXT_EMIT_TICKET: AtomicU64 = AtomicU64::new(0);

/// Writes events and their deliveries; an id already stored creates nothing, and an id
/// repeated within `events` is created once. A handful of statements for the whole
/// batch, whatever its size: with sqlx's SQLite driver every statement is a hop to its
/// worker thread, and those hops, not SQLite, are the cost.
///
/// New deliveries that get a slot from `handoff` are written claimed, and come back as
/// jobs to hand over once the transaction has committed.
async fn emit_batch(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    events: &[&NewEvent],
    now: i64,
    handoff: Option<&Handoff>,
) -> Result<(Vec<Emitted>, Vec<HandedJob>)> {
    let created = insert_events(tx, events, now).await?;
    // The first occurrence of each new id creates it; later ones report its fan-out.
    let mut creators: HashMap<&str, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if created.contains_key(event.id.as_str()) {
            creators.entry(event.id.as_str()).or_insert(index);
        }
    }
    let mut rows = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if creators.get(event.id.as_str()) == Some(&index) {
            for subscriber in created.get(event.id.as_str()).into_iter().flatten() {
                rows.push((*event, subscriber));
            }
        }
    }
    // Deliveries that get a slot are written claimed, and handed over after the commit.
    // One whose webhook's kind is unreadable is left to a claim, which reports it.
    let lease_until = handoff.map(|handoff| {
        now.saturating_add(i64::try_from(handoff.lease().as_millis()).unwrap_or(i64::MAX))
    });
    let mut new_deliveries = Vec::with_capacity(rows.len());
    let mut claims = Vec::with_capacity(rows.len());
    for (event, subscriber) in &rows {
        let kind = WebhookKind::parse(&subscriber.kind);
        let claim = match (handoff, kind) {
            (Some(handoff), Some(kind)) => {
                handoff.take_slot(&subscriber.id).map(|slot| (slot, kind))
            }
            _ => Err(Refused::NoSlot),
        };
        new_deliveries.push(NewDelivery {
            event,
            webhook_id: &subscriber.id,
            lease_until: claim.as_ref().ok().and(lease_until),
        });
        claims.push(claim);
    }
    let ids = insert_deliveries(tx, &new_deliveries, now).await?;
    let created_at = from_millis(now)?;
    let mut handed = Vec::new();
    let mut unclaimed: HashMap<&str, u64> = HashMap::new();
    for (((event, subscriber), delivery_id), claim) in rows.iter().zip(ids).zip(claims) {
        match claim {
            Ok((slot, kind)) => handed.push(HandedJob {
                job: new_job(event, subscriber, kind, delivery_id, created_at),
                slot,
            }),
            // The dispatcher claims it when that webhook has room, without being told.
            Err(Refused::WebhookFull) => {}
            Err(Refused::NoSlot) => {
                *unclaimed.entry(event.id.as_str()).or_default() += 1;
            }
        }
    }
    let earlier: Vec<&str> = events
        .iter()
        .map(|event| event.id.as_str())
        .filter(|id| !creators.contains_key(id))
        .collect();
    let earlier_counts = delivery_counts(tx, &earlier).await?;
    let emitted = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let id = event.id.as_str();
            let (deliveries, created, unclaimed) = match creators.get(id) {
                Some(&creator) => {
                    let fan_out = created.get(id).map_or(0, Vec::len);
                    let first = creator == index;
                    let unclaimed = if first {
                        unclaimed.get(id).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    (fan_out as u64, first, unclaimed)
                }
                None => (earlier_counts.get(id).copied().unwrap_or(0), false, 0),
            };
            Emitted {
                event_id: event.id.clone(),
                deliveries,
                created,
                unclaimed,
            }
        })
        .collect();
    Ok((emitted, handed))
}

/// The job of a delivery just written, as a claim would have read it back.
fn new_job(
    event: &NewEvent,
    subscriber: &Subscriber,
    kind: WebhookKind,
    delivery_id: String,
    event_created_at: DateTime<Utc>,
) -> DeliveryJob {
    DeliveryJob {
        delivery_id,
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        data: event.data.clone(),
        event_created_at,
        webhook_id: subscriber.id.clone(),
        url: subscriber.url.clone(),
        kind,
        webhook_deleted: false,
        retry_step: 0,
    }
}

/// Inserts the events whose ids are new; returns each new id with the active webhooks
/// subscribed to its type (directly or through `*`), sorted by id. The subscribers come
/// back with the insert (`RETURNING` with a subquery): one statement, where a separate
/// query was one more round trip to SQLite's worker thread per emit.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
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
             (SELECT json_group_array(json_object('id', w.id, 'url', w.url, 'kind', w.kind)) \
              FROM webhooks w \
              WHERE w.is_active AND w.deleted_at IS NULL AND w.id IN ( \
                SELECT s.webhook_id FROM webhook_events s \
                WHERE s.event_type IN (events.event_type, ",
        );
        insert.push_bind(WILDCARD);
        insert.push("))) AS subscribers");
        for row in insert.build().fetch_all(&mut **tx).await? {
            let id: String = row.try_get("id")?;
            let subscribers: String = row.try_get("subscribers")?;
            let mut subscribers: Vec<Subscriber> = serde_json::from_str(&subscribers)
                .map_err(|err| StoreError::Corrupt(format!("subscribers of {id}: {err}")))?;
            subscribers.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            created.insert(id, subscribers);
        }
    }
    Ok(created)
}

/// A delivery to insert; claimed until `lease_until` when it is handed over at once.
struct NewDelivery<'a> {
    event: &'a NewEvent,
    webhook_id: &'a str,
    lease_until: Option<i64>,
}

/// Inserts one pending delivery per (event, webhook) pair; returns their ids, in order.
async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
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
        insert.build().execute(&mut **tx).await?;
    }
    Ok(ids)
}

/// How many deliveries each of `event_ids` has.
async fn delivery_counts(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event_ids: &[&str],
) -> Result<HashMap<String, u64>> {
    let mut counts = HashMap::with_capacity(event_ids.len());
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT event_id, COUNT(*) AS deliveries FROM deliveries WHERE event_id IN (",
        );
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(*id);
        }
        query.push(") GROUP BY event_id");
        for row in query.build().fetch_all(&mut **tx).await? {
            let count: i64 = row.try_get("deliveries")?;
            counts.insert(row.try_get("event_id")?, u64::try_from(count).unwrap_or(0));
        }
    }
    Ok(counts)
}

/// Cancels a webhook's unfinished deliveries, e.g. when it is deactivated or deleted.
pub(super) async fn cancel_unfinished(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    webhook_id: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ? \
         WHERE webhook_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(reason)
    .bind(webhook_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores the event and one pending delivery per active webhook subscribed to its type,
    /// in one transaction. An id seen before creates nothing and reports the first fan-out.
    ///
    /// Group commit: concurrent emits queue up; whoever gets the write gate writes every
    /// queued event in its transaction and tells the others, so a burst of emits costs a
    /// few commits instead of one each. If that shared transaction fails, each waiting
    /// emit tries again alone, so each gets its own error.
    pub async fn emit_event(&self, event: NewEvent) -> Result<Emitted> {
        let (done, mut written) = tokio::sync::oneshot::channel();
        let ticket = NEXT_EMIT_TICKET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.queued_emits
            .lock()
            .map_err(|_| StoreError::Internal("the emit queue was poisoned".to_owned()))?
            .push(QueuedEmit {
                ticket,
                event,
                done,
            });
        // Wait for a turn to write, unless a writer takes this event along first: then
        // there is no need to queue for the turn behind everyone else.
        let turn = tokio::select! {
            outcome = &mut written => return self.emit_answer(outcome).await,
            turn = self.write_turn() => turn,
        };
        match turn {
            Ok(turn) => {
                // The write runs as a task of its own: a caller that goes away (a client
                // that disconnects drops its request) must not roll back a transaction
                // that others wait on.
                let store = self.clone();
                tokio::spawn(async move { store.write_queued_emits(turn).await });
                self.emit_answer(written.await).await
            }
            Err(err) => {
                // Still queued: withdraw, so that an emit answered 503 is not written later.
                // Already taken by a writer: its answer is on the way.
                let withdrawn = self.queued_emits.lock().is_ok_and(|mut queued| {
                    let before = queued.len();
                    queued.retain(|q| q.ticket != ticket);
                    queued.len() < before
                });
                if withdrawn {
                    return Err(err);
                }
                match written.await {
                    Ok(Ok(emitted)) => Ok(emitted),
                    Ok(Err(_)) | Err(_) => Err(err),
                }
            }
        }
    }

    /// What a queued emit heard: its outcome, or its event back to write alone because the
    /// shared transaction failed.
    async fn emit_answer(
        &self,
        answer: std::result::Result<
            std::result::Result<Emitted, NewEvent>,
            tokio::sync::oneshot::error::RecvError,
        >,
    ) -> Result<Emitted> {
        match answer {
            Ok(Ok(emitted)) => Ok(emitted),
            Ok(Err(event)) => {
                let turn = self.write_turn().await?;
                self.emit_alone(turn, event).await
            }
            Err(_) => Err(StoreError::Internal(
                "a queued emit was dropped unanswered".to_owned(),
            )),
        }
    }

    /// Writes every queued emit in one transaction and answers each; holds the turn until
    /// all have heard, so that an emit that gets the turn next finds its answer waiting.
    async fn write_queued_emits(&self, turn: WriteTurn) {
        let batch = self
            .queued_emits
            .lock()
            .map(|mut queued| std::mem::take(&mut *queued))
            .unwrap_or_default();
        if batch.is_empty() {
            return;
        }
        let now = millis(Utc::now());
        let handoff = self.handoff();
        // `_turn` is held to the end, past the answers.
        let (written, _turn) = match self.begin_in_turn(turn).await {
            Ok(mut tx) => {
                let events: Vec<&NewEvent> = batch.iter().map(|queued| &queued.event).collect();
                let written = emit_batch(&mut tx, &events, now, handoff.as_ref()).await;
                let (finished, turn) = tx.finish_keeping_turn(written.is_ok()).await;
                (
                    written.and_then(|outcomes| finished.map(|()| outcomes)),
                    Some(turn),
                )
            }
            Err(err) => (Err(err), None),
        };
        match written {
            Ok((outcomes, handed)) => {
                if let Some(handoff) = &handoff {
                    handoff.send(handed);
                }
                for (queued, emitted) in batch.into_iter().zip(outcomes) {
                    let _ = queued.done.send(Ok(emitted));
                }
            }
            // Each tries again alone and gets its own answer: one bad event must not fail
            // the others.
            Err(_) => {
                for queued in batch {
                    let _ = queued.done.send(Err(queued.event));
                }
            }
        }
    }

    /// One event in its own transaction (after a shared one failed).
    async fn emit_alone(&self, turn: WriteTurn, event: NewEvent) -> Result<Emitted> {
        let now = millis(Utc::now());
        let handoff = self.handoff();
        let mut tx = self.begin_in_turn(turn).await?;
        let (mut emitted, handed) = emit_batch(&mut tx, &[&event], now, handoff.as_ref()).await?;
        let emitted = emitted
            .pop()
            .ok_or_else(|| StoreError::Internal("an emit wrote nothing".to_owned()))?;
        tx.commit().await?;
        if let Some(handoff) = &handoff {
            handoff.send(handed);
        }
        Ok(emitted)
    }

    /// Stores `event` with a single delivery to `webhook_id`, subscribed or not.
    pub async fn emit_to_one(&self, webhook_id: &str, event: NewEvent) -> Result<String> {
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
        insert_events(&mut tx, &[&event], now).await?;
        let delivery = NewDelivery {
            event: &event,
            webhook_id,
            lease_until: None,
        };
        let id = insert_deliveries(&mut tx, &[delivery], now)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Internal("a delivery was not written".to_owned()))?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` due deliveries, the oldest due first, until `lease_until` and
    /// returns their jobs, keeping to `limits`: nothing of a webhook that has its whole
    /// share of attempts under way, and no more of any other than its room. One
    /// statement, run in the write turn without BEGIN and COMMIT around it (a single
    /// statement is atomic by itself): with sqlx every statement is a round trip to a
    /// worker thread, and a claim with its transaction and a second query for the jobs
    /// took four.
    ///
    /// The due deliveries of full webhooks are passed over in the index alone
    /// (`deliveries_due` holds the webhook); the share is applied to the first
    /// [`CLAIM_CANDIDATES_PER_SLOT`] × `limit` due deliveries of the others.
    pub async fn claim_due(
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
        let rows = sqlx::query(
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
        let mut jobs = Vec::with_capacity(rows.len());
        let mut oldest_due_at: Option<i64> = None;
        for row in &rows {
            if let Ok(due_at) = row.try_get::<i64, _>("next_attempt_at") {
                oldest_due_at = Some(oldest_due_at.map_or(due_at, |oldest| oldest.min(due_at)));
            }
            match job_from_row(row) {
                Ok(job) => jobs.push(job),
                // Keeps its claim until the lease runs out, and is tried again then.
                Err(err) => tracing::error!("a claimed delivery could not be read: {err}"),
            }
        }
        Ok(Claimed {
            jobs,
            oldest_due_at: oldest_due_at.map(from_millis).transpose()?,
        })
    }

    /// When the next unclaimed delivery of a webhook not in `full` falls due, if any is
    /// waiting (those of full webhooks are looked at again when one has room).
    pub async fn next_due_at(
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

    /// Drops every claim. Only for a process that owns the database alone (SQLite) at start:
    /// claims left by a crashed run are retried at once instead of after their lease.
    pub async fn release_all_claims(&self) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let released =
            sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL")
                .execute(&mut **tx)
                .await?;
        tx.commit().await?;
        Ok(released.rows_affected())
    }

    /// Records attempts and moves each delivery on, releasing its claim, and keeps each
    /// webhook's health up to date: the dispatcher's writes, batched in one transaction.
    /// Returns, per webhook of the batch, since when its attempts have been failing (the
    /// start of the first failed attempt after its latest success; `None` while it
    /// succeeds), read in the same transaction.
    pub async fn record_attempts(
        &self,
        attempts: &[AttemptToRecord<'_>],
    ) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
        if attempts.is_empty() {
            return Ok(HashMap::new());
        }
        // Two statements for the whole batch: with sqlx's SQLite driver every statement
        // is a hop to its worker thread, and those hops, not SQLite, were the cost.
        let rows: Vec<AttemptRow<'_>> = attempts
            .iter()
            .map(|a| AttemptRow::new(a.delivery_id, a.record, a.outcome))
            .collect();
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
                    .push_bind(headers_json(&row.attempt.request_headers))
                    .push_bind(headers_json(&row.attempt.response_headers))
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

    /// Queues a new attempt now with a fresh retry cycle, whatever the delivery's status.
    /// Refused (`Busy`) while an attempt is under way.
    pub async fn resend(&self, delivery_id: &str) -> Result<Delivery> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        let lease: Option<Option<i64>> =
            sqlx::query_scalar("SELECT lease_until FROM deliveries WHERE id = ?")
                .bind(delivery_id)
                .fetch_optional(&mut **tx)
                .await?;
        match lease {
            None => return Err(StoreError::NotFound),
            Some(Some(until)) if until > now => return Err(StoreError::Busy),
            Some(_) => {}
        }
        sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END, \
               retry_step = 0, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
        )
        .bind(now)
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        self.delivery(delivery_id).await
    }

    /// Queues every failed delivery of `webhook_id` created at or after `since` again.
    pub async fn recover(&self, webhook_id: &str, since: DateTime<Utc>) -> Result<u64> {
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
        let queued = sqlx::query(
            "UPDATE deliveries SET status = 'retrying', retry_step = 0, next_attempt_at = ?, \
               lease_until = NULL \
             WHERE webhook_id = ? AND status = 'failed' AND created_at >= ?",
        )
        .bind(now)
        .bind(webhook_id)
        .bind(millis(since))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(queued.rows_affected())
    }

    pub async fn delivery(&self, delivery_id: &str) -> Result<Delivery> {
        let row = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = ?"
        ))
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        delivery_from_row(&row)
    }

    /// A delivery with its event's data (JSON text) and every attempt, oldest first.
    pub async fn delivery_detail(
        &self,
        delivery_id: &str,
    ) -> Result<(Delivery, String, Vec<Attempt>)> {
        let delivery = self.delivery(delivery_id).await?;
        let data: String = sqlx::query_scalar("SELECT data FROM events WHERE id = ?")
            .bind(&delivery.event_id)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT started_at, duration_ms, status_code, error, request_headers, response_headers, \
               response_body FROM delivery_attempts WHERE delivery_id = ? ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?;
        let attempts = rows
            .iter()
            .map(|row| {
                Ok(Attempt {
                    started_at: from_millis(row.try_get("started_at")?)?,
                    duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
                    status_code: row
                        .try_get::<Option<i64>, _>("status_code")?
                        .and_then(|code| u16::try_from(code).ok()),
                    error: row.try_get("error")?,
                    request_headers: headers_from_json(
                        &row.try_get::<String, _>("request_headers")?,
                    )?,
                    response_headers: headers_from_json(
                        &row.try_get::<String, _>("response_headers")?,
                    )?,
                    response_body: row.try_get("response_body")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((delivery, data, attempts))
    }

    /// A page of deliveries, newest first, after `query.cursor` (a delivery id). Fetches
    /// `limit + 1` rows so the caller can tell whether there is a next page.
    pub async fn deliveries(&self, query: &DeliveryQuery, limit: u32) -> Result<Vec<Delivery>> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE 1 = 1"
        ));
        if let Some(webhook_id) = &query.webhook_id {
            sql.push(" AND webhook_id = ").push_bind(webhook_id.clone());
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(event_type) = &query.event_type {
            sql.push(" AND event_type = ").push_bind(event_type.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND created_at >= ").push_bind(millis(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND created_at < ").push_bind(millis(until));
        }
        match query.code.map(CodeClass::codes) {
            Some(Some(codes)) => {
                sql.push(" AND status_code BETWEEN ")
                    .push_bind(i64::from(*codes.start()))
                    .push(" AND ")
                    .push_bind(i64::from(*codes.end()));
            }
            Some(None) => {
                sql.push(" AND status_code IS NULL AND attempts > 0");
            }
            None => {}
        }
        if let Some(q) = &query.q {
            sql.push(" AND (event_id = ")
                .push_bind(q.clone())
                .push(" OR id = ")
                .push_bind(q.clone())
                .push(")");
        }
        if let Some(cursor) = &query.cursor {
            sql.push(" AND id < ").push_bind(cursor.clone());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Finished deliveries per time bucket since `since`, by their last attempt's time.
    /// Read from the hourly counts kept as deliveries change, never from the history: an
    /// hour or a day of any size costs the same. A bucket starts on a whole UTC hour or
    /// day, so `since` is rounded down to one.
    pub async fn stats(
        &self,
        webhook_id: Option<&str>,
        since: DateTime<Utc>,
        bucket: StatsBucket,
    ) -> Result<Vec<StatsPoint>> {
        let width = bucket.millis();
        debug_assert_eq!(width % HOUR_MILLIS, 0, "buckets are whole hours");
        let start = millis(since).div_euclid(width) * width;
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT (hour_start / ");
        sql.push_bind(width)
            .push(") * ")
            .push_bind(width)
            .push(
                " AS bucket_start, SUM(succeeded) AS succeeded, SUM(failed) AS failed \
                 FROM delivery_counts WHERE hour_start >= ",
            )
            .push_bind(start);
        if let Some(webhook_id) = webhook_id {
            sql.push(" AND webhook_id = ")
                .push_bind(webhook_id.to_owned());
        }
        sql.push(" GROUP BY bucket_start ORDER BY bucket_start");
        let rows = sql.build().fetch_all(&self.pool).await?;
        let mut counted = std::collections::HashMap::new();
        for row in &rows {
            let at: i64 = row.try_get("bucket_start")?;
            let succeeded: i64 = row.try_get("succeeded")?;
            let failed: i64 = row.try_get("failed")?;
            counted.insert(at, (succeeded, failed));
        }
        // Every bucket up to now, empty ones included, so a chart has no gaps.
        let end = millis(Utc::now());
        let mut points = Vec::new();
        let mut at = start;
        while at <= end {
            let (succeeded, failed) = counted.get(&at).copied().unwrap_or((0, 0));
            points.push(StatsPoint {
                start: from_millis(at)?,
                succeeded: u64::try_from(succeeded).unwrap_or(0),
                failed: u64::try_from(failed).unwrap_or(0),
            });
            at += width;
        }
        Ok(points)
    }

    /// Deactivates a webhook on the service's own account, saying why, and cancels its
    /// unfinished deliveries. Returns false when it was already inactive or is gone.
    pub async fn deactivate_webhook(&self, webhook_id: &str, reason: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE webhooks SET is_active = FALSE, disabled_reason = ?, updated_at = ? \
             WHERE id = ? AND is_active AND deleted_at IS NULL",
        )
        .bind(reason)
        .bind(millis(Utc::now()))
        .bind(webhook_id)
        .execute(&mut **tx)
        .await?;
        if changed.rows_affected() == 1 {
            cancel_unfinished(&mut tx, webhook_id, &format!("cancelled: {reason}")).await?;
        }
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewWebhook;
    use chrono::TimeDelta;
    use std::time::Duration;

    fn event(id: &str, event_type: &str) -> NewEvent {
        NewEvent {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            data: "{}".to_owned(),
        }
    }

    /// A store on a fresh SQLite file, which lives as long as the directory returned.
    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::connect(&url).await.expect("store");
        (dir, store)
    }

    async fn webhook(store: &Store, name: &str, events: &[&str]) -> String {
        let id = new_id("wh");
        store
            .insert_webhook(NewWebhook {
                id: id.clone(),
                name: name.to_owned(),
                url: "https://example.com/hook".to_owned(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                kind: WebhookKind::Generic,
                description: None,
                owner: None,
                secret_hint: "abcd".to_owned(),
                sealed_secret: vec![0; 8],
            })
            .await
            .expect("webhook stored");
        id
    }

    #[tokio::test]
    async fn a_batch_creates_each_new_event_once_and_reports_earlier_fan_outs() {
        let (_dir, store) = temp_store().await;
        let orders = webhook(&store, "orders", &["order.created"]).await;
        let everything = webhook(&store, "everything", &["*"]).await;
        webhook(&store, "products", &["product.created"]).await;
        let paused = webhook(&store, "paused", &["order.created", "*"]).await;
        assert!(
            store
                .deactivate_webhook(&paused, "paused by a test")
                .await
                .expect("deactivated")
        );

        let earlier = store
            .emit_event(event("evt_0", "order.created"))
            .await
            .expect("emitted");
        assert_eq!((earlier.deliveries, earlier.created), (2, true));

        let batch = [
            event("evt_1", "order.created"),
            event("evt_1", "order.created"),
            event("evt_0", "order.created"),
            event("evt_2", "customer.created"),
        ];
        let refs: Vec<&NewEvent> = batch.iter().collect();
        let mut tx = store.begin_write().await.expect("write turn");
        let (outcomes, handed) = emit_batch(&mut tx, &refs, millis(Utc::now()), None)
            .await
            .expect("batch written");
        assert!(handed.is_empty(), "no dispatcher, nothing handed over");
        tx.commit().await.expect("committed");
        let summary: Vec<(&str, u64, bool)> = outcomes
            .iter()
            .map(|e| (e.event_id.as_str(), e.deliveries, e.created))
            .collect();
        assert_eq!(
            summary,
            [
                ("evt_1", 2, true),
                ("evt_1", 2, false),
                ("evt_0", 2, false),
                ("evt_2", 1, true),
            ]
        );

        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT event_id, webhook_id FROM deliveries ORDER BY event_id, webhook_id",
        )
        .fetch_all(&store.pool)
        .await
        .expect("rows");
        let mut expected = vec![
            ("evt_0".to_owned(), orders.clone()),
            ("evt_0".to_owned(), everything.clone()),
            ("evt_1".to_owned(), orders),
            ("evt_1".to_owned(), everything.clone()),
            ("evt_2".to_owned(), everything),
        ];
        expected.sort();
        assert_eq!(rows, expected);
    }

    #[tokio::test]
    async fn a_claim_returns_each_due_job_once_with_its_event_and_webhook() {
        let (_dir, store) = temp_store().await;
        let orders = webhook(&store, "orders", &["order.created"]).await;
        for n in 0..3 {
            let mut new = event(&format!("evt_{n}"), "order.created");
            new.data = format!(r#"{{"n": {n}}}"#);
            store.emit_event(new).await.expect("emitted");
        }
        let now = Utc::now();
        let lease_until = now + TimeDelta::seconds(60);

        let first = store
            .claim_due(now, lease_until, 2, &ClaimLimits::unlimited())
            .await
            .expect("claim")
            .jobs;
        let second = store
            .claim_due(now, lease_until, 10, &ClaimLimits::unlimited())
            .await
            .expect("claim")
            .jobs;
        let third = store
            .claim_due(now, lease_until, 10, &ClaimLimits::unlimited())
            .await
            .expect("claim")
            .jobs;

        assert_eq!((first.len(), second.len(), third.len()), (2, 1, 0));
        let mut claimed: Vec<(String, String, String, String)> = first
            .iter()
            .chain(&second)
            .map(|job| {
                assert_eq!(job.url, "https://example.com/hook");
                assert_eq!(
                    (job.kind, job.webhook_deleted, job.retry_step),
                    (WebhookKind::Generic, false, 0)
                );
                (
                    job.event_id.clone(),
                    job.event_type.clone(),
                    job.webhook_id.clone(),
                    job.data.clone(),
                )
            })
            .collect();
        claimed.sort();
        let expected: Vec<(String, String, String, String)> = (0..3)
            .map(|n| {
                (
                    format!("evt_{n}"),
                    "order.created".to_owned(),
                    orders.clone(),
                    format!(r#"{{"n": {n}}}"#),
                )
            })
            .collect();
        assert_eq!(claimed, expected);
        // Once the lease has run out, the same deliveries can be claimed again.
        let later = lease_until + TimeDelta::seconds(1);
        let again = store
            .claim_due(
                later,
                later + TimeDelta::seconds(60),
                10,
                &ClaimLimits::unlimited(),
            )
            .await
            .expect("claim")
            .jobs;
        assert_eq!(again.len(), 3);
    }

    /// A handoff with `slots` attempt slots, registered with `store`.
    fn handoff(store: &Store, slots: usize) -> (Handoff, tokio::sync::mpsc::Receiver<HandedJob>) {
        let (jobs, handed) = tokio::sync::mpsc::channel(slots);
        let handoff = Handoff::new(slots, usize::MAX, jobs, Duration::from_secs(60));
        store.hand_new_deliveries_to(handoff.clone());
        (handoff, handed)
    }

    #[tokio::test]
    async fn new_deliveries_that_find_a_free_slot_are_handed_over_claimed() {
        let (_dir, store) = temp_store().await;
        let orders = webhook(&store, "orders", &["order.created"]).await;
        let (_handoff, mut handed) = handoff(&store, 2);
        let mut emitted = Vec::new();
        for n in 0..3 {
            let mut new = event(&format!("evt_{n}"), "order.created");
            new.data = format!(r#"{{"n": {n}}}"#);
            emitted.push(store.emit_event(new).await.expect("emitted").unclaimed);
        }
        assert_eq!(emitted, [0, 0, 1], "two slots: the third waits for a claim");

        let mut jobs = Vec::new();
        while let Ok(job) = handed.try_recv() {
            jobs.push(job);
        }
        let summary: Vec<(&str, &str, &str, &str, WebhookKind, u32)> = jobs
            .iter()
            .map(|h| {
                (
                    h.job.event_id.as_str(),
                    h.job.data.as_str(),
                    h.job.webhook_id.as_str(),
                    h.job.url.as_str(),
                    h.job.kind,
                    h.job.retry_step,
                )
            })
            .collect();
        let hook = "https://example.com/hook";
        assert_eq!(
            summary,
            [
                (
                    "evt_0",
                    r#"{"n": 0}"#,
                    orders.as_str(),
                    hook,
                    WebhookKind::Generic,
                    0
                ),
                (
                    "evt_1",
                    r#"{"n": 1}"#,
                    orders.as_str(),
                    hook,
                    WebhookKind::Generic,
                    0
                ),
            ]
        );
        // The handed deliveries are claimed already: a claim finds only the third.
        let now = Utc::now();
        let claimed = store
            .claim_due(
                now,
                now + TimeDelta::seconds(60),
                10,
                &ClaimLimits::unlimited(),
            )
            .await
            .expect("claim")
            .jobs;
        let claimed: Vec<&str> = claimed.iter().map(|job| job.event_id.as_str()).collect();
        assert_eq!(claimed, ["evt_2"]);
        // A restart releases them like any claim.
        assert_eq!(store.release_all_claims().await.expect("released"), 3);
    }

    #[tokio::test]
    async fn a_closed_or_full_handoff_leaves_new_deliveries_for_a_claim() {
        let (_dir, store) = temp_store().await;
        webhook(&store, "orders", &["order.created"]).await;
        webhook(&store, "everything", &["*"]).await;
        let (handoff, mut handed) = handoff(&store, 1);

        handoff.set_open(false);
        let closed = store
            .emit_event(event("evt_closed", "order.created"))
            .await
            .expect("emitted");
        assert_eq!((closed.deliveries, closed.unclaimed), (2, 2));
        assert!(handed.try_recv().is_err(), "nothing handed while closed");

        handoff.set_open(true);
        let open = store
            .emit_event(event("evt_open", "order.created"))
            .await
            .expect("emitted");
        assert_eq!(
            (open.deliveries, open.unclaimed),
            (2, 1),
            "one slot, two webhooks"
        );
        let job = handed.try_recv().expect("one handed over");
        let full = store
            .emit_event(event("evt_full", "order.created"))
            .await
            .expect("emitted");
        assert_eq!(full.unclaimed, 2, "the only slot is taken");
        // A slot given back (the attempt is over) serves the next emit.
        drop(job);
        let again = store
            .emit_event(event("evt_again", "order.created"))
            .await
            .expect("emitted");
        assert_eq!(again.unclaimed, 1);

        // Once no dispatcher takes them, emits write every delivery unclaimed.
        store.stop_handing_over();
        drop(handed.try_recv().expect("handed over"));
        let after = store
            .emit_event(event("evt_after", "order.created"))
            .await
            .expect("emitted");
        assert_eq!(after.unclaimed, 2);
        let now = Utc::now();
        let claimable = store
            .claim_due(
                now,
                now + TimeDelta::seconds(60),
                100,
                &ClaimLimits::unlimited(),
            )
            .await
            .expect("claim")
            .jobs;
        assert_eq!(claimable.len(), 2 + 1 + 2 + 1 + 2);
    }

    #[tokio::test]
    async fn a_webhook_whose_kind_is_unreadable_does_not_fail_the_emit() {
        let (_dir, store) = temp_store().await;
        let damaged = webhook(&store, "damaged", &["order.created"]).await;
        webhook(&store, "orders", &["order.created"]).await;
        sqlx::query("UPDATE webhooks SET kind = 'carrier-pigeon' WHERE id = ?")
            .bind(&damaged)
            .execute(&store.writer)
            .await
            .expect("damaged");
        let (_handoff, mut handed) = handoff(&store, 10);
        let emitted = store
            .emit_event(event("evt_0", "order.created"))
            .await
            .expect("the emit is stored");
        assert_eq!((emitted.deliveries, emitted.unclaimed), (2, 1));
        let job = handed.try_recv().expect("the readable one is handed over");
        assert_ne!(job.job.webhook_id, damaged);
        assert!(handed.try_recv().is_err());
    }

    #[tokio::test]
    async fn signing_secrets_read_from_memory_follow_every_rotation_and_deletion() {
        let (_dir, store) = temp_store().await;
        let id = webhook(&store, "orders", &["order.created"]).await;
        let sealed = |secrets: Vec<crate::store::SealedSecret>| -> Vec<Vec<u8>> {
            secrets.into_iter().map(|secret| secret.sealed).collect()
        };
        let rotate = |sealed: u8, previous_expires_at| crate::store::SecretRotation {
            sealed_secret: vec![sealed; 8],
            secret_hint: "wxyz".to_owned(),
            previous_expires_at,
        };
        let read = || async { store.signing_secrets(&id, Utc::now()).await.expect("read") };
        assert_eq!(sealed(read().await), [vec![0; 8]]);
        assert_eq!(sealed(read().await), [vec![0; 8]], "the same, from memory");

        // No grace: the old secret stops at once.
        store
            .rotate_secret(&id, rotate(1, Utc::now() - TimeDelta::seconds(1)))
            .await
            .expect("rotated");
        assert_eq!(sealed(read().await), [vec![1; 8]]);
        // With grace: both, the new one first, until the old one expires.
        let expires = Utc::now() + TimeDelta::hours(1);
        store
            .rotate_secret(&id, rotate(2, expires))
            .await
            .expect("rotated");
        assert_eq!(sealed(read().await), [vec![2; 8], vec![1; 8]]);
        let after = store
            .signing_secrets(&id, expires + TimeDelta::seconds(1))
            .await
            .expect("read");
        assert_eq!(sealed(after), [vec![2; 8]], "expired in memory too");

        store.delete_webhook(&id).await.expect("deleted");
        assert!(read().await.is_empty(), "a deleted webhook signs nothing");
    }

    #[tokio::test]
    async fn an_emit_whose_caller_goes_away_neither_fails_nor_loses_the_others() {
        let (_dir, store) = temp_store().await;
        webhook(&store, "orders", &["order.created"]).await;
        // Hold the turn so that both emits queue up behind it.
        let held = store.write_turn().await.expect("turn");
        let emit_in_task = |id: &'static str| {
            let store = store.clone();
            tokio::spawn(async move { store.emit_event(event(id, "order.created")).await })
        };
        let leaving = emit_in_task("evt_leaving");
        let staying = emit_in_task("evt_staying");
        let queued = |store: &Store| store.queued_emits.lock().map_or(0, |q| q.len());
        for _ in 0..1_000 {
            if queued(&store) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(queued(&store), 2);
        drop(held);
        // The first in line takes the turn and the queue; its caller goes away while the
        // transaction is under way (a client that disconnects drops its request).
        for _ in 0..1_000 {
            if queued(&store) == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        leaving.abort();

        let emitted = staying
            .await
            .expect("task")
            .expect("the other emit succeeds");
        assert_eq!((emitted.deliveries, emitted.created), (1, true));
        let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .expect("events");
        assert_eq!(stored, ["evt_leaving", "evt_staying"]);
    }

    #[tokio::test]
    async fn after_a_burst_an_idle_store_gives_the_log_space_back() {
        let (dir, store) = temp_store().await;
        webhook(&store, "orders", &["order.created"]).await;
        let log = dir.path().join("store.db-wal");
        let bursts = (0..400).map(|n| {
            let store = store.clone();
            async move {
                let mut new = event(&format!("evt_{n}"), "order.created");
                new.data = format!(r#"{{"padding": "{}"}}"#, "x".repeat(2_000));
                store.emit_event(new).await.expect("emitted");
            }
        });
        futures_util::future::join_all(bursts).await;
        let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
        assert!(
            size() > 1_000_000,
            "the burst grew the log: {} bytes",
            size()
        );
        // Bounded: the truncation is due about a second after the last write.
        let mut waited = 0;
        while size() > 0 && waited < 100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        assert_eq!(size(), 0, "the log was truncated once writes stopped");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(stored, 400);
    }
}
