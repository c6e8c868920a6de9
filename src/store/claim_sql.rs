//! SQL that both backends' claims share word for word: where they differ, in placeholders,
//! these take them as arguments.

/// The due time of the delivery after the first `$window` due by `$until` (NULL when
/// there are no more): where a walk of `deliveries_due` ends. Read from the index alone.
macro_rules! window_end {
    ($until:literal, $window:literal) => {
        concat!(
            "SELECT next_attempt_at FROM deliveries \
             WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ",
            $until,
            " ORDER BY next_attempt_at LIMIT 1 OFFSET ",
            $window
        )
    };
}

/// `due_webhooks`: every webhook with a delivery due now or later, and a NULL row last,
/// found by skipping through `deliveries_due_by_webhook` from one webhook to the next.
macro_rules! due_webhooks {
    () => {
        "WITH RECURSIVE due_webhooks (webhook_id) AS ( \
           SELECT (SELECT MIN(webhook_id) FROM deliveries WHERE next_attempt_at IS NOT NULL) \
           UNION ALL \
           SELECT (SELECT MIN(d.webhook_id) FROM deliveries d \
                   WHERE d.next_attempt_at IS NOT NULL AND d.webhook_id > w.webhook_id) \
           FROM due_webhooks w WHERE w.webhook_id IS NOT NULL)"
    };
}

/// The webhooks a claim paces, as a subquery: rate-limited and not deleted (a deleted
/// webhook's deliveries fail without a request).
macro_rules! paced_webhooks {
    () => {
        "SELECT id FROM webhooks WHERE rate_limit IS NOT NULL AND deleted_at IS NULL"
    };
}
