//! Webhooks, their event types and their signing secrets.

use chrono::Utc;

use super::Database;
use super::history::cancel_unfinished;
use crate::api::Webhook;
use crate::store::model::{
    SecretRow, WebhookRow, health_window_start, millis, previous_secrets_by_webhook,
    previous_secrets_query, webhooks_with_events,
};
use crate::store::{
    Audit, NewWebhook, Result, SealedSecret, SecretRotation, StoreError, WebhookChanges,
};

impl Database {
    pub(in crate::store) async fn insert_webhook(
        &self,
        new: &NewWebhook,
        audit: &Audit,
    ) -> Result<()> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, name, url, kind, description, owner, is_active, \
             rate_limit, secret_hint, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, TRUE, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.url)
        .bind(new.kind.as_str())
        .bind(&new.description)
        .bind(&new.owner)
        .bind(new.rate_limit)
        .bind(&new.secret_hint)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if new.rate_limit.is_some() {
            add_pace(&mut tx, &new.id).await?;
        }
        replace_events(&mut tx, &new.id, &new.events).await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (webhook_id, sealed, key_id, hint, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.sealed_secret.blob)
        .bind(&new.sealed_secret.key_id)
        .bind(&new.secret_hint)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!("?1"),
            " WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(health_window_start())
        .fetch_all(&self.pool)
        .await?;
        let events = sqlx::query_as(
            "SELECT e.webhook_id, e.event_type FROM webhook_events e \
             JOIN webhooks w ON w.id = e.webhook_id WHERE w.deleted_at IS NULL \
             ORDER BY e.webhook_id, e.event_type",
        )
        .fetch_all(&self.pool)
        .await?;
        let secrets = previous_secrets_query::<sqlx::Sqlite>(None, Utc::now())
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        webhooks_with_events(rows, events, secrets)
    }

    pub(in crate::store) async fn webhook(&self, id: &str) -> Result<Webhook> {
        let row: WebhookRow = sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!("?1"),
            " WHERE id = ?2 AND deleted_at IS NULL"
        ))
        .bind(health_window_start())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let events = sqlx::query_scalar(
            "SELECT event_type FROM webhook_events WHERE webhook_id = ? ORDER BY event_type",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let secrets = previous_secrets_query::<sqlx::Sqlite>(Some(id), Utc::now())
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        let previous = previous_secrets_by_webhook(secrets)?
            .remove(id)
            .unwrap_or_default();
        row.into_webhook(events, previous)
    }

    pub(in crate::store) async fn update_webhook(
        &self,
        id: &str,
        changes: WebhookChanges,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ? AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        // Reactivating clears the reason the service gave for deactivating.
        let clear_reason = changes.is_active == Some(true);
        sqlx::query(
            "UPDATE webhooks SET \
               name = COALESCE(?, name), \
               url = COALESCE(?, url), \
               is_active = COALESCE(?, is_active), \
               disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
               description = CASE WHEN ? THEN ? ELSE description END, \
               owner = CASE WHEN ? THEN ? ELSE owner END, \
               rate_limit = CASE WHEN ? THEN ? ELSE rate_limit END, \
               updated_at = ? \
             WHERE id = ?",
        )
        .bind(changes.name)
        .bind(changes.url)
        .bind(changes.is_active)
        .bind(clear_reason)
        .bind(changes.description.is_some())
        .bind(changes.description.flatten())
        .bind(changes.owner.is_some())
        .bind(changes.owner.flatten())
        .bind(changes.rate_limit.is_some())
        .bind(changes.rate_limit.flatten())
        .bind(millis(Utc::now()))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if matches!(changes.rate_limit, Some(Some(_))) {
            add_pace(&mut tx, id).await?;
        }
        if let Some(events) = &changes.events {
            replace_events(&mut tx, id, events).await?;
        }
        if changes.is_active == Some(false) {
            cancel_unfinished(&mut tx, id, "cancelled: the webhook was deactivated").await?;
        }
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn delete_webhook(&self, id: &str, audit: &Audit) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = millis(Utc::now());
        let deleted = sqlx::query(
            "UPDATE webhooks SET deleted_at = ?, is_active = FALSE, updated_at = ? \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        cancel_unfinished(&mut tx, id, "cancelled: the webhook was deleted").await?;
        sqlx::query("DELETE FROM webhook_events WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn rotate_secret(
        &self,
        id: &str,
        rotation: &SecretRotation,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = millis(Utc::now());
        let updated = sqlx::query(
            "UPDATE webhooks SET secret_hint = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&rotation.secret_hint)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
        )
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // The replaced secret expires after the grace period, and no older one outlives it:
        // a rotation with no grace stops every previous secret at once.
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) \
             WHERE webhook_id = ?2",
        )
        .bind(millis(rotation.previous_expires_at))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (webhook_id, sealed, key_id, hint, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&rotation.sealed_secret.blob)
        .bind(&rotation.sealed_secret.key_id)
        .bind(&rotation.secret_hint)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn expire_previous_secrets(
        &self,
        id: &str,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ? AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at IS NOT NULL")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Every stored secret of a webhook, the current one first, then by expiry.
    pub(in crate::store) async fn signing_secrets(&self, id: &str) -> Result<Vec<SealedSecret>> {
        let rows: Vec<SecretRow> = sqlx::query_as(
            "SELECT sealed, expires_at FROM webhook_secrets WHERE webhook_id = ? \
             ORDER BY expires_at IS NOT NULL, id DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(SealedSecret::try_from).collect()
    }
}

/// Gives a rate-limited webhook its pace, unless it has one (a pace outlives its limit
/// being lifted, harmlessly: only limited webhooks are paced).
async fn add_pace(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, webhook_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_pace (webhook_id, next_at_us) VALUES (?, 0) \
         ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(webhook_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn replace_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    events: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM webhook_events WHERE webhook_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for event in events {
        sqlx::query("INSERT INTO webhook_events (webhook_id, event_type) VALUES (?, ?)")
            .bind(id)
            .bind(event)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
