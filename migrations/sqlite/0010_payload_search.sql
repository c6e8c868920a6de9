-- Payload search (see `src/search.rs`): each event's values, as the service's tokens, in
-- an FTS5 index whose rowid is the event's. The service makes the tokens; unicode61 with
-- these token characters splits them no further. Contentless: only the index is kept,
-- not a second copy of the text.
CREATE VIRTUAL TABLE event_text USING fts5 (
    tokens,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 0 tokenchars '_-.@'"
);

-- Events waiting to be indexed: queued by a trigger in the emit's own transaction,
-- indexed after commit, in batches (`store/search.rs`).
CREATE TABLE search_queue (event_rowid INTEGER PRIMARY KEY);
CREATE TRIGGER events_to_index AFTER INSERT ON events BEGIN
    INSERT INTO search_queue (event_rowid) VALUES (new.rowid);
END;
-- A pruned event leaves the index with its row.
CREATE TRIGGER events_unindexed AFTER DELETE ON events BEGIN
    DELETE FROM event_text WHERE rowid = old.rowid;
    DELETE FROM search_queue WHERE event_rowid = old.rowid;
END;

-- The events already stored are indexed too.
INSERT INTO search_queue (event_rowid) SELECT rowid FROM events;
