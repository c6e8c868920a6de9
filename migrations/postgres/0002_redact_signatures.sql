-- History keeps no signature that could be replayed: attempts recorded before the
-- dispatcher redacted them lose the values of their signature headers.
UPDATE delivery_attempts
SET request_headers = COALESCE((
        SELECT jsonb_object_agg(key, CASE
                   WHEN key IN ('webhook-signature', 'x-webhook-signature')
                   THEN to_jsonb('[redacted]'::text)
                   ELSE value END)
        FROM jsonb_each(request_headers::jsonb)), '{}'::jsonb)::text
WHERE request_headers LIKE '%signature%';
