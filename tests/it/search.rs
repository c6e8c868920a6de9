//! Payload search: `GET /deliveries?q=` finds deliveries by what their event carried,
//! combined with the other filters and paged; `GET /deliveries/{id}?q=` says where it
//! matched; the index catches up after a SIGKILL and forgets pruned events. On both
//! backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_delivery::{only_delivery, webhook_to};
use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, wait_for};

/// The ids of the deliveries `query` lists (a query string after `?`), newest first.
async fn found(service: &TestService, query: &str) -> Vec<String> {
    let (status, page) = service
        .json(Method::GET, &format!("/deliveries?{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Waits until the index holds every event emitted so far.
async fn indexed(service: &TestService) {
    wait_for(
        "the search index to catch up",
        Duration::from_secs(10),
        || async {
            let backlog = service
                .service
                .store()
                .search_backlog()
                .await
                .expect("backlog");
            (backlog == 0).then_some(())
        },
    )
    .await;
}

fn q(text: &str) -> String {
    format!("q={}", urlencoding(text))
}

fn urlencoding(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).expect("encodes")[1..].to_owned()
}

on_both_backends! {
    /// Whole tokens, any case: an order id (never a longer one it begins), an email, a
    /// quoted phrase, text behind JSON escapes; combined with the status and webhook
    /// filters; paged; and the detail names the matching field.
    #[tokio::test]
    async fn a_delivery_is_found_by_what_its_event_carried() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(500));
        let service = TestService::start().await;
        let (ok_hook, _) = webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;
        let (down_hook, _) = webhook_to(&service, &receiver.url("/down"), json!(["order.created"])).await;
        let emit = |id: &'static str, data: Value| {
            let service = &service;
            async move {
                service.emit(json!({"type": "order.created", "id": id, "data": data})).await;
            }
        };
        emit("evt-ada", json!({
            "order_id": "ord_1042",
            "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
            "address": "1 Main Street",
        })).await;
        emit("evt-bob", json!({
            "order_id": "ord_10420",
            "customer": {"email": "bob@example.com"},
            "note": "street main",
            // "main street" inside longer words: not the phrase.
            "venue": "Domain Streets",
        })).await;
        // Escapes in the JSON text: "K\u00f6ln", and a quote inside a string.
        service
            .post_raw(
                "/events",
                r#"{"type": "order.created", "id": "evt-koeln", "data": {"city": "K\u00f6ln", "note": "say \"cheese\""}}"#,
            )
            .await;
        let of = |event: &'static str| {
            let service = &service;
            async move {
                let mut ids: Vec<String> = service
                    .deliveries_of(event)
                    .await
                    .iter()
                    .map(|d| d["id"].as_str().expect("id").to_owned())
                    .collect();
                ids.sort_unstable();
                ids
            }
        };
        let sorted = |mut ids: Vec<String>| {
            ids.sort_unstable();
            ids
        };
        indexed(&service).await;
        let ada = of("evt-ada").await;
        let bob = of("evt-bob").await;
        let koeln = of("evt-koeln").await;
        assert_eq!(ada.len(), 2, "one delivery per webhook");

        assert_eq!(sorted(found(&service, &q("ord_1042")).await), ada, "not ord_10420");
        assert_eq!(sorted(found(&service, &q("ORD_1042")).await), ada, "any case");
        assert_eq!(sorted(found(&service, &q("ada@example.com")).await), ada);
        assert!(found(&service, &q("ord_104")).await.is_empty(), "no prefix match");
        assert!(found(&service, &q("example")).await.is_empty(), "an email is one token");
        assert_eq!(sorted(found(&service, &q("\"main street\"")).await), ada, "a phrase, in order");
        let mut both = [ada.clone(), bob.clone()].concat();
        both.sort_unstable();
        assert_eq!(sorted(found(&service, &q("main street")).await), both, "every word, any order");
        assert_eq!(sorted(found(&service, &q("köln")).await), koeln, "an escape decoded");
        assert_eq!(sorted(found(&service, &q("KÖLN")).await), koeln);
        assert_eq!(sorted(found(&service, &q("cheese")).await), koeln);
        assert_eq!(sorted(found(&service, &q("\"say cheese\"")).await), koeln, "a phrase behind escapes");
        // Ids still match exactly.
        assert_eq!(sorted(found(&service, &q("evt-bob")).await), bob);
        assert_eq!(found(&service, &q(&ada[0])).await, [ada[0].clone()]);

        // Combined with the other filters.
        let failed = wait_for("ada's failed delivery", Duration::from_secs(20), || async {
            let ids = found(&service, &format!("{}&status=failed", q("ord_1042"))).await;
            (ids.len() == 1).then_some(ids)
        })
        .await;
        let (_, detail) = service.json(Method::GET, &format!("/deliveries/{}", failed[0]), None).await;
        assert_eq!(detail["webhook_id"], down_hook.as_str());
        assert_eq!(
            found(&service, &format!("{}&webhook_id={ok_hook}", q("ord_1042"))).await.len(),
            1
        );

        // Paged like any list, newest first.
        for n in 0..3 {
            service
                .emit(json!({"type": "order.created", "data": {"batch": "bulk_x", "n": n}}))
                .await;
        }
        indexed(&service).await;
        let (_, first) = service
            .json(Method::GET, &format!("/deliveries?{}&webhook_id={ok_hook}&limit=2", q("bulk_x")), None)
            .await;
        assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
        let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
        let (_, second) = service
            .json(
                Method::GET,
                &format!("/deliveries?{}&webhook_id={ok_hook}&limit=2&cursor={cursor}", q("bulk_x")),
                None,
            )
            .await;
        assert_eq!(second["items"].as_array().map(Vec::len), Some(1), "{second}");
        assert!(second["next_cursor"].is_null());

        // The detail says where it matched.
        let (_, detail) = service
            .json(Method::GET, &format!("/deliveries/{}?{}", ada[0], q("ada@example.com")), None)
            .await;
        assert_eq!(detail["matched"], json!(["customer.email"]), "{detail}");
        let (_, detail) = service
            .json(Method::GET, &format!("/deliveries/{}?{}", ada[0], q("\"main street\"")), None)
            .await;
        assert_eq!(detail["matched"], json!(["address"]), "{detail}");
        let (_, detail) = service.json(Method::GET, &format!("/deliveries/{}", ada[0]), None).await;
        assert!(detail.get("matched").is_none(), "no search, no matched: {detail}");
    }
}

on_both_backends! {
    /// "Resend all N matching" for one customer: a bulk resend whose filter holds the
    /// customer's email queues their failed deliveries and nobody else's.
    #[tokio::test]
    async fn one_customers_failed_deliveries_are_resent_by_a_search() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(503));
        let service = TestService::start().await;
        let (hook, _) = webhook_to(&service, &receiver.url("/down"), json!(["order.created"])).await;
        let mut ada = Vec::new();
        let mut others = Vec::new();
        for (n, email) in ["ada@example.com", "bob@example.com", "ada@example.com", "ada@example.co"]
            .into_iter()
            .enumerate()
        {
            let emitted = service
                .emit(json!({"type": "order.created", "data": {"order_id": format!("ord_{n}"), "email": email}}))
                .await;
            let id = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
            service.wait_for_delivery(&id, "failed").await;
            if email == "ada@example.com" { ada.push(id) } else { others.push(id) }
        }
        indexed(&service).await;
        receiver.set("/down", Behaviour::Status(200));

        let (status, resent) = service
            .json(
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"status": "failed", "q": "ada@example.com"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        assert_eq!(
            resent,
            json!({"queued": 2, "skipped": [], "skipped_total": 0, "queued_by_webhook": {hook: 2}})
        );
        for id in &ada {
            service.wait_for_delivery(id, "succeeded").await;
        }
        for id in &others {
            let (_, detail) = service.json(Method::GET, &format!("/deliveries/{id}"), None).await;
            assert_eq!(detail["status"], "failed", "not ada's: {detail}");
        }
    }
}

on_both_backends! {
    /// Retention takes pruned events out of the index: a search finds them no more.
    #[tokio::test]
    async fn pruned_events_are_no_longer_found() {
        let receiver = Receiver::start().await;
        let service = TestService::start_with(|config| {
            config.retention = Some(Duration::from_secs(2));
        })
        .await;
        webhook_to(&service, &receiver.url("/ok"), json!(["order.created"])).await;
        service
            .emit(json!({"type": "order.created", "id": "evt-old", "data": {"order_id": "ord_old"}}))
            .await;
        let old = only_delivery(&service, "evt-old").await;
        service.wait_for_delivery(&old, "succeeded").await;
        indexed(&service).await;
        assert_eq!(found(&service, &q("ord_old")).await, std::slice::from_ref(&old));
        wait_for("the old delivery to be pruned", Duration::from_secs(20), || async {
            let (status, _) = service.json(Method::GET, &format!("/deliveries/{old}"), None).await;
            (status == StatusCode::NOT_FOUND).then_some(())
        })
        .await;
        assert!(found(&service, &q("ord_old")).await.is_empty());
        // The same id and text again: found once, the new one.
        service
            .emit(json!({"type": "order.created", "id": "evt-old", "data": {"order_id": "ord_old"}}))
            .await;
        let again = only_delivery(&service, "evt-old").await;
        assert_ne!(again, old);
        indexed(&service).await;
        assert_eq!(found(&service, &q("ord_old")).await, [again]);
    }
}

on_both_backends! {
    /// A `hookpanel serve` killed with SIGKILL right after a burst of emits: what it had
    /// not indexed yet is indexed at the next start, and every accepted event is found.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_index_catches_up_after_a_sigkill() {
        use std::process::Command;

        use futures_util::StreamExt as _;

        use crate::cli::{BINARY, keygen, spawn_serve};

        const EVENTS: usize = 1_500;
        const ADMIN_KEY: &str = "hpk_crash_test_0123456789abcdefghijkl";
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (_postgres, db) = crate::backend::spawned_database(dir.path(), "search.db").await;
        let encryption_key = keygen();
        let client = reqwest::Client::new();
        let (mut first, base_url) =
            spawn_serve(Command::new(BINARY).arg("serve"), &db, &encryption_key);
        let created = client
            .post(format!("{base_url}/v1/admin/webhooks"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "crashy", "url": receiver.url("/ok"), "events": ["order.created"]}))
            .send()
            .await
            .expect("sent");
        assert_eq!(created.status(), StatusCode::CREATED);
        let accepted = futures_util::stream::iter(0..EVENTS)
            .map(|n| {
                let request = client
                    .post(format!("{base_url}/v1/admin/events"))
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"type": "order.created",
                                  "data": {"batch": "crash_batch", "order_id": format!("ord_k{n}")}}));
                async move {
                    request
                        .send()
                        .await
                        .is_ok_and(|response| response.status() == StatusCode::ACCEPTED)
                }
            })
            .buffer_unordered(50)
            .filter(|accepted| std::future::ready(*accepted))
            .count()
            .await;
        first.0.kill().expect("SIGKILL");
        let _ = first.0.wait();
        assert_eq!(accepted, EVENTS, "every emit was accepted before the kill");

        let (_again, base_url) =
            spawn_serve(Command::new(BINARY).arg("serve"), &db, &encryption_key);
        let count_found = |base_url: String| {
            let client = client.clone();
            async move {
                let mut total = 0;
                let mut cursor: Option<String> = None;
                for _ in 0..10 {
                    let mut url = format!("{base_url}/v1/admin/deliveries?q=crash_batch&limit=500");
                    if let Some(cursor) = &cursor {
                        url.push_str(&format!("&cursor={cursor}"));
                    }
                    let page: Value = client
                        .get(url)
                        .bearer_auth(ADMIN_KEY)
                        .send()
                        .await
                        .expect("sent")
                        .json()
                        .await
                        .expect("json");
                    total += page["items"].as_array().map_or(0, Vec::len);
                    match page["next_cursor"].as_str() {
                        Some(next) => cursor = Some(next.to_owned()),
                        None => break,
                    }
                }
                total
            }
        };
        wait_for("every event to be found", Duration::from_secs(30), || {
            let count = count_found(base_url.clone());
            async move { (count.await == EVENTS).then_some(()) }
        })
        .await;
        let one: Value = client
            .get(format!("{base_url}/v1/admin/deliveries?q=ord_k1042"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(one["items"].as_array().map(Vec::len), Some(1), "{one}");
    }
}
