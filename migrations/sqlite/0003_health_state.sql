-- The health a webhook shows, and the delivery counts over time, kept up to date as
-- deliveries change instead of recounted from the history: during an outage the failed
-- history grows by thousands of rows a second, and every recount grew with it.

-- Finished deliveries (succeeded or failed for good) per webhook and UTC hour of their
-- last attempt. Triggers below keep it equal to a recount of `deliveries`, whatever
-- statement changes a delivery's status or last attempt.
CREATE TABLE delivery_counts (
    webhook_id TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    succeeded  BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, hour_start)
) WITHOUT ROWID;

INSERT INTO delivery_counts (webhook_id, hour_start, succeeded, failed)
SELECT webhook_id, last_attempt_at / 3600000 * 3600000,
       SUM(status = 'succeeded'), SUM(status = 'failed')
FROM deliveries
WHERE status IN ('succeeded', 'failed') AND last_attempt_at IS NOT NULL
GROUP BY 1, 2;

CREATE TRIGGER delivery_counts_on_insert AFTER INSERT ON deliveries
WHEN new.status IN ('succeeded', 'failed') AND new.last_attempt_at IS NOT NULL
BEGIN
    INSERT INTO delivery_counts (webhook_id, hour_start, succeeded, failed)
    VALUES (new.webhook_id, new.last_attempt_at / 3600000 * 3600000,
            new.status = 'succeeded', new.status = 'failed')
    ON CONFLICT (webhook_id, hour_start) DO UPDATE SET
        succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed;
END;

CREATE TRIGGER delivery_counts_on_update AFTER UPDATE OF status, last_attempt_at ON deliveries
WHEN (old.status IN ('succeeded', 'failed') AND old.last_attempt_at IS NOT NULL)
  OR (new.status IN ('succeeded', 'failed') AND new.last_attempt_at IS NOT NULL)
BEGIN
    UPDATE delivery_counts SET
        succeeded = succeeded - (old.status = 'succeeded'),
        failed = failed - (old.status = 'failed')
    WHERE old.status IN ('succeeded', 'failed') AND old.last_attempt_at IS NOT NULL
      AND webhook_id = old.webhook_id
      AND hour_start = old.last_attempt_at / 3600000 * 3600000;
    INSERT INTO delivery_counts (webhook_id, hour_start, succeeded, failed)
    SELECT new.webhook_id, new.last_attempt_at / 3600000 * 3600000,
           new.status = 'succeeded', new.status = 'failed'
    WHERE new.status IN ('succeeded', 'failed') AND new.last_attempt_at IS NOT NULL
    ON CONFLICT (webhook_id, hour_start) DO UPDATE SET
        succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed;
END;

CREATE TRIGGER delivery_counts_on_delete AFTER DELETE ON deliveries
WHEN old.status IN ('succeeded', 'failed') AND old.last_attempt_at IS NOT NULL
BEGIN
    UPDATE delivery_counts SET
        succeeded = succeeded - (old.status = 'succeeded'),
        failed = failed - (old.status = 'failed')
    WHERE webhook_id = old.webhook_id
      AND hour_start = old.last_attempt_at / 3600000 * 3600000;
END;

-- Per webhook: its latest attempt and that attempt's status code, its latest success,
-- and since when every delivery that finished has failed (NULL after a success). Written
-- by the store as it records attempts; auto-disable reads `failing_since` by key.
CREATE TABLE webhook_health (
    webhook_id       TEXT PRIMARY KEY,
    last_attempt_at  BIGINT,
    last_status_code INTEGER,
    last_success_at  BIGINT,
    failing_since    BIGINT
) WITHOUT ROWID;

-- From the history as it stands, once. Only each delivery's last attempt is at hand here,
-- so `failing_since` starts at the earliest last attempt that failed after the last
-- success; from now on it is the first failed attempt itself.
INSERT INTO webhook_health (webhook_id, last_attempt_at, last_status_code, last_success_at,
                            failing_since)
SELECT w.id,
       (SELECT MAX(d.last_attempt_at) FROM deliveries d WHERE d.webhook_id = w.id),
       (SELECT d.status_code FROM deliveries d WHERE d.webhook_id = w.id
          AND d.last_attempt_at IS NOT NULL ORDER BY d.last_attempt_at DESC LIMIT 1),
       (SELECT MAX(d.last_attempt_at) FROM deliveries d WHERE d.webhook_id = w.id
          AND d.status = 'succeeded'),
       (SELECT MIN(d.last_attempt_at) FROM deliveries d WHERE d.webhook_id = w.id
          AND d.status IN ('failed', 'retrying')
          AND d.last_attempt_at > COALESCE((SELECT MAX(s.last_attempt_at) FROM deliveries s
                                            WHERE s.webhook_id = w.id
                                              AND s.status = 'succeeded'), 0))
FROM webhooks w;

-- Served only the health recounts above.
DROP INDEX deliveries_by_webhook_attempt;

-- Due work in time order, with the webhook in the index: a claim skips the due
-- deliveries of webhooks that have all their attempts in flight without reading rows.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, webhook_id)
    WHERE next_attempt_at IS NOT NULL;
