//! Rolling the secrets-encryption key (see `store/rekey.rs`). Replicas started together
//! with the same keys all run the re-seal; a transaction-scoped advisory lock lets one
//! batch run at a time, and the others wait their turn rather than re-seal twice.

use super::Database;
use crate::store::Result;
use crate::store::access::Audit;
use crate::store::rekey::{Reseal, SealedRow};

impl Database {
    pub(in crate::store) async fn label_unlabelled_secrets(&self, key_id: &str) -> Result<u64> {
        let labelled = sqlx::query("UPDATE webhook_secrets SET key_id = $1 WHERE key_id IS NULL")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(labelled.rows_affected())
    }

    pub(in crate::store) async fn secrets_not_sealed_with(&self, key_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_secrets WHERE key_id IS DISTINCT FROM $1",
        )
        .bind(key_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(count.unsigned_abs())
    }

    pub(in crate::store) async fn roll_key_record(
        &self,
        meta_key: &str,
        expected: &str,
        replacement: &str,
        (retired_key, retired_at): (&str, &str),
        audit: &Audit,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let swapped = sqlx::query("UPDATE meta SET value = $1 WHERE key = $2 AND value = $3")
            .bind(replacement)
            .bind(meta_key)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
        if swapped.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(retired_key)
            .bind(retired_at)
            .execute(&mut *tx)
            .await?;
        super::access::record(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(in crate::store) async fn reseal_batch(
        &self,
        from_key_id: &str,
        limit: u32,
        reseal: Reseal<'_>,
    ) -> Result<Option<u64>> {
        let mut tx = self.pool.begin().await?;
        let ours: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('hookpanel.reseal'))")
                .fetch_one(&mut *tx)
                .await?;
        if !ours {
            return Ok(None);
        }
        let rows: Vec<SealedRow> = sqlx::query_as(
            "SELECT id, webhook_id, sealed FROM webhook_secrets WHERE key_id = $1 \
             LIMIT $2 FOR UPDATE",
        )
        .bind(from_key_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let sealed = row.resealed(reseal)?;
            sqlx::query("UPDATE webhook_secrets SET sealed = $1, key_id = $2 WHERE id = $3")
                .bind(&sealed.blob)
                .bind(&sealed.key_id)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(rows.len() as u64))
    }
}
