//! `/v1/admin/events`: emit an event to every webhook subscribed to its type.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::AppState;
use super::error::Result;
use super::extract::ApiJson;
use crate::api::{EmittedEvent, ErrorBody, EventIn};
use crate::store::{self, NewEvent};
use crate::validate::{self, FieldError};

/// [`EventIn`] as the service reads it: `data` stays the caller's JSON text, so numbers
/// beyond an f64's precision (amounts, 20-digit ids) reach receivers exactly as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventText {
    #[serde(rename = "type")]
    event_type: String,
    data: Box<RawValue>,
    #[serde(default)]
    id: Option<String>,
}

/// Emit an event. It and one delivery per active subscribed webhook are stored in one
/// transaction before the answer; the same `id` again fans out once.
#[utoipa::path(
    post, path = "/events", tag = "events",
    request_body = EventIn,
    responses(
        (status = 202, description = "Stored and queued", body = EmittedEvent),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn emit(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<EventText>,
) -> Result<(StatusCode, Json<EmittedEvent>)> {
    if !state.catalog.contains(&input.event_type) {
        return Err(FieldError::new(
            "type",
            format!(
                "{:?} is not in the event-type catalog (GET /v1/admin/event-types)",
                input.event_type
            ),
        )
        .into());
    }
    // Kept as sent, but it must read as JSON values wherever it goes (a Slack message
    // is built from them): numbers no f64 can hold, such as 1e400, are refused here.
    if let Err(err) = serde_json::from_str::<serde_json::Value>(input.data.get()) {
        return Err(FieldError::new("data", format!("not usable JSON: {err}")).into());
    }
    let id = match &input.id {
        Some(id) => validate::event_id("id", id)?,
        None => store::new_id("msg"),
    };
    let began = std::time::Instant::now();
    let emitted = state
        .store
        .emit_event(NewEvent {
            id,
            event_type: input.event_type,
            data: input.data.get().to_owned(),
        })
        .await?;
    state.metrics.emitted(began.elapsed().as_secs_f64());
    // Deliveries handed to the dispatcher as they were written need no wake-up.
    if emitted.unclaimed > 0 {
        state.dispatch.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(EmittedEvent {
            event_id: emitted.event_id,
            deliveries: emitted.deliveries,
        }),
    ))
}
