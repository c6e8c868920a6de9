-- Emitted events. `id` is the caller's idempotency key when given: the same id fans out once.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One delivery per (event, webhook). Ids are ULIDs, so `id` orders by creation time and
-- serves as the keyset for newest-first pages.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id),
    webhook_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- pending | retrying | succeeded | failed
    status           TEXT NOT NULL,
    status_code      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- Attempts in the current retry cycle; a resend starts a new cycle.
    retry_step       INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_duration_ms BIGINT,
    -- When the dispatcher should try next; NULL once succeeded or failed.
    next_attempt_at  BIGINT,
    last_error       TEXT,
    -- A dispatcher's claim: until then no other worker takes this delivery.
    lease_until      BIGINT,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_event_type ON deliveries (event_type, id);
CREATE INDEX deliveries_by_webhook_attempt ON deliveries (webhook_id, last_attempt_at);

-- Every attempt, as it happened.
CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id),
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    -- JSON objects of header name to value.
    request_headers  TEXT NOT NULL,
    response_headers TEXT NOT NULL,
    -- At most 4 KiB of the response body.
    response_body    TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);
