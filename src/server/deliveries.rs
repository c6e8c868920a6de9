//! `/v1/admin/deliveries`: delivery history, every attempt, and Resend.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, OrNotFound as _, Result};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, paging};
use crate::api::{
    AuditAction, BULK_RESEND_MAX_IDS, BulkResendIn, BulkResent, DELIVERY_TOTAL_CAP, Delivery,
    DeliveryDetail, DeliveryDetailQuery, DeliveryList, DeliveryQuery, ErrorBody,
};
use crate::search::Terms;
use crate::store::StoreError;
use crate::validate::FieldError;

/// Largest body of `POST /deliveries/resend`: 10 000 ids of 30 characters fit.
pub const BULK_BODY_LIMIT_BYTES: usize = 1024 * 1024;

fn missing_delivery(id: &str) -> impl FnOnce() -> String + '_ {
    move || format!("there is no delivery with id {id:?}")
}

/// Deliveries, newest first, filtered, one keyset page at a time.
#[utoipa::path(
    get, path = "/deliveries", tag = "deliveries",
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 422, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>> {
    let limit = paging::limit(query.limit, "deliveries")?;
    paging::cursor(query.cursor.as_deref(), "dlv")?;
    // An `until` at or before `since` is an empty window: an empty page.
    if let (Some(since), Some(until)) = (query.since, query.until)
        && until <= since
    {
        return Ok(Json(DeliveryList {
            items: Vec::new(),
            next_cursor: None,
            total: query.cursor.is_none().then_some(0),
            total_capped: false,
        }));
    }
    let mut items = state.store.deliveries(&query, limit).await?;
    let next_cursor = paging::next_cursor(&mut items, limit, |delivery| &delivery.id);
    // Counted on a first page only: the later pages share its filters.
    let (total, total_capped) = if query.cursor.is_some() {
        (None, false)
    } else if next_cursor.is_none() {
        // The whole match is on this page: no count needed.
        (Some(items.len() as u64), false)
    } else {
        let counted = state
            .store
            .count_deliveries(&query, DELIVERY_TOTAL_CAP)
            .await?;
        let capped = counted > DELIVERY_TOTAL_CAP;
        (Some(counted.min(DELIVERY_TOTAL_CAP)), capped)
    };
    Ok(Json(DeliveryList {
        items,
        next_cursor,
        total,
        total_capped,
    }))
}

/// A delivery with the event's data and every attempt, oldest first.
#[utoipa::path(
    get, path = "/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id"), DeliveryDetailQuery),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveryDetailQuery>,
) -> Result<Json<DeliveryDetail>> {
    let (delivery, data, attempts) = state
        .store
        .delivery_detail(&id)
        .await
        .or_not_found(missing_delivery(&id))?;
    let payload = serde_json::from_str(&data).map_err(|err| {
        tracing::error!(delivery_id = id, "stored event data is not JSON: {err}");
        ApiError::internal()
    })?;
    let mut detail = DeliveryDetail::new(delivery, payload, attempts);
    if let Some(terms) = query.q.as_deref().and_then(Terms::parse) {
        detail.matched = terms.matched_paths(&data);
    }
    Ok(Json(detail))
}

/// Send again now with the same event id, whatever the delivery's status; every earlier
/// attempt stays in its history. Refused (409 `webhook_inactive`) while its webhook is
/// deactivated or deleted, as a bulk resend skips those.
#[utoipa::path(
    post, path = "/deliveries/{id}/resend", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued", body = Delivery),
        (status = 404, body = ErrorBody),
        (status = 409, description = "An attempt is under way (`attempt_in_progress`), or its webhook is deactivated or deleted (`webhook_inactive`)", body = ErrorBody),
    )
)]
pub async fn resend(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>)> {
    let audit = caller.audit(AuditAction::DeliveryResend, Some(&id));
    let delivery = match state.store.resend(&id, &audit).await {
        Err(StoreError::Busy) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "attempt_in_progress",
                "an attempt of this delivery is under way; resend once it has finished",
            ));
        }
        other => other.or_not_found(missing_delivery(&id))?,
    };
    state.dispatch.wake();
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// Queues many deliveries again at once, each with a fresh retry cycle: those named by
/// `ids`, or every one `GET /deliveries` lists for `filter`, with no cap. Deliveries an
/// attempt holds, and those of inactive or deleted webhooks, are skipped and listed.
/// The writes go in chunks of 500, so other traffic goes on meanwhile.
#[utoipa::path(
    post, path = "/deliveries/resend", tag = "deliveries",
    request_body = BulkResendIn,
    responses(
        (status = 202, description = "Queued", body = BulkResent),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn resend_many(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(input): ApiJson<BulkResendIn, BULK_BODY_LIMIT_BYTES>,
) -> Result<(StatusCode, Json<BulkResent>)> {
    let asked = match (&input.ids, &input.filter) {
        (Some(ids), _) => json!({ "ids": ids.len() }),
        (None, filter) => json!({ "filter": filter }),
    };
    let resent = match (input.ids, input.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > BULK_RESEND_MAX_IDS {
                return Err(FieldError::new(
                    "ids",
                    format!(
                        "name 1 to {BULK_RESEND_MAX_IDS} deliveries (got {}); for more, pass a filter",
                        ids.len()
                    ),
                )
                .into());
            }
            state.store.resend_ids(&ids, input.dry_run).await?
        }
        // An `until` at or before `since` matches nothing, as it lists nothing.
        (None, Some(filter)) => state.store.resend_matching(&filter, input.dry_run).await?,
        (Some(_), Some(_)) => {
            return Err(FieldError::new("filter", "give ids or a filter, not both").into());
        }
        (None, None) => {
            return Err(FieldError::new(
                "ids",
                "give ids (1 to 10 000 delivery ids) or a filter (as GET /deliveries takes)",
            )
            .into());
        }
    };
    if resent.queued > 0 && !input.dry_run {
        state.dispatch.wake();
    }
    if !input.dry_run {
        // Written once every chunk is: a resend of many is many transactions. Should the
        // entry fail to be written, the resend stands and the answer says what it did.
        let mut detail = asked;
        detail["queued"] = resent.queued.into();
        detail["skipped"] = resent.skipped_total.into();
        let audit = caller
            .audit(AuditAction::DeliveriesResendBulk, None)
            .with_detail(detail);
        if let Err(err) = state.store.record_audit(&audit).await {
            tracing::error!("the audit entry of a bulk resend was not written: {err}");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(resent)))
}
