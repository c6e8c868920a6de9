//! The delivery engine end to end: real receivers on 127.0.0.1:0, a shortened retry schedule.

use std::time::Duration;

use chrono::Utc;
use hookpanel::signing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, assert_field_error, orders_webhook, wait_for};

pub(crate) async fn webhook_to(
    service: &TestService,
    url: &str,
    events: Value,
) -> (String, String) {
    let created = service
        .create_webhook(json!({"name": "Receiver", "url": url, "events": events}))
        .await;
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn deactivate(service: &TestService, webhook_id: &str) {
    let (status, answer) = service
        .json(
            Method::PATCH,
            &format!("/webhooks/{webhook_id}"),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

pub(crate) async fn only_delivery(service: &TestService, event_id: &str) -> String {
    let deliveries = service.deliveries_of(event_id).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0]["id"].as_str().expect("id").to_owned()
}

on_both_backends! {
    #[tokio::test]
    async fn an_emitted_event_arrives_signed_in_both_forms() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        let (webhook_id, secret) =
            webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;

        let emitted = service
            .emit(json!({"type": "order.created", "data": {"order_id": "ord_7", "total": 12.5}}))
            .await;
        assert_eq!(emitted["deliveries"], 1);
        let event_id = emitted["event_id"].as_str().expect("event id");
        let delivery_id = only_delivery(&service, event_id).await;
        let detail = service.wait_for_delivery(&delivery_id, "succeeded").await;

        let received = receiver.received("/ok");
        assert_eq!(received.len(), 1);
        let request = &received[0];
        assert_eq!(
            signing::verify(&secret, &request.headers, &request.body, Utc::now()),
            Ok(())
        );
        assert_eq!(
            signing::verify_simple_replayable(&secret, &request.headers, &request.body),
            Ok(())
        );
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        assert_eq!(header("webhook-id"), event_id);
        assert_eq!(header("x-webhook-event"), "order.created");
        assert_eq!(header("content-type"), "application/json");
        assert!(
            header("user-agent").starts_with("Hookpanel-Webhook/"),
            "{}",
            header("user-agent")
        );
        let body: Value = serde_json::from_slice(&request.body).expect("json body");
        assert_eq!(body["id"], event_id);
        assert_eq!(body["type"], "order.created");
        assert_eq!(body["data"], json!({"order_id": "ord_7", "total": 12.5}));
        assert!(
            body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{body}"
        );

        assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(1));
        // The typed client reads the same answer: no key appears twice.
        let (_, raw) = service
            .call(Method::GET, &format!("/deliveries/{delivery_id}"), None)
            .await;
        let typed: hookpanel::api::DeliveryDetail =
            serde_json::from_str(&raw).expect("a well-formed detail");
        assert_eq!(typed.attempts.len(), 1);
        assert_eq!(raw.matches("\"attempts\"").count(), 1, "{raw}");
        assert_eq!(detail["attempts"][0]["status_code"], 200);
        assert_eq!(
            detail["attempts"][0]["request_headers"]["webhook-id"],
            event_id
        );
        assert_eq!(detail["attempts"][0]["response_body"], "answered 200");
        // The signatures went out, but history keeps none that could be replayed.
        for name in [signing::HEADER_SIGNATURE, signing::HEADER_SIMPLE_SIGNATURE] {
            let sent = header(name);
            assert!(sent.len() > 40, "{name}: {sent}");
            assert_eq!(
                detail["attempts"][0]["request_headers"][name],
                signing::REDACTED
            );
            assert!(!raw.contains(sent), "{name} served: {raw}");
        }
        assert_eq!(
            detail["payload"],
            json!({"order_id": "ord_7", "total": 12.5})
        );
        assert_eq!(detail["success"], true);
        assert_eq!(detail["webhook_id"], webhook_id);

        let (_, webhook) = service
            .json(Method::GET, &format!("/webhooks/{webhook_id}"), None)
            .await;
        assert_eq!(webhook["success_24h"], 1);
        assert_eq!(webhook["failed_24h"], 0);
        assert_eq!(webhook["last_status_code"], 200);
        assert!(webhook["last_delivery_at"].is_string());
    }
}

on_both_backends! {
    #[tokio::test]
    async fn emit_fans_out_to_active_subscribers_once_per_id() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        webhook_to(&service, &receiver.url("/a"), json!(["order.created"])).await;
        webhook_to(&service, &receiver.url("/all"), json!(["*"])).await;
        webhook_to(
            &service,
            &receiver.url("/other"),
            json!(["order.cancelled"]),
        )
        .await;
        let (inactive, _) = webhook_to(
            &service,
            &receiver.url("/inactive"),
            json!(["order.created"]),
        )
        .await;
        deactivate(&service, &inactive).await;

        let event = json!({"type": "order.created", "id": "order-42-created", "data": {"n": 1}});
        let first = service.emit(event.clone()).await;
        let second = service.emit(event).await;
        assert_eq!(first["event_id"], "order-42-created");
        assert_eq!(first["deliveries"], 2);
        assert_eq!(second["event_id"], "order-42-created");
        assert_eq!(
            second["deliveries"], 2,
            "the repeat reports the first fan-out"
        );
        assert_eq!(
            service.deliveries_of("order-42-created").await.len(),
            2,
            "no new deliveries"
        );

        wait_for("both deliveries", Duration::from_secs(20), || async {
            (receiver.received("/a").len() == 1 && receiver.received("/all").len() == 1).then_some(())
        })
        .await;
        assert!(receiver.received("/other").is_empty());
        assert!(receiver.received("/inactive").is_empty());

        for (body, field) in [
            (json!({"type": "order.exploded", "data": {}}), "type"),
            (json!({"data": {}}), "type"),
            (json!({"type": "order.created"}), "data"),
            (
                json!({"type": "order.created", "data": {}, "id": "has space"}),
                "id",
            ),
            (json!({"type": "order.created", "data": {}, "id": ""}), "id"),
            (
                json!({"type": "order.created", "data": {}, "extra": 1}),
                "extra",
            ),
        ] {
            let (status, error) = service.json(Method::POST, "/events", Some(body)).await;
            assert_field_error(status, &error, field);
        }
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_receiver_that_fails_then_recovers_gets_retried() {
        let receiver = Receiver::start().await;
        receiver.set("/flaky", Behaviour::FailTimes(1));
        let service = TestService::start().await;
        webhook_to(&service, &receiver.url("/flaky"), json!(["*"])).await;
        let emitted = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        let detail = service.wait_for_delivery(&delivery_id, "succeeded").await;
        let attempts = detail["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0]["status_code"], 500);
        assert!(
            attempts[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("500")),
            "{}",
            attempts[0]
        );
        assert_eq!(attempts[1]["status_code"], 200);
        assert!(attempts[1]["error"].is_null());
        assert_eq!(detail["attempts"], json!(attempts), "oldest first");
        assert!(attempts[0]["started_at"].as_str() < attempts[1]["started_at"].as_str());
        assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(2));
        assert_eq!(receiver.received("/flaky").len(), 2);
    }
}

/// An event to a webhook whose receiver answers only after 5 s, with this attempt
/// timeout and one retry 100 ms after the first attempt. Returns the webhook's and the
/// delivery's ids.
async fn emit_to_a_hanging_receiver(
    attempt_timeout: Duration,
) -> (Receiver, TestService, String, String) {
    let receiver = Receiver::start().await;
    receiver.set("/hang", Behaviour::Sleep(Duration::from_secs(5)));
    let service = TestService::start_with(|config| {
        config.delivery.attempt_timeout = attempt_timeout;
        config.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_millis(100)];
    })
    .await;
    let (webhook_id, _) = webhook_to(&service, &receiver.url("/hang"), json!(["*"])).await;
    let emitted = service
        .emit(json!({"type": "order.created", "data": {}}))
        .await;
    let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
    (receiver, service, webhook_id, delivery_id)
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried_until_the_schedule_ends() {
    let (_receiver, service, _, delivery_id) =
        emit_to_a_hanging_receiver(Duration::from_millis(500)).await;
    let detail = service.wait_for_delivery(&delivery_id, "failed").await;
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "one retry, then the schedule ends");
    for attempt in attempts {
        assert!(attempt["status_code"].is_null());
        assert!(
            attempt["error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out")),
            "{attempt}"
        );
        assert!(
            attempt["duration_ms"].as_u64().is_some_and(|ms| ms >= 500),
            "{attempt}"
        );
    }
    assert!(
        detail["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
    );
}

on_both_backends! {
    #[tokio::test]
    async fn an_attempt_under_way_when_its_webhook_is_deactivated_is_not_retried() {
        let (receiver, service, id, delivery_id) =
            emit_to_a_hanging_receiver(Duration::from_millis(1_500)).await;
        wait_for(
            "the attempt to reach the receiver",
            Duration::from_secs(10),
            || async { (!receiver.received("/hang").is_empty()).then_some(()) },
        )
        .await;
        deactivate(&service, &id).await;

        // The attempt times out after the deactivation: recorded, but not scheduled again.
        let path = format!("/deliveries/{delivery_id}");
        let detail = wait_for(
            "the attempt to be recorded",
            Duration::from_secs(10),
            || async {
                let (_, detail) = service.json(Method::GET, &path, None).await;
                (detail["attempts"].as_array().map(Vec::len) == Some(1)).then_some(detail)
            },
        )
        .await;
        assert_eq!(detail["status"], "failed", "{detail}");
        assert!(detail["next_attempt_at"].is_null(), "{detail}");
        assert!(
            detail["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("deactivated")),
            "{detail}"
        );
        // Past the retry's time, nothing more went out.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.received("/hang").len(), 1);
    }
}

#[tokio::test]
async fn redirects_are_followed_up_to_two_hops() {
    let receiver = Receiver::start().await;
    let service = TestService::start().await;
    for hops in [1, 2, 3] {
        let (_, _) = webhook_to(
            &service,
            &receiver.url(&format!("/redirect/{hops}")),
            json!(["*"]),
        )
        .await;
    }
    let emitted = service
        .emit(json!({"type": "order.created", "data": {}}))
        .await;
    let deliveries = service
        .deliveries_of(emitted["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(deliveries.len(), 3);
    let mut outcomes = Vec::new();
    for delivery in &deliveries {
        let id = delivery["id"].as_str().expect("id");
        let detail = wait_for("a final status", Duration::from_secs(20), || async {
            let (_, detail) = service
                .json(Method::GET, &format!("/deliveries/{id}"), None)
                .await;
            matches!(detail["status"].as_str(), Some("succeeded" | "failed")).then_some(detail)
        })
        .await;
        outcomes.push(detail);
    }
    let succeeded = outcomes
        .iter()
        .filter(|d| d["status"] == "succeeded")
        .count();
    assert_eq!(succeeded, 2, "1 and 2 hops arrive");
    let failed: Vec<&Value> = outcomes
        .iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "3 hops fail");
    let attempts = failed[0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "a redirect loop is not retried");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than 2 redirects")),
        "{}",
        attempts[0]
    );
    assert!(receiver.received("/redirect/0").len() == 2);
}

#[tokio::test]
async fn only_307_and_308_deliver_through_a_redirect_and_never_to_another_host() {
    let receiver = Receiver::start().await;
    let service = TestService::start().await;
    let port = receiver.addr.port();
    let mut webhooks = Vec::new();
    for code in [301_u16, 302, 303, 307, 308] {
        receiver.set(
            &format!("/moved/{code}"),
            Behaviour::Redirect {
                status: code,
                to: format!("/landing/{code}?token=kept-out-of-errors"),
            },
        );
        let (id, _) = webhook_to(
            &service,
            &receiver.url(&format!("/moved/{code}")),
            json!(["*"]),
        )
        .await;
        webhooks.push((code, id));
    }
    // The same receiver, named by another host: a signature must not go there.
    receiver.set(
        "/moved/elsewhere",
        Behaviour::Redirect {
            status: 308,
            to: format!("http://localhost:{port}/landing/elsewhere"),
        },
    );
    let (elsewhere_id, _) =
        webhook_to(&service, &receiver.url("/moved/elsewhere"), json!(["*"])).await;

    let emitted = service
        .emit(json!({"type": "order.created", "data": {"order": "ord_301"}}))
        .await;
    let event_id = emitted["event_id"].as_str().expect("id").to_owned();
    let deliveries = service.deliveries_of(&event_id).await;
    assert_eq!(deliveries.len(), 6, "{deliveries:?}");
    let outcome = |webhook_id: &str| {
        let delivery = deliveries
            .iter()
            .find(|d| d["webhook_id"] == webhook_id)
            .expect("a delivery per webhook");
        let id = delivery["id"].as_str().expect("id").to_owned();
        let service = &service;
        async move {
            wait_for("a final status", Duration::from_secs(20), || async {
                let (_, detail) = service
                    .json(Method::GET, &format!("/deliveries/{id}"), None)
                    .await;
                matches!(detail["status"].as_str(), Some("succeeded" | "failed")).then_some(detail)
            })
            .await
        }
    };

    for (code, webhook_id) in &webhooks {
        let detail = outcome(webhook_id).await;
        let first = receiver.received(&format!("/moved/{code}"));
        assert_eq!(first.len(), 1, "{code}: one POST, not retried");
        let landed = receiver.received(&format!("/landing/{code}"));
        if matches!(code, 307 | 308) {
            assert_eq!(detail["status"], "succeeded", "{code}: {detail}");
            assert_eq!(landed.len(), 1, "{code}");
            assert_eq!(landed[0].method, Method::POST, "{code}");
            assert_eq!(landed[0].body, first[0].body, "{code}: the payload follows");
            assert!(!landed[0].body.is_empty());
            for header in [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-webhook-signature",
            ] {
                assert!(landed[0].headers.get(header).is_some(), "{code}: {header}");
                assert_eq!(
                    landed[0].headers.get(header),
                    first[0].headers.get(header),
                    "{code}: {header} is the same after the redirect"
                );
            }
        } else {
            assert_eq!(detail["status"], "failed", "{code}: {detail}");
            assert!(landed.is_empty(), "{code}: nothing went to the Location");
            let attempts = detail["attempts"].as_array().expect("attempts");
            assert_eq!(
                attempts.len(),
                1,
                "{code}: a method-changing redirect is not retried"
            );
            let error = attempts[0]["error"].as_str().unwrap_or_default();
            assert!(error.contains(&code.to_string()), "{error}");
            assert!(
                error.contains(&format!("/landing/{code}?…")),
                "names the Location: {error}"
            );
            assert!(!error.contains("kept-out-of-errors"), "{error}");
        }
    }

    let detail = outcome(&elsewhere_id).await;
    assert_eq!(detail["status"], "failed", "{detail}");
    assert!(
        receiver.received("/landing/elsewhere").is_empty(),
        "no signature went to another host"
    );
    let error = detail["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("another host"), "{error}");
    assert!(
        error.contains(&format!("localhost:{port}/landing/elsewhere")),
        "{error}"
    );
}

on_both_backends! {
    #[tokio::test]
    async fn gone_deactivates_and_other_4xx_fail_without_retry() {
        let receiver = Receiver::start().await;
        receiver.set("/gone", Behaviour::Status(410));
        receiver.set("/bad", Behaviour::Status(400));
        let service = TestService::start().await;
        let (gone_id, _) = webhook_to(&service, &receiver.url("/gone"), json!(["order.created"])).await;
        let (bad_id, _) = webhook_to(&service, &receiver.url("/bad"), json!(["order.created"])).await;
        let emitted = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let event_id = emitted["event_id"].as_str().expect("id");
        for delivery in service.deliveries_of(event_id).await {
            let detail = service
                .wait_for_delivery(delivery["id"].as_str().expect("id"), "failed")
                .await;
            assert_eq!(
                detail["attempts"].as_array().map(Vec::len),
                Some(1),
                "{detail}"
            );
        }
        // The webhook is deactivated just after its attempt is recorded: wait (bounded)
        // for it rather than race it.
        let gone = wait_for("the 410 webhook to be deactivated", Duration::from_secs(10), || async {
            let (_, gone) = service
                .json(Method::GET, &format!("/webhooks/{gone_id}"), None)
                .await;
            (gone["is_active"] == false).then_some(gone)
        })
        .await;
        assert_eq!(gone["is_active"], false);
        assert!(
            gone["disabled_reason"]
                .as_str()
                .is_some_and(|r| r.contains("410")),
            "{gone}"
        );
        let (_, bad) = service
            .json(Method::GET, &format!("/webhooks/{bad_id}"), None)
            .await;
        assert_eq!(bad["is_active"], true, "a 400 does not deactivate");
        assert_eq!(bad["failed_24h"], 1);
        assert_eq!(bad["last_status_code"], 400);

        // Reactivating clears the reason.
        let (_, reactivated) = service
            .json(
                Method::PATCH,
                &format!("/webhooks/{gone_id}"),
                Some(json!({"is_active": true})),
            )
            .await;
        assert_eq!(reactivated["is_active"], true);
        assert!(reactivated["disabled_reason"].is_null());
    }
}

on_both_backends! {
    #[tokio::test]
    async fn during_a_rotation_both_secrets_verify() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        let (id, old_secret) = webhook_to(&service, &receiver.url("/rotating"), json!(["*"])).await;
        let (_, rotated) = service
            .json(
                Method::POST,
                &format!("/webhooks/{id}/rotate-secret"),
                Some(json!({"grace_seconds": 600})),
            )
            .await;
        let new_secret = rotated["secret"].as_str().expect("new secret");
        let emitted = service
            .emit(json!({"type": "product.created", "data": {"sku": "TEE"}}))
            .await;
        let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&delivery_id, "succeeded").await;

        let request = &receiver.received("/rotating")[0];
        let signatures = request.headers[signing::HEADER_SIGNATURE]
            .to_str()
            .expect("ascii");
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        for secret in [old_secret.as_str(), new_secret] {
            assert_eq!(
                signing::verify(secret, &request.headers, &request.body, Utc::now()),
                Ok(())
            );
        }
        // The simple form is signed with the new secret only.
        assert_eq!(
            signing::verify_simple_replayable(new_secret, &request.headers, &request.body),
            Ok(())
        );
        assert!(
            signing::verify_simple_replayable(&old_secret, &request.headers, &request.body)
                .is_err()
        );

        // With no grace the old secret stops signing at once.
        let (_, rotated_again) = service
            .json(
                Method::POST,
                &format!("/webhooks/{id}/rotate-secret"),
                Some(json!({"grace_seconds": 0})),
            )
            .await;
        let newest = rotated_again["secret"].as_str().expect("secret");
        let emitted = service
            .emit(json!({"type": "product.created", "data": {}}))
            .await;
        let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&delivery_id, "succeeded").await;
        let request = receiver
            .received("/rotating")
            .pop()
            .expect("second request");
        let signatures = request.headers[signing::HEADER_SIGNATURE]
            .to_str()
            .expect("ascii");
        assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
        assert!(signing::verify(newest, &request.headers, &request.body, Utc::now()).is_ok());
        assert!(signing::verify(new_secret, &request.headers, &request.body, Utc::now()).is_err());
    }
}

on_both_backends! {
    #[tokio::test]
    async fn resend_delivers_a_failed_delivery_once_the_receiver_recovers() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(503));
        let service = TestService::start().await;
        webhook_to(&service, &receiver.url("/down"), json!(["*"])).await;
        let emitted = service
            .emit(json!({"type": "payment.received", "data": {"amount": 5}}))
            .await;
        let event_id = emitted["event_id"].as_str().expect("id");
        let delivery_id = only_delivery(&service, event_id).await;
        let failed = service.wait_for_delivery(&delivery_id, "failed").await;
        assert_eq!(
            failed["attempts"].as_array().map(Vec::len),
            Some(3),
            "the whole schedule"
        );
        assert_eq!(failed["status_code"], 503);

        receiver.set("/down", Behaviour::Status(200));
        let (status, queued) = service
            .json(
                Method::POST,
                &format!("/deliveries/{delivery_id}/resend"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let delivered = service.wait_for_delivery(&delivery_id, "succeeded").await;
        let attempts = delivered["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 4, "history keeps every attempt");
        let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
        assert_eq!(codes, [&json!(503), &json!(503), &json!(503), &json!(200)]);
        let ids: Vec<String> = receiver
            .received("/down")
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().expect("ascii").to_owned())
            .collect();
        assert!(
            ids.iter().all(|id| id == event_id),
            "the same event id every time"
        );

        // A succeeded delivery can be resent too.
        let (status, _) = service
            .json(
                Method::POST,
                &format!("/deliveries/{delivery_id}/resend"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        wait_for("the fifth attempt", Duration::from_secs(20), || async {
            let (_, detail) = service
                .json(Method::GET, &format!("/deliveries/{delivery_id}"), None)
                .await;
            (detail["attempts"].as_array().map(Vec::len) == Some(5)).then_some(())
        })
        .await;
        let (status, error) = service
            .json(Method::POST, "/deliveries/dlv_nope/resend", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn recover_resends_every_failed_delivery_since_a_time() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(400));
        let service = TestService::start().await;
        let (webhook_id, _) = webhook_to(&service, &receiver.url("/down"), json!(["*"])).await;
        let since = Utc::now();
        let mut delivery_ids = Vec::new();
        for n in 0..3 {
            let emitted = service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
            delivery_ids.push(only_delivery(&service, emitted["event_id"].as_str().expect("id")).await);
        }
        for id in &delivery_ids {
            service.wait_for_delivery(id, "failed").await;
        }
        receiver.set("/down", Behaviour::Status(200));
        let (status, recovered) = service
            .json(
                Method::POST,
                &format!("/webhooks/{webhook_id}/recover"),
                Some(json!({"since": since.to_rfc3339()})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{recovered}");
        assert_eq!(recovered["queued"], 3);
        for id in &delivery_ids {
            service.wait_for_delivery(id, "succeeded").await;
        }
        let (status, recovered) = service
            .json(
                Method::POST,
                &format!("/webhooks/{webhook_id}/recover"),
                Some(json!({"since": since.to_rfc3339()})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(recovered["queued"], 0, "nothing failed is left");
        let (status, error) = service
            .json(
                Method::POST,
                &format!("/webhooks/{webhook_id}/recover"),
                Some(json!({"since": "yesterday"})),
            )
            .await;
        assert_field_error(status, &error, "since");
    }
}

#[tokio::test]
async fn slack_webhooks_get_a_block_kit_message() {
    let receiver = Receiver::start().await;
    let service = TestService::start().await;
    service
        .create_webhook(json!({
            "name": "Slack", "url": receiver.url("/slack"), "events": ["order.created"], "kind": "slack",
        }))
        .await;
    let emitted = service
        .emit(json!({"type": "order.created", "data": {"order_id": "ord_9", "total": 30, "lines": [1, 2]}}))
        .await;
    let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
    service.wait_for_delivery(&delivery_id, "succeeded").await;
    let body: Value = serde_json::from_slice(&receiver.received("/slack")[0].body).expect("json");
    assert_eq!(body["text"], "order.created");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["text"], "order.created");
    assert_eq!(
        body["blocks"][1]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*order_id*\nord_9"},
            {"type": "mrkdwn", "text": "*total*\n30"},
        ])
    );
    assert_eq!(body["blocks"][2]["type"], "context");
    assert!(
        body["blocks"][2]["elements"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(emitted["event_id"].as_str().expect("id")))
    );
}

#[tokio::test]
async fn private_destinations_are_refused_by_default() {
    let receiver = Receiver::start().await;
    let service = TestService::start_with(|config| {
        config.delivery.allow_private_destinations = false;
    })
    .await;
    // An IP literal is judged at registration: the operator learns at once.
    let (status, refused) = service
        .json(
            Method::POST,
            "/webhooks",
            Some(json!({"name": "literal", "url": receiver.url("/private"), "events": ["*"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["field"], "url");
    // A name is judged at each delivery, after DNS.
    service
        .create_webhook(json!({"name": "named", "url": format!("http://localhost:{}/named", receiver.addr.port()), "events": ["*"]}))
        .await;
    let emitted = service
        .emit(json!({"type": "order.created", "data": {}}))
        .await;
    let deliveries = service
        .deliveries_of(emitted["event_id"].as_str().expect("id"))
        .await;
    assert_eq!(deliveries.len(), 1);
    for delivery in deliveries {
        let detail = service
            .wait_for_delivery(delivery["id"].as_str().expect("id"), "failed")
            .await;
        assert_eq!(
            detail["attempts"].as_array().map(Vec::len),
            Some(1),
            "not retried"
        );
        let error = detail["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("refused") && error.contains("loopback"),
            "{error}"
        );
    }
    assert!(
        receiver.all_received().is_empty(),
        "nothing reached the receiver"
    );
}

/// IP literals that disguise a refused address are refused at create and at PATCH with a
/// 422 naming `url`; cloud metadata addresses even where private destinations are allowed.
/// (Nothing is sent: a refused webhook never exists.)
#[tokio::test]
async fn disguised_ip_literals_are_refused_at_registration_and_patch() {
    let service = TestService::start().await;
    let webhook = service.create_webhook(orders_webhook()).await;
    let id = webhook["id"].as_str().expect("id");
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://100.100.100.200/",
        "https://[fd00:ec2::254]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[::a9fe:a9fe]/",
        "https://0.0.0.1/",
        "https://240.0.0.1/",
    ] {
        let (status, created) = service
            .json(
                Method::POST,
                "/webhooks",
                Some(json!({"name": "disguised", "url": url, "events": ["*"]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {created}");
        assert_eq!(created["error"]["field"], "url", "{url}");
        let (status, patched) = service
            .json(
                Method::PATCH,
                &format!("/webhooks/{id}"),
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {patched}");
        assert_eq!(patched["error"]["field"], "url", "{url}");
    }
    let (_, unchanged) = service
        .json(Method::GET, &format!("/webhooks/{id}"), None)
        .await;
    assert_eq!(unchanged["url"], webhook["url"], "nothing was lost");
}

#[tokio::test]
async fn a_redirect_to_a_link_local_address_is_refused_even_when_private_is_allowed() {
    let receiver = Receiver::start().await;
    receiver.set(
        "/to-metadata",
        Behaviour::RedirectTo("http://169.254.169.254/latest/meta-data/".to_owned()),
    );
    let service = TestService::start().await;
    webhook_to(&service, &receiver.url("/to-metadata"), json!(["*"])).await;
    let emitted = service
        .emit(json!({"type": "order.created", "data": {}}))
        .await;
    let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
    let detail = service.wait_for_delivery(&delivery_id, "failed").await;
    let error = detail["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused") && error.contains("cloud metadata"),
        "{error}"
    );
}

on_both_backends! {
    #[tokio::test]
    async fn send_test_reaches_one_webhook_even_if_unsubscribed() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        let (id, secret) =
            webhook_to(&service, &receiver.url("/tested"), json!(["order.created"])).await;
        webhook_to(&service, &receiver.url("/bystander"), json!(["*"])).await;
        let (status, queued) = service
            .json(Method::POST, &format!("/webhooks/{id}/test"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        let delivery_id = queued["delivery_id"].as_str().expect("delivery id");
        let detail = service.wait_for_delivery(delivery_id, "succeeded").await;
        assert_eq!(detail["event_type"], "webhook.test");
        let request = &receiver.received("/tested")[0];
        assert!(signing::verify(&secret, &request.headers, &request.body, Utc::now()).is_ok());
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["type"], "webhook.test");
        assert!(receiver.received("/bystander").is_empty());
        let (status, _) = service
            .json(Method::POST, "/webhooks/wh_nope/test", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_webhook_failing_for_the_configured_time_is_deactivated_and_announced() {
        let receiver = Receiver::start().await;
        receiver.set("/broken", Behaviour::Status(400));
        let service = TestService::start_with(|config| {
            config.delivery.auto_disable_after = Duration::from_secs(1);
        })
        .await;
        let (broken, _) =
            webhook_to(&service, &receiver.url("/broken"), json!(["order.created"])).await;
        webhook_to(
            &service,
            &receiver.url("/alerts"),
            json!(["webhook.failed"]),
        )
        .await;

        let first = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let first_id = only_delivery(&service, first["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&first_id, "failed").await;
        let (_, still) = service
            .json(Method::GET, &format!("/webhooks/{broken}"), None)
            .await;
        assert_eq!(
            still["is_active"], true,
            "one failure is not yet 1 s of failures"
        );

        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let second_id = only_delivery(&service, second["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&second_id, "failed").await;
        crate::outage::assert_deactivated_and_announced(&service, &receiver, &broken).await;
    }
}

on_both_backends! {
    #[tokio::test]
    async fn deliveries_page_newest_first_and_filter_exactly() {
        let receiver = Receiver::start().await;
        receiver.set("/fails", Behaviour::Status(422));
        let service = TestService::start().await;
        let (ok_hook, _) = webhook_to(
            &service,
            &receiver.url("/ok"),
            json!(["order.created", "product.created"]),
        )
        .await;
        let (failing_hook, _) =
            webhook_to(&service, &receiver.url("/fails"), json!(["order.created"])).await;
        let mut event_ids = Vec::new();
        for n in 0..5 {
            let kind = if n % 2 == 0 {
                "order.created"
            } else {
                "product.created"
            };
            let emitted = service.emit(json!({"type": kind, "data": {"n": n}})).await;
            event_ids.push(emitted["event_id"].as_str().expect("id").to_owned());
        }
        // 3 order.created × 2 webhooks + 2 product.created × 1 = 8 deliveries.
        let all = wait_for(
            "every delivery to finish",
            Duration::from_secs(20),
            || async {
                let (_, page) = service
                    .json(Method::GET, "/deliveries?limit=500", None)
                    .await;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                (items.len() == 8
                    && items
                        .iter()
                        .all(|d| d["status"] == "succeeded" || d["status"] == "failed"))
                .then_some(items)
            },
        )
        .await;
        let ids: Vec<&str> = all.iter().filter_map(|d| d["id"].as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted, "newest first");

        // Pages of 3 walk every delivery once.
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let path = match &cursor {
                Some(c) => format!("/deliveries?limit=3&cursor={c}"),
                None => "/deliveries?limit=3".to_owned(),
            };
            let (status, page) = service.json(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            walked.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .filter_map(|d| d["id"].as_str().map(str::to_owned)),
            );
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(walked, ids);

        let count = |query: &'static str| {
            let service = &service;
            async move {
                let (status, page) = service
                    .json(Method::GET, &format!("/deliveries?{query}"), None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{query}: {page}");
                page["items"].as_array().expect("items").clone()
            }
        };
        let failed = count("status=failed").await;
        assert_eq!(failed.len(), 3);
        assert!(failed.iter().all(|d| d["webhook_id"] == failing_hook));
        assert_eq!(count("status=succeeded").await.len(), 5);
        let by_hook = service
            .json(
                Method::GET,
                &format!("/deliveries?webhook_id={ok_hook}&event_type=product.created"),
                None,
            )
            .await
            .1;
        assert_eq!(by_hook["items"].as_array().map(Vec::len), Some(2));
        let by_event = service.deliveries_of(&event_ids[0]).await;
        assert_eq!(by_event.len(), 2);
        // By the class of the last answer: the failing receiver answers 422, the other 2xx.
        let client_errors = count("code=4xx").await;
        assert_eq!(client_errors.len(), 3);
        assert!(client_errors.iter().all(|d| d["status_code"] == 422));
        assert_eq!(count("code=2xx").await.len(), 5);
        assert_eq!(count("code=5xx").await.len(), 0);
        assert_eq!(count("code=network").await.len(), 0);
        assert_eq!(
            count("since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z")
                .await
                .len(),
            0
        );
        let future = (Utc::now() + chrono::TimeDelta::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (_, page) = service
            .json(Method::GET, &format!("/deliveries?since={future}"), None)
            .await;
        assert_eq!(page["items"], json!([]));

        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=many", "limit"),
            ("cursor=garbage", "cursor"),
            ("status=exploded", "status"),
            ("code=6xx", "code"),
            ("since=yesterday", "since"),
            ("colour=red", "colour"),
        ] {
            let (status, error) = service
                .json(Method::GET, &format!("/deliveries?{query}"), None)
                .await;
            assert_field_error(status, &error, field);
        }

        let (status, stats) = service
            .json(
                Method::GET,
                &format!("/stats?webhook_id={failing_hook}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        let points = stats.as_array().expect("points");
        assert!(
            points.len() >= 24,
            "an hourly bucket for every hour of the last day"
        );
        let failed_total: u64 = points.iter().filter_map(|p| p["failed"].as_u64()).sum();
        let succeeded_total: u64 = points.iter().filter_map(|p| p["succeeded"].as_u64()).sum();
        assert_eq!((succeeded_total, failed_total), (0, 3));
        let (status, error) = service
            .json(Method::GET, "/stats?bucket=minute", None)
            .await;
        assert_field_error(status, &error, "bucket");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_receiver_that_never_answers_is_filed_under_network_errors() {
        let service = TestService::start().await;
        // Bind a port, then free it: nothing listens there any more.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let (hook, _) = webhook_to(
            &service,
            &format!("http://{closed}/gone"),
            json!(["order.created"]),
        )
        .await;
        let emitted = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        let failed = service.wait_for_delivery(&id, "failed").await;
        assert_eq!(failed["status_code"], Value::Null);
        let (_, network) = service
            .json(
                Method::GET,
                &format!("/deliveries?code=network&webhook_id={hook}"),
                None,
            )
            .await;
        assert_eq!(network["items"][0]["id"], id.as_str(), "{network}");
        let (_, answered) = service
            .json(Method::GET, "/deliveries?code=4xx", None)
            .await;
        assert_eq!(answered["items"], json!([]));
    }
}

on_both_backends! {
    #[tokio::test]
    async fn concurrent_resends_are_all_accepted() {
        let receiver = Receiver::start().await;
        receiver.set("/batch", Behaviour::Status(422));
        let service = TestService::start().await;
        webhook_to(&service, &receiver.url("/batch"), json!(["order.created"])).await;
        for n in 0..20 {
            service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
        }
        let failed = wait_for("20 failed deliveries", Duration::from_secs(20), || async {
            let (_, page) = service
                .json(Method::GET, "/deliveries?status=failed", None)
                .await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            (items.len() == 20).then_some(items)
        })
        .await;
        receiver.set("/batch", Behaviour::Status(204));
        // Every resend at once, as the panel's bulk resend sends them: each one reads, then
        // writes, so SQLite must not turn the overlap into "database is locked".
        let resends = failed.iter().map(|delivery| {
            let path = format!(
                "/deliveries/{}/resend",
                delivery["id"].as_str().unwrap_or("?")
            );
            let service = &service;
            async move { service.json(Method::POST, &path, None).await }
        });
        for (status, body) in futures_util::future::join_all(resends).await {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
        wait_for(
            "every resend to arrive",
            Duration::from_secs(20),
            || async { (receiver.received("/batch").len() == 40).then_some(()) },
        )
        .await;
    }
}

on_both_backends! {
    /// Numbers beyond an f64's precision (amounts, 20-digit ids) reach the receiver digit for
    /// digit: the service keeps the caller's JSON text and never rounds it through a float.
    #[tokio::test]
    async fn event_data_reaches_the_receiver_exactly_as_sent() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        webhook_to(
            &service,
            &receiver.url("/exact"),
            json!(["payment.received"]),
        )
        .await;

        let data = r#"{"amount": 12345678901234567890.123456789, "order_id": 123456789012345678901234, "ratio": 15.777777777777777777777777, "note": "caf\u00e9"}"#;
        let body = format!(r#"{{"type": "payment.received", "id": "pay-exact", "data": {data}}}"#);
        let response = service.post_raw("/events", body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);

        let received = wait_for("the delivery", Duration::from_secs(20), || async {
            receiver.received("/exact").into_iter().next()
        })
        .await;
        let text = String::from_utf8(received.body.to_vec()).expect("utf-8");
        assert!(
            text.contains(&format!(r#""data":{data}"#)),
            "the data changed on the way: {text}"
        );

        // Valid JSON grammar, but no receiver's f64 holds it: refused with the field named.
        let response = service
            .post_raw(
                "/events",
                r#"{"type": "payment.received", "data": {"amount": 1e400}}"#,
            )
            .await;
        let status = response.status();
        let error: Value = response.json().await.expect("json");
        assert_field_error(status, &error, "data");
    }
}

on_both_backends! {
    /// `POST /deliveries/resend`: by ids, by filter, and what it skips; the deliveries it
    /// queues arrive.
    #[tokio::test]
    async fn bulk_resend_queues_by_ids_and_by_filter() {
        let receiver = Receiver::start().await;
        receiver.set("/a", Behaviour::Status(503));
        receiver.set("/b", Behaviour::Status(503));
        let service = TestService::start().await;
        let (hook_a, _) = webhook_to(&service, &receiver.url("/a"), json!(["order.created"])).await;
        let (hook_b, _) =
            webhook_to(&service, &receiver.url("/b"), json!(["payment.received"])).await;
        let mut a_ids = Vec::new();
        for n in 0..6 {
            let emitted = service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
            a_ids.push(only_delivery(&service, emitted["event_id"].as_str().expect("id")).await);
        }
        let emitted = service
            .emit(json!({"type": "payment.received", "data": {}}))
            .await;
        let b_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        for id in a_ids.iter().chain([&b_id]) {
            service.wait_for_delivery(id, "failed").await;
        }
        deactivate(&service, &hook_b).await;
        receiver.set("/a", Behaviour::Status(200));

        // By ids: two of A's, B's (inactive) and one that does not exist.
        let (status, resent) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"ids": [&a_ids[0], &a_ids[1], &b_id, "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV"]})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        assert_eq!(resent["queued"], 2, "{resent}");
        assert_eq!(resent["skipped_total"], 2, "{resent}");
        let mut skipped: Vec<(String, String)> = resent["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .map(|s| (s["id"].as_str().unwrap_or("").to_owned(), s["reason"].as_str().unwrap_or("").to_owned()))
            .collect();
        skipped.sort();
        let mut expected = vec![
            (b_id.clone(), "webhook_inactive".to_owned()),
            ("dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(), "not_found".to_owned()),
        ];
        expected.sort();
        assert_eq!(skipped, expected);
        for id in &a_ids[..2] {
            service.wait_for_delivery(id, "succeeded").await;
        }

        // By filter: the rest of A's failed ones, and nothing of B's. A dry run first
        // says so and changes nothing.
        let (status, preview) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"status": "failed"}, "dry_run": true})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{preview}");
        assert_eq!(preview["queued"], 4, "{preview}");
        assert_eq!(preview["queued_by_webhook"], json!({hook_a.clone(): 4}));
        assert_eq!(preview["skipped"], json!([{"id": b_id, "reason": "webhook_inactive"}]));
        let (_, still_failed) = service
            .json(Method::GET, "/deliveries?status=failed", None)
            .await;
        assert_eq!(still_failed["items"].as_array().map(Vec::len), Some(5));
        let (status, resent) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"status": "failed", "webhook_id": hook_a}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        assert_eq!(
            resent,
            json!({"queued": 4, "skipped": [], "skipped_total": 0, "queued_by_webhook": {hook_a.clone(): 4}})
        );
        for id in &a_ids {
            service.wait_for_delivery(id, "succeeded").await;
        }
        assert_eq!(receiver.received("/a").len(), 6 * 3 + 6, "one more attempt each");

        // An empty window covers nothing.
        let (status, resent) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        assert_eq!(resent["queued"], 0);

        // Bad bodies name their field and change nothing.
        let too_many: Vec<String> = (0..10_001).map(|n| format!("dlv_{n:026}")).collect();
        for (body, field) in [
            (json!({}), "ids"),
            (json!({"ids": []}), "ids"),
            (json!({"ids": too_many}), "ids"),
            (json!({"ids": null}), "ids"),
            (json!({"ids": [&a_ids[0]], "filter": {}}), "filter"),
            (json!({"filter": {"status": "lost"}}), "filter.status"),
            (json!({"filter": {"colour": "red"}}), "filter.colour"),
            (json!({"filter": [null, null]}), "filter"),
            (json!({"filter": null}), "filter"),
        ] {
            let (status, error) = service
                .json(Method::POST, "/deliveries/resend", Some(body.clone()))
                .await;
            assert_field_error(status, &error, field);
        }
        let (_, detail) = service
            .json(Method::GET, &format!("/deliveries/{}", a_ids[0]), None)
            .await;
        assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(4));
    }
}

on_both_backends! {
    /// `--retention`: finished deliveries older than it go, with their attempts and the
    /// events no delivery is left of; a retrying delivery stays however old; the hourly
    /// counts behind the chart outlive the rows.
    #[tokio::test]
    async fn retention_prunes_finished_deliveries_and_keeps_unfinished_ones() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(503));
        let service = TestService::start_with(|config| {
            config.retention = Some(Duration::from_secs(2));
            config.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(600)];
        })
        .await;
        let (ok_hook, _) = webhook_to(
            &service,
            &receiver.url("/ok"),
            json!(["order.created", "payment.received"]),
        )
        .await;
        webhook_to(&service, &receiver.url("/down"), json!(["payment.received"])).await;
        service
            .emit(json!({"type": "order.created", "id": "evt-only-ok", "data": {}}))
            .await;
        service
            .emit(json!({"type": "payment.received", "id": "evt-both", "data": {}}))
            .await;
        let nobody = service
            .emit(json!({"type": "shipment.delivered", "id": "evt-nobody", "data": {}}))
            .await;
        assert_eq!(nobody["deliveries"], 0, "no webhook takes it");
        let only_ok = only_delivery(&service, "evt-only-ok").await;
        service.wait_for_delivery(&only_ok, "succeeded").await;
        let both = service.deliveries_of("evt-both").await;
        assert_eq!(both.len(), 2);
        let id_of = |hook_is_ok: bool| {
            both.iter()
                .find(|d| (d["webhook_id"] == ok_hook.as_str()) == hook_is_ok)
                .and_then(|d| d["id"].as_str())
                .expect("a delivery")
                .to_owned()
        };
        let (both_ok, both_down) = (id_of(true), id_of(false));
        service.wait_for_delivery(&both_ok, "succeeded").await;
        let retrying = service.wait_for_delivery(&both_down, "retrying").await;
        assert_eq!(retrying["attempts"].as_array().map(Vec::len), Some(1));

        wait_for("the finished deliveries to be pruned", Duration::from_secs(20), || async {
            let (status, _) = service
                .json(Method::GET, &format!("/deliveries/{only_ok}"), None)
                .await;
            (status == StatusCode::NOT_FOUND).then_some(())
        })
        .await;
        let (status, _) = service
            .json(Method::GET, &format!("/deliveries/{both_ok}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let kept = service.wait_for_delivery(&both_down, "retrying").await;
        assert_eq!(kept["attempts"].as_array().map(Vec::len), Some(1), "its attempts stay");

        // The chart's counts outlive the rows.
        let (_, stats) = service.json(Method::GET, "/stats", None).await;
        let succeeded: u64 = stats
            .as_array()
            .expect("points")
            .iter()
            .filter_map(|p| p["succeeded"].as_u64())
            .sum();
        assert_eq!(succeeded, 2, "{stats}");

        // An event no delivery is left of is gone: its id fans out anew. One that kept a
        // delivery is still there: its id does not.
        let again = service
            .emit(json!({"type": "order.created", "id": "evt-only-ok", "data": {}}))
            .await;
        assert_eq!(again["deliveries"], 1);
        let fresh = only_delivery(&service, "evt-only-ok").await;
        assert_ne!(fresh, only_ok);
        service
            .emit(json!({"type": "payment.received", "id": "evt-both", "data": {}}))
            .await;
        let left = service.deliveries_of("evt-both").await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["id"], both_down.as_str());

        // An event no delivery was ever made for goes too: once a webhook takes its type,
        // its id fans out anew. (Emitting it again before it went changes nothing.)
        webhook_to(&service, &receiver.url("/ok"), json!(["shipment.delivered"])).await;
        wait_for("the undelivered event to be pruned", Duration::from_secs(20), || async {
            let again = service
                .emit(json!({"type": "shipment.delivered", "id": "evt-nobody", "data": {}}))
                .await;
            (again["deliveries"] == 1).then_some(())
        })
        .await;
    }
}

on_both_backends! {
    #[tokio::test]
    async fn a_resend_to_an_inactive_or_deleted_webhook_is_refused_as_bulk_resend_skips_it() {
        let receiver = Receiver::start().await;
        receiver.set("/gone-soon", Behaviour::Status(400));
        let service = TestService::start().await;
        let (webhook_id, _) =
            webhook_to(&service, &receiver.url("/gone-soon"), json!(["order.created"])).await;
        let emitted = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        let delivery_id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&delivery_id, "failed").await;
        deactivate(&service, &webhook_id).await;

        let resend = format!("/deliveries/{delivery_id}/resend");
        let (status, answer) = service.json(Method::POST, &resend, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "webhook_inactive", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("deactivated")),
            "{answer}"
        );
        // Nothing was queued, and nothing more arrived.
        let (_, detail) = service
            .json(Method::GET, &format!("/deliveries/{delivery_id}"), None)
            .await;
        assert_eq!(detail["status"], "failed", "{detail}");
        assert_eq!(receiver.received("/gone-soon").len(), 1);

        let (status, _) = service
            .call(Method::DELETE, &format!("/webhooks/{webhook_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, answer) = service.json(Method::POST, &resend, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("deleted")),
            "{answer}"
        );
    }
}

/// Every page of `GET /deliveries?{filters}` in turn: the ids, and each page's answer.
async fn every_page(service: &TestService, filters: &str) -> (Vec<String>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => format!("/deliveries?{filters}"),
            Some(cursor) => format!("/deliveries?{filters}&cursor={cursor}"),
        };
        let (status, page) = service.json(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        ids.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        if cursor.is_none() {
            return (ids, pages);
        }
    }
    panic!("more than 100 pages");
}

on_both_backends! {
    #[tokio::test]
    async fn totals_count_every_match_and_order_asc_walks_the_whole_history_oldest_first() {
        let receiver = Receiver::start().await;
        receiver.set("/refuses", Behaviour::Status(400));
        let service = TestService::start().await;
        let (ok_id, _) = webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;
        let (bad_id, _) =
            webhook_to(&service, &receiver.url("/refuses"), json!(["order.created"])).await;
        for n in 0..25 {
            service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
        }
        wait_for("every delivery finished", Duration::from_secs(30), || async {
            let (_, list) = service.json(Method::GET, "/webhooks", None).await;
            let pending: u64 = list["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|w| w["pending"].as_u64().unwrap_or(1))
                .sum();
            (pending == 0).then_some(())
        })
        .await;

        // The total counts every match, not the page.
        let (newest_first, pages) =
            every_page(&service, &format!("webhook_id={bad_id}&status=failed&limit=10")).await;
        assert_eq!(newest_first.len(), 25);
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0]["total"], 25, "{}", pages[0]);
        assert_eq!(pages[0]["total_capped"], false);
        assert!(pages[1].get("total").is_none(), "later pages carry no total: {}", pages[1]);
        let (all, _) = every_page(&service, "limit=500").await;
        let (status, first) = service.json(Method::GET, "/deliveries?limit=7", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["total"], all.len(), "{first}");
        assert_eq!(all.len(), 50);
        let (_, none) = service
            .json(Method::GET, &format!("/deliveries?webhook_id={ok_id}&status=failed"), None)
            .await;
        assert_eq!(none["total"], 0, "{none}");

        // Oldest first, across pages, with the same cursor: the reverse of newest first.
        let (oldest_first, _) = every_page(
            &service,
            &format!("webhook_id={bad_id}&status=failed&limit=10&order=asc"),
        )
        .await;
        let mut reversed = newest_first.clone();
        reversed.reverse();
        assert_eq!(oldest_first, reversed);
        let (_, page) = service
            .json(Method::GET, "/deliveries?order=asc&limit=1", None)
            .await;
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(page["items"][0]["id"], sorted[0], "the oldest of the whole history");
        let (status, refused) = service
            .json(Method::GET, "/deliveries?order=sideways", None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
}

#[tokio::test]
async fn a_total_past_the_cap_says_so() {
    let receiver = Receiver::start().await;
    let service = TestService::start().await;
    for _ in 0..20 {
        webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;
    }
    // 501 events to 20 webhooks: 10 020 deliveries, past the cap of 10 000.
    for n in 0..501 {
        service
            .emit(json!({"type": "order.created", "data": {"n": n}}))
            .await;
    }
    let (status, page) = service.json(Method::GET, "/deliveries?limit=1", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["total"],
        hookpanel::api::DELIVERY_TOTAL_CAP,
        "{}",
        page["total"]
    );
    assert_eq!(page["total_capped"], true);
    let (_, page) = service
        .json(
            Method::GET,
            "/deliveries?limit=1&since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(
        page["total_capped"], true,
        "a filter that matches every one"
    );
}
