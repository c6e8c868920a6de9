-- The schema of migrations/sqlite/0001–0003 as it stands after them, for PostgreSQL.
-- Timestamps are unix milliseconds (UTC) and every integer is a BIGINT, so that both
-- backends decode the same rows. Several replicas share this database.

-- Key/value facts about this database: the admin key's hash, the secrets-encryption check.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    kind            TEXT NOT NULL,
    description     TEXT,
    owner           TEXT,
    is_active       BOOLEAN NOT NULL,
    disabled_reason TEXT,
    secret_hint     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);

-- One row per subscribed event type ('*' for all), so fan-out is an indexed lookup.
CREATE TABLE webhook_events (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    event_type TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_type)
);
CREATE INDEX webhook_events_by_type ON webhook_events (event_type, webhook_id);

-- Signing secrets, sealed with the service's encryption key. The current one has no
-- expiry; a rotated-out one stays valid until expires_at.
CREATE TABLE webhook_secrets (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    sealed     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX webhook_secrets_by_webhook ON webhook_secrets (webhook_id);

-- Emitted events. `id` is the caller's idempotency key when given: the key makes the
-- same id, emitted on two replicas at once, fan out once.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One delivery per (event, webhook). Ids are ULIDs, so `id` orders by creation time.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id),
    webhook_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- pending | retrying | succeeded | failed
    status           TEXT NOT NULL,
    status_code      BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    retry_step       BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_duration_ms BIGINT,
    next_attempt_at  BIGINT,
    last_error       TEXT,
    -- A replica's claim: until then no other takes this delivery.
    lease_until      BIGINT,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, webhook_id)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_event_type ON deliveries (event_type, id);

-- Every attempt, as it happened.
CREATE TABLE delivery_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id),
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    request_headers  TEXT NOT NULL,
    response_headers TEXT NOT NULL,
    response_body    TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- Finished deliveries (succeeded or failed for good) per webhook and UTC hour of their
-- last attempt, kept equal to a recount of `deliveries` by the triggers below, whatever
-- statement changes a delivery.
CREATE TABLE delivery_counts (
    webhook_id TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    succeeded  BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, hour_start)
);

-- Statement-level triggers with transition tables: one upsert per (webhook, hour) that a
-- statement touches, not one per row. Rows are upserted in key order, so that concurrent
-- writers (replicas recording attempts) take the count rows' locks in the same order.
-- Each (webhook, hour) row is a hot spot all the same: every transaction that finishes
-- deliveries of a webhook in one hour updates it, and waits for the one before.
CREATE FUNCTION delivery_counts_add(changes_webhook TEXT[], changes_hour BIGINT[],
                                    changes_succeeded BIGINT[], changes_failed BIGINT[])
RETURNS VOID LANGUAGE SQL AS $$
    INSERT INTO delivery_counts AS c (webhook_id, hour_start, succeeded, failed)
    SELECT webhook_id, hour_start, SUM(succeeded), SUM(failed)
    FROM UNNEST(changes_webhook, changes_hour, changes_succeeded, changes_failed)
        AS t(webhook_id, hour_start, succeeded, failed)
    GROUP BY webhook_id, hour_start
    HAVING SUM(succeeded) <> 0 OR SUM(failed) <> 0
    ORDER BY webhook_id, hour_start
    ON CONFLICT (webhook_id, hour_start) DO UPDATE SET
        succeeded = c.succeeded + excluded.succeeded, failed = c.failed + excluded.failed;
$$;

CREATE FUNCTION delivery_counts_on_insert() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM delivery_counts_add(
        array_agg(webhook_id), array_agg(last_attempt_at / 3600000 * 3600000),
        array_agg((status = 'succeeded')::int::bigint), array_agg((status = 'failed')::int::bigint))
    FROM new_rows
    WHERE status IN ('succeeded', 'failed') AND last_attempt_at IS NOT NULL
    HAVING COUNT(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION delivery_counts_on_update() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM delivery_counts_add(
        array_agg(webhook_id), array_agg(hour_start), array_agg(succeeded), array_agg(failed))
    FROM (
        SELECT webhook_id, last_attempt_at / 3600000 * 3600000 AS hour_start,
               (status = 'succeeded')::int::bigint AS succeeded,
               (status = 'failed')::int::bigint AS failed
        FROM new_rows
        WHERE status IN ('succeeded', 'failed') AND last_attempt_at IS NOT NULL
        UNION ALL
        SELECT webhook_id, last_attempt_at / 3600000 * 3600000,
               -(status = 'succeeded')::int::bigint, -(status = 'failed')::int::bigint
        FROM old_rows
        WHERE status IN ('succeeded', 'failed') AND last_attempt_at IS NOT NULL
    ) changes
    HAVING COUNT(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION delivery_counts_on_delete() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM delivery_counts_add(
        array_agg(webhook_id), array_agg(last_attempt_at / 3600000 * 3600000),
        array_agg(-(status = 'succeeded')::int::bigint), array_agg(-(status = 'failed')::int::bigint))
    FROM old_rows
    WHERE status IN ('succeeded', 'failed') AND last_attempt_at IS NOT NULL
    HAVING COUNT(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER delivery_counts_on_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_on_insert();
CREATE TRIGGER delivery_counts_on_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_on_update();
CREATE TRIGGER delivery_counts_on_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_on_delete();

-- Per webhook: its latest attempt and that attempt's status code, its latest success,
-- and since when every delivery that finished has failed (NULL after a success).
CREATE TABLE webhook_health (
    webhook_id       TEXT PRIMARY KEY,
    last_attempt_at  BIGINT,
    last_status_code BIGINT,
    last_success_at  BIGINT,
    failing_since    BIGINT
);
