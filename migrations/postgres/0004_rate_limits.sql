-- Per-webhook rate limits. `rate_limit` is deliveries per second, NULL for unlimited.
ALTER TABLE webhooks ADD COLUMN rate_limit INTEGER;

-- The pace of each rate-limited webhook, shared by every replica: a claim locks the row,
-- takes what the pace allows and moves it on. Kept apart from `webhooks` so that claims do
-- not contend with health updates. `next_at_us` is the theoretical arrival time of GCRA
-- (the generic cell rate algorithm), in microseconds since the epoch. See
-- src/store/pace.rs.
CREATE TABLE webhook_pace (
    webhook_id TEXT PRIMARY KEY REFERENCES webhooks (id),
    next_at_us BIGINT NOT NULL
);

-- A rate-limited webhook's claim takes its own due deliveries, oldest first: without
-- this it would scan every other webhook's due deliveries to find them.
CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
