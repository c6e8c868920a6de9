//! What the store reads and writes, the same for every backend: the values that go in and
//! come out of [`Store`](super::Store)'s methods, and the rows each backend's queries
//! decode into (every integer column is a 64-bit integer on both, every time a count of
//! unix milliseconds).

use std::collections::HashMap;

use chrono::{DateTime, TimeZone as _, Utc};

use super::{Result, StoreError};
use crate::api::{
    Attempt, Delivery, DeliveryStatus, PreviousSecret, Webhook, WebhookHealth, WebhookKind,
};
use crate::crypto::Sealed;

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Microseconds since the epoch: the pace of rate-limited webhooks (`pace.rs`) is kept
/// in these, since at 10 000 deliveries a second one is 100 µs apart.
pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

fn optional_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(from_millis).transpose()
}

fn webhook_kind(kind: &str) -> Result<WebhookKind> {
    WebhookKind::parse(kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook kind {kind:?}")))
}

/// Width of the buckets in `delivery_counts`.
pub(super) const HOUR_MILLIS: i64 = 3_600_000;

/// The start of the window a webhook's 24 h counts cover: the current UTC hour and the
/// 23 before it, as whole buckets of `delivery_counts`.
pub(super) fn health_window_start() -> i64 {
    millis(Utc::now()).div_euclid(HOUR_MILLIS) * HOUR_MILLIS - 23 * HOUR_MILLIS
}

/// A webhook to insert, already validated, with its sealed first secret.
#[derive(Debug)]
pub struct NewWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub kind: WebhookKind,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// Deliveries per second at most.
    pub rate_limit: Option<u32>,
    pub secret_hint: String,
    pub sealed_secret: Sealed,
}

/// Validated changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    /// `Some(None)` removes the rate limit.
    pub rate_limit: Option<Option<u32>>,
}

impl WebhookChanges {
    /// The names of the fields this change sets, as the API names them.
    pub fn named_fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("url", self.url.is_some()),
            ("events", self.events.is_some()),
            ("is_active", self.is_active.is_some()),
            ("description", self.description.is_some()),
            ("owner", self.owner.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// A new current secret replacing the previous one, which keeps signing until
/// `previous_expires_at`.
#[derive(Debug)]
pub struct SecretRotation {
    pub sealed_secret: Sealed,
    pub secret_hint: String,
    pub previous_expires_at: DateTime<Utc>,
}

/// A sealed signing secret as stored; open it with the service's cipher.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub sealed: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
}

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
    /// [`Handoff`](super::Handoff)), and not waiting only for their webhook to have room,
    /// which it notices by itself.
    pub unclaimed: u64,
}

/// An active webhook subscribed to a new event, as the emit's insert returns it.
#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct Subscriber {
    pub id: String,
    pub url: String,
    pub kind: String,
    /// Rate-limited: its deliveries wait for a claim, which keeps to its pace.
    #[serde(default)]
    pub paced: bool,
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

/// What a claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<DeliveryJob>,
    /// When the longest-waiting of them fell due.
    pub oldest_due_at: Option<DateTime<Utc>>,
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

/// An attempt the dispatcher made, to record.
#[derive(Debug, Clone, Copy)]
pub struct AttemptToRecord<'a> {
    pub delivery_id: &'a str,
    pub webhook_id: &'a str,
    pub record: &'a AttemptRecord,
    pub outcome: AttemptOutcome,
}

/// One attempt as the batch statements bind it.
pub(super) struct AttemptRow<'a> {
    pub delivery_id: &'a str,
    pub attempt: &'a AttemptRecord,
    pub status: DeliveryStatus,
    pub status_code: Option<i64>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub next_attempt_at: Option<i64>,
    pub request_headers: String,
    pub response_headers: String,
}

impl<'a> AttemptRow<'a> {
    pub fn new(attempt: &AttemptToRecord<'a>) -> Self {
        let (status, next_attempt_at) = match attempt.outcome {
            AttemptOutcome::Succeeded => (DeliveryStatus::Succeeded, None),
            AttemptOutcome::RetryAt(at) => (DeliveryStatus::Retrying, Some(millis(at))),
            AttemptOutcome::Failed => (DeliveryStatus::Failed, None),
        };
        let record = attempt.record;
        Self {
            delivery_id: attempt.delivery_id,
            attempt: record,
            status,
            status_code: record.status_code.map(i64::from),
            started_at: millis(record.started_at),
            duration_ms: i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
            next_attempt_at,
            request_headers: headers_json(&record.request_headers),
            response_headers: headers_json(&record.response_headers),
        }
    }
}

fn headers_json(headers: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Stored headers as served. Signature values are redacted again here: rows written before
/// the dispatcher redacted them (and before migration 0004 scrubbed them) are served
/// without them too.
fn headers_from_json(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut headers: std::collections::BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|err| StoreError::Corrupt(format!("attempt headers: {err}")))?;
    for (name, value) in &mut headers {
        if crate::signing::is_signature_header(name) {
            crate::signing::REDACTED.clone_into(value);
        }
    }
    Ok(headers)
}

/// What one batch of attempts tells of one webhook's health.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct HealthChange<'a> {
    pub last_attempt_at: i64,
    pub last_status_code: Option<i64>,
    /// The latest attempt's error in words; none when it succeeded.
    pub last_error: Option<&'a str>,
    pub last_success_at: Option<i64>,
    /// The first failed attempt after the batch's last success (or in the batch, when it
    /// has none).
    pub failing_since: Option<i64>,
    /// Deliveries that failed for good in the batch.
    pub failed: i64,
}

/// Folds a batch of attempts into one change per webhook, in the order they started.
pub(super) fn health_changes<'a>(
    attempts: &'a [AttemptToRecord<'a>],
) -> Vec<(&'a str, HealthChange<'a>)> {
    let mut ordered: Vec<&AttemptToRecord<'a>> = attempts.iter().collect();
    ordered.sort_by_key(|a| a.record.started_at);
    let mut changes: HashMap<&str, HealthChange<'a>> = HashMap::new();
    for attempt in ordered {
        let at = millis(attempt.record.started_at);
        let change = changes.entry(attempt.webhook_id).or_default();
        change.last_attempt_at = at;
        change.last_status_code = attempt.record.status_code.map(i64::from);
        change.last_error = attempt.record.error.as_deref();
        if attempt.outcome == AttemptOutcome::Succeeded {
            change.last_success_at = Some(at);
            change.failing_since = None;
        } else if change.failing_since.is_none() {
            change.failing_since = Some(at);
        }
        if attempt.outcome == AttemptOutcome::Failed {
            change.failed += 1;
        }
    }
    // In key order: concurrent writers (replicas) then lock the health rows in one order.
    let mut changes: Vec<(&str, HealthChange<'a>)> = changes.into_iter().collect();
    changes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    changes
}

/// The columns [`WebhookRow`] reads, as a literal for `concat!` (sqlx takes only static
/// SQL text): the webhook, its health, and its counts since the first parameter.
macro_rules! webhook_columns {
    ($since:literal) => {
        concat!(
            "id, name, url, kind, description, owner, is_active, rate_limit, \
             disabled_reason, secret_hint, created_at, updated_at, \
             h.last_attempt_at AS last_delivery_at, h.last_status_code, h.last_success_at, \
             h.failing_since, COALESCE(h.failed_total, 0) AS failed_total, h.last_error, \
             COALESCE(b.pending, 0) AS pending, COALESCE(b.retrying, 0) AS retrying, \
             (SELECT MIN(d.next_attempt_at) FROM deliveries d \
                WHERE d.webhook_id = webhooks.id AND d.next_attempt_at IS NOT NULL) \
                AS oldest_due_at, \
             (SELECT MAX(s.created_at) FROM webhook_secrets s \
                WHERE s.webhook_id = webhooks.id AND s.expires_at IS NULL) AS secret_created_at, \
             (SELECT CAST(COALESCE(SUM(c.succeeded), 0) AS BIGINT) FROM delivery_counts c \
                WHERE c.webhook_id = webhooks.id AND c.hour_start >= ",
            $since,
            ") AS success_24h, \
             (SELECT CAST(COALESCE(SUM(c.failed), 0) AS BIGINT) FROM delivery_counts c \
                WHERE c.webhook_id = webhooks.id AND c.hour_start >= ",
            $since,
            ") AS failed_24h \
             FROM webhooks LEFT JOIN webhook_health h ON h.webhook_id = webhooks.id \
             LEFT JOIN webhook_backlog b ON b.webhook_id = webhooks.id"
        )
    };
}

/// A webhook as [`webhook_columns`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct WebhookRow {
    id: String,
    name: String,
    url: String,
    kind: String,
    description: Option<String>,
    owner: Option<String>,
    is_active: bool,
    rate_limit: Option<i32>,
    disabled_reason: Option<String>,
    secret_hint: String,
    created_at: i64,
    updated_at: i64,
    last_delivery_at: Option<i64>,
    last_status_code: Option<i64>,
    last_success_at: Option<i64>,
    failing_since: Option<i64>,
    failed_total: i64,
    last_error: Option<String>,
    pending: i64,
    retrying: i64,
    oldest_due_at: Option<i64>,
    secret_created_at: Option<i64>,
    success_24h: i64,
    failed_24h: i64,
}

impl WebhookRow {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn into_webhook(
        self,
        events: Vec<String>,
        previous_secrets: Vec<PreviousSecret>,
    ) -> Result<Webhook> {
        let mut webhook = Webhook {
            // A webhook always has a current secret; should it have lost it, its creation
            // is the closest answer.
            secret_created_at: from_millis(self.secret_created_at.unwrap_or(self.created_at))?,
            previous_secrets,
            kind: webhook_kind(&self.kind)?,
            id: self.id,
            name: self.name,
            url: self.url,
            events,
            description: self.description,
            owner: self.owner,
            is_active: self.is_active,
            rate_limit: self.rate_limit.and_then(|rate| u32::try_from(rate).ok()),
            disabled_reason: self.disabled_reason,
            secret_hint: self.secret_hint,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
            success_24h: u64::try_from(self.success_24h).unwrap_or(0),
            failed_24h: u64::try_from(self.failed_24h).unwrap_or(0),
            failed_total: u64::try_from(self.failed_total).unwrap_or(0),
            last_delivery_at: optional_time(self.last_delivery_at)?,
            last_success_at: optional_time(self.last_success_at)?,
            failing_since: optional_time(self.failing_since)?,
            last_status_code: self
                .last_status_code
                .and_then(|code| u16::try_from(code).ok()),
            last_error: self.last_error,
            pending: u64::try_from(self.pending + self.retrying).unwrap_or(0),
            retrying: u64::try_from(self.retrying).unwrap_or(0),
            oldest_due_at: optional_time(self.oldest_due_at)?,
            health: WebhookHealth::Healthy,
        };
        webhook.health = WebhookHealth::of(&webhook, Utc::now());
        Ok(webhook)
    }
}

/// Attaches each webhook's event types (`(webhook_id, event_type)` pairs) and previous
/// secrets to its row.
pub(super) fn webhooks_with_events(
    rows: Vec<WebhookRow>,
    event_rows: Vec<(String, String)>,
    secret_rows: Vec<PreviousSecretRow>,
) -> Result<Vec<Webhook>> {
    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    for (webhook_id, event_type) in event_rows {
        events.entry(webhook_id).or_default().push(event_type);
    }
    let mut secrets = previous_secrets_by_webhook(secret_rows)?;
    rows.into_iter()
        .map(|row| {
            let webhook_events = events.remove(row.id()).unwrap_or_default();
            let previous = secrets.remove(row.id()).unwrap_or_default();
            row.into_webhook(webhook_events, previous)
        })
        .collect()
}

/// A previous secret still in its grace period, as [`previous_secrets_query`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct PreviousSecretRow {
    webhook_id: String,
    hint: Option<String>,
    expires_at: i64,
}

pub(super) fn previous_secrets_by_webhook(
    rows: Vec<PreviousSecretRow>,
) -> Result<HashMap<String, Vec<PreviousSecret>>> {
    let mut secrets: HashMap<String, Vec<PreviousSecret>> = HashMap::new();
    for row in rows {
        secrets
            .entry(row.webhook_id)
            .or_default()
            .push(PreviousSecret {
                hint: row.hint,
                expires_at: from_millis(row.expires_at)?,
            });
    }
    Ok(secrets)
}

/// The previous secrets still in their grace period at `now`, soonest to expire first, of
/// every webhook or of one.
pub(super) fn previous_secrets_query<DB>(
    webhook_id: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = sqlx::QueryBuilder::new(
        "SELECT webhook_id, hint, expires_at FROM webhook_secrets WHERE expires_at > ",
    );
    sql.push_bind(millis(now));
    if let Some(webhook_id) = webhook_id {
        sql.push(" AND webhook_id = ")
            .push_bind(webhook_id.to_owned());
    }
    sql.push(" ORDER BY webhook_id, expires_at, id");
    sql
}

/// A sealed secret as stored.
#[derive(sqlx::FromRow)]
pub(super) struct SecretRow {
    sealed: Vec<u8>,
    expires_at: Option<i64>,
}

impl TryFrom<SecretRow> for SealedSecret {
    type Error = StoreError;

    fn try_from(row: SecretRow) -> Result<Self> {
        Ok(Self {
            sealed: row.sealed,
            expires_at: optional_time(row.expires_at)?,
        })
    }
}

/// The columns [`DeliveryRow`] reads, as a literal for `concat!`.
macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, status, status_code, attempts, created_at, \
         last_attempt_at, last_duration_ms, next_attempt_at, last_error"
    };
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    status: String,
    status_code: Option<i64>,
    attempts: i64,
    created_at: i64,
    last_attempt_at: Option<i64>,
    last_duration_ms: Option<i64>,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        let status = DeliveryStatus::parse(&row.status).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown delivery status {:?}", row.status))
        })?;
        Ok(Self {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event_type: row.event_type,
            status,
            status_code: row.status_code.and_then(|code| u16::try_from(code).ok()),
            success: status == DeliveryStatus::Succeeded,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            created_at: from_millis(row.created_at)?,
            last_attempt_at: optional_time(row.last_attempt_at)?,
            last_duration_ms: row.last_duration_ms.and_then(|ms| u64::try_from(ms).ok()),
            next_attempt_at: optional_time(row.next_attempt_at)?,
            last_error: row.last_error,
        })
    }
}

/// The columns [`AttemptHistoryRow`] reads, as a literal for `concat!`.
macro_rules! attempt_columns {
    () => {
        "started_at, duration_ms, status_code, error, request_headers, response_headers, \
         response_body"
    };
}

#[derive(sqlx::FromRow)]
pub(super) struct AttemptHistoryRow {
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    error: Option<String>,
    request_headers: String,
    response_headers: String,
    response_body: Option<String>,
}

impl TryFrom<AttemptHistoryRow> for Attempt {
    type Error = StoreError;

    fn try_from(row: AttemptHistoryRow) -> Result<Self> {
        Ok(Self {
            started_at: from_millis(row.started_at)?,
            duration_ms: u64::try_from(row.duration_ms).unwrap_or(0),
            status_code: row.status_code.and_then(|code| u16::try_from(code).ok()),
            error: row.error,
            request_headers: headers_from_json(&row.request_headers)?,
            response_headers: headers_from_json(&row.response_headers)?,
            response_body: row.response_body,
        })
    }
}

/// A claimed delivery with its event and webhook, as a claim returns it.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: String,
    event_id: String,
    event_type: String,
    retry_step: i64,
    webhook_id: String,
    next_attempt_at: Option<i64>,
    data: String,
    event_created_at: i64,
    url: String,
    kind: String,
    deleted_at: Option<i64>,
}

impl JobRow {
    pub(in crate::store) fn webhook_id(&self) -> &str {
        &self.webhook_id
    }
}

/// Turns a claim's rows into jobs: those of rate-limited webhooks (`paced`), then the
/// others. A row that cannot be read keeps its claim until the lease runs out, and is
/// tried again then. `oldest_due_at` is the others' alone: deliveries that waited for
/// their webhook's pace are no backlog for the rest.
pub(super) fn claimed(paced: Vec<JobRow>, rows: Vec<JobRow>) -> Result<Claimed> {
    let oldest_due_at = rows.iter().filter_map(|row| row.next_attempt_at).min();
    let jobs = paced
        .into_iter()
        .chain(rows)
        .filter_map(|row| match row.into_job() {
            Ok(job) => Some(job),
            Err(err) => {
                tracing::error!("a claimed delivery could not be read: {err}");
                None
            }
        })
        .collect();
    Ok(Claimed {
        jobs,
        oldest_due_at: optional_time(oldest_due_at)?,
    })
}

impl JobRow {
    fn into_job(self) -> Result<DeliveryJob> {
        Ok(DeliveryJob {
            kind: webhook_kind(&self.kind)?,
            event_created_at: from_millis(self.event_created_at)?,
            delivery_id: self.id,
            event_id: self.event_id,
            event_type: self.event_type,
            data: self.data,
            webhook_id: self.webhook_id,
            url: self.url,
            webhook_deleted: self.deleted_at.is_some(),
            retry_step: u32::try_from(self.retry_step).unwrap_or(u32::MAX),
        })
    }
}

/// One bucket of `delivery_counts` summed over a stats bucket.
#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    pub bucket_start: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// Every bucket from `start` up to now, `width` apart, empty ones included, so that a
/// chart has no gaps.
pub(super) fn stats_points(
    start: i64,
    width: i64,
    rows: Vec<CountsRow>,
) -> Result<Vec<crate::api::StatsPoint>> {
    let counted: HashMap<i64, (i64, i64)> = rows
        .into_iter()
        .map(|row| (row.bucket_start, (row.succeeded, row.failed)))
        .collect();
    let end = millis(Utc::now());
    let mut points = Vec::new();
    let mut at = start;
    while at <= end {
        let (succeeded, failed) = counted.get(&at).copied().unwrap_or((0, 0));
        points.push(crate::api::StatsPoint {
            start: from_millis(at)?,
            succeeded: u64::try_from(succeeded).unwrap_or(0),
            failed: u64::try_from(failed).unwrap_or(0),
        });
        at += width;
    }
    Ok(points)
}

/// A new sortable id: `prefix_` + a ULID (time-ordered, 128 bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// Like [`new_id`], and greater than every id this process made before it, even within
/// the same millisecond: for a log whose order is its ids' (the audit log).
pub fn new_ordered_id(prefix: &str) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let generated = GENERATOR
        .lock()
        .ok()
        .and_then(|mut generator| generator.generate().ok());
    let ulid = match generated {
        Some(ulid) => ulid,
        // Only after 2^80 ids in one millisecond, or a poisoned lock: time order still.
        None => ulid::Ulid::new(),
    };
    format!("{prefix}_{ulid}")
}
