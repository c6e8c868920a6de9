//! The one error type of the HTTP layer. Every failure a handler can meet becomes an
//! [`ApiError`] once, here, and is answered as `{"error": {"code", "message", "field"?}}`.
//! Unexpected failures are logged here and answered without internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorDetail};
use crate::crypto::CryptoError;
use crate::store::StoreError;
use crate::validate::FieldError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A valid key whose role may not do this.
    pub fn forbidden(needed: crate::api::Role) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this key's role may not do this: it needs the {} role",
                needed.as_str()
            ),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the service met an unexpected error; its log has the details",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            err.message,
        )
        .with_field(err.field)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::not_found("not found"),
            StoreError::NameTaken => Self::new(
                StatusCode::CONFLICT,
                "name_taken",
                "another key has this name; names say who holds a key, so each is unique",
            )
            .with_field("name"),
            StoreError::LastAdminKey => Self::new(
                StatusCode::CONFLICT,
                "last_admin_key",
                "this is the only admin key left: create another admin key before revoking it",
            ),
            StoreError::WebhookInactive { deleted } => Self::new(
                StatusCode::CONFLICT,
                "webhook_inactive",
                if deleted {
                    "this delivery's webhook is deleted: nothing would receive it"
                } else {
                    "this delivery's webhook is deactivated: activate it, then resend"
                },
            ),
            StoreError::Unavailable(_) => {
                tracing::error!("storage unavailable: {err}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the service cannot use its database right now; nothing was changed — try again shortly",
                )
            }
            _ => {
                tracing::error!("storage error: {err}");
                Self::internal()
            }
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(err: CryptoError) -> Self {
        tracing::error!("secret handling failed: {err}");
        Self::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Turns a store's `NotFound` into a 404 that says what was missing.
pub trait OrNotFound<T> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> OrNotFound<T> for std::result::Result<T, StoreError> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| match err {
            StoreError::NotFound => ApiError::not_found(what()),
            other => other.into(),
        })
    }
}
