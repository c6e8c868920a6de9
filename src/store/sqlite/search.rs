//! Payload search: the FTS5 index (see `store/search.rs`).

use super::Database;
use crate::search;
use crate::store::Result;

impl Database {
    pub(in crate::store) async fn index_events(&self, limit: u32) -> Result<u64> {
        // Read and tokenize outside the write transaction; the queue row, still there in
        // it, says the event was not pruned meanwhile.
        let queued: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT q.event_rowid, e.data FROM search_queue q \
             LEFT JOIN events e ON e.rowid = q.event_rowid \
             ORDER BY q.event_rowid LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let texts: Vec<(i64, Option<String>)> = queued
            .into_iter()
            .map(|(rowid, data)| (rowid, data.as_deref().and_then(search::indexed_text)))
            .collect();
        let mut tx = self.begin_write().await?;
        for (rowid, text) in &texts {
            let still_queued = sqlx::query("DELETE FROM search_queue WHERE event_rowid = ?")
                .bind(rowid)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                == 1;
            if let (true, Some(text)) = (still_queued, text) {
                sqlx::query("INSERT INTO event_text (rowid, tokens) VALUES (?, ?)")
                    .bind(rowid)
                    .bind(text)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(texts.len() as u64)
    }

    pub(in crate::store) async fn search_backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_queue")
            .fetch_one(&self.pool)
            .await?;
        Ok(count.unsigned_abs())
    }
}
