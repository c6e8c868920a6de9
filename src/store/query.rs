//! SQL text that both backends share, bound through each one's query builder.

use sqlx::QueryBuilder;

use super::model::millis;
use crate::api::{CodeClass, DeliveryQuery};

/// The filters, keyset and limit of a page of deliveries, after `WHERE 1 = 1`: the same
/// SQL on both backends, bound by each one's builder.
pub(super) fn push_delivery_filters<DB>(
    sql: &mut QueryBuilder<DB>,
    query: &DeliveryQuery,
    limit: u32,
) where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(webhook_id) = &query.webhook_id {
        sql.push(" AND webhook_id = ").push_bind(webhook_id.clone());
    }
    if let Some(status) = query.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(event_type) = &query.event_type {
        sql.push(" AND event_type = ").push_bind(event_type.clone());
    }
    if let Some(since) = query.since {
        sql.push(" AND created_at >= ").push_bind(millis(since));
    }
    if let Some(until) = query.until {
        sql.push(" AND created_at < ").push_bind(millis(until));
    }
    match query.code.map(CodeClass::codes) {
        Some(Some(codes)) => {
            sql.push(" AND status_code BETWEEN ")
                .push_bind(i64::from(*codes.start()))
                .push(" AND ")
                .push_bind(i64::from(*codes.end()));
        }
        Some(None) => {
            sql.push(" AND status_code IS NULL AND attempts > 0");
        }
        None => {}
    }
    if let Some(q) = &query.q {
        sql.push(" AND (event_id = ")
            .push_bind(q.clone())
            .push(" OR id = ")
            .push_bind(q.clone())
            .push(")");
    }
    if let Some(cursor) = &query.cursor {
        sql.push(" AND id < ").push_bind(cursor.clone());
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
}

/// The hourly counts summed per bucket of `width`, after `SELECT (hour_start / `.
pub(super) fn push_stats_query<DB>(
    sql: &mut QueryBuilder<DB>,
    webhook_id: Option<&str>,
    start: i64,
    width: i64,
) where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    sql.push_bind(width)
        .push(") * ")
        .push_bind(width)
        .push(
            " AS bucket_start, CAST(SUM(succeeded) AS BIGINT) AS succeeded, \
             CAST(SUM(failed) AS BIGINT) AS failed FROM delivery_counts WHERE hour_start >= ",
        )
        .push_bind(start);
    if let Some(webhook_id) = webhook_id {
        sql.push(" AND webhook_id = ")
            .push_bind(webhook_id.to_owned());
    }
    sql.push(" GROUP BY bucket_start ORDER BY bucket_start");
}
