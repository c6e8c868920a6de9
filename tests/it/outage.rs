//! The day a receiver goes down: health kept as state (equal to a recount of the
//! history), auto-disable at its edges, and a hanging receiver that cannot starve the
//! others.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::RawConnection;
use crate::e2e_delivery::{only_delivery, webhook_to};
use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, wait_for};

/// Waits until no delivery is pending or retrying.
async fn wait_until_settled(service: &TestService) {
    wait_for(
        "every delivery to finish",
        Duration::from_secs(30),
        || async {
            let mut open = 0;
            for status in ["pending", "retrying"] {
                let (_, page) = service
                    .json(Method::GET, &format!("/deliveries?status={status}"), None)
                    .await;
                open += page["items"].as_array().map_or(1, Vec::len);
            }
            (open == 0).then_some(())
        },
    )
    .await;
}

fn millis(value: &Value) -> Option<i64> {
    value.as_str().map(|text| {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 time")
            .timestamp_millis()
    })
}

/// What the history says, counted from `deliveries` itself.
struct Recount {
    /// (succeeded, failed) per webhook since `since`, by last attempt.
    per_webhook: HashMap<String, (u64, u64)>,
    /// (succeeded, failed) per hour start, all webhooks.
    per_hour: HashMap<i64, (u64, u64)>,
    /// Latest attempt and its status code per webhook.
    latest: HashMap<String, (i64, Option<i64>)>,
}

async fn recount(service: &TestService, since: i64) -> Recount {
    let mut db = RawConnection::open(&service.database_url).await;
    let finished = "CAST(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT)";
    let rows: Vec<(String, i64, i64)> = db
        .rows(&format!(
            "SELECT webhook_id, {finished} FROM deliveries \
             WHERE last_attempt_at >= {since} GROUP BY webhook_id"
        ))
        .await;
    let per_webhook = rows
        .into_iter()
        .map(|(id, ok, failed)| (id, (ok as u64, failed as u64)))
        .collect();
    let rows: Vec<(i64, i64, i64)> = db
        .rows(&format!(
            "SELECT last_attempt_at / 3600000 * 3600000, {finished} FROM deliveries \
             WHERE last_attempt_at >= {since} GROUP BY 1"
        ))
        .await;
    let per_hour = rows
        .into_iter()
        .map(|(at, ok, failed)| (at, (ok as u64, failed as u64)))
        .collect();
    let rows: Vec<(String, i64, Option<i64>)> = db
        .rows(
            "SELECT d.webhook_id, d.last_attempt_at, CAST(d.status_code AS BIGINT) \
             FROM deliveries d \
             WHERE d.last_attempt_at = (SELECT MAX(e.last_attempt_at) FROM deliveries e \
                                        WHERE e.webhook_id = d.webhook_id)",
        )
        .await;
    let latest = rows
        .into_iter()
        .map(|(id, at, code)| (id, (at, code)))
        .collect();
    Recount {
        per_webhook,
        per_hour,
        latest,
    }
}

/// Checks `GET /webhooks` and `GET /stats` against a recount of the rows.
async fn assert_health_equals_recount(service: &TestService) {
    let now = Utc::now().timestamp_millis();
    let window_start = now.div_euclid(3_600_000) * 3_600_000 - 23 * 3_600_000;
    let counted = recount(service, window_start).await;
    let (status, list) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let webhooks = list["items"].as_array().expect("items");
    assert!(!webhooks.is_empty());
    for webhook in webhooks {
        let id = webhook["id"].as_str().expect("id");
        let (succeeded, failed) = counted.per_webhook.get(id).copied().unwrap_or((0, 0));
        assert_eq!(webhook["success_24h"], succeeded, "{webhook}");
        assert_eq!(webhook["failed_24h"], failed, "{webhook}");
        let (at, code) = counted
            .latest
            .get(id)
            .copied()
            .map_or((None, None), |(at, code)| (Some(at), code));
        assert_eq!(millis(&webhook["last_delivery_at"]), at, "{webhook}");
        assert_eq!(webhook["last_status_code"].as_i64(), code, "{webhook}");
    }
    let (status, points) = service.json(Method::GET, "/stats?bucket=hour", None).await;
    assert_eq!(status, StatusCode::OK, "{points}");
    let mut total = (0, 0);
    for point in points.as_array().expect("points") {
        let at = millis(&point["start"]).expect("start");
        let (succeeded, failed) = counted.per_hour.get(&at).copied().unwrap_or((0, 0));
        assert_eq!(point["succeeded"], succeeded, "{point}");
        assert_eq!(point["failed"], failed, "{point}");
        total.0 += succeeded;
        total.1 += failed;
    }
    let expected = counted
        .per_hour
        .values()
        .fold((0, 0), |sum, (ok, failed)| (sum.0 + ok, sum.1 + failed));
    assert_eq!(total, expected, "every hour of the recount is in the stats");
}

on_both_backends! {
    #[tokio::test]
    async fn health_and_stats_equal_a_recount_after_successes_failures_retries_and_resends() {
        let receiver = Receiver::start().await;
        receiver.set("/bad", Behaviour::Status(422));
        receiver.set("/flaky", Behaviour::FailTimes(2));
        receiver.set("/down", Behaviour::Status(500));
        let service = TestService::start().await;
        let events = json!(["order.created"]);
        let (ok, _) = webhook_to(&service, &receiver.url("/ok"), events.clone()).await;
        let (bad, _) = webhook_to(&service, &receiver.url("/bad"), events.clone()).await;
        webhook_to(&service, &receiver.url("/flaky"), events.clone()).await;
        let (down, _) = webhook_to(&service, &receiver.url("/down"), events).await;
        let mut event_ids = Vec::new();
        for n in 0..6 {
            let emitted = service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
            event_ids.push(emitted["event_id"].as_str().expect("id").to_owned());
        }
        wait_until_settled(&service).await;
        assert_health_equals_recount(&service).await;

        // Two of the bad webhook's failures resent once it answers again; every failure
        // of the down one recovered (and failing again).
        receiver.set("/bad", Behaviour::Status(200));
        let (_, page) = service
            .json(
                Method::GET,
                &format!("/deliveries?webhook_id={bad}&status=failed"),
                None,
            )
            .await;
        let failed: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(failed.len(), 6);
        for id in &failed[..2] {
            let (status, _) = service
                .json(Method::POST, &format!("/deliveries/{id}/resend"), None)
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            service.wait_for_delivery(id, "succeeded").await;
        }
        let (status, recovered) = service
            .json(
                Method::POST,
                &format!("/webhooks/{down}/recover"),
                Some(json!({"since": "2020-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{recovered}");
        assert_eq!(recovered["queued"], 6);
        wait_until_settled(&service).await;
        assert_health_equals_recount(&service).await;

        let webhook = |id: String| {
            let service = &service;
            async move {
                service
                    .json(Method::GET, &format!("/webhooks/{id}"), None)
                    .await
                    .1
            }
        };
        let ok = webhook(ok).await;
        assert!(ok["failing_since"].is_null(), "{ok}");
        assert!(ok["last_success_at"].is_string(), "{ok}");
        let bad = webhook(bad).await;
        assert!(
            bad["failing_since"].is_null(),
            "its last attempts succeeded: {bad}"
        );
        assert_eq!(bad["success_24h"], 2);
        assert_eq!(bad["failed_24h"], 4);
        let down = webhook(down).await;
        assert!(down["failing_since"].is_string(), "{down}");
        assert!(down["last_success_at"].is_null(), "{down}");
        assert_eq!(down["failed_24h"], 6);
    }
}

/// A service that deactivates a webhook after 1 s of failures, with a webhook whose
/// receiver answers 422 and one that is told of deactivations.
async fn failing_webhook() -> (Receiver, TestService, String) {
    let receiver = Receiver::start().await;
    receiver.set("/failing", Behaviour::Status(422));
    let service = TestService::start_with(|config| {
        config.delivery.auto_disable_after = Duration::from_secs(1);
    })
    .await;
    let (id, _) = webhook_to(
        &service,
        &receiver.url("/failing"),
        json!(["order.created"]),
    )
    .await;
    webhook_to(
        &service,
        &receiver.url("/alerts"),
        json!(["webhook.failed"]),
    )
    .await;
    (receiver, service, id)
}

/// Emits one event to the failing webhook and waits until its delivery has `status`.
async fn deliver_once(service: &TestService, status: &str) -> String {
    let emitted = service
        .emit(json!({"type": "order.created", "data": {}}))
        .await;
    let delivery = only_delivery(service, emitted["event_id"].as_str().expect("id")).await;
    service.wait_for_delivery(&delivery, status).await;
    delivery
}

async fn webhook_state(service: &TestService, id: &str) -> Value {
    let (status, webhook) = service
        .json(Method::GET, &format!("/webhooks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{webhook}");
    webhook
}

/// Waits until the service has deactivated webhook `id` for its failures and told the
/// webhook subscribed to `webhook.failed` (at `/alerts` on `receiver`).
pub(crate) async fn assert_deactivated_and_announced(
    service: &TestService,
    receiver: &Receiver,
    id: &str,
) {
    let webhook = wait_for("auto-disable", Duration::from_secs(10), || async {
        let webhook = webhook_state(service, id).await;
        (webhook["is_active"] == false).then_some(webhook)
    })
    .await;
    assert!(
        webhook["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("every delivery failed")),
        "{webhook}"
    );
    let alert = wait_for(
        "the webhook.failed event",
        Duration::from_secs(20),
        || async { receiver.received("/alerts").pop() },
    )
    .await;
    let body: Value = serde_json::from_slice(&alert.body).expect("json");
    assert_eq!(body["type"], "webhook.failed");
    assert_eq!(body["data"]["webhook_id"], id);
}

on_both_backends! {
    #[tokio::test]
    async fn a_success_between_failures_restarts_the_auto_disable_clock() {
        let (receiver, service, id) = failing_webhook().await;
        deliver_once(&service, "failed").await;
        let first_failure = millis(&webhook_state(&service, &id).await["failing_since"]);
        assert!(first_failure.is_some());
        tokio::time::sleep(Duration::from_millis(700)).await;
        receiver.set("/failing", Behaviour::Status(200));
        deliver_once(&service, "succeeded").await;
        assert!(webhook_state(&service, &id).await["failing_since"].is_null());

        // 1.2 s after the first failure, but only 0.5 s after the success.
        receiver.set("/failing", Behaviour::Status(422));
        tokio::time::sleep(Duration::from_millis(500)).await;
        deliver_once(&service, "failed").await;
        let webhook = webhook_state(&service, &id).await;
        assert_eq!(webhook["is_active"], true, "{webhook}");
        assert!(
            millis(&webhook["failing_since"]) > first_failure,
            "{webhook}"
        );

        // A whole second of failures after the success: deactivated and announced.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        deliver_once(&service, "failed").await;
        assert_deactivated_and_announced(&service, &receiver, &id).await;
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_resend_that_succeeds_restarts_the_auto_disable_clock() {
        let (receiver, service, id) = failing_webhook().await;
        let failed = deliver_once(&service, "failed").await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        receiver.set("/failing", Behaviour::Status(200));
        let (status, _) = service
            .json(Method::POST, &format!("/deliveries/{failed}/resend"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        service.wait_for_delivery(&failed, "succeeded").await;

        // More than a second since the first failure, but the resend succeeded since.
        receiver.set("/failing", Behaviour::Status(422));
        deliver_once(&service, "failed").await;
        let webhook = webhook_state(&service, &id).await;
        assert_eq!(webhook["is_active"], true, "{webhook}");
        assert!(receiver.received("/alerts").is_empty());
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_deleted_webhook_is_not_deactivated_or_announced_and_its_history_still_counts() {
        let (receiver, service, id) = failing_webhook().await;
        let failed = deliver_once(&service, "failed").await;
        let (status, _) = service
            .json(Method::DELETE, &format!("/webhooks/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // A resend of its failed delivery is refused (the webhook is gone), more than a
        // second after its first failure: nothing is attempted, deactivated or announced.
        let (status, answer) = service
            .json(Method::POST, &format!("/deliveries/{failed}/resend"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "webhook_inactive", "{answer}");
        let (_, detail) = service
            .json(Method::GET, &format!("/deliveries/{failed}"), None)
            .await;
        assert_eq!(detail["status"], "failed", "{detail}");
        assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(1), "{detail}");
        assert_eq!(receiver.received("/failing").len(), 1, "nothing sent to it");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.received("/alerts").is_empty());
        let (_, points) = service
            .json(
                Method::GET,
                &format!("/stats?bucket=day&webhook_id={id}"),
                None,
            )
            .await;
        let failed: u64 = points
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p["failed"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(failed, 1, "its history still counts: {points}");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn failures_before_a_restart_count_towards_auto_disable_after_it() {
        let (receiver, service, id) = failing_webhook().await;
        deliver_once(&service, "failed").await;
        let before = webhook_state(&service, &id).await["failing_since"].clone();
        assert!(before.is_string());
        let service = service
            .restart_with(|config| {
                config.delivery.auto_disable_after = Duration::from_secs(1);
            })
            .await;
        assert_eq!(
            webhook_state(&service, &id).await["failing_since"],
            before,
            "kept across the restart"
        );
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        deliver_once(&service, "failed").await;
        assert_deactivated_and_announced(&service, &receiver, &id).await;
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_hanging_receiver_holds_only_its_share_while_a_healthy_one_is_served() {
        const SLOTS: usize = 8;
        const SHARE: usize = 2;
        let receiver = Receiver::start().await;
        // Longer than the test: every request to it stays under way.
        receiver.set("/hang", Behaviour::Sleep(Duration::from_secs(60)));
        let service = TestService::start_with(|config| {
            config.delivery.concurrency = SLOTS;
            config.delivery.per_webhook_concurrency = SHARE;
            config.delivery.attempt_timeout = Duration::from_secs(60);
        })
        .await;
        webhook_to(&service, &receiver.url("/hang"), json!(["order.cancelled"])).await;
        webhook_to(
            &service,
            &receiver.url("/healthy"),
            json!(["order.created"]),
        )
        .await;
        for n in 0..20 {
            service
                .emit(json!({"type": "order.cancelled", "data": {"n": n}}))
                .await;
        }
        wait_for(
            "the hanging receiver to hold its share",
            Duration::from_secs(10),
            || async { (receiver.received("/hang").len() >= SHARE).then_some(()) },
        )
        .await;
        for n in 0..40 {
            service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
        }
        // Without a share, the hanging receiver's 20 deliveries took all 8 slots and the
        // healthy one waited for their 60 s timeout.
        wait_for(
            "every healthy delivery",
            Duration::from_secs(20),
            || async { (receiver.received("/healthy").len() == 40).then_some(()) },
        )
        .await;
        assert_eq!(
            receiver.received("/hang").len(),
            SHARE,
            "the hanging receiver got no more than its share"
        );
        // Each recorded as delivered (recording follows the receiver's answer).
        wait_for(
            "every healthy delivery recorded",
            Duration::from_secs(20),
            || async {
                let (_, page) = service
                    .json(Method::GET, "/deliveries?status=succeeded&limit=100", None)
                    .await;
                (page["items"].as_array().map(Vec::len) == Some(40)).then_some(())
            },
        )
        .await;
        assert_eq!(receiver.received("/hang").len(), SHARE);
    }
}

on_both_backends! {
    /// A claim walks only a window of the earliest due deliveries (a few per free slot):
    /// here the hanging webhook's waiting backlog fills it, and the healthy webhook's retry,
    /// due after all of them, is found per webhook.
    #[tokio::test]
    async fn a_retry_due_behind_a_hanging_webhooks_backlog_is_claimed() {
        const SLOTS: usize = 4;
        const SHARE: usize = 2;
        // Far beyond the window: (SLOTS - SHARE) × 4 + SHARE.
        const BACKLOG: usize = 60;
        let receiver = Receiver::start().await;
        receiver.set("/hang", Behaviour::Sleep(Duration::from_secs(60)));
        receiver.set("/healthy", Behaviour::FailTimes(1));
        let service = TestService::start_with(|config| {
            config.delivery.concurrency = SLOTS;
            config.delivery.per_webhook_concurrency = SHARE;
            config.delivery.attempt_timeout = Duration::from_secs(60);
        })
        .await;
        webhook_to(&service, &receiver.url("/hang"), json!(["order.cancelled"])).await;
        webhook_to(
            &service,
            &receiver.url("/healthy"),
            json!(["order.created"]),
        )
        .await;
        for n in 0..BACKLOG {
            service
                .emit(json!({"type": "order.cancelled", "data": {"n": n}}))
                .await;
        }
        wait_for(
            "the hanging receiver to hold its share",
            Duration::from_secs(10),
            || async { (receiver.received("/hang").len() >= SHARE).then_some(()) },
        )
        .await;

        // Its first attempt is handed over at once and fails; the retry is due 200 ms on,
        // behind the whole backlog.
        let emitted = service
            .emit(json!({"type": "order.created", "data": {"n": 0}}))
            .await;

        wait_for(
            "the healthy webhook's retry",
            Duration::from_secs(10),
            || async { (receiver.received("/healthy").len() == 2).then_some(()) },
        )
        .await;
        let event_id = emitted["event_id"].as_str().expect("event id");
        let delivery = only_delivery(&service, event_id).await;
        let delivered = service.wait_for_delivery(&delivery, "succeeded").await;
        assert_eq!(
            delivered["attempts"].as_array().map(Vec::len),
            Some(2),
            "{delivered}"
        );
        assert_eq!(receiver.received("/hang").len(), SHARE);
    }
}
