//! Claims: due deliveries taken by one replica's dispatcher until a lease runs out.

use chrono::{DateTime, Utc};

use super::Database;
use crate::store::handoff::{CLAIM_CANDIDATES_PER_SLOT, NEXT_DUE_WINDOW};
use crate::store::model::{JobRow, claimed, from_millis, micros, millis};
use crate::store::pace::{self, PacedDue, PacedRow};
use crate::store::{ClaimLimits, ClaimScope, Claimed, NextDue, Result};

/// Every claim ends `UPDATE deliveries d … FROM events e, webhooks w WHERE d.id =
/// ANY(ARRAY(SELECT id FROM chosen))`, not a join with `chosen`: its `LIMIT` is a
/// parameter, so the plan PostgreSQL keeps for the prepared statement (its generic
/// plan) expects a tenth of the candidates and hashes all of `deliveries` to join them,
/// 30 ms a claim beside 100 000 waiting deliveries. An array is looked up by key.
///
/// What a claim returns of each delivery it takes, `d` joined with its event `e` and
/// webhook `w` (a literal for `concat!`).
macro_rules! job_columns {
    () => {
        "d.id, d.event_id, d.event_type, d.retry_step, d.webhook_id, d.next_attempt_at, \
         e.data, e.created_at AS event_created_at, w.url, w.kind, w.deleted_at"
    };
}

/// The end of every claim: the deliveries in `chosen` leased until `$1`, returned with
/// their events and webhooks (a literal for `concat!`).
macro_rules! lease_chosen {
    () => {
        concat!(
            "UPDATE deliveries d SET lease_until = $1 \
             FROM events e, webhooks w \
             WHERE d.id = ANY(ARRAY(SELECT id FROM chosen)) \
               AND e.id = d.event_id AND w.id = d.webhook_id \
             RETURNING ",
            job_columns!()
        )
    };
}

/// The deliveries of webhook `$webhook` due by `$until`, `$d` being `deliveries`: the
/// bound is a row comparison, which means `$d.next_attempt_at <= $until` here but which
/// only `deliveries_due_by_webhook` can serve. With the plain comparison the planner
/// took `deliveries_due` and walked every delivery due before the webhook's first: 3.4 ms
/// against 0.1 ms behind 100 000 of another webhook's.
macro_rules! due_of_webhook {
    ($d:literal, $webhook:literal, $until:literal) => {
        concat!(
            $d,
            ".webhook_id = ",
            $webhook,
            " AND ",
            $d,
            ".next_attempt_at IS NOT NULL \
             AND (",
            $d,
            ".webhook_id, ",
            $d,
            ".next_attempt_at) <= (",
            $webhook,
            ", ",
            $until,
            ")"
        )
    };
}

impl Database {
    /// Rate-limited webhooks first, in a transaction that locks their pace rows: every
    /// replica's claim takes what the shared pace allows and moves it on, so together they
    /// keep to one budget (a pace another replica holds at that moment is skipped, not
    /// waited for). Then the others, in one statement.
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
        scope: ClaimScope,
    ) -> Result<Claimed> {
        let paced: Vec<PacedRow> = sqlx::query_as(concat!(
            "SELECT w.id AS webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, \
               EXISTS (SELECT 1 FROM deliveries d WHERE ",
            due_of_webhook!("d", "w.id", "$1"),
            " AND (d.lease_until IS NULL OR d.lease_until <= $1)) AS due \
             FROM webhooks w JOIN webhook_pace p ON p.webhook_id = w.id \
             WHERE w.rate_limit IS NOT NULL AND w.deleted_at IS NULL"
        ))
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        let mut paced_rows = Vec::new();
        if !pace::plan(&paced, limits, limit as usize, micros(now)).is_empty() {
            let due: Vec<&str> = paced
                .iter()
                .filter(|row| row.due)
                .map(|row| row.webhook_id.as_str())
                .collect();
            let mut tx = self.pool.begin().await?;
            read_in_index_order(&mut tx).await?;
            let locked: Vec<PacedRow> = sqlx::query_as(
                "SELECT p.webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, \
                   TRUE AS due \
                 FROM webhook_pace p JOIN webhooks w ON w.id = p.webhook_id \
                 WHERE p.webhook_id = ANY($1) AND w.rate_limit IS NOT NULL \
                 ORDER BY p.webhook_id FOR UPDATE OF p SKIP LOCKED",
            )
            .bind(&due)
            .fetch_all(&mut *tx)
            .await?;
            let now = Utc::now();
            for planned in pace::plan(&locked, limits, limit as usize, micros(now)) {
                let rows: Vec<JobRow> = sqlx::query_as(concat!(
                    "WITH chosen AS ( \
                       SELECT id FROM deliveries d WHERE ",
                    due_of_webhook!("d", "$2", "$3"),
                    " AND (lease_until IS NULL OR lease_until <= $3) \
                       ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) ",
                    lease_chosen!()
                ))
                .bind(millis(lease_until))
                .bind(&planned.webhook_id)
                .bind(millis(now))
                .bind(i64::try_from(planned.take).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
                let pace = planned.pace.after(micros(now), rows.len());
                sqlx::query("UPDATE webhook_pace SET next_at_us = $1 WHERE webhook_id = $2")
                    .bind(pace.next_at_us)
                    .bind(&planned.webhook_id)
                    .execute(&mut *tx)
                    .await?;
                paced_rows.extend(rows);
            }
            tx.commit().await?;
        }
        let left = limit.saturating_sub(u32::try_from(paced_rows.len()).unwrap_or(u32::MAX));
        let rows = if left > 0 && scope == ClaimScope::All {
            self.claim_unpaced(now, lease_until, left, limits).await?
        } else {
            Vec::new()
        };
        claimed(paced_rows, rows)
    }

    /// Claims due deliveries of webhooks that are not rate-limited, within `limits`.
    ///
    /// First one statement, over the first [`CLAIM_CANDIDATES_PER_SLOT`] × `limit` due
    /// deliveries of webhooks neither full nor rate-limited, no further than a window of
    /// the earliest due deliveries of all ([`ClaimLimits::claim_window`]). When that
    /// yielded none and more lie beyond the window, they are taken per webhook
    /// ([`Database::claim_per_webhook`]).
    ///
    /// The candidates are locked with `SKIP LOCKED`: a replica claiming at the same
    /// moment takes other deliveries instead of waiting, and once this one commits, the
    /// lease keeps every replica off them until it runs out.
    async fn claim_unpaced(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
    ) -> Result<Vec<JobRow>> {
        let window = limits.claim_window(limit);
        let statement = sqlx::query_as(concat!(
            "WITH candidates AS ( \
               SELECT id, webhook_id, next_attempt_at FROM deliveries \
               WHERE next_attempt_at IS NOT NULL \
                 AND next_attempt_at <= COALESCE((",
            window_end!("$2", "$9"),
            "), $2) \
                 AND webhook_id <> ALL($3::text[]) \
                 AND webhook_id NOT IN (",
            paced_webhooks!(),
            ") AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY next_attempt_at LIMIT $7 \
               FOR UPDATE SKIP LOCKED), \
             chosen AS ( \
               SELECT id FROM ( \
                 SELECT c.id, c.next_attempt_at, \
                   ROW_NUMBER() OVER (PARTITION BY c.webhook_id ORDER BY c.next_attempt_at) \
                     AS nth, \
                   COALESCE(r.room, $6) AS room \
                 FROM candidates c \
                 LEFT JOIN UNNEST($4::text[], $5::bigint[]) AS r(webhook_id, room) \
                   ON r.webhook_id = c.webhook_id) ranked \
               WHERE nth <= room ORDER BY next_attempt_at LIMIT $8) ",
            lease_chosen!()
        ));
        let rows: Vec<JobRow> = with_claim_binds(statement, lease_until, now, limits)
            .bind(i64::from(limit).saturating_mul(CLAIM_CANDIDATES_PER_SLOT))
            .bind(i64::from(limit))
            .bind(window)
            .fetch_all(&self.pool)
            .await?;
        // Only a window that yielded nothing is looked beyond: a look for the window's end
        // after every claim short of its limit, one more round trip, cost 6 % of the
        // deliveries a second end to end. What lies beyond waits for the next claim,
        // which the look for the next due time calls at once.
        if !rows.is_empty() {
            return Ok(rows);
        }
        let window_end: Option<i64> =
            sqlx::query_scalar(concat!("SELECT (", window_end!("$1", "$2"), ")"))
                .bind(millis(now))
                .bind(window)
                .fetch_one(&self.pool)
                .await?;
        if window_end.is_none() {
            // The window held every due delivery: nothing lies beyond it.
            return Ok(rows);
        }
        self.claim_per_webhook(now, lease_until, limit, limits)
            .await
    }

    /// Claims up to `limit` due deliveries in all, earliest first, from the webhooks that
    /// have any and are neither full nor rate-limited, each within its room: one index
    /// range per such webhook (`deliveries_due_by_webhook`), the webhooks found by
    /// skipping through that index from one to the next. Its cost grows with the webhooks
    /// that have deliveries due or under way, not with how many of them wait, which is
    /// why it is the fallback and not the rule.
    async fn claim_per_webhook(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
    ) -> Result<Vec<JobRow>> {
        let statement = sqlx::query_as(concat!(
            due_webhooks!(),
            ", candidates AS ( \
               SELECT c.id, c.next_attempt_at FROM due_webhooks dw \
               LEFT JOIN UNNEST($4::text[], $5::bigint[]) AS r(webhook_id, room) \
                 ON r.webhook_id = dw.webhook_id \
               CROSS JOIN LATERAL ( \
                 SELECT d.id, d.next_attempt_at FROM deliveries d WHERE ",
            due_of_webhook!("d", "dw.webhook_id", "$2"),
            " AND (d.lease_until IS NULL OR d.lease_until <= $2) \
                 ORDER BY d.next_attempt_at LIMIT LEAST(COALESCE(r.room, $6), $7) \
                 FOR UPDATE SKIP LOCKED) c \
               WHERE dw.webhook_id IS NOT NULL AND dw.webhook_id <> ALL($3::text[]) \
                 AND dw.webhook_id NOT IN (",
            paced_webhooks!(),
            ")), \
             chosen AS (SELECT id FROM candidates ORDER BY next_attempt_at LIMIT $7) ",
            lease_chosen!()
        ));
        let rows = with_claim_binds(statement, lease_until, now, limits)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    pub(in crate::store) async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
        scope: ClaimScope,
    ) -> Result<NextDue> {
        let unpaced = match scope {
            ClaimScope::All => self.next_unpaced_due_at(now, full).await?,
            ClaimScope::Paced => None,
        };
        let paced: Vec<PacedDue> = sqlx::query_as(concat!(
            "SELECT w.id AS webhook_id, w.rate_limit::bigint AS rate_limit, p.next_at_us, ( \
               SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE ",
            due_of_webhook!("d", "w.id", "$2"),
            " AND (d.lease_until IS NULL OR d.lease_until <= $1)) AS due_at \
             FROM webhooks w JOIN webhook_pace p ON p.webhook_id = w.id \
             WHERE w.rate_limit IS NOT NULL AND w.deleted_at IS NULL"
        ))
        .bind(millis(now))
        .bind(i64::MAX)
        .fetch_all(&self.pool)
        .await?;
        Ok(NextDue {
            unpaced: unpaced.map(from_millis).transpose()?,
            paced: pace::next_start(&paced, full)
                .map(from_millis)
                .transpose()?,
        })
    }

    /// When the earliest due delivery of a webhook neither full nor rate-limited is due:
    /// the first such within a window of the earliest due deliveries of all, as a claim
    /// looks (see [`Database::claim_unpaced`]); when the window holds none, per webhook.
    async fn next_unpaced_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
    ) -> Result<Option<i64>> {
        let (earliest, window_end): (Option<i64>, Option<i64>) = sqlx::query_as(concat!(
            "WITH bound (end_at) AS (SELECT (",
            window_end!("$4", "$3"),
            ")) \
             SELECT (SELECT MIN(next_attempt_at) FROM deliveries \
                     WHERE next_attempt_at IS NOT NULL \
                       AND next_attempt_at <= COALESCE((SELECT end_at FROM bound), $4) \
                       AND webhook_id <> ALL($1::text[]) \
                       AND webhook_id NOT IN (",
            paced_webhooks!(),
            ") AND (lease_until IS NULL OR lease_until <= $2)), \
               (SELECT end_at FROM bound)"
        ))
        .bind(full)
        .bind(millis(now))
        .bind(NEXT_DUE_WINDOW)
        .bind(i64::MAX)
        .fetch_one(&self.pool)
        .await?;
        if earliest.is_some() || window_end.is_none() {
            return Ok(earliest);
        }
        let earliest: Option<i64> = sqlx::query_scalar(concat!(
            due_webhooks!(),
            " SELECT MIN((SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE ",
            due_of_webhook!("d", "dw.webhook_id", "$3"),
            " AND (d.lease_until IS NULL OR d.lease_until <= $2))) \
             FROM due_webhooks dw \
             WHERE dw.webhook_id IS NOT NULL AND dw.webhook_id <> ALL($1::text[]) \
               AND dw.webhook_id NOT IN (",
            paced_webhooks!(),
            ")"
        ))
        .bind(full)
        .bind(millis(now))
        .bind(i64::MAX)
        .fetch_one(&self.pool)
        .await?;
        Ok(earliest)
    }

    pub(in crate::store) async fn postpone(
        &self,
        delivery_id: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let postponed = sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1, lease_until = NULL \
             WHERE id = $2 AND next_attempt_at IS NOT NULL AND lease_until IS NOT NULL",
        )
        .bind(millis(until))
        .bind(delivery_id)
        .execute(&self.pool)
        .await?;
        Ok(postponed.rows_affected() > 0)
    }
}

/// A claim statement with what both kinds share bound as `$1` to `$6`: the lease's end,
/// now, the full webhooks, each listed webhook's room (ids, then rooms), and the share
/// of any other.
fn with_claim_binds<'q>(
    statement: ClaimStatement<'q>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: &ClaimLimits,
) -> ClaimStatement<'q> {
    let (room_ids, room): (Vec<String>, Vec<i64>) = limits
        .room
        .iter()
        .map(|(webhook_id, room)| (webhook_id.clone(), i64::try_from(*room).unwrap_or(i64::MAX)))
        .unzip();
    statement
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(limits.full.clone())
        .bind(room_ids)
        .bind(room)
        .bind(i64::try_from(limits.per_webhook).unwrap_or(i64::MAX))
}

type ClaimStatement<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>;

/// Has the rest of transaction `tx` read rows through an index in its order, with no
/// sort and no bitmap scan, where PostgreSQL can: a rate-limited webhook's earliest due
/// deliveries come from `deliveries_due_by_webhook`. Its statistics lag behind a burst
/// until autovacuum analyzes the table again, up to a minute later. Right after 100 000
/// deliveries were queued they still said the webhook had a handful, and each claim
/// fetched all 100 000 through a bitmap scan and sorted them: 30 ms a claim, and a
/// healthy webhook beside it slowed to 43 % of its pace (64-72 % with this; BENCHMARKS.md,
/// 2026-12-03). Not for the look for the next paced turn, called far more often: the
/// transaction around it cost 7 % of the deliveries a second end to end.
async fn read_in_index_order(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::raw_sql("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
        .execute(tx)
        .await?;
    Ok(())
}
