//! The delivery history: reading it, resending, recovering, stats, deactivation.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};

use super::Database;
use crate::api::{Attempt, Delivery, DeliveryQuery};
use crate::store::model::{CountsRow, millis};
use crate::store::query::{self, Candidates, RequeuedPage, ResendCandidate, webhook_state_sql};
use crate::store::{Audit, Result, StoreError};

/// Cancels a webhook's unfinished deliveries, e.g. when it is deactivated or deleted.
pub(super) async fn cancel_unfinished(
    tx: &mut Transaction<'_, Sqlite>,
    webhook_id: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ? \
         WHERE webhook_id = ? AND status IN ('pending', 'retrying')",
    )
    .bind(reason)
    .bind(webhook_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Database {
    pub(in crate::store) async fn resend(&self, delivery_id: &str, audit: &Audit) -> Result<()> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        let found: Option<(Option<i64>, String)> = sqlx::query_as(concat!(
            "SELECT lease_until, ",
            webhook_state_sql!(),
            " FROM deliveries WHERE id = ?"
        ))
        .bind(delivery_id)
        .fetch_optional(&mut **tx)
        .await?;
        match found {
            None => return Err(StoreError::NotFound),
            Some((_, state)) if state != "active" => {
                return Err(StoreError::WebhookInactive {
                    deleted: state == "gone",
                });
            }
            Some((Some(until), _)) if until > now => return Err(StoreError::Busy),
            Some(_) => {}
        }
        sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END, \
               retry_step = 0, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
        )
        .bind(now)
        .bind(delivery_id)
        .execute(&mut **tx)
        .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn resend_candidates(
        &self,
        which: Candidates<'_>,
    ) -> Result<Vec<ResendCandidate>> {
        query::resend_candidates(&self.pool, which).await
    }

    /// One chunk of a bulk resend, in a transaction of its own.
    pub(in crate::store) async fn requeue(&self, ids: &[String], now: i64) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let queued: Vec<String> = query::requeue::<Sqlite>(ids, now)
            .build_query_scalar()
            .fetch_all(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// One page of a bulk resend by filter, in a transaction of its own.
    pub(in crate::store) async fn requeue_page(
        &self,
        query: &DeliveryQuery,
        limit: i64,
        now: i64,
    ) -> Result<RequeuedPage> {
        let mut tx = self.begin_write().await?;
        let page = query::requeue_page::<Sqlite>(&mut **tx, query, limit, now).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// One batch of pruning, in a transaction of its own: the number of deliveries
    /// deleted.
    pub(in crate::store) async fn prune_batch(
        &self,
        cutoff: i64,
        cutoff_id: &str,
        limit: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, String)> = query::prunable::<Sqlite>(cutoff, cutoff_id, limit, "")
            .build_query_as()
            .fetch_all(&mut **tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (ids, mut events): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
        events.sort_unstable();
        events.dedup();
        let [mut attempts, mut deliveries, mut orphans] =
            query::prune_statements::<Sqlite>(&ids, &events);
        attempts.build().execute(&mut **tx).await?;
        let deleted = deliveries.build().execute(&mut **tx).await?.rows_affected();
        orphans.build().execute(&mut **tx).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Deletes those of `events` that no delivery is left of (see `Store::prune`).
    pub(in crate::store) async fn delete_undelivered(&self, events: &[String]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = query::delete_undelivered::<Sqlite>(events)
            .build()
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    /// Deletes the hourly counts of hours before `before`.
    pub(in crate::store) async fn prune_counts(&self, before: i64) -> Result<u64> {
        self.write_one(sqlx::query("DELETE FROM delivery_counts WHERE hour_start < ?").bind(before))
            .await
    }

    pub(in crate::store) async fn recover(
        &self,
        webhook_id: &str,
        since: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<u64> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ? AND deleted_at IS NULL")
                .bind(webhook_id)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let queued = sqlx::query(
            "UPDATE deliveries SET status = 'retrying', retry_step = 0, next_attempt_at = ?, \
               lease_until = NULL \
             WHERE webhook_id = ? AND status = 'failed' AND created_at >= ?",
        )
        .bind(now)
        .bind(webhook_id)
        .bind(millis(since))
        .execute(&mut **tx)
        .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(queued.rows_affected())
    }

    pub(in crate::store) async fn delivery(&self, delivery_id: &str) -> Result<Delivery> {
        query::delivery(&self.pool, delivery_id).await
    }

    pub(in crate::store) async fn delivery_detail(
        &self,
        delivery_id: &str,
    ) -> Result<(Delivery, String, Vec<Attempt>)> {
        query::delivery_detail(&self.pool, delivery_id).await
    }

    pub(in crate::store) async fn deliveries(
        &self,
        query: &DeliveryQuery,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        query::deliveries(&self.pool, query, limit).await
    }

    pub(in crate::store) async fn stats(
        &self,
        webhook_id: Option<&str>,
        start: i64,
        width: i64,
    ) -> Result<Vec<CountsRow>> {
        query::stats(&self.pool, webhook_id, start, width).await
    }

    pub(in crate::store) async fn deactivate_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        audit: &Audit,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE webhooks SET is_active = FALSE, disabled_reason = ?, updated_at = ? \
             WHERE id = ? AND is_active AND deleted_at IS NULL",
        )
        .bind(reason)
        .bind(millis(Utc::now()))
        .bind(webhook_id)
        .execute(&mut **tx)
        .await?;
        if changed.rows_affected() == 1 {
            cancel_unfinished(&mut tx, webhook_id, &format!("cancelled: {reason}")).await?;
            super::access::record(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }
}
