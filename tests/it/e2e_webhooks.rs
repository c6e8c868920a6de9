//! `/v1/admin/webhooks` and `/v1/admin/event-types`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hookpanel::crypto::SecretCipher;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestService, assert_field_error, orders_webhook};

on_both_backends! {
    #[tokio::test]
    async fn create_returns_the_secret_once_and_get_and_list_never_do() {
        let service = TestService::start().await;
        let created = service.create_webhook(orders_webhook()).await;

        let secret = created["secret"]
            .as_str()
            .expect("secret in the create answer");
        let key = secret.strip_prefix("whsec_").expect("whsec_ prefix");
        assert_eq!(STANDARD.decode(key).expect("base64").len(), 32);
        assert_eq!(created["name"], "Orders");
        assert_eq!(created["url"], "https://orders.example.com/hooks");
        assert_eq!(
            created["events"],
            json!(["order.cancelled", "order.created"])
        );
        assert_eq!(created["kind"], "generic");
        assert_eq!(created["is_active"], true);
        assert_eq!(created["owner"], "team-orders");
        assert_eq!(created["success_24h"], 0);
        assert_eq!(created["failed_24h"], 0);
        assert_eq!(created["secret_hint"], secret[secret.len() - 4..]);
        let id = created["id"].as_str().expect("id");
        assert!(id.starts_with("wh_"), "{id}");

        let (status, got) = service
            .call(Method::GET, &format!("/webhooks/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!got.contains(secret), "GET leaks the secret: {got}");
        assert!(!got.contains(key), "GET leaks the secret: {got}");
        let got: Value = serde_json::from_str(&got).expect("json");
        assert!(got.get("secret").is_none());
        assert_eq!(got["secret_hint"], created["secret_hint"]);

        let (status, list) = service.call(Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!list.contains(key), "list leaks the secret: {list}");
        let list: Value = serde_json::from_str(&list).expect("json");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["items"][0]["id"], id);
        assert_eq!(list["items"][0]["success_24h"], 0);
        assert!(list["items"][0]["last_delivery_at"].is_null());
    }
}

#[tokio::test]
async fn secrets_never_reach_the_database_files_in_plain_text() {
    let service = TestService::start().await;
    let created = service.create_webhook(orders_webhook()).await;
    let id = created["id"].as_str().expect("id");
    let (status, rotated) = service
        .json(Method::POST, &format!("/webhooks/{id}/rotate-secret"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");

    let secrets = [
        created["secret"].as_str().expect("secret").to_owned(),
        rotated["secret"].as_str().expect("secret").to_owned(),
    ];
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for secret in &secrets {
        needles.push(secret.as_bytes().to_vec());
        let key = secret.trim_start_matches("whsec_");
        needles.push(key.as_bytes().to_vec());
        needles.push(STANDARD.decode(key).expect("base64"));
    }
    needles.push(service.admin_key.as_bytes().to_vec());
    needles.push(service.encryption_key.as_bytes().to_vec());

    let files = service.database_files();
    assert!(!files.is_empty());
    let mut bytes_read = 0;
    for file in &files {
        let content = std::fs::read(file).expect("database file readable");
        bytes_read += content.len();
        for needle in &needles {
            assert!(
                !content
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()),
                "{} holds a secret in plain text",
                file.display()
            );
        }
    }
    assert!(bytes_read > 0, "nothing was written to check");
}

on_both_backends! {
    #[tokio::test]
    async fn patch_changes_fields_and_keeps_the_secret() {
        let service = TestService::start().await;
        let created = service.create_webhook(orders_webhook()).await;
        let id = created["id"].as_str().expect("id");
        let path = format!("/webhooks/{id}");

        let (status, patched) = service
            .json(
                Method::PATCH,
                &path,
                Some(json!({
                    "name": "Orders v2",
                    "url": "https://erp.example.com/in",
                    "events": ["*"],
                    "is_active": false,
                    "description": "",
                    "owner": "ops",
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["name"], "Orders v2");
        assert_eq!(patched["url"], "https://erp.example.com/in");
        assert_eq!(patched["events"], json!(["*"]));
        assert_eq!(patched["is_active"], false);
        assert!(
            patched["description"].is_null(),
            "empty description clears it"
        );
        assert_eq!(patched["owner"], "ops");
        assert_eq!(patched["secret_hint"], created["secret_hint"]);
        assert!(patched.get("secret").is_none());

        // A partial patch leaves the other fields alone.
        let (status, patched) = service
            .json(Method::PATCH, &path, Some(json!({"is_active": true})))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(patched["is_active"], true);
        assert_eq!(patched["name"], "Orders v2");
        assert_eq!(patched["owner"], "ops");

        // The secret is untouched: the store still opens the same one.
        let store = service.service.store();
        let cipher = SecretCipher::from_base64_key(&service.encryption_key).expect("key");
        let secrets = store
            .signing_secrets(id, Utc::now())
            .await
            .expect("secrets");
        assert_eq!(secrets.len(), 1);
        let opened = cipher.open_string(id, &secrets[0].sealed).expect("opens");
        assert_eq!(opened.as_str(), created["secret"].as_str().expect("secret"));

        let (status, body) = service
            .json(
                Method::PATCH,
                &path,
                Some(json!({"url": "ftp://x.example.com"})),
            )
            .await;
        assert_field_error(status, &body, "url");
        let (status, body) = service
            .json(Method::PATCH, &path, Some(json!({"events": []})))
            .await;
        assert_field_error(status, &body, "events");
        let (status, body) = service
            .json(Method::PATCH, &path, Some(json!({"secret": "whsec_mine"})))
            .await;
        assert_field_error(status, &body, "secret");
        let (status, body) = service
            .json(
                Method::PATCH,
                "/webhooks/wh_missing",
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn delete_answers_204_then_the_webhook_is_gone() {
        let service = TestService::start().await;
        let keep = service.create_webhook(orders_webhook()).await;
        let gone = service.create_webhook(orders_webhook()).await;
        let gone_id = gone["id"].as_str().expect("id");

        let (status, body) = service
            .call(Method::DELETE, &format!("/webhooks/{gone_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(body.is_empty());

        let (status, body) = service
            .json(Method::GET, &format!("/webhooks/{gone_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(gone_id)),
            "{body}"
        );
        let (_, list) = service.json(Method::GET, "/webhooks", None).await;
        let ids: Vec<&Value> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|w| &w["id"])
            .collect();
        assert_eq!(ids, vec![&keep["id"]]);

        let (status, _) = service
            .call(Method::DELETE, &format!("/webhooks/{gone_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = service
            .call(
                Method::POST,
                &format!("/webhooks/{gone_id}/rotate-secret"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

on_both_backends! {
    #[tokio::test]
    async fn rotation_returns_a_new_secret_and_keeps_the_previous_for_the_grace_period() {
        let service = TestService::start().await;
        let created = service.create_webhook(orders_webhook()).await;
        let id = created["id"].as_str().expect("id");
        let first = created["secret"].as_str().expect("secret");
        let path = format!("/webhooks/{id}/rotate-secret");

        let before = Utc::now();
        let (status, rotated) = service
            .json(Method::POST, &path, Some(json!({"grace_seconds": 3600})))
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let second = rotated["secret"].as_str().expect("new secret");
        assert!(second.starts_with("whsec_"));
        assert_ne!(second, first);
        let expires: DateTime<Utc> = rotated["previous_secret_expires_at"]
            .as_str()
            .expect("expiry")
            .parse()
            .expect("RFC 3339");
        let grace = expires - before;
        assert!(
            (3599..=3601).contains(&grace.num_seconds()),
            "grace was {grace}"
        );

        let (_, got) = service
            .json(Method::GET, &format!("/webhooks/{id}"), None)
            .await;
        assert_eq!(got["secret_hint"], second[second.len() - 4..]);

        // Both secrets are kept, sealed, for the dispatcher: the new one first.
        let store = service.service.store();
        let cipher = SecretCipher::from_base64_key(&service.encryption_key).expect("key");
        let open = |sealed: &[u8]| cipher.open_string(id, sealed).expect("opens").to_string();
        let now = store
            .signing_secrets(id, Utc::now())
            .await
            .expect("secrets");
        assert_eq!(now.len(), 2);
        assert_eq!(open(&now[0].sealed), second);
        assert!(now[0].expires_at.is_none());
        assert_eq!(open(&now[1].sealed), first);
        assert_eq!(now[1].expires_at, Some(expires));
        let after_grace = store
            .signing_secrets(id, expires + chrono::TimeDelta::seconds(1))
            .await
            .expect("secrets");
        assert_eq!(after_grace.len(), 1, "the previous secret expires");

        // Default grace: 24 hours; an empty body is fine.
        let before = Utc::now();
        let (status, rotated) = service.json(Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let expires: DateTime<Utc> = rotated["previous_secret_expires_at"]
            .as_str()
            .expect("expiry")
            .parse()
            .expect("RFC 3339");
        assert!((86_399..=86_401).contains(&(expires - before).num_seconds()));

        for (body, field) in [
            (json!({"grace_seconds": 604_801}), "grace_seconds"),
            (json!({"grace_seconds": -1}), "grace_seconds"),
            (json!({"grace_seconds": "soon"}), "grace_seconds"),
            (json!({"grace": 5}), "grace"),
        ] {
            let (status, error) = service.json(Method::POST, &path, Some(body)).await;
            assert_field_error(status, &error, field);
        }
        let (status, ok) = service
            .json(Method::POST, &path, Some(json!({"grace_seconds": 604_800})))
            .await;
        assert_eq!(status, StatusCode::OK, "7 days is allowed: {ok}");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn every_invalid_field_is_named_and_nothing_is_created() {
        let service = TestService::start().await;
        let with = |field: &str, value: Value| {
            let mut body = orders_webhook();
            body[field] = value;
            body
        };
        let without = |field: &str| {
            let mut body = orders_webhook();
            body.as_object_mut().expect("object").remove(field);
            body
        };
        let cases = [
            (with("name", json!("")), "name"),
            (with("name", json!("   ")), "name"),
            (with("name", json!("n".repeat(101))), "name"),
            (with("name", json!("tab\there")), "name"),
            (with("name", json!(42)), "name"),
            (without("name"), "name"),
            (with("url", json!("not a url")), "url"),
            (with("url", json!("http://orders.example.com/hooks")), "url"),
            (with("url", json!("ftp://orders.example.com/hooks")), "url"),
            (
                with("url", json!("https://user:pw@orders.example.com/hooks")),
                "url",
            ),
            (
                with("url", json!("https://orders.example.com/hooks?token=abc")),
                "url",
            ),
            (
                with("url", json!("https://orders.example.com/hooks?api_key=abc")),
                "url",
            ),
            (
                with(
                    "url",
                    json!(format!("https://x.example.com/{}", "a".repeat(2100))),
                ),
                "url",
            ),
            (without("url"), "url"),
            (with("events", json!([])), "events"),
            (with("events", json!(["order.exploded"])), "events"),
            (with("events", json!("order.created")), "events"),
            (with("events", json!([7])), "events[0]"),
            (without("events"), "events"),
            (with("kind", json!("teams")), "kind"),
            (with("description", json!("d".repeat(1001))), "description"),
            (with("owner", json!("o".repeat(201))), "owner"),
            (with("colour", json!("blue")), "colour"),
        ];
        for (body, field) in cases {
            let (status, error) = service
                .json(Method::POST, "/webhooks", Some(body.clone()))
                .await;
            let message = assert_field_error(status, &error, field);
            assert!(!message.is_empty(), "{body}");
        }

        // Not JSON at all: a 400 that says so.
        let response = service.post_raw("/webhooks", "{\"name\": ").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.expect("json error");
        assert_eq!(error["error"]["code"], "invalid_json");

        // Over 256 KiB: 413 with the error body.
        let huge = with("description", json!("x".repeat(300 * 1024)));
        let (status, error) = service.json(Method::POST, "/webhooks", Some(huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
        assert_eq!(error["error"]["code"], "payload_too_large");

        let (_, list) = service.json(Method::GET, "/webhooks", None).await;
        assert_eq!(
            list["items"],
            json!([]),
            "no invalid request created anything"
        );
    }
}

on_both_backends! {
    #[tokio::test]
    async fn plain_http_is_accepted_for_loopback_hosts_only() {
        let service = TestService::start().await;
        for url in [
            "http://127.0.0.1:9000/in",
            "http://localhost:9000/in",
            "http://[::1]:9000/in",
        ] {
            let mut body = orders_webhook();
            body["url"] = json!(url);
            service.create_webhook(body).await;
        }
        let mut body = orders_webhook();
        body["url"] = json!("http://10.0.0.8/in");
        let (status, error) = service.json(Method::POST, "/webhooks", Some(body)).await;
        assert_field_error(status, &error, "url");
    }
}

on_both_backends! {
    #[tokio::test]
    async fn unknown_ids_are_404_with_the_error_body() {
        let service = TestService::start().await;
        for (method, path) in [
            (Method::GET, "/webhooks/wh_nope"),
            (Method::DELETE, "/webhooks/wh_nope"),
            (Method::POST, "/webhooks/wh_nope/rotate-secret"),
            (Method::GET, "/no-such-route"),
        ] {
            let (status, body) = service.json(method.clone(), path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
        }
    }
}

on_both_backends! {
    #[tokio::test]
    async fn event_types_come_from_the_catalog() {
        let service = TestService::start().await;
        let (status, catalog) = service.json(Method::GET, "/event-types", None).await;
        assert_eq!(status, StatusCode::OK);
        let items = catalog["items"].as_array().expect("items");
        let names: Vec<&str> = items.iter().filter_map(|t| t["name"].as_str()).collect();
        for name in ["order.created", "collection.orderChanged", "webhook.test"] {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        for item in items {
            assert!(
                item["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{item}"
            );
            assert!(!item["example"].is_null(), "{item}");
        }
    }
}
