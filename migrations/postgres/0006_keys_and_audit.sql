-- Named admin keys with a role each. Only a key's SHA-256 is kept; the key itself is
-- shown once when it is created. The admin key this database had until now becomes the
-- key named `bootstrap`, with the admin role.
CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    -- admin | operator
    role         TEXT NOT NULL,
    key_sha256   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

INSERT INTO admin_keys (id, name, role, key_sha256, created_at)
SELECT 'key_bootstrap', 'bootstrap', 'admin', value,
       (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
FROM meta WHERE key = 'admin_key_sha256';
DELETE FROM meta WHERE key = 'admin_key_sha256';

-- Who changed what: one row per change or resend, written in the change's own
-- transaction. `actor` is the name of the key that asked (or `hookpanel` for the
-- service's own changes); `detail` is a JSON object and never holds a secret or a key.
-- Ids are ULIDs, so `id` orders entries by time and serves as the keyset for pages.
CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target_id TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_target ON audit_log (target_id, id);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Each secret's last 4 characters, so that a webhook can list its previous secrets. The
-- current secrets take the hint their webhooks show; secrets rotated out before this
-- version have none.
ALTER TABLE webhook_secrets ADD COLUMN hint TEXT;
UPDATE webhook_secrets SET hint = (
    SELECT w.secret_hint FROM webhooks w WHERE w.id = webhook_secrets.webhook_id)
WHERE expires_at IS NULL;
