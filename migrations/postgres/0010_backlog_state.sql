-- What a webhook has not finished, kept as state as its finished counts are: the panel's
-- rows, the overview and the health every view colours by read it by key, never by a
-- count over the history (during an outage the unfinished deliveries grow by thousands a
-- second). Statement-level triggers keep it equal to a recount of `deliveries`, whatever
-- statement changes a delivery's status, with one upsert per webhook a statement
-- touches, in key order (the lock order `delivery_counts` keeps too).
CREATE TABLE webhook_backlog (
    webhook_id TEXT PRIMARY KEY,
    -- status `pending`: never tried, or resent; in flight ones included.
    pending    BIGINT NOT NULL,
    -- status `retrying`: failed at least once, waiting for the next try.
    retrying   BIGINT NOT NULL
);

INSERT INTO webhook_backlog (webhook_id, pending, retrying)
SELECT webhook_id, COUNT(*) FILTER (WHERE status = 'pending'),
       COUNT(*) FILTER (WHERE status = 'retrying')
FROM deliveries
WHERE status IN ('pending', 'retrying')
GROUP BY webhook_id;

CREATE FUNCTION webhook_backlog_on_change() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_backlog AS b (webhook_id, pending, retrying)
        SELECT webhook_id, COUNT(*) FILTER (WHERE status = 'pending'),
               COUNT(*) FILTER (WHERE status = 'retrying')
        FROM new_rows WHERE status IN ('pending', 'retrying')
        GROUP BY webhook_id ORDER BY webhook_id
        ON CONFLICT (webhook_id) DO UPDATE SET
            pending = b.pending + excluded.pending, retrying = b.retrying + excluded.retrying;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO webhook_backlog AS b (webhook_id, pending, retrying)
        SELECT webhook_id, SUM(pending), SUM(retrying)
        FROM (
            SELECT webhook_id, (status = 'pending')::int::bigint AS pending,
                   (status = 'retrying')::int::bigint AS retrying
            FROM new_rows WHERE status IN ('pending', 'retrying')
            UNION ALL
            SELECT webhook_id, -(status = 'pending')::int::bigint,
                   -(status = 'retrying')::int::bigint
            FROM old_rows WHERE status IN ('pending', 'retrying')
        ) changes
        GROUP BY webhook_id
        HAVING SUM(pending) <> 0 OR SUM(retrying) <> 0
        ORDER BY webhook_id
        ON CONFLICT (webhook_id) DO UPDATE SET
            pending = b.pending + excluded.pending, retrying = b.retrying + excluded.retrying;
    ELSE
        UPDATE webhook_backlog b SET pending = b.pending - gone.pending,
                                     retrying = b.retrying - gone.retrying
        FROM (
            SELECT webhook_id, COUNT(*) FILTER (WHERE status = 'pending') AS pending,
                   COUNT(*) FILTER (WHERE status = 'retrying') AS retrying
            FROM old_rows WHERE status IN ('pending', 'retrying')
            GROUP BY webhook_id
        ) gone
        WHERE b.webhook_id = gone.webhook_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_backlog_on_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_backlog_on_change();
CREATE TRIGGER webhook_backlog_on_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_backlog_on_change();
CREATE TRIGGER webhook_backlog_on_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_backlog_on_change();

-- The latest attempt's error in words, beside its status code; NULL after a success.
-- Written with the rest of the health as attempts are recorded; for a webhook failing
-- now, from its newest delivery's error, once.
ALTER TABLE webhook_health ADD COLUMN last_error TEXT;
UPDATE webhook_health h SET last_error = (
    SELECT d.last_error FROM deliveries d
    WHERE d.webhook_id = h.webhook_id AND d.last_error IS NOT NULL
    ORDER BY d.id DESC LIMIT 1)
WHERE failing_since IS NOT NULL;
