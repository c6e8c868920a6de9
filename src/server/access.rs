//! `/v1/admin/keys` and `/v1/admin/audit`: who may call this service, and what each
//! caller changed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::json;

use super::auth::Caller;
use super::error::{OrNotFound as _, Result};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, paging};
use crate::api::{
    AdminKeyIn, AdminKeyList, AuditAction, AuditPage, AuditQuery, CreatedAdminKey, ErrorBody,
    WhoAmI,
};
use crate::crypto;
use crate::store::{self, AuditFilter, NewAdminKey};
use crate::validate::{self, FieldError};

/// Create a key. The answer carries the key, shown this once; only its hash is kept.
#[utoipa::path(
    post, path = "/keys", tag = "keys",
    request_body = AdminKeyIn,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedAdminKey),
        (status = 409, description = "Another key has this name", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(input): ApiJson<AdminKeyIn>,
) -> Result<(StatusCode, Json<CreatedAdminKey>)> {
    let name = validate::name("name", &input.name)?;
    let key = crypto::generate_admin_key()?;
    let new = NewAdminKey {
        id: store::new_ordered_id("key"),
        name,
        role: input.role,
        key_sha256: crypto::admin_key_digest(&key),
    };
    let audit = caller
        .audit(AuditAction::KeyCreate, Some(&new.id))
        .with_detail(json!({ "name": new.name, "role": new.role }));
    let key_info = state.store.insert_admin_key(&new, &audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAdminKey {
            key_info,
            key: key.as_str().to_owned(),
        }),
    ))
}

/// Every key, oldest first: never a key itself.
#[utoipa::path(
    get, path = "/keys", tag = "keys",
    responses((status = 200, body = AdminKeyList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<AdminKeyList>> {
    Ok(Json(AdminKeyList {
        items: state.store.admin_keys().await?,
    }))
}

/// Revoke a key: every request presenting it is refused from now on, on every replica.
/// The last admin key cannot be revoked.
#[utoipa::path(
    delete, path = "/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The last admin key", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let audit = caller.audit(AuditAction::KeyDelete, Some(&id));
    state
        .store
        .delete_admin_key(&id, &audit)
        .await
        .or_not_found(|| format!("there is no key with id {id:?}"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The key this request presented: its name and role, so that a client can offer only
/// what the role may do.
#[utoipa::path(
    get, path = "/whoami", tag = "keys",
    responses((status = 200, body = WhoAmI))
)]
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    let Caller(holder) = caller;
    Json(WhoAmI {
        id: holder.id,
        name: holder.name,
        role: holder.role,
    })
}

/// The audit log, newest first, filtered, one keyset page at a time.
#[utoipa::path(
    get, path = "/audit", tag = "keys",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 422, body = ErrorBody))
)]
pub async fn audit(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>> {
    let limit = paging::limit(query.limit, "entries")?;
    paging::cursor(query.cursor.as_deref(), "aud")?;
    let action = query
        .action
        .as_deref()
        .map(|text| {
            AuditAction::parse(text).ok_or_else(|| {
                FieldError::new(
                    "action",
                    format!(
                        "not an action; one of {}",
                        AuditAction::ALL.map(AuditAction::as_str).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        actor: query.actor,
        action,
        target_id: query.target_id,
        since: query.since,
        until: query.until,
        cursor: query.cursor,
    };
    let mut items = state.store.audit(&filter, limit).await?;
    let next_cursor = paging::next_cursor(&mut items, limit, |entry| &entry.id);
    Ok(Json(AuditPage { items, next_cursor }))
}
