-- The id of the encryption key that sealed each secret (see `crypto::SecretCipher::key_id`),
-- so a key rollover can re-seal what the previous key sealed, in batches, and say how
-- many are left. Rows sealed before this column existed are labelled at the next start,
-- by the key the database's key check opens with.
ALTER TABLE webhook_secrets ADD COLUMN key_id TEXT;
