//! Rolling the secrets-encryption key (see `store/rekey.rs`).

use super::Database;
use crate::store::Result;
use crate::store::access::Audit;
use crate::store::rekey::{Reseal, SealedRow};

impl Database {
    pub(in crate::store) async fn label_unlabelled_secrets(&self, key_id: &str) -> Result<u64> {
        self.write_one(
            sqlx::query("UPDATE webhook_secrets SET key_id = ? WHERE key_id IS NULL").bind(key_id),
        )
        .await
    }

    pub(in crate::store) async fn secrets_not_sealed_with(&self, key_id: &str) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_secrets WHERE key_id IS NOT ?")
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
        let mut tx = self.begin_write().await?;
        let swapped = sqlx::query("UPDATE meta SET value = ? WHERE key = ? AND value = ?")
            .bind(replacement)
            .bind(meta_key)
            .bind(expected)
            .execute(&mut **tx)
            .await?;
        if swapped.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(retired_key)
            .bind(retired_at)
            .execute(&mut **tx)
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
        let mut tx = self.begin_write().await?;
        let rows: Vec<SealedRow> = sqlx::query_as(
            "SELECT id, webhook_id, sealed FROM webhook_secrets WHERE key_id = ? LIMIT ?",
        )
        .bind(from_key_id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            let sealed = row.resealed(reseal)?;
            sqlx::query("UPDATE webhook_secrets SET sealed = ?, key_id = ? WHERE id = ?")
                .bind(&sealed.blob)
                .bind(&sealed.key_id)
                .bind(row.id)
                .execute(&mut **tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(rows.len() as u64))
    }
}
