//! `GET /metrics`: the service's metrics in the Prometheus text format, behind the admin
//! key like every admin route.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::AppState;
use super::error::{ApiError, Result};
use crate::metrics::Snapshot;

/// OpenMetrics text, which Prometheus reads.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn get(State(state): State<AppState>) -> Result<Response> {
    let now = Utc::now();
    let (due_backlog, oldest_due) = state.store.due_backlog(now).await?;
    let (slots_in_use, slots) = state.dispatch.slots();
    let snapshot = Snapshot {
        due_backlog,
        search_backlog: state.store.search_backlog().await?,
        oldest_due_age_seconds: oldest_due.map_or(0.0, |due| {
            (now - due).num_milliseconds().max(0) as f64 / 1000.0
        }),
        slots_in_use: slots_in_use as u64,
        slots: slots as u64,
    };
    let text = state.metrics.encode(&snapshot).map_err(|err| {
        tracing::error!("encoding the metrics failed: {err}");
        ApiError::internal()
    })?;
    Ok(([(CONTENT_TYPE, CONTENT)], text).into_response())
}
