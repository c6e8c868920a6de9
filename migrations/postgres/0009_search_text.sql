-- Payload search: each event's tokens in order too (the text SQLite's FTS5 index is made
-- of), so that a quoted phrase means the same on both backends: its tokens next to each
-- other. Until now a phrase was looked for in the raw JSON, which missed text behind
-- escapes ("say \"cheese\"") and found a phrase inside longer words ("domain streets").
ALTER TABLE event_search ADD COLUMN text TEXT;

-- The events indexed before are indexed again, in the background, to fill it in.
INSERT INTO search_queue (event_id) SELECT event_id FROM event_search ON CONFLICT DO NOTHING;
