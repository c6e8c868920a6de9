//! SQL that both backends share: the reads of the delivery history, written once and
//! bound through each backend's query builder, which writes its own placeholders.

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::model::{AttemptHistoryRow, CountsRow, DeliveryRow, millis};
use super::{Result, StoreError};
use crate::api::{Attempt, CodeClass, Delivery, DeliveryQuery, SortOrder};
use crate::search::Terms;

/// How each backend finds what `q` names: a delivery or event by id, or the events whose
/// data holds its terms (see `search.rs`). The one part of a delivery query that is not
/// the same SQL on both, because each planner needs it said its own way to start from
/// the search's few matches rather than walk the history testing each row.
pub(super) trait PayloadMatch: sqlx::Database {
    /// Written before a filter's column beside a search, keeps the planner from that
    /// column's indexes (SQLite would walk every failed delivery through the status index
    /// and test each against the search).
    const BESIDE_A_SEARCH: &'static str;

    /// ` AND …`: the deliveries `q` names.
    fn push_search(sql: &mut QueryBuilder<Self>, q: &str);
}

impl PayloadMatch for Sqlite {
    const BESIDE_A_SEARCH: &'static str = "+";

    fn push_search(sql: &mut QueryBuilder<Self>, q: &str) {
        sql.push(" AND (event_id = ")
            .push_bind(q.to_owned())
            .push(" OR id = ")
            .push_bind(q.to_owned());
        if let Some(terms) = Terms::parse(q) {
            sql.push(
                " OR event_id IN (SELECT e.id FROM events e WHERE e.rowid IN \
                   (SELECT rowid FROM event_text WHERE event_text MATCH ",
            )
            .push_bind(terms.fts5_query())
            .push("))");
        }
        sql.push(")");
    }
}

impl PayloadMatch for Postgres {
    // PostgreSQL weighs the GIN index's estimate against the others itself.
    const BESIDE_A_SEARCH: &'static str = "";

    fn push_search(sql: &mut QueryBuilder<Self>, q: &str) {
        // The ids as an array computed first, rather than an OR or an IN: given either,
        // PostgreSQL walks the whole history newest first, testing each row against the
        // search (365 ms on 1 M deliveries); given an array it looks each id up (12 ms).
        // The matching events are an array of their own for the same reason: joined,
        // the plan hangs on the search's estimate, and with no statistics yet (a new
        // index, before autovacuum's first ANALYZE) it hashed the whole history.
        sql.push(" AND id = ANY(ARRAY(SELECT id FROM deliveries WHERE event_id = ")
            .push_bind(q.to_owned())
            .push(" UNION SELECT id FROM deliveries WHERE id = ")
            .push_bind(q.to_owned());
        if let Some(terms) = Terms::parse(q) {
            sql.push(
                " UNION SELECT id FROM deliveries WHERE event_id = ANY(ARRAY(\
                 SELECT s.event_id FROM event_search s WHERE s.tokens @> ",
            )
            .push_bind(terms.tokens.clone())
            .push("::text[]");
            if terms.phrase {
                // The array holds no order: a phrase is looked for in the tokens in order,
                // as whole tokens (a space either side), as FTS5 does on SQLite.
                let escaped = terms
                    .tokens
                    .join(" ")
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                sql.push(" AND ' ' || s.text || ' ' LIKE ")
                    .push_bind(format!("% {escaped} %"))
                    .push(" ESCAPE '\\'");
            }
            sql.push("))");
        }
        sql.push("))");
    }
}

/// The filters and keyset of a page of deliveries, after `WHERE 1 = 1`: the same SQL on
/// both backends, bound by each one's builder.
fn push_delivery_conditions<DB>(sql: &mut QueryBuilder<DB>, query: &DeliveryQuery)
where
    DB: PayloadMatch,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let not_indexed = if query.q.is_some() {
        DB::BESIDE_A_SEARCH
    } else {
        ""
    };
    if let Some(webhook_id) = &query.webhook_id {
        sql.push(format_args!(" AND {not_indexed}webhook_id = "))
            .push_bind(webhook_id.clone());
    }
    if let Some(status) = query.status {
        sql.push(format_args!(" AND {not_indexed}status = "))
            .push_bind(status.as_str());
    }
    if let Some(event_type) = &query.event_type {
        sql.push(format_args!(" AND {not_indexed}event_type = "))
            .push_bind(event_type.clone());
    }
    if let Some(since) = query.since {
        sql.push(format_args!(" AND {not_indexed}created_at >= "))
            .push_bind(millis(since));
    }
    if let Some(until) = query.until {
        sql.push(format_args!(" AND {not_indexed}created_at < "))
            .push_bind(millis(until));
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
        DB::push_search(sql, q);
    }
    if let Some(cursor) = &query.cursor {
        let beyond = match query.order.unwrap_or_default() {
            SortOrder::Desc => " AND id < ",
            SortOrder::Asc => " AND id > ",
        };
        sql.push(beyond).push_bind(cursor.clone());
    }
}

/// [`push_delivery_conditions`], newest first, `limit` rows.
fn push_delivery_page<DB>(sql: &mut QueryBuilder<DB>, query: &DeliveryQuery, limit: i64)
where
    DB: PayloadMatch,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    push_delivery_conditions(sql, query);
    let order = match query.order.unwrap_or_default() {
        SortOrder::Desc => " ORDER BY id DESC LIMIT ",
        SortOrder::Asc => " ORDER BY id ASC LIMIT ",
    };
    sql.push(order).push_bind(limit);
}

/// The hourly counts summed per bucket of `width`, after `SELECT (hour_start / `.
fn push_stats_query<DB>(
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

/// A delivery by id, on whichever backend `pool` is.
pub(super) async fn delivery<DB>(pool: &sqlx::Pool<DB>, delivery_id: &str) -> Result<Delivery>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    DeliveryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut sql: QueryBuilder<DB> = QueryBuilder::new(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = "
    ));
    sql.push_bind(delivery_id.to_owned());
    let row: DeliveryRow = sql
        .build_query_as()
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// A delivery with its event's data (JSON text) and every attempt, oldest first.
pub(super) async fn delivery_detail<DB>(
    pool: &sqlx::Pool<DB>,
    delivery_id: &str,
) -> Result<(Delivery, String, Vec<Attempt>)>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    DeliveryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    AttemptHistoryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let delivery = delivery(pool, delivery_id).await?;
    let mut data: QueryBuilder<DB> = QueryBuilder::new("SELECT data FROM events WHERE id = ");
    data.push_bind(delivery.event_id.clone());
    let (data,): (String,) = data.build_query_as().fetch_one(pool).await?;
    let mut attempts: QueryBuilder<DB> = QueryBuilder::new(concat!(
        "SELECT ",
        attempt_columns!(),
        " FROM delivery_attempts WHERE delivery_id = "
    ));
    attempts
        .push_bind(delivery_id.to_owned())
        .push(" ORDER BY id");
    let rows: Vec<AttemptHistoryRow> = attempts.build_query_as().fetch_all(pool).await?;
    let attempts = rows
        .into_iter()
        .map(Attempt::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok((delivery, data, attempts))
}

/// A page of deliveries, newest first, and one more (see [`push_delivery_conditions`]).
pub(super) async fn deliveries<DB>(
    pool: &sqlx::Pool<DB>,
    query: &DeliveryQuery,
    limit: u32,
) -> Result<Vec<Delivery>>
where
    DB: PayloadMatch,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    DeliveryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut sql: QueryBuilder<DB> = QueryBuilder::new(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE 1 = 1"
    ));
    push_delivery_page(&mut sql, query, i64::from(limit) + 1);
    let rows: Vec<DeliveryRow> = sql.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// How many deliveries `query`'s filters match (its cursor ignored), counted up to `cap`
/// and one more: the walk is bounded whatever the history's size.
pub(super) async fn count_deliveries<DB>(
    pool: &sqlx::Pool<DB>,
    query: &DeliveryQuery,
    cap: u64,
) -> Result<u64>
where
    DB: PayloadMatch,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let uncursored = DeliveryQuery {
        cursor: None,
        ..query.clone()
    };
    let mut sql: QueryBuilder<DB> = QueryBuilder::new(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 AS one FROM deliveries WHERE 1 = 1",
    );
    push_delivery_conditions(&mut sql, &uncursored);
    sql.push(" LIMIT ")
        .push_bind(i64::try_from(cap).unwrap_or(i64::MAX).saturating_add(1))
        .push(") AS matched");
    let (count,): (i64,) = sql.build_query_as().fetch_one(pool).await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The hourly counts summed per bucket of `width` from `start` (see [`push_stats_query`]).
pub(super) async fn stats<DB>(
    pool: &sqlx::Pool<DB>,
    webhook_id: Option<&str>,
    start: i64,
    width: i64,
) -> Result<Vec<CountsRow>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    CountsRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut sql: QueryBuilder<DB> = QueryBuilder::new("SELECT (hour_start / ");
    push_stats_query(&mut sql, webhook_id, start, width);
    Ok(sql.build_query_as().fetch_all(pool).await?)
}

/// Deliveries due at `now` that no attempt holds, and the earliest time one fell due.
pub(super) async fn due_backlog<DB>(pool: &sqlx::Pool<DB>, now: i64) -> Result<(i64, Option<i64>)>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    (i64, Option<i64>): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut sql: QueryBuilder<DB> = QueryBuilder::new(
        "SELECT CAST(COUNT(*) AS BIGINT), MIN(next_attempt_at) FROM deliveries \
         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ",
    );
    sql.push_bind(now)
        .push(" AND (lease_until IS NULL OR lease_until <= ")
        .push_bind(now)
        .push(")");
    Ok(sql.build_query_as().fetch_one(pool).await?)
}

/// A delivery as a bulk resend sees it: whether an attempt holds it, and whether its
/// webhook takes deliveries.
#[derive(sqlx::FromRow)]
pub(super) struct ResendCandidate {
    pub id: String,
    pub webhook_id: String,
    pub lease_until: Option<i64>,
    /// `active`, `inactive` or `gone`.
    pub webhook_state: String,
}

/// Whether a row of `deliveries`' webhook takes deliveries: `active`, `inactive` or
/// `gone` (deleted), as SQL both backends take; a literal for `concat!`.
macro_rules! webhook_state_sql {
    () => {
        "COALESCE((SELECT CASE WHEN w.deleted_at IS NOT NULL THEN 'gone' \
                               WHEN w.is_active THEN 'active' ELSE 'inactive' END \
                   FROM webhooks w WHERE w.id = deliveries.webhook_id), 'gone')"
    };
}
pub(super) use webhook_state_sql;

/// The columns of a [`ResendCandidate`], from `deliveries`.
const CANDIDATE_COLUMNS: &str = concat!(
    "SELECT id, webhook_id, lease_until, ",
    webhook_state_sql!(),
    " AS webhook_state FROM deliveries WHERE "
);

/// Which deliveries a chunk of a bulk resend reads.
pub(super) enum Candidates<'a> {
    /// These ids (those not found are not returned).
    Ids(&'a [String]),
    /// The next `limit` deliveries `query` lists, after its cursor.
    Matching {
        query: &'a DeliveryQuery,
        limit: i64,
    },
    /// Every delivery `query` lists from `oldest` on, up to its cursor: a page again.
    From {
        query: &'a DeliveryQuery,
        oldest: &'a str,
    },
}

pub(super) async fn resend_candidates<DB>(
    pool: &sqlx::Pool<DB>,
    which: Candidates<'_>,
) -> Result<Vec<ResendCandidate>>
where
    DB: PayloadMatch,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    ResendCandidate: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    match candidates(which) {
        Some(mut sql) => Ok(sql.build_query_as().fetch_all(pool).await?),
        None => Ok(Vec::new()),
    }
}

/// The read of [`Candidates`]; none for no ids.
fn candidates<DB>(which: Candidates<'_>) -> Option<QueryBuilder<DB>>
where
    DB: PayloadMatch,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql: QueryBuilder<DB> = QueryBuilder::new(CANDIDATE_COLUMNS);
    match which {
        Candidates::Ids([]) => return None,
        Candidates::Ids(ids) => {
            sql.push("id IN (");
            push_list(&mut sql, ids);
            sql.push(")");
        }
        Candidates::Matching { query, limit } => {
            sql.push("1 = 1");
            push_delivery_page(&mut sql, query, limit);
        }
        Candidates::From { query, oldest } => {
            sql.push("1 = 1");
            push_delivery_conditions(&mut sql, query);
            sql.push(" AND id >= ").push_bind(oldest.to_owned());
        }
    }
    Some(sql)
}

/// `UPDATE deliveries SET …` queuing deliveries again with a fresh retry cycle, where no
/// attempt holds them and their webhook is active; the caller adds which, and what the
/// statement returns.
fn push_requeue<DB>(sql: &mut QueryBuilder<DB>, now: i64)
where
    DB: sqlx::Database,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    sql.push(
        "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END, \
           retry_step = 0, lease_until = NULL, next_attempt_at = ",
    )
    .push_bind(now)
    .push(" WHERE (lease_until IS NULL OR lease_until <= ")
    .push_bind(now)
    .push(
        ") AND webhook_id IN (SELECT w.id FROM webhooks w \
           WHERE w.is_active AND w.deleted_at IS NULL)",
    );
}

/// The UPDATE that queues `ids` again with a fresh retry cycle, where no attempt holds
/// them and their webhook is active, returning the ids it queued. Ids must not be empty.
pub(super) fn requeue<DB>(ids: &[String], now: i64) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = QueryBuilder::new("");
    push_requeue(&mut sql, now);
    sql.push(" AND id IN (");
    push_list(&mut sql, ids);
    sql.push(") RETURNING id");
    sql
}

/// One page of a bulk resend by filter, as it was written in one transaction.
#[derive(Default)]
pub(super) struct RequeuedPage {
    /// Deliveries the page held.
    pub read: usize,
    /// The oldest of them: the next page's cursor.
    pub oldest: Option<String>,
    /// Those queued again, with their webhook ids.
    pub queued: Vec<(String, String)>,
    /// The rest, as they stand, for the answer to say why.
    pub passed_over: Vec<ResendCandidate>,
}

/// Queues again the next `limit` deliveries `query` lists, after its cursor, in the
/// transaction `conn` is in. The page is found and written by the database in one
/// statement, not read out and written back by id: at 100 000 deliveries, reading them
/// out cost as much again as writing them. Only when some were passed over are they read,
/// to say why.
pub(super) async fn requeue_page<DB>(
    conn: &mut DB::Connection,
    query: &DeliveryQuery,
    limit: i64,
    now: i64,
) -> Result<RequeuedPage>
where
    DB: PayloadMatch,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    &'static str: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    (i64, Option<String>): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    ResendCandidate: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut extent: QueryBuilder<DB> = QueryBuilder::new(
        "SELECT CAST(COUNT(*) AS BIGINT), MIN(id) FROM (SELECT id FROM deliveries WHERE 1 = 1",
    );
    push_delivery_page(&mut extent, query, limit);
    extent.push(") AS page");
    let (read, oldest): (i64, Option<String>) =
        extent.build_query_as().fetch_one(&mut *conn).await?;
    let Some(oldest) = oldest else {
        return Ok(RequeuedPage::default());
    };
    let mut update = QueryBuilder::new("");
    push_requeue(&mut update, now);
    update.push(" AND id IN (SELECT id FROM deliveries WHERE 1 = 1");
    push_delivery_page(&mut update, query, limit);
    update.push(") RETURNING id, webhook_id");
    let queued: Vec<(String, String)> = update.build_query_as().fetch_all(&mut *conn).await?;
    let read = usize::try_from(read).unwrap_or(usize::MAX);
    let mut passed_over = Vec::new();
    if queued.len() < read {
        let which = Candidates::From {
            query,
            oldest: &oldest,
        };
        if let Some(mut sql) = candidates::<DB>(which) {
            let written: std::collections::HashSet<&str> =
                queued.iter().map(|(id, _)| id.as_str()).collect();
            passed_over = sql
                .build_query_as::<ResendCandidate>()
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .filter(|candidate| !written.contains(candidate.id.as_str()))
                .collect();
        }
    }
    Ok(RequeuedPage {
        read,
        oldest: Some(oldest),
        queued,
        passed_over,
    })
}

/// `a, b, c` as binds.
fn push_list<DB>(sql: &mut QueryBuilder<DB>, items: &[String])
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut list = sql.separated(", ");
    for item in items {
        list.push_bind(item.clone());
    }
}

/// Up to `limit` finished deliveries that finished before `cutoff`, with their event ids:
/// a prune batch. `cutoff_id` is the smallest delivery id made at `cutoff`: a delivery
/// finishes after it is made, so the scan stays in `deliveries_by_status` below it.
/// `suffix` ends the statement (PostgreSQL locks the rows).
pub(super) fn prunable<DB>(
    cutoff: i64,
    cutoff_id: &str,
    limit: i64,
    suffix: &str,
) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = QueryBuilder::new(
        "SELECT id, event_id FROM deliveries \
         WHERE status IN ('succeeded', 'failed') AND next_attempt_at IS NULL AND id < ",
    );
    sql.push_bind(cutoff_id.to_owned())
        .push(" AND COALESCE(last_attempt_at, created_at) < ")
        .push_bind(cutoff)
        .push(" LIMIT ")
        .push_bind(limit)
        .push(suffix);
    sql
}

/// The statements that delete a prune batch's deliveries `ids`, their attempts, and
/// those of their `events` no delivery is left of, in that order.
pub(super) fn prune_statements<DB>(ids: &[String], events: &[String]) -> [QueryBuilder<DB>; 3]
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut attempts = QueryBuilder::new("DELETE FROM delivery_attempts WHERE delivery_id IN (");
    push_list(&mut attempts, ids);
    attempts.push(")");
    let mut deliveries = QueryBuilder::new("DELETE FROM deliveries WHERE id IN (");
    push_list(&mut deliveries, ids);
    deliveries.push(")");
    [attempts, deliveries, delete_undelivered(events)]
}

/// Deletes those of `events` that no delivery is left of.
pub(super) fn delete_undelivered<DB>(events: &[String]) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut orphans = QueryBuilder::new("DELETE FROM events WHERE id IN (");
    push_list(&mut orphans, events);
    orphans.push(") AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)");
    orphans
}

/// The next `limit` event ids after `after`, in id order, with when each was emitted: a
/// chunk of retention's pass over events (see `Store::prune`).
pub(super) async fn events_after<DB>(
    pool: &sqlx::Pool<DB>,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, i64)>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    (String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut sql: QueryBuilder<DB> =
        QueryBuilder::new("SELECT id, created_at FROM events WHERE id > ");
    sql.push_bind(after.to_owned())
        .push(" ORDER BY id LIMIT ")
        .push_bind(limit);
    Ok(sql.build_query_as().fetch_all(pool).await?)
}
