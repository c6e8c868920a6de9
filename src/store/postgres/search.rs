//! Payload search: token arrays with a GIN index (see `store/search.rs`). Replicas share
//! the queue: each takes a batch no other holds (`FOR UPDATE SKIP LOCKED`).

use super::Database;
use crate::search;
use crate::store::Result;

impl Database {
    pub(in crate::store) async fn index_events(&self, limit: u32) -> Result<u64> {
        // Taken from after the last id this process took: the entries before it are dead
        // until vacuum, and a scan from the start would step over each of them every
        // batch (a backlog of a million went quadratic). A short batch starts over.
        let after = self
            .search_cursor
            .lock()
            .map(|cursor| cursor.clone())
            .unwrap_or_default()
            .unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        // The batch's ids as an array computed first: the queue is nearly always empty when
        // autovacuum analyzes it, and given `IN (…)` the planner, expecting a row or two,
        // scanned the whole queue and ran the batch's subquery again for each entry. A
        // backlog of a million took 468 s and, after an ANALYZE, stalled for minutes.
        let taken: Vec<(String, Option<String>)> = sqlx::query_as(
            "WITH taken AS (DELETE FROM search_queue WHERE event_id = ANY(ARRAY( \
               SELECT event_id FROM search_queue WHERE event_id > $2 ORDER BY event_id \
               LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING event_id) \
             SELECT t.event_id, e.data FROM taken t LEFT JOIN events e ON e.id = t.event_id",
        )
        .bind(i64::from(limit))
        .bind(&after)
        .fetch_all(&mut *tx)
        .await?;
        // Tokens hold no space: each event's go as one text, in order (for phrases), and
        // distinct (for the GIN index), split in SQL.
        let mut ids = Vec::new();
        let mut texts = Vec::new();
        let mut distinct = Vec::new();
        for (id, data) in &taken {
            let Some(text) = data.as_deref().and_then(search::indexed_text) else {
                continue;
            };
            // Data with nothing to find (`{}`) takes no room in the index.
            if text.is_empty() {
                continue;
            }
            distinct.push(search::distinct_tokens(&text).join(" "));
            texts.push(text);
            ids.push(id.clone());
        }
        if !ids.is_empty() {
            sqlx::query(
                "INSERT INTO event_search (event_id, tokens, text) \
                 SELECT t.id, string_to_array(t.tokens, ' '), t.text \
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (id, tokens, text) \
                 WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = t.id) \
                 ON CONFLICT (event_id) DO UPDATE \
                   SET tokens = excluded.tokens, text = excluded.text",
            )
            .bind(ids)
            .bind(distinct)
            .bind(texts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let next = (taken.len() as u64 == u64::from(limit))
            .then(|| taken.iter().map(|(id, _)| id.clone()).max())
            .flatten();
        if let Ok(mut cursor) = self.search_cursor.lock() {
            *cursor = next;
        }
        // A short batch from the middle: what is before it is looked at next.
        Ok(if after.is_empty() {
            taken.len() as u64
        } else {
            u64::from(limit)
        })
    }

    pub(in crate::store) async fn search_backlog(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_queue")
            .fetch_one(&self.pool)
            .await?;
        Ok(count.unsigned_abs())
    }
}
