//! `/v1/admin/event-types`: the catalog webhooks subscribe from.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::api::{EventType, EventTypeList};

/// The event types webhooks may subscribe to, each with a description and an example.
#[utoipa::path(
    get, path = "/event-types", tag = "event-types",
    responses((status = 200, body = EventTypeList))
)]
pub async fn list(State(state): State<AppState>) -> Json<EventTypeList> {
    Json(EventTypeList {
        items: state.catalog.entries().cloned().collect::<Vec<EventType>>(),
    })
}
