//! Wire types of the admin API v1, shared by the server and its clients.
//!
//! Input types reject unknown fields so that a typo in a request is an error, not a
//! silently ignored setting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod access;

pub use access::{
    AdminKey, AdminKeyIn, AdminKeyList, AuditAction, AuditEntry, AuditPage, AuditQuery,
    CreatedAdminKey, EncryptionKeyStatus, Role, WhoAmI,
};

/// The shape of a webhook's request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// The JSON envelope `{id, type, timestamp, data}`, signed.
    #[default]
    Generic,
    /// A Slack Block Kit message for a Slack incoming-webhook URL.
    Slack,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Slack => "slack",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "generic" => Some(Self::Generic),
            "slack" => Some(Self::Slack),
            _ => None,
        }
    }
}

/// `POST /webhooks` body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// 1–100 characters.
    pub name: String,
    /// Where deliveries are POSTed: https, or http where the server allows it.
    pub url: String,
    /// Event type names from the catalog, or `*` for every type.
    pub events: Vec<String>,
    #[serde(default)]
    pub kind: WebhookKind,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Deliveries per second at most, 1–10 000; absent or null for no limit. First
    /// attempts, retries and resends alike wait their turn, still due.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<i64>,
}

/// `PATCH /webhooks/{id}` body: every field is optional; the secret is not touched.
/// An empty `description` or `owner` clears it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Deliveries per second at most, 1–10 000; null removes the limit.
    #[serde(
        default,
        deserialize_with = "present_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<Option<i64>>,
}

/// A webhook as the API shows it: never its secret, only `secret_hint`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub kind: WebhookKind,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub is_active: bool,
    /// Deliveries per second at most; null for no limit.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Why the service deactivated this webhook, when it did.
    pub disabled_reason: Option<String>,
    /// The last 4 characters of the current signing secret.
    pub secret_hint: String,
    /// When the current signing secret was issued (created or rotated in).
    pub secret_created_at: DateTime<Utc>,
    /// Secrets rotated out that still sign, beside the current one, until they expire:
    /// soonest to expire first.
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Deliveries that succeeded in the last 24 hours (the current UTC hour and the 23
    /// before it), by the time of their last attempt.
    pub success_24h: u64,
    /// Deliveries that failed for good in the same window.
    pub failed_24h: u64,
    /// Deliveries that failed for good, ever: a count that only grows (a resend does not
    /// take one back), for telling new failures from those seen before.
    #[serde(default)]
    pub failed_total: u64,
    /// When its latest attempt started.
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// That attempt's HTTP status code, if it got an answer.
    pub last_status_code: Option<u16>,
    /// When its latest successful attempt started.
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the first attempt failed since its latest success; none while it succeeds.
    /// Auto-disable counts from here.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// The latest attempt's error in words ("timed out: …", "could not connect: …",
    /// "the receiver answered 500 Internal Server Error"); none after a success.
    pub last_error: Option<String>,
    /// Deliveries not finished: pending (in flight included) and retrying. Kept as state,
    /// as the finished counts are.
    pub pending: u64,
    /// Of those, the ones that failed at least once and wait for their next try.
    pub retrying: u64,
    /// The earliest time one of its unfinished deliveries is (or was) due: long past while
    /// its receiver holds the work up.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// The one state every view colours by, computed by the service (see [`WebhookHealth`]).
    pub health: WebhookHealth,
}

/// A webhook's health, from its state and its recorded attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookHealth {
    /// Delivering: nothing failing, nothing held up.
    Healthy,
    /// Delivering, but retries wait, more than 5 % of the last 24 h's finished deliveries
    /// failed, or due work has waited over a minute.
    Degraded,
    /// Every attempt since `failing_since` failed: its receiver is down, refusing, or
    /// timing out.
    Failing,
    /// Deactivated: it takes no deliveries.
    Inactive,
}

/// Due work that has waited this long makes a webhook `degraded`: its receiver is slow,
/// or its rate limit or concurrency cannot keep up.
pub const OVERDUE_AFTER_SECS: i64 = 60;

impl WebhookHealth {
    /// The rule, in one place: inactive before failing, failing before degraded.
    pub fn of(webhook: &Webhook, now: DateTime<Utc>) -> Self {
        if !webhook.is_active {
            return Self::Inactive;
        }
        if webhook.failing_since.is_some() {
            return Self::Failing;
        }
        let finished = webhook.success_24h + webhook.failed_24h;
        let failing_share = webhook.failed_24h * 20 > finished;
        let overdue = webhook
            .oldest_due_at
            .is_some_and(|due| (now - due).num_seconds() > OVERDUE_AFTER_SECS);
        if webhook.retrying > 0 || (webhook.failed_24h > 0 && failing_share) || overdue {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
            Self::Inactive => "inactive",
        }
    }
}

/// A secret rotated out that still signs, beside the current one, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviousSecret {
    /// Its last 4 characters; none for a secret rotated out before the service kept hints of previous secrets.
    pub hint: Option<String>,
    pub expires_at: DateTime<Utc>,
}

#[cfg(all(test, feature = "panel"))]
impl Webhook {
    /// A webhook as unit tests need one: active, every event type, no history.
    pub(crate) fn sample(id: &str, name: &str, at: DateTime<Utc>) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            url: "https://example.com/hook".to_owned(),
            events: vec!["*".to_owned()],
            kind: WebhookKind::Generic,
            description: None,
            owner: None,
            is_active: true,
            rate_limit: None,
            disabled_reason: None,
            secret_hint: "abcd".to_owned(),
            secret_created_at: at,
            previous_secrets: Vec::new(),
            created_at: at,
            updated_at: at,
            success_24h: 0,
            failed_24h: 0,
            failed_total: 0,
            last_delivery_at: None,
            last_status_code: None,
            last_success_at: None,
            failing_since: None,
            last_error: None,
            pending: 0,
            retrying: 0,
            oldest_due_at: None,
            health: WebhookHealth::Healthy,
        }
    }
}

/// `POST /webhooks` answer: the webhook plus its signing secret, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes. Returned only here and on rotation.
    pub secret: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

/// `POST /webhooks/{id}/rotate-secret` body (may be empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretIn {
    /// How long the previous secret keeps signing: default 86400, at most 604800 (7 days).
    #[serde(default, deserialize_with = "whole_number")]
    pub grace_seconds: Option<u64>,
}

/// An integer as JSON Schema counts one: `50`, or `50.0`.
fn integral(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (-9.2e18..9.2e18).contains(f))
            .and_then(|f| format!("{f:.0}").parse().ok())
    })
}

/// An optional integer, as [`integral`] reads it; null is none.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    integral(&number)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number")))
}

/// A field of a PATCH that, when given, holds an integer or null (`Some(None)`).
fn present_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<i64>>, D::Error> {
    integer(deserializer).map(Some)
}

/// A non-negative integer as JSON Schema counts one: `600`, or `600.0`.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f))
                .and_then(|f| format!("{f:.0}").parse().ok())
        })
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{number} is not a whole number of seconds of 0 or more"
            ))
        })
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret, shown this once.
    pub secret: String,
    /// Until then deliveries carry a signature with the previous secret too.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// One entry of the event-type catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub example: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventTypeList {
    pub items: Vec<EventType>,
}

/// Every error answer: `{"error": {"code", "message", "field"?}}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `validation_failed`, `not_found`, `unauthorized`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The request field the error is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `POST /events` body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// An event type from the catalog.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON; delivered as the envelope's `data`.
    pub data: serde_json::Value,
    /// Idempotency key: the same id again fans out once. Generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EmittedEvent {
    pub event_id: String,
    /// How many deliveries the event fanned out to (the first time it was emitted).
    pub deliveries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt failed; another is scheduled at `next_attempt_at`.
    Retrying,
    Succeeded,
    /// Failed for good: a permanent error, or the retry schedule ran out.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Retrying, Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// The class of a delivery's last HTTP answer, for filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CodeClass {
    #[serde(rename = "2xx")]
    Success,
    #[serde(rename = "3xx")]
    Redirect,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
    /// Tried, but no HTTP answer: connection refused, timeout, TLS, too many redirects.
    #[serde(rename = "network")]
    Network,
}

impl CodeClass {
    pub const ALL: [Self; 5] = [
        Self::Success,
        Self::Redirect,
        Self::ClientError,
        Self::ServerError,
        Self::Network,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Network => "network",
        }
    }

    /// The HTTP codes of the class; `None` for network errors, which have none.
    pub fn codes(self) -> Option<std::ops::RangeInclusive<u16>> {
        match self {
            Self::Success => Some(200..=299),
            Self::Redirect => Some(300..=399),
            Self::ClientError => Some(400..=499),
            Self::ServerError => Some(500..=599),
            Self::Network => None,
        }
    }

    /// The class a delivery's last answer falls in, if it was tried.
    pub fn of(delivery: &Delivery) -> Option<Self> {
        Self::of_answer(delivery.status_code, delivery.attempts > 0)
    }

    /// The class of an answer with `status_code` (none: no HTTP answer), if `tried`.
    pub fn of_answer(status_code: Option<u16>, tried: bool) -> Option<Self> {
        match status_code {
            Some(code) => Self::ALL
                .into_iter()
                .find(|class| class.codes().is_some_and(|codes| codes.contains(&code))),
            None => tried.then_some(Self::Network),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// HTTP status of the last attempt, when it got an answer.
    pub status_code: Option<u16>,
    pub success: bool,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<u64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// On a first page (no `cursor`): how many deliveries the filters match, across all
    /// pages, counted up to `DELIVERY_TOTAL_CAP` (10 000); absent on later pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// True when more than `total` match: `total` is the cap, not the count.
    #[serde(default)]
    pub total_capped: bool,
}

/// One HTTP attempt of a delivery, as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub request_headers: std::collections::BTreeMap<String, String>,
    pub response_headers: std::collections::BTreeMap<String, String>,
    /// At most 4 KiB of what the receiver answered.
    pub response_body: Option<String>,
}

/// `GET /deliveries/{id}`: the delivery's fields, the event's data and every attempt,
/// oldest first. `attempts` is the list here (its length is the count a [`Delivery`] has).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub status_code: Option<u16>,
    pub success: bool,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<u64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub payload: serde_json::Value,
    pub attempts: Vec<Attempt>,
    /// With `?q=`: the JSON paths of the payload whose value holds the search's text
    /// (`customer.email`, `items[0].sku`), for the inspector to highlight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<String>,
}

/// `GET /deliveries/{id}`'s query.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryDetailQuery {
    /// The search the delivery was found by: the answer's `matched` names where the
    /// payload holds it.
    pub q: Option<String>,
}

impl DeliveryDetail {
    pub fn new(delivery: Delivery, payload: serde_json::Value, attempts: Vec<Attempt>) -> Self {
        let Delivery {
            id,
            webhook_id,
            event_id,
            event_type,
            status,
            status_code,
            success,
            attempts: _,
            created_at,
            last_attempt_at,
            last_duration_ms,
            next_attempt_at,
            last_error,
        } = delivery;
        Self {
            id,
            webhook_id,
            event_id,
            event_type,
            status,
            status_code,
            success,
            created_at,
            last_attempt_at,
            last_duration_ms,
            next_attempt_at,
            last_error,
            payload,
            attempts,
            matched: Vec::new(),
        }
    }

    /// The delivery as a list shows it.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            id: self.id.clone(),
            webhook_id: self.webhook_id.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            status_code: self.status_code,
            success: self.success,
            attempts: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
            created_at: self.created_at,
            last_attempt_at: self.last_attempt_at,
            last_duration_ms: self.last_duration_ms,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
        }
    }
}

/// `GET /deliveries` filters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    pub webhook_id: Option<String>,
    #[param(value_type = Option<String>, example = "failed")]
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339); at or before `since`, the page is empty.
    pub until: Option<DateTime<Utc>>,
    /// Class of the last HTTP answer: `2xx`, `3xx`, `4xx`, `5xx`, or `network` (tried,
    /// no answer).
    #[param(value_type = Option<String>, example = "5xx")]
    pub code: Option<CodeClass>,
    /// An event id or delivery id, exactly; or text the event's data holds: a word, an id
    /// such as `ord_1042`, an email, or a "quoted phrase" (whole tokens, any case).
    pub q: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
    /// `desc` (default): newest first; `asc`: oldest first. The whole history is in this
    /// order, and a cursor goes on in it.
    #[param(value_type = Option<String>, example = "asc")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SortOrder>,
}

/// The order of a listing, by creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

/// How many deliveries `total` counts at most: counting walks one index entry per
/// delivery, so beyond this many an exact count would cost a scan that grows with the
/// history on every first page (a 1 M history in an outage). 10 001 entries take a few
/// milliseconds; past them `total_capped` is true and `total` reads as "10 000 or more".
pub const DELIVERY_TOTAL_CAP: u64 = 10_000;

/// The deliveries a bulk resend covers: the filters of `GET /deliveries`, with the same
/// meaning. No condition at all covers the whole history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Created at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339); at or before `since`, nothing is covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Class of the last HTTP answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeClass>,
    /// An event id or delivery id, exactly; or text the event's data holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

impl DeliveryFilter {
    /// The same filter as a query of `GET /deliveries`, from its first page.
    pub fn query(&self) -> DeliveryQuery {
        DeliveryQuery {
            webhook_id: self.webhook_id.clone(),
            status: self.status,
            event_type: self.event_type.clone(),
            since: self.since,
            until: self.until,
            code: self.code,
            q: self.q.clone(),
            cursor: None,
            limit: None,
            order: None,
        }
    }

    /// The filter of a `GET /deliveries` query: its page and cursor left out.
    pub fn of(query: &DeliveryQuery) -> Self {
        Self {
            webhook_id: query.webhook_id.clone(),
            status: query.status,
            event_type: query.event_type.clone(),
            since: query.since,
            until: query.until,
            code: query.code,
            q: query.q.clone(),
        }
    }
}

/// Most ids one `POST /deliveries/resend` names.
pub const BULK_RESEND_MAX_IDS: usize = 10_000;

/// `POST /deliveries/resend` body: exactly one of `ids` and `filter`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkResendIn {
    /// 1 to 10 000 delivery ids.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ids: Option<Vec<String>>,
    /// Every delivery `GET /deliveries` lists with these filters.
    #[serde(
        default,
        deserialize_with = "present_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub filter: Option<DeliveryFilter>,
    /// Change nothing; answer what a resend would do now (the panel's confirmation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A field that, when given, holds a value: `null` is refused, as the document says.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field that, when given, holds a JSON object: a struct's derived `Deserialize` also
/// reads an array of its fields in order, which the document does not allow.
fn present_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer
        .deserialize_map(ObjectOnly(std::marker::PhantomData))
        .map(Some)
}

/// Why a bulk resend left a delivery as it was.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// An attempt is under way; resend it once that has finished.
    InFlight,
    /// Its webhook is deleted.
    WebhookGone,
    /// Its webhook is inactive; activate it first.
    WebhookInactive,
    /// No delivery has this id.
    NotFound,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::WebhookGone => "webhook_gone",
            Self::WebhookInactive => "webhook_inactive",
            Self::NotFound => "not_found",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkippedDelivery {
    pub id: String,
    pub reason: SkipReason,
}

/// `POST /deliveries/resend` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BulkResent {
    /// Deliveries queued for a new attempt now, each with a fresh retry cycle.
    pub queued: u64,
    /// Deliveries left as they were, and why: the first 1000 of them.
    pub skipped: Vec<SkippedDelivery>,
    /// How many were skipped in all; more than `skipped` holds when that list was cut.
    pub skipped_total: u64,
    /// `queued` per webhook id.
    pub queued_by_webhook: std::collections::BTreeMap<String, u64>,
}

impl BulkResent {
    /// Counts a delivery left as it was, listing it among the first
    /// [`BULK_RESEND_MAX_LISTED_SKIPS`].
    pub fn skip(&mut self, id: &str, reason: SkipReason) {
        self.skipped_total += 1;
        if self.skipped.len() < BULK_RESEND_MAX_LISTED_SKIPS {
            self.skipped.push(SkippedDelivery {
                id: id.to_owned(),
                reason,
            });
        }
    }

    /// Adds the answer to another part of the same resend.
    pub fn add(&mut self, other: Self) {
        self.queued += other.queued;
        self.skipped_total += other.skipped_total;
        let room = BULK_RESEND_MAX_LISTED_SKIPS.saturating_sub(self.skipped.len());
        self.skipped.extend(other.skipped.into_iter().take(room));
        for (webhook_id, queued) in other.queued_by_webhook {
            *self.queued_by_webhook.entry(webhook_id).or_default() += queued;
        }
    }
}

/// Most entries `BulkResent::skipped` lists.
pub const BULK_RESEND_MAX_LISTED_SKIPS: usize = 1000;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuedDelivery {
    pub delivery_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Resend every failed delivery created at or after this time (RFC 3339); a time in
    /// the future finds none.
    pub since: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Recovered {
    pub queued: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatsBucket {
    #[default]
    Hour,
    Day,
}

impl StatsBucket {
    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// `GET /stats` parameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    pub webhook_id: Option<String>,
    /// Start of the window (RFC 3339); default 24 hours ago. The window holds at most 2000
    /// buckets: an earlier `since` starts 2000 buckets ago; one in the future gives no points.
    pub since: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    #[param(value_type = Option<String>, example = "hour")]
    pub bucket: Option<StatsBucket>,
}

/// Deliveries that ended in one time bucket, by outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsPoint {
    pub start: DateTime<Utc>,
    pub succeeded: u64,
    pub failed: u64,
}
