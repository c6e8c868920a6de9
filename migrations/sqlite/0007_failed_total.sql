-- Per webhook, how many deliveries have failed for good, ever: a count that only grows
-- (the hourly counts go down when a failed delivery is resent), so that a watcher such as
-- the panel's notifications can tell new failures from old ones. From the hourly counts
-- as they stand, once; from now on the store adds each batch's failures as it records
-- them.
ALTER TABLE webhook_health ADD COLUMN failed_total BIGINT NOT NULL DEFAULT 0;
UPDATE webhook_health SET failed_total = (
    SELECT COALESCE(SUM(c.failed), 0) FROM delivery_counts c
    WHERE c.webhook_id = webhook_health.webhook_id);
