-- What a webhook has not finished, kept as state as its finished counts are: the panel's
-- rows, the overview and the health every view colours by read it by key, never by a
-- count over the history (during an outage the unfinished deliveries grow by thousands a
-- second). Triggers keep it equal to a recount of `deliveries`, whatever statement
-- changes a delivery's status: emits, attempts, resends, cancellations, a migration.
CREATE TABLE webhook_backlog (
    webhook_id TEXT PRIMARY KEY,
    -- status `pending`: never tried, or resent; in flight ones included.
    pending    BIGINT NOT NULL,
    -- status `retrying`: failed at least once, waiting for the next try.
    retrying   BIGINT NOT NULL
) WITHOUT ROWID;

INSERT INTO webhook_backlog (webhook_id, pending, retrying)
SELECT webhook_id, SUM(status = 'pending'), SUM(status = 'retrying')
FROM deliveries
WHERE status IN ('pending', 'retrying')
GROUP BY webhook_id;

CREATE TRIGGER webhook_backlog_on_insert AFTER INSERT ON deliveries
WHEN new.status IN ('pending', 'retrying')
BEGIN
    INSERT INTO webhook_backlog (webhook_id, pending, retrying)
    VALUES (new.webhook_id, new.status = 'pending', new.status = 'retrying')
    ON CONFLICT (webhook_id) DO UPDATE SET
        pending = pending + excluded.pending, retrying = retrying + excluded.retrying;
END;

CREATE TRIGGER webhook_backlog_on_update AFTER UPDATE OF status ON deliveries
WHEN old.status IS NOT new.status
 AND (old.status IN ('pending', 'retrying') OR new.status IN ('pending', 'retrying'))
BEGIN
    INSERT INTO webhook_backlog (webhook_id, pending, retrying)
    VALUES (new.webhook_id,
            (new.status = 'pending') - (old.status = 'pending'),
            (new.status = 'retrying') - (old.status = 'retrying'))
    ON CONFLICT (webhook_id) DO UPDATE SET
        pending = pending + excluded.pending, retrying = retrying + excluded.retrying;
END;

CREATE TRIGGER webhook_backlog_on_delete AFTER DELETE ON deliveries
WHEN old.status IN ('pending', 'retrying')
BEGIN
    UPDATE webhook_backlog SET
        pending = pending - (old.status = 'pending'),
        retrying = retrying - (old.status = 'retrying')
    WHERE webhook_id = old.webhook_id;
END;

-- The latest attempt's error in words ("timed out: …", "the receiver answered 500 …"),
-- beside its status code; NULL after a success. Written with the rest of the health as
-- attempts are recorded; for a webhook failing now, from its newest delivery's error, once.
ALTER TABLE webhook_health ADD COLUMN last_error TEXT;
UPDATE webhook_health SET last_error = (
    SELECT d.last_error FROM deliveries d
    WHERE d.webhook_id = webhook_health.webhook_id AND d.last_error IS NOT NULL
    ORDER BY d.id DESC LIMIT 1)
WHERE failing_since IS NOT NULL;
