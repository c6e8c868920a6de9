//! A webhook's health as the service keeps it: what is unfinished (pending, retrying, the
//! oldest due), the last error in words, and the one `health` every view colours by,
//! against real receivers that hang, fail and succeed, compared with a recount.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::RawConnection;
use crate::e2e_delivery::webhook_to;
use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, test_delivery_config, wait_for};

const EVENTS: usize = 12;

async fn webhooks_by_id(service: &TestService) -> HashMap<String, Value> {
    let (status, list) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|w| (w["id"].as_str().expect("id").to_owned(), w.clone()))
        .collect()
}

/// (unfinished, retrying) per webhook, counted from `deliveries` itself.
async fn recount_unfinished(service: &TestService) -> HashMap<String, (u64, u64)> {
    let mut db = RawConnection::open(&service.database_url).await;
    let rows: Vec<(String, i64, i64)> = db
        .rows(
            "SELECT webhook_id, CAST(COUNT(*) AS BIGINT), \
               CAST(SUM(CASE WHEN status = 'retrying' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM deliveries WHERE status IN ('pending', 'retrying') GROUP BY webhook_id",
        )
        .await;
    rows.into_iter()
        .map(|(id, unfinished, retrying)| (id, (unfinished as u64, retrying as u64)))
        .collect()
}

fn assert_matches_recount(
    webhooks: &HashMap<String, Value>,
    recount: &HashMap<String, (u64, u64)>,
) {
    for (id, webhook) in webhooks {
        let (unfinished, retrying) = recount.get(id).copied().unwrap_or((0, 0));
        assert_eq!(
            webhook["pending"], unfinished,
            "{id}: pending against a recount: {webhook}"
        );
        assert_eq!(
            webhook["retrying"], retrying,
            "{id}: retrying against a recount: {webhook}"
        );
    }
}

on_both_backends! {
    #[tokio::test(flavor = "multi_thread")]
    async fn health_counts_what_is_stuck_and_says_why() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(500));
        receiver.set("/hang", Behaviour::Sleep(Duration::from_secs(30)));
        let service = TestService::start_with(|config| {
            config.delivery = test_delivery_config();
            // A retry an hour away: failed attempts stay `retrying` while the test looks.
            config.delivery.retry_schedule = vec![Duration::ZERO, Duration::from_secs(3600)];
            config.delivery.attempt_timeout = Duration::from_secs(1);
        })
        .await;
        let (ok, _) = webhook_to(&service, &receiver.url("/ok"), json!(["*"])).await;
        let (down, _) = webhook_to(&service, &receiver.url("/down"), json!(["*"])).await;
        let (hang, _) = webhook_to(&service, &receiver.url("/hang"), json!(["*"])).await;

        // Before any delivery: healthy, nothing unfinished.
        let before = webhooks_by_id(&service).await;
        for id in [&ok, &down, &hang] {
            assert_eq!(before[id]["health"], "healthy", "{}", before[id]);
            assert_eq!(before[id]["pending"], 0);
            assert!(before[id]["oldest_due_at"].is_null());
        }

        for n in 0..EVENTS {
            service
                .emit(json!({"type": "order.created", "data": {"n": n}}))
                .await;
        }
        let webhooks = wait_for("every failure retrying", Duration::from_secs(30), || async {
            let webhooks = webhooks_by_id(&service).await;
            let settled = webhooks[&down]["retrying"] == EVENTS
                && webhooks[&hang]["retrying"] == EVENTS
                && webhooks[&ok]["success_24h"] == EVENTS;
            settled.then_some(webhooks)
        })
        .await;
        assert_matches_recount(&webhooks, &recount_unfinished(&service).await);

        let ok_webhook = &webhooks[&ok];
        assert_eq!(ok_webhook["health"], "healthy", "{ok_webhook}");
        assert_eq!(ok_webhook["pending"], 0, "{ok_webhook}");
        assert!(ok_webhook["last_error"].is_null(), "{ok_webhook}");

        let down_webhook = &webhooks[&down];
        assert_eq!(down_webhook["health"], "failing", "{down_webhook}");
        assert_eq!(down_webhook["pending"], EVENTS, "retrying ones are unfinished too");
        assert_eq!(down_webhook["last_status_code"], 500);
        let error = down_webhook["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("500"), "{down_webhook}");
        assert!(down_webhook["oldest_due_at"].is_string(), "{down_webhook}");
        assert_eq!(down_webhook["failed_24h"], 0, "nothing failed for good yet");

        let hang_webhook = &webhooks[&hang];
        assert_eq!(
            hang_webhook["health"], "failing",
            "a receiver that times out is failing, though no delivery has finished: {hang_webhook}"
        );
        assert!(hang_webhook["last_status_code"].is_null(), "{hang_webhook}");
        let error = hang_webhook["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("timed out"), "{hang_webhook}");

        // Deactivating cancels the unfinished: the count follows, and health says why.
        let (status, answer) = service
            .json(Method::PATCH, &format!("/webhooks/{hang}"), Some(json!({"is_active": false})))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let webhooks = webhooks_by_id(&service).await;
        assert_matches_recount(&webhooks, &recount_unfinished(&service).await);
        assert_eq!(webhooks[&hang]["pending"], 0, "{}", webhooks[&hang]);
        assert_eq!(webhooks[&hang]["health"], "inactive");

        // A recovered receiver: the retries, resent now, succeed and health turns back.
        receiver.set("/down", Behaviour::Status(200));
        let (status, answer) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"webhook_id": down, "status": "retrying"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let webhooks = wait_for("the recovered webhook drained", Duration::from_secs(30), || async {
            let webhooks = webhooks_by_id(&service).await;
            (webhooks[&down]["pending"] == 0).then_some(webhooks)
        })
        .await;
        assert_matches_recount(&webhooks, &recount_unfinished(&service).await);
        assert_eq!(webhooks[&down]["health"], "healthy", "{}", webhooks[&down]);
        assert!(webhooks[&down]["last_error"].is_null(), "{}", webhooks[&down]);
        assert!(webhooks[&down]["oldest_due_at"].is_null(), "{}", webhooks[&down]);
    }
}
