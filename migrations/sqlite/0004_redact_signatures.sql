-- History keeps no signature that could be replayed: attempts recorded before the
-- dispatcher redacted them lose the values of their signature headers.
UPDATE delivery_attempts
SET request_headers = json_replace(request_headers,
        '$."webhook-signature"', '[redacted]',
        '$."x-webhook-signature"', '[redacted]')
WHERE request_headers LIKE '%signature%';
