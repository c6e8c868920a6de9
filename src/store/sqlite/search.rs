//! Payload search: the FTS5 index (see `store/search.rs`).

use sqlx::{QueryBuilder, Sqlite};

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
        let queued_rowids: Vec<i64> = queued.iter().map(|(rowid, _)| *rowid).collect();
        let taken = queued.len() as u64;
        let texts: std::collections::HashMap<i64, String> = queued
            .into_iter()
            .filter_map(|(rowid, data)| {
                let text = search::indexed_text(data.as_deref()?)?;
                Some((rowid, text))
            })
            .collect();
        let mut tx = self.begin_write().await?;
        // The rows still queued: an event pruned meanwhile took its row with it.
        let mut dequeue: QueryBuilder<Sqlite> =
            QueryBuilder::new("DELETE FROM search_queue WHERE event_rowid IN (");
        let mut rowids = dequeue.separated(", ");
        for rowid in queued_rowids {
            rowids.push_bind(rowid);
        }
        dequeue.push(") RETURNING event_rowid");
        let still_queued: Vec<i64> = dequeue.build_query_scalar().fetch_all(&mut **tx).await?;
        // Data with nothing to find (`{}`) takes no room in the index.
        let rows: Vec<(i64, &String)> = still_queued
            .iter()
            .filter_map(|rowid| texts.get(rowid).map(|text| (*rowid, text)))
            .filter(|(_, text)| !text.is_empty())
            .collect();
        if !rows.is_empty() {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO event_text (rowid, tokens) ");
            insert.push_values(rows, |mut row, (rowid, text)| {
                row.push_bind(rowid).push_bind(text.as_str());
            });
            insert.build().execute(&mut **tx).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    pub(in crate::store) async fn search_backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_queue")
            .fetch_one(&self.pool)
            .await?;
        Ok(count.unsigned_abs())
    }
}
