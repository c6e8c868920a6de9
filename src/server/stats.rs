//! `/v1/admin/stats`: delivery outcomes over time.

use axum::Json;
use axum::extract::State;
use chrono::{TimeDelta, Utc};

use super::AppState;
use super::error::Result;
use super::extract::ApiQuery;
use crate::api::{ErrorBody, StatsPoint, StatsQuery};

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
    let bucket = query.bucket.unwrap_or_default();
    let since = query.since.unwrap_or(now - TimeDelta::days(1));
    // A window in the future holds no buckets; one longer than MAX_BUCKETS starts
    // MAX_BUCKETS buckets ago (the first point's `start` says where).
    if since > now {
        return Ok(Json(Vec::new()));
    }
    let earliest = now - TimeDelta::milliseconds(bucket.millis() * MAX_BUCKETS);
    let since = since.max(earliest);
    let points = state
        .store
        .stats(query.webhook_id.as_deref(), since, bucket)
        .await?;
    Ok(Json(points))
}
