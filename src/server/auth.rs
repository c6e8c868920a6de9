//! The admin key check in front of every `/v1/admin` route.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::AppState;
use super::error::ApiError;
use crate::crypto;

pub async fn require_admin_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
        });
    match presented {
        Some(key) if crypto::admin_key_matches(key, &state.admin_key_digest) => next.run(req).await,
        Some(_) => {
            ApiError::unauthorized("the admin key is not valid for this service").into_response()
        }
        None => ApiError::unauthorized(
            "this route needs the header `Authorization: Bearer <admin key>`",
        )
        .into_response(),
    }
}
