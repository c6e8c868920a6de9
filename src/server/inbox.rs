//! Test receivers hosted by the service itself (the embedded one only): `POST /inbox/{name}`
//! records what arrives and checks its signature with the secrets of the webhooks that point
//! there, so a newcomer can see a verified delivery without running a receiver of their own.
//!
//! Kept in memory and bounded: at most [`MESSAGES_PER_INBOX`] messages in each of at most
//! [`MAX_INBOXES`] inboxes, [`BYTES_BUDGET`] across them all (the oldest message goes
//! first, whichever its inbox), each body at most [`BODY_MAX_BYTES`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
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
/// What all inboxes together keep, bodies and headers.
pub const BYTES_BUDGET: usize = 16 * 1024 * 1024;
/// The largest body an inbox takes; a larger one gets 413.
pub const BODY_MAX_BYTES: usize = 256 * 1024;
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

impl InboxMessage {
    /// What it costs the budget.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxMessages {
    /// Newest first.
    pub items: Vec<InboxMessage>,
}

#[derive(Clone, Default)]
pub struct Inbox {
    kept: Arc<Mutex<Kept>>,
}

/// Every inbox's messages, newest first, each numbered in arrival order; `arrivals` holds
/// every kept message's number, inbox and size, oldest first, for the budget.
#[derive(Default)]
struct Kept {
    inboxes: HashMap<String, VecDeque<(u64, InboxMessage)>>,
    arrivals: VecDeque<(u64, String, usize)>,
    bytes: usize,
    next: u64,
}

impl Kept {
    /// Drops the oldest message of all, if it is still kept.
    fn drop_oldest(&mut self) {
        let Some((number, name, size)) = self.arrivals.pop_front() else {
            return;
        };
        let Some(messages) = self.inboxes.get_mut(&name) else {
            return;
        };
        if messages.back().is_some_and(|(kept, _)| *kept == number) {
            messages.pop_back();
            self.bytes -= size;
            if messages.is_empty() {
                self.inboxes.remove(&name);
            }
        }
    }
}

impl Kept {
    /// Drops the entries of `arrivals` whose message is gone, when they are the most.
    fn sweep_arrivals(&mut self) {
        let live: usize = self.inboxes.values().map(VecDeque::len).sum();
        if self.arrivals.len() <= 2 * live + 64 {
            return;
        }
        let kept: std::collections::HashSet<u64> = self
            .inboxes
            .values()
            .flat_map(|messages| messages.iter().map(|(number, _)| *number))
            .collect();
        self.arrivals.retain(|(number, _, _)| kept.contains(number));
    }
}

impl Inbox {
    fn record(&self, name: &str, message: InboxMessage) -> Result<()> {
        let mut kept = self.kept.lock().map_err(|_| ApiError::internal())?;
        if !kept.inboxes.contains_key(name) && kept.inboxes.len() >= MAX_INBOXES {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "too_many_inboxes",
                format!("at most {MAX_INBOXES} inboxes are kept"),
            ));
        }
        let size = message.size();
        while kept.bytes + size > BYTES_BUDGET && !kept.arrivals.is_empty() {
            kept.drop_oldest();
        }
        let number = kept.next;
        kept.next += 1;
        kept.bytes += size;
        kept.arrivals.push_back((number, name.to_owned(), size));
        let messages = kept.inboxes.entry(name.to_owned()).or_default();
        messages.push_front((number, message));
        if messages.len() > MESSAGES_PER_INBOX
            && let Some((_, dropped)) = messages.pop_back()
        {
            // Its entry in `arrivals` stays until its turn, and is passed over then; so
            // that such entries cannot pile up, they are swept once they outnumber the rest.
            kept.bytes -= dropped.size();
            kept.sweep_arrivals();
        }
        Ok(())
    }

    fn messages(&self, name: &str) -> Result<Vec<InboxMessage>> {
        let kept = self.kept.lock().map_err(|_| ApiError::internal())?;
        Ok(kept
            .inboxes
            .get(name)
            .map(|messages| {
                messages
                    .iter()
                    .map(|(_, message)| message.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Bytes kept across all inboxes.
    pub fn bytes(&self) -> usize {
        self.kept.lock().map(|kept| kept.bytes).unwrap_or_default()
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
/// The secrets are read here; the HMACs are computed on the blocking pool, off the async
/// workers that serve requests.
async fn verify(
    state: &AppState,
    name: &str,
    headers: HeaderMap,
    body: Bytes,
) -> std::result::Result<(), String> {
    let suffix = format!("/inbox/{name}");
    let webhooks = state
        .store
        .webhooks()
        .await
        .map_err(|err| format!("could not read webhooks: {err}"))?;
    let mut secrets = Vec::new();
    for webhook in webhooks.iter().filter(|w| w.url.ends_with(&suffix)) {
        let sealed = state
            .store
            .signing_secrets(&webhook.id, Utc::now())
            .await
            .map_err(|err| format!("could not read secrets: {err}"))?;
        for sealed in sealed {
            secrets.push(
                state
                    .cipher
                    .open_string(&webhook.id, &sealed.sealed)
                    .map_err(|err| err.to_string())?,
            );
        }
    }
    if secrets.is_empty() {
        return Err(format!("no webhook points at {suffix}"));
    }
    tokio::task::spawn_blocking(move || {
        let mut last_error = String::new();
        for secret in &secrets {
            match signing::verify(secret, &headers, &body, Utc::now()) {
                Ok(()) => return Ok(()),
                Err(err) => last_error = err.to_string(),
            }
        }
        Err(last_error)
    })
    .await
    .unwrap_or_else(|err| Err(format!("verifying failed: {err}")))
}

/// Receive a delivery (no admin key: this is a receiver).
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>> {
    valid_name(&name)?;
    let inbox = state
        .inbox
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    let body = body.map_err(|rejection| super::extract::body_error(&rejection, BODY_MAX_BYTES))?;
    let verification = verify(&state, &name, headers.clone(), body.clone()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_bytes: usize) -> InboxMessage {
        InboxMessage {
            received_at: Utc::now(),
            event_id: None,
            event_type: None,
            verified: false,
            verify_error: None,
            headers: BTreeMap::new(),
            body: "x".repeat(body_bytes),
        }
    }

    #[test]
    fn the_budget_drops_the_oldest_message_of_all_inboxes_first() {
        let inbox = Inbox::default();
        let quarter = BYTES_BUDGET / 4;
        inbox.record("a", message(quarter)).expect("a1");
        inbox.record("b", message(quarter)).expect("b1");
        inbox.record("a", message(quarter)).expect("a2");
        inbox.record("b", message(quarter)).expect("b2");
        assert_eq!(inbox.bytes(), BYTES_BUDGET);
        // One more byte than the budget allows: a1, the oldest, goes.
        inbox.record("c", message(1)).expect("c1");
        assert_eq!(inbox.messages("a").expect("a").len(), 1);
        assert_eq!(inbox.messages("b").expect("b").len(), 2);
        assert_eq!(inbox.bytes(), 3 * quarter + 1);
        // A message as large as the budget leaves only itself.
        inbox.record("d", message(BYTES_BUDGET)).expect("d1");
        assert_eq!(inbox.bytes(), BYTES_BUDGET);
        for name in ["a", "b", "c"] {
            assert!(inbox.messages(name).expect(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn each_inbox_keeps_its_newest_messages_within_the_budget() {
        let inbox = Inbox::default();
        for n in 0..MESSAGES_PER_INBOX + 50 {
            let mut next = message(10);
            next.event_id = Some(format!("evt_{n}"));
            inbox.record("busy", next).expect("recorded");
        }
        let kept = inbox.messages("busy").expect("busy");
        assert_eq!(kept.len(), MESSAGES_PER_INBOX);
        assert_eq!(kept[0].event_id.as_deref(), Some("evt_249"));
        assert_eq!(inbox.bytes(), MESSAGES_PER_INBOX * 10);
        // The entries of dropped messages do not pile up.
        for _ in 0..10_000 {
            inbox.record("busy", message(10)).expect("recorded");
        }
        let arrivals = inbox.kept.lock().expect("lock").arrivals.len();
        assert!(arrivals <= 2 * MESSAGES_PER_INBOX + 64, "{arrivals}");
        // The entries of messages the per-inbox cap dropped are passed over.
        inbox
            .record("other", message(BYTES_BUDGET - 5))
            .expect("big");
        assert_eq!(inbox.bytes(), BYTES_BUDGET - 5);
        assert!(inbox.messages("busy").expect("busy").is_empty());
    }
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
