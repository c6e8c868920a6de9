//! Per-webhook rate limits: set through the API, kept by the dispatcher for first
//! attempts, retries and resends alike, with deliveries waiting their turn still due and
//! no attempt counted for the wait.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::receiver::{Behaviour, Received, Receiver};
use crate::support::{TestService, assert_field_error, wait_for};

/// The most requests that arrived within any one second.
pub fn most_in_any_second(requests: &[Received]) -> usize {
    let mut arrivals: Vec<Instant> = requests.iter().map(|r| r.arrived).collect();
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|first| {
            arrivals[first..]
                .iter()
                .take_while(|&&at| at < arrivals[first] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The distinct event ids among `requests`.
pub fn event_ids(requests: &[Received]) -> HashSet<String> {
    requests
        .iter()
        .filter_map(|r| Some(r.headers.get("webhook-id")?.to_str().ok()?.to_owned()))
        .collect()
}

/// Every delivery of `webhook_id` (at most 500).
async fn deliveries(service: &TestService, webhook_id: &str) -> Vec<Value> {
    let (status, page) = service
        .json(
            Method::GET,
            &format!("/deliveries?webhook_id={webhook_id}&limit=500"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) until `path` has received `requests` requests.
async fn wait_for_requests(receiver: &Receiver, path: &str, requests: usize) -> Vec<Received> {
    wait_for(
        &format!("{requests} requests on {path}"),
        Duration::from_secs(60),
        || async {
            let received = receiver.received(path);
            (received.len() >= requests).then_some(received)
        },
    )
    .await
}

on_both_backends! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_webhook_limited_to_50_a_second_never_gets_more_than_60_in_one_and_gets_everything() {
        let receiver = Receiver::start().await;
        // The first 30 requests fail: their retries keep to the pace too.
        receiver.set("/paced", Behaviour::FailTimes(30));
        let service = TestService::start().await;
        let paced = service
            .create_webhook(json!({
                "name": "Recovering receiver",
                "url": receiver.url("/paced"),
                "events": ["order.created"],
                "rate_limit": 50,
            }))
            .await;
        assert_eq!(paced["rate_limit"], 50, "{paced}");
        let paced_id = paced["id"].as_str().expect("id").to_owned();
        let free = service
            .create_webhook(json!({
                "name": "Healthy receiver",
                "url": receiver.url("/free"),
                "events": ["order.created"],
            }))
            .await;
        assert_eq!(free["rate_limit"], Value::Null, "{free}");

        for n in 0..300 {
            service
                .emit(json!({"type": "order.created", "id": format!("evt-{n}"), "data": {"n": n}}))
                .await;
        }
        let requests = wait_for_requests(&receiver, "/paced", 330).await;
        assert_eq!(event_ids(&requests).len(), 300, "every delivery arrives");
        let most = most_in_any_second(&requests);
        assert!(most <= 60, "{most} requests arrived within one second");

        // The unlimited webhook is not held back by the limited one's queue: all of its
        // deliveries arrived before the limited one had two thirds of its own.
        let free_requests = wait_for_requests(&receiver, "/free", 300).await;
        let free_done = free_requests.iter().map(|r| r.arrived).max().expect("arrived");
        let mut paced_arrivals: Vec<Instant> = requests.iter().map(|r| r.arrived).collect();
        paced_arrivals.sort_unstable();
        assert!(free_done < paced_arrivals[200], "the unlimited webhook waited for the limited one");

        // Waiting for its turn is neither an attempt nor a failure: every delivery
        // succeeded, with one attempt per request the receiver saw.
        let listed = wait_for("every paced delivery to be recorded", Duration::from_secs(20), || async {
            let listed = deliveries(&service, &paced_id).await;
            listed.iter().all(|d| d["status"] == "succeeded").then_some(listed)
        })
        .await;
        assert_eq!(listed.len(), 300);
        let attempts: u64 = listed.iter().map(|d| d["attempts"].as_u64().expect("attempts")).sum();
        assert_eq!(attempts, 330, "30 failed attempts and 300 that succeeded");

        // A resend keeps to the pace as well.
        let ids: Vec<&str> = listed.iter().take(100).map(|d| d["id"].as_str().expect("id")).collect();
        let (status, resent) = service
            .json(Method::POST, "/deliveries/resend", Some(json!({"ids": ids})))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        assert_eq!(resent["queued"], 100, "{resent}");
        let requests = wait_for_requests(&receiver, "/paced", 430).await;
        let most = most_in_any_second(&requests);
        assert!(most <= 60, "{most} requests arrived within one second once resent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_is_set_changed_and_lifted_through_the_api_and_bad_ones_name_the_field() {
    let service = TestService::start().await;
    let body = |rate_limit: Value| {
        json!({
            "name": "Limited",
            "url": "http://127.0.0.1:9/hook",
            "events": ["order.created"],
            "rate_limit": rate_limit,
        })
    };
    for bad in [
        json!(0),
        json!(10_001),
        json!(-5),
        json!("fast"),
        json!(2.5),
    ] {
        let (status, error) = service
            .json(Method::POST, "/webhooks", Some(body(bad.clone())))
            .await;
        let message = assert_field_error(status, &error, "rate_limit");
        assert!(!message.is_empty(), "{bad}: {error}");
    }
    let (_, listed) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(
        listed["items"],
        json!([]),
        "a refused webhook is not created"
    );

    // JSON Schema counts 25.0 as an integer, and so does the service.
    let created = service.create_webhook(body(json!(25.0))).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/webhooks/{id}");
    let (_, got) = service.json(Method::GET, &path, None).await;
    assert_eq!(got["rate_limit"], 25, "{got}");

    let (status, changed) = service
        .json(Method::PATCH, &path, Some(json!({"rate_limit": 10_000})))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["rate_limit"], 10_000, "{changed}");
    // A PATCH without it leaves it as it is.
    let (_, renamed) = service
        .json(Method::PATCH, &path, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(renamed["rate_limit"], 10_000, "{renamed}");
    let (status, error) = service
        .json(Method::PATCH, &path, Some(json!({"rate_limit": 0})))
        .await;
    assert_field_error(status, &error, "rate_limit");
    let (_, listed) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(listed["items"][0]["rate_limit"], 10_000, "{listed}");
    // null lifts it.
    let (_, lifted) = service
        .json(Method::PATCH, &path, Some(json!({"rate_limit": null})))
        .await;
    assert_eq!(lifted["rate_limit"], Value::Null, "{lifted}");
    let (_, listed) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(listed["items"][0]["rate_limit"], Value::Null, "{listed}");
}
