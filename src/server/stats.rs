//! `/v1/admin/stats`: delivery outcomes over time.

use axum::Json;
use axum::extract::State;
use chrono::{TimeDelta, Utc};

use super::AppState;
use super::error::Result;
use super::extract::ApiQuery;
use crate::api::{ErrorBody, StatsPoint, StatsQuery};
use crate::validate::FieldError;

/// Most buckets one answer holds.
const MAX_BUCKETS: i64 = 2000;

/// Succeeded and failed deliveries per hour or day since `since` (default: 24 h ago),
/// every bucket present, by the time of their last attempt.
#[utoipa::path(
    get, path = "/stats", tag = "deliveries",
    params(StatsQuery),
    responses((status = 200, body = [StatsPoint]), (status = 422, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Vec<StatsPoint>>> {
    let now = Utc::now();
    let since = query.since.unwrap_or(now - TimeDelta::days(1));
    let bucket = query.bucket.unwrap_or_default();
    if since > now {
        return Err(FieldError::new("since", "since is in the future").into());
    }
    if (now - since).num_milliseconds() / bucket.millis() > MAX_BUCKETS {
        return Err(FieldError::new(
            "since",
            format!("at most {MAX_BUCKETS} buckets: choose a later since or bucket=day"),
        )
        .into());
    }
    let points = state
        .store
        .stats(query.webhook_id.as_deref(), since, bucket)
        .await?;
    Ok(Json(points))
}
