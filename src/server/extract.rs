//! Request extractors whose rejections speak the API's error format.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// A JSON body. An empty body reads as `{}`, so optional bodies need no special case.
/// Whether reading the body failed on its deadline (see `listen::DeadlineBody`).
fn timed_out(rejection: &BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if error.is::<super::listen::BodyTimedOut>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Why a body could not be read: too large for `limit` (413), too slow (408), or broken
/// off (400).
pub fn body_error(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    } else if timed_out(rejection) {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            rejection.body_text(),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            rejection.body_text(),
        )
    }
}

/// Errors name the offending field: type errors by their path, unknown and missing
/// fields by name. `LIMIT` is the body limit the route's `DefaultBodyLimit` sets, named
/// in a 413's message.
pub struct ApiJson<T, const LIMIT: usize = BODY_LIMIT_BYTES>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_error(&rejection, LIMIT))?;
        // No body at all is `{}` (the document marks such bodies optional where every
        // field is); anything else must be JSON, white space alone included.
        let json: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        parse_json(json).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(json: &[u8]) -> Result<T, ApiError> {
    // serde reads a struct from an array too (`[null, null]` as its fields in order): every
    // body here is an object.
    if json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the body must be a JSON object, not an array",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {err}"),
        )
    })?;
    Ok(value)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => data_error(&path, inner.to_string()),
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {inner}"),
        ),
    }
}

/// A value of the wrong shape at `path`, as serde described it.
fn data_error(path: &str, message: String) -> ApiError {
    // serde names unknown and missing fields in backticks. The path of an unknown field
    // already ends with its name; a missing field's path is the object that lacks it.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    let field = match named {
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => Some(path.to_owned()),
        Some(name) if path == "." => Some(name),
        Some(name) => Some(format!("{path}.{name}")),
        None => (path != ".").then(|| path.to_owned()),
    };
    let code = if message.starts_with("unknown field") {
        "unknown_field"
    } else {
        "validation_failed"
    };
    let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    match field {
        Some(field) => error.with_field(field),
        None => error,
    }
}

/// Query parameters, with errors that name the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                data_error(&path, err.into_inner().to_string())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WebhookIn;

    fn error_of(json: &str) -> ApiError {
        match parse_json::<WebhookIn>(json.as_bytes()) {
            Ok(_) => panic!("{json} parsed"),
            Err(err) => err,
        }
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = error_of(r#"{"name":"a","url":"https://x.y","events":["*"],"colour":1}"#);
        assert_eq!(unknown.code, "unknown_field");
        assert_eq!(unknown.field.as_deref(), Some("colour"));
        let missing = error_of(r#"{"url":"https://x.y","events":["*"]}"#);
        assert_eq!(missing.field.as_deref(), Some("name"));
        let wrong_type = error_of(r#"{"name":5,"url":"https://x.y","events":["*"]}"#);
        assert_eq!(wrong_type.field.as_deref(), Some("name"));
        let bad_kind =
            error_of(r#"{"name":"a","url":"https://x.y","events":["*"],"kind":"teams"}"#);
        assert_eq!(bad_kind.field.as_deref(), Some("kind"));
        let element = error_of(r#"{"name":"a","url":"https://x.y","events":[1]}"#);
        assert_eq!(element.field.as_deref(), Some("events[0]"));
        let syntax = error_of(r#"{"name":"#);
        assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
        assert_eq!(syntax.code, "invalid_json");
        let trailing = error_of(r#"{"name":"a","url":"https://x.y","events":["*"]} x"#);
        assert_eq!(trailing.code, "invalid_json");
    }
}
