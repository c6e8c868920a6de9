//! `/v1/admin/webhooks`: register endpoints, change them, rotate their secrets.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{SubsecRound as _, TimeDelta, Utc};

use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::error::{OrNotFound as _, Result};
use super::extract::ApiJson;
use crate::api::{
    AuditAction, CreatedWebhook, ErrorBody, QueuedDelivery, RecoverIn, Recovered, RotateSecretIn,
    RotatedSecret, Webhook, WebhookIn, WebhookList, WebhookPatch,
};
use crate::crypto;
use crate::store::{self, NewEvent, NewWebhook, SecretRotation, WebhookChanges};
use crate::validate::{self, DESCRIPTION_MAX_CHARS, FieldError, OWNER_MAX_CHARS};

/// Default time a rotated-out secret keeps signing.
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;
/// Longest grace period a rotation may ask for: 7 days.
pub const MAX_GRACE_SECONDS: u64 = 7 * 86_400;

fn missing_webhook(id: &str) -> impl FnOnce() -> String + '_ {
    move || format!("there is no webhook with id {id:?}")
}

/// A webhook URL as this service takes it, under its http policy and whether private
/// destinations are allowed. The language admits no IP literal but loopback, and that only
/// where the delivery guard allows it; names are checked at each delivery, after DNS.
fn destination(state: &AppState, text: &str) -> std::result::Result<url::Url, FieldError> {
    validate::webhook_url(
        "url",
        text,
        state.http_policy,
        state.allow_private_destinations,
    )
}

/// Register a webhook. The answer carries its signing secret, shown this once.
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body = WebhookIn,
    responses(
        (status = 201, description = "Created; `secret` is shown only here", body = CreatedWebhook),
        (status = 422, description = "A field is not acceptable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(input): ApiJson<WebhookIn>,
) -> Result<(StatusCode, Json<CreatedWebhook>)> {
    let name = validate::name("name", &input.name)?;
    let url = destination(&state, &input.url)?;
    let events = validate::events("events", &input.events, &state.catalog)?;
    let description = validate::optional_text(
        "description",
        input.description.as_deref(),
        DESCRIPTION_MAX_CHARS,
    )?;
    let owner = validate::optional_text("owner", input.owner.as_deref(), OWNER_MAX_CHARS)?;
    let rate_limit = input
        .rate_limit
        .map(|rate| validate::rate_limit("rate_limit", rate))
        .transpose()?;

    let id = store::new_id("wh");
    let secret = crypto::generate_signing_secret()?;
    let sealed_secret = state.cipher.seal_secret(&id, secret.as_bytes())?;
    // Never the URL: some carry a token (Slack's do).
    let audit = caller
        .audit(AuditAction::WebhookCreate, Some(&id))
        .with_detail(json!({"name": name, "kind": input.kind.as_str(), "events": events}));
    let webhook = state
        .store
        .insert_webhook(
            NewWebhook {
                id,
                name,
                url: url.into(),
                events,
                kind: input.kind,
                description,
                owner,
                rate_limit,
                secret_hint: crypto::secret_hint(&secret),
                sealed_secret,
            },
            &audit,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook,
            secret: secret.as_str().to_owned(),
        }),
    ))
}

/// Every webhook, with its delivery health.
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<WebhookList>> {
    let items = state.store.webhooks().await?;
    Ok(Json(WebhookList { items }))
}

/// One webhook. Never its secret: `secret_hint` holds its last 4 characters.
#[utoipa::path(
    get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody))
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Webhook>> {
    let webhook = state
        .store
        .webhook(&id)
        .await
        .or_not_found(missing_webhook(&id))?;
    Ok(Json(webhook))
}

/// Change a webhook's name, URL, events, active state, description, owner or rate limit.
/// The secret stays as it is.
#[utoipa::path(
    patch, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, body = Webhook),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<Webhook>> {
    let changes = WebhookChanges {
        name: patch
            .name
            .as_deref()
            .map(|name| validate::name("name", name))
            .transpose()?,
        url: patch
            .url
            .as_deref()
            .map(|url| destination(&state, url).map(String::from))
            .transpose()?,
        events: patch
            .events
            .as_deref()
            .map(|events| validate::events("events", events, &state.catalog))
            .transpose()?,
        is_active: patch.is_active,
        description: patch
            .description
            .as_deref()
            .map(|text| validate::optional_text("description", Some(text), DESCRIPTION_MAX_CHARS))
            .transpose()?,
        owner: patch
            .owner
            .as_deref()
            .map(|text| validate::optional_text("owner", Some(text), OWNER_MAX_CHARS))
            .transpose()?,
        rate_limit: patch
            .rate_limit
            .map(|rate| {
                rate.map(|rate| validate::rate_limit("rate_limit", rate))
                    .transpose()
            })
            .transpose()?,
    };
    let audit = caller
        .audit(update_action(&changes), Some(&id))
        .with_detail(json!({
            "fields": changes.named_fields(),
            "is_active": changes.is_active,
        }));
    let webhook = state
        .store
        .update_webhook(&id, changes, &audit)
        .await
        .or_not_found(missing_webhook(&id))?;
    Ok(Json(webhook))
}

/// Delete a webhook and destroy its secrets. Its delivery history stays readable.
#[utoipa::path(
    delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let audit = caller.audit(AuditAction::WebhookDelete, Some(&id));
    state
        .store
        .delete_webhook(&id, &audit)
        .await
        .or_not_found(missing_webhook(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret. The new one is returned this once; the previous one keeps
/// signing (deliveries carry both signatures) until `previous_secret_expires_at`.
#[utoipa::path(
    post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body(content = RotateSecretIn, description = "May be empty"),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RotateSecretIn>,
) -> Result<Json<RotatedSecret>> {
    let grace_seconds = input.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(FieldError::new(
            "grace_seconds",
            format!("at most {MAX_GRACE_SECONDS} seconds (7 days)"),
        )
        .into());
    }
    // Fail with 404 before generating anything for a webhook that does not exist.
    state
        .store
        .webhook(&id)
        .await
        .or_not_found(missing_webhook(&id))?;
    let secret = crypto::generate_signing_secret()?;
    // Milliseconds, as stored, so the answer matches what the service keeps.
    let previous_expires_at = (Utc::now()
        + TimeDelta::seconds(i64::try_from(grace_seconds).unwrap_or(i64::MAX)))
    .trunc_subsecs(3);
    state
        .store
        .rotate_secret(
            &id,
            SecretRotation {
                sealed_secret: state.cipher.seal_secret(&id, secret.as_bytes())?,
                secret_hint: crypto::secret_hint(&secret),
                previous_expires_at,
            },
            &caller
                .audit(AuditAction::WebhookRotateSecret, Some(&id))
                .with_detail(json!({ "grace_seconds": grace_seconds })),
        )
        .await
        .or_not_found(missing_webhook(&id))?;
    Ok(Json(RotatedSecret {
        secret: secret.as_str().to_owned(),
        previous_secret_expires_at: previous_expires_at,
    }))
}

/// The event type of `POST /webhooks/{id}/test`.
pub const TEST_EVENT: &str = "webhook.test";

/// Send a `webhook.test` event to this webhook only, subscribed or not.
#[utoipa::path(
    post, path = "/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Queued", body = QueuedDelivery),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn send_test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<QueuedDelivery>)> {
    let data = state
        .catalog
        .entries()
        .find(|entry| entry.name == TEST_EVENT)
        .map_or_else(
            || serde_json::json!({"message": "Hello from Hookpanel"}),
            |entry| entry.example.clone(),
        );
    let delivery_id = state
        .store
        .emit_to_one(
            &id,
            NewEvent {
                id: store::new_id("msg"),
                event_type: TEST_EVENT.to_owned(),
                data: data.to_string(),
            },
            &caller.audit(AuditAction::WebhookTest, Some(&id)),
        )
        .await
        .or_not_found(missing_webhook(&id))?;
    state.dispatch.wake();
    Ok((StatusCode::ACCEPTED, Json(QueuedDelivery { delivery_id })))
}

/// Resend every failed delivery of this webhook created since `since`.
#[utoipa::path(
    post, path = "/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = RecoverIn,
    responses(
        (status = 202, description = "Queued", body = Recovered),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn recover(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RecoverIn>,
) -> Result<(StatusCode, Json<Recovered>)> {
    // A `since` in the future finds nothing to resend: 202 with none queued.
    let queued = state
        .store
        .recover(
            &id,
            input.since,
            &caller
                .audit(AuditAction::WebhookRecover, Some(&id))
                .with_detail(json!({ "since": input.since })),
        )
        .await
        .or_not_found(missing_webhook(&id))?;
    if queued > 0 {
        state.dispatch.wake();
    }
    Ok((StatusCode::ACCEPTED, Json(Recovered { queued })))
}

/// End the grace period of every previous secret now: from the next attempt, deliveries
/// carry the current secret's signature alone.
#[utoipa::path(
    post, path = "/webhooks/{id}/expire-previous-secrets", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Every previous secret is destroyed"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn expire_previous_secrets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state
        .store
        .expire_previous_secrets(
            &id,
            &caller.audit(AuditAction::WebhookExpirePreviousSecrets, Some(&id)),
        )
        .await
        .or_not_found(missing_webhook(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a PATCH is, for the audit log: turning a webhook on or off when that is all it
/// does, otherwise an update.
fn update_action(changes: &WebhookChanges) -> AuditAction {
    match changes.is_active {
        Some(active) if changes.named_fields() == ["is_active"] => {
            if active {
                AuditAction::WebhookActivate
            } else {
                AuditAction::WebhookDeactivate
            }
        }
        _ => AuditAction::WebhookUpdate,
    }
}
