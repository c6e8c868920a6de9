//! Named admin keys and the audit log (SQL shared with PostgreSQL in `store/access.rs`).

use chrono::Utc;
use sqlx::Sqlite;

use super::{Database, WriteTx};
use crate::api::Role;
use crate::store::access::{self, Audit, BOOTSTRAP_KEY_NAME, NewAdminKey};
use crate::store::model::millis;
use crate::store::{Result, StoreError, new_ordered_id};

/// Writes `audit` in the transaction of the change it records.
pub(super) async fn record(tx: &mut WriteTx, audit: &Audit) -> Result<()> {
    access::insert_audit::<Sqlite>(audit, Utc::now())
        .build()
        .execute(&mut ***tx)
        .await?;
    Ok(())
}

impl Database {
    pub(in crate::store) async fn touch_admin_key(&self, id: &str, at: i64) -> Result<()> {
        self.write_one(
            sqlx::query("UPDATE admin_keys SET last_used_at = ? WHERE id = ?")
                .bind(at)
                .bind(id),
        )
        .await
        .map(drop)
    }

    pub(in crate::store) async fn insert_admin_key(
        &self,
        new: &NewAdminKey,
        created_at: i64,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&new.key_sha256)
        .bind(created_at)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NameTaken);
        }
        record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn delete_admin_key(&self, id: &str, audit: &Audit) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM admin_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        let role = role.ok_or(StoreError::NotFound)?;
        if role == Role::Admin.as_str() {
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_keys WHERE role = ?")
                .bind(Role::Admin.as_str())
                .fetch_one(&mut **tx)
                .await?;
            if admins <= 1 {
                return Err(StoreError::LastAdminKey);
            }
        }
        sqlx::query("DELETE FROM admin_keys WHERE id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn set_bootstrap_key(&self, key_sha256: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // A key created through the API never has the configured key's hash; should one
        // (an earlier bootstrap renamed by hand), it gives way.
        sqlx::query("DELETE FROM admin_keys WHERE key_sha256 = ? AND name <> ?")
            .bind(key_sha256)
            .bind(BOOTSTRAP_KEY_NAME)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET key_sha256 = excluded.key_sha256, role = excluded.role",
        )
        .bind(new_ordered_id("key"))
        .bind(BOOTSTRAP_KEY_NAME)
        .bind(Role::Admin.as_str())
        .bind(key_sha256)
        .bind(millis(Utc::now()))
        .execute(&mut **tx)
        .await?;
        tx.commit().await
    }

    pub(in crate::store) async fn add_first_key(&self, key_sha256: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO admin_keys (id, name, role, key_sha256, created_at) \
             SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM admin_keys)",
        )
        .bind(new_ordered_id("key"))
        .bind(BOOTSTRAP_KEY_NAME)
        .bind(Role::Admin.as_str())
        .bind(key_sha256)
        .bind(millis(Utc::now()))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(in crate::store) async fn record_audit(&self, audit: &Audit) -> Result<()> {
        let mut tx = self.begin_write().await?;
        record(&mut tx, audit).await?;
        tx.commit().await
    }

    pub(in crate::store) async fn prune_audit(&self, before: i64) -> Result<u64> {
        self.write_one(sqlx::query("DELETE FROM audit_log WHERE at < ?").bind(before))
            .await
    }
}
