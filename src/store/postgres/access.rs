//! Named admin keys and the audit log (SQL shared with SQLite in `store/access.rs`).

use chrono::Utc;
use sqlx::{Postgres, Transaction};

use super::Database;
use crate::api::Role;
use crate::store::access::{self, Audit, BOOTSTRAP_KEY_NAME, NewAdminKey};
use crate::store::model::millis;
use crate::store::{Result, StoreError, new_ordered_id};

/// Writes `audit` in the transaction of the change it records.
pub(super) async fn record(tx: &mut Transaction<'_, Postgres>, audit: &Audit) -> Result<()> {
    access::insert_audit::<Postgres>(audit, Utc::now())
        .build()
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Database {
    pub(in crate::store) async fn touch_admin_key(&self, id: &str, at: i64) -> Result<()> {
        // GREATEST: replicas writing at once never move it back.
        sqlx::query(
            "UPDATE admin_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) \
             WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn insert_admin_key(
        &self,
        new: &NewAdminKey,
        created_at: i64,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&new.key_sha256)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NameTaken);
        }
        record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn delete_admin_key(&self, id: &str, audit: &Audit) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Every admin key is locked until the commit: two admins revoking each other's
        // keys at once, through two replicas, take turns, and one admin key stays.
        let admins: Vec<String> =
            sqlx::query_scalar("SELECT id FROM admin_keys WHERE role = $1 ORDER BY id FOR UPDATE")
                .bind(Role::Admin.as_str())
                .fetch_all(&mut *tx)
                .await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM admin_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        if admins.iter().any(|admin| admin == id) && admins.len() <= 1 {
            return Err(StoreError::LastAdminKey);
        }
        sqlx::query("DELETE FROM admin_keys WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn set_bootstrap_key(&self, key_sha256: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Replicas starting together take turns: two upserts of the same key at once
        // could otherwise meet on the hash's uniqueness rather than on the name.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookpanel.bootstrap_key'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM admin_keys WHERE key_sha256 = $1 AND name <> $2")
            .bind(key_sha256)
            .bind(BOOTSTRAP_KEY_NAME)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET key_sha256 = excluded.key_sha256, role = excluded.role",
        )
        .bind(new_ordered_id("key"))
        .bind(BOOTSTRAP_KEY_NAME)
        .bind(Role::Admin.as_str())
        .bind(key_sha256)
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn add_first_key(&self, key_sha256: &str) -> Result<bool> {
        // Replicas starting at once: the name's uniqueness lets one of them in.
        let inserted = sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM admin_keys) \
             ON CONFLICT DO NOTHING",
        )
        .bind(new_ordered_id("key"))
        .bind(BOOTSTRAP_KEY_NAME)
        .bind(Role::Admin.as_str())
        .bind(key_sha256)
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(in crate::store) async fn record_audit(&self, audit: &Audit) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn prune_audit(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
