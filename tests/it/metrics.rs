//! `GET /metrics`, read with a Prometheus text parser after real deliveries.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::e2e_delivery::{only_delivery, webhook_to};
use crate::receiver::{Behaviour, Receiver};
use crate::support::TestService;

/// The value of the sample named `metric` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .find(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .map(|sample| match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric} is {other:?}"),
        })
}

async fn scrape(service: &TestService) -> prometheus_parse::Scrape {
    let response = service
        .client
        .get(service.url("/metrics"))
        .bearer_auth(&service.admin_key)
        .send()
        .await
        .expect("scraped");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parsed")
}

on_both_backends! {
    #[tokio::test]
    async fn metrics_count_attempts_outcomes_and_emits() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(503));
        let service = TestService::start().await;
        let (good, _) = webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;
        let (bad, _) = webhook_to(&service, &receiver.url("/down"), json!(["payment.received"])).await;
        let mut ids = Vec::new();
        for (event_type, n) in [("order.created", 1), ("order.created", 2), ("payment.received", 3)] {
            let emitted = service.emit(json!({"type": event_type, "data": {"n": n}})).await;
            ids.push(only_delivery(&service, emitted["event_id"].as_str().expect("id")).await);
        }
        service.wait_for_delivery(&ids[0], "succeeded").await;
        service.wait_for_delivery(&ids[1], "succeeded").await;
        service.wait_for_delivery(&ids[2], "failed").await;

        // The admin key is required.
        let anonymous = reqwest::Client::new()
            .get(service.url("/metrics"))
            .send()
            .await
            .expect("sent");
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        let scrape = scrape(&service).await;
        let finished = "hookpanel_deliveries_finished_total";
        assert_eq!(value(&scrape, finished, &[("webhook_id", &good), ("outcome", "succeeded")]), Some(2.0));
        assert_eq!(value(&scrape, finished, &[("webhook_id", &bad), ("outcome", "failed")]), Some(1.0));
        assert_eq!(value(&scrape, finished, &[("webhook_id", &good), ("outcome", "failed")]), None);
        assert_eq!(value(&scrape, "hookpanel_attempts_total", &[("class", "2xx")]), Some(2.0));
        assert_eq!(value(&scrape, "hookpanel_attempts_total", &[("class", "5xx")]), Some(3.0), "the whole schedule");
        assert_eq!(value(&scrape, "hookpanel_attempt_duration_seconds_count", &[]), Some(5.0));
        assert_eq!(value(&scrape, "hookpanel_events_emitted_total", &[]), Some(3.0));
        assert_eq!(value(&scrape, "hookpanel_emit_duration_seconds_count", &[]), Some(3.0));
        assert_eq!(value(&scrape, "hookpanel_due_backlog", &[]), Some(0.0));
        assert!(value(&scrape, "hookpanel_search_backlog", &[]).is_some());
        assert_eq!(value(&scrape, "hookpanel_oldest_due_age_seconds", &[]), Some(0.0));
        assert_eq!(value(&scrape, "hookpanel_attempt_slots_in_use", &[]), Some(0.0));
        assert!(value(&scrape, "hookpanel_attempt_slots", &[]).is_some_and(|slots| slots >= 1.0));
        assert!(value(&scrape, "hookpanel_storage_errors_total", &[]).is_some());
        let documented: HashMap<&str, &str> = scrape
            .docs
            .iter()
            .map(|(name, doc)| (name.as_str(), doc.as_str()))
            .collect();
        assert!(documented.contains_key("hookpanel_due_backlog"), "{documented:?}");
    }
}

/// A backlog shows as due deliveries and the age of the oldest: here, deliveries waiting
/// behind a slow receiver that takes one request at a time.
#[tokio::test]
async fn a_backlog_shows_its_size_and_the_age_of_its_oldest() {
    let receiver = Receiver::start().await;
    receiver.set(
        "/slow",
        Behaviour::Sleep(std::time::Duration::from_millis(1800)),
    );
    let service = TestService::start_with(|config| {
        config.delivery.concurrency = 1;
        config.delivery.per_webhook_concurrency = 1;
    })
    .await;
    webhook_to(&service, &receiver.url("/slow"), json!(["order.created"])).await;
    for n in 0..4 {
        service
            .emit(json!({"type": "order.created", "data": {"n": n}}))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let scrape = scrape(&service).await;
    assert_eq!(
        value(&scrape, "hookpanel_due_backlog", &[]),
        Some(3.0),
        "one is under way"
    );
    assert!(
        value(&scrape, "hookpanel_oldest_due_age_seconds", &[]).is_some_and(|age| age >= 0.5),
        "{:?}",
        value(&scrape, "hookpanel_oldest_due_age_seconds", &[])
    );
    assert_eq!(
        value(&scrape, "hookpanel_attempt_slots_in_use", &[]),
        Some(1.0)
    );
}
