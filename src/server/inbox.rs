//! Test receivers hosted by the service itself (the embedded one only): `POST /inbox/{name}`
//! records what arrives and checks its signature with the secrets of the webhooks that point
//! there, so a newcomer can see a verified delivery without running a receiver of their own.
//!
//! Kept in memory and bounded: the last [`MESSAGES_PER_INBOX`] messages of at most
//! [`MAX_INBOXES`] inboxes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Result};
use crate::signing;

pub const MESSAGES_PER_INBOX: usize = 200;
pub const MAX_INBOXES: usize = 100;
const NAME_MAX_CHARS: usize = 64;

/// One request an inbox received.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxMessage {
    pub received_at: DateTime<Utc>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// True when a signature matched the secret of a webhook pointing at this inbox.
    pub verified: bool,
    /// Why it did not verify, when it did not.
    pub verify_error: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxMessages {
    /// Newest first.
    pub items: Vec<InboxMessage>,
}

#[derive(Clone, Default)]
pub struct Inbox {
    messages: Arc<Mutex<HashMap<String, VecDeque<InboxMessage>>>>,
}

impl Inbox {
    fn record(&self, name: &str, message: InboxMessage) -> Result<()> {
        let mut inboxes = self.messages.lock().map_err(|_| ApiError::internal())?;
        if !inboxes.contains_key(name) && inboxes.len() >= MAX_INBOXES {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "too_many_inboxes",
                format!("at most {MAX_INBOXES} inboxes are kept"),
            ));
        }
        let messages = inboxes.entry(name.to_owned()).or_default();
        if messages.len() >= MESSAGES_PER_INBOX {
            messages.pop_back();
        }
        messages.push_front(message);
        Ok(())
    }

    fn messages(&self, name: &str) -> Result<Vec<InboxMessage>> {
        let inboxes = self.messages.lock().map_err(|_| ApiError::internal())?;
        Ok(inboxes
            .get(name)
            .map(|messages| messages.iter().cloned().collect())
            .unwrap_or_default())
    }
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > NAME_MAX_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_inbox_name",
            format!("an inbox name has 1 to {NAME_MAX_CHARS} of a-z, 0-9, - and _"),
        ));
    }
    Ok(())
}

/// Checks `body` against the secrets of every webhook whose URL ends in `/inbox/{name}`.
async fn verify(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let suffix = format!("/inbox/{name}");
    let webhooks = state
        .store
        .webhooks()
        .await
        .map_err(|err| format!("could not read webhooks: {err}"))?;
    let mut last_error = format!("no webhook points at {suffix}");
    for webhook in webhooks.iter().filter(|w| w.url.ends_with(&suffix)) {
        let secrets = state
            .store
            .signing_secrets(&webhook.id, Utc::now())
            .await
            .map_err(|err| format!("could not read secrets: {err}"))?;
        for sealed in secrets {
            let secret = state
                .cipher
                .open_string(&webhook.id, &sealed.sealed)
                .map_err(|err| err.to_string())?;
            match signing::verify(&secret, headers, body, Utc::now()) {
                Ok(_) => return Ok(()),
                Err(err) => last_error = err.to_string(),
            }
        }
    }
    Err(last_error)
}

/// Receive a delivery (no admin key: this is a receiver).
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    valid_name(&name)?;
    let inbox = state
        .inbox
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    let verification = verify(&state, &name, &headers, &body).await;
    let envelope: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let text_of = |key: &str| {
        envelope
            .as_ref()
            .and_then(|value| value.get(key))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    inbox.record(
        &name,
        InboxMessage {
            received_at: Utc::now(),
            event_id: headers
                .get(signing::HEADER_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| text_of("id")),
            event_type: text_of("type"),
            verified: verification.is_ok(),
            verify_error: verification.err(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes());
                    (
                        k.as_str().to_owned(),
                        signing::redacted(k.as_str(), &value).to_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )?;
    Ok(Json(serde_json::json!({"received": true})))
}

/// What a local test inbox received, newest first, each with whether its signature verified.
#[utoipa::path(
    get, path = "/inbox/{name}", tag = "inbox",
    params(("name" = String, Path, description = "Inbox name")),
    responses((status = 200, body = InboxMessages), (status = 404, description = "The service hosts no inboxes"))
)]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<InboxMessages>> {
    valid_name(&name)?;
    let inbox = state.inbox.as_ref().ok_or_else(|| {
        ApiError::not_found("this service hosts no test inboxes (only the embedded one does)")
    })?;
    Ok(Json(InboxMessages {
        items: inbox.messages(&name)?,
    }))
}
