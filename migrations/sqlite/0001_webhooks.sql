-- Key/value facts about this database: the admin key's hash, the secrets-encryption check.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Timestamps are unix milliseconds (UTC) so that SQLite and PostgreSQL compare them alike.
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

-- Signing secrets, sealed with the service's encryption key. The current one has no expiry;
-- a rotated-out one stays valid until expires_at so that receivers can switch over.
CREATE TABLE webhook_secrets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    sealed     BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX webhook_secrets_by_webhook ON webhook_secrets (webhook_id);
