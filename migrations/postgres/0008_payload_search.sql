-- Payload search (see `src/search.rs`): each event's distinct tokens, as the service makes
-- them, in an array with a GIN index. PostgreSQL's own text search parser would split
-- `ord_1042` at the `_`; an array of the service's tokens keeps ids whole, and matches
-- exactly what SQLite's index does.
CREATE TABLE event_search (
    event_id TEXT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    tokens   TEXT[] NOT NULL
);
CREATE INDEX event_search_tokens ON event_search USING GIN (tokens);

-- Events waiting to be indexed: queued by a trigger in the emit's own transaction,
-- indexed after commit, in batches, by whichever replica takes them (`store/search.rs`).
CREATE TABLE search_queue (event_id TEXT PRIMARY KEY);
CREATE FUNCTION queue_event_for_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_queue (event_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_to_index AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION queue_event_for_search();

-- The events already stored are indexed too.
INSERT INTO search_queue (event_id) SELECT id FROM events;
