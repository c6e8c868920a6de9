//! Named admin keys with roles, the audit log, and a secret's age and early end of grace:
//! each end to end against the real service, on both backends.

use chrono::Utc;
use hookpanel::signing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::e2e_delivery::{only_delivery, webhook_to};
use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, assert_field_error, wait_for};

/// Creates a key and returns the answer (with the key, shown once).
async fn create_key(service: &TestService, name: &str, role: &str) -> Value {
    let (status, created) = service
        .json(
            Method::POST,
            "/keys",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Every entry of the audit log, newest first, for `query` (e.g. `action=key.create`).
async fn audit(service: &TestService, query: &str) -> Vec<Value> {
    let (status, page) = service
        .json(Method::GET, &format!("/audit?{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

/// The one entry of `action`, checked for its actor and target.
async fn one_entry(service: &TestService, action: &str, actor: &str, target: &str) -> Value {
    let entries = audit(service, &format!("action={action}&target_id={target}")).await;
    assert_eq!(entries.len(), 1, "{action} on {target}: {entries:?}");
    let entry = entries[0].clone();
    assert_eq!(entry["actor"], actor, "{entry}");
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["target_id"], target, "{entry}");
    entry
}

on_both_backends! {
    /// Every route of the OpenAPI document, called with an operator key: reads, resends
    /// and tests get through, everything else is 403 naming the admin role; an admin key
    /// meets no 403 anywhere.
    #[tokio::test]
    async fn an_operator_reads_resends_and_tests_and_nothing_else() {
        let service = TestService::start().await;
        let operator = create_key(&service, "on-call", "operator").await;
        let operator = operator["key"].as_str().expect("key").to_owned();
        let document: Value = service
            .client
            .get(service.url("/v1/admin/openapi.json"))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let paths = document["paths"].as_object().expect("paths");
        let operator_posts = [
            "/v1/admin/deliveries/{id}/resend",
            "/v1/admin/deliveries/resend",
            "/v1/admin/webhooks/{id}/recover",
            "/v1/admin/webhooks/{id}/test",
        ];
        let mut checked = 0;
        for (path, operations) in paths {
            if !path.starts_with("/v1/admin/") {
                continue;
            }
            let concrete = path
                .replace("{id}", "wh_does_not_exist")
                .replace("{name}", "nobody");
            let route = concrete.trim_start_matches("/v1/admin");
            for method in operations.as_object().expect("operations").keys() {
                let method: Method = method.to_uppercase().parse().expect("method");
                let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
                let (status, answer) = service
                    .json_as(&operator, method.clone(), route, body.clone())
                    .await;
                let operator_may =
                    method == Method::GET || (method == Method::POST && operator_posts.contains(&path.as_str()));
                if operator_may {
                    assert!(
                        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                        "operator {method} {path}: {status} {answer}"
                    );
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "operator {method} {path}: {answer}");
                    assert_eq!(answer["error"]["code"], "forbidden");
                    let message = answer["error"]["message"].as_str().expect("message");
                    assert!(message.contains("admin"), "{message}");
                }
                let (status, answer) = service.json(method.clone(), route, body).await;
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "admin {method} {path}: {status} {answer}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} routes were checked");
        let (status, me) = service.json_as(&operator, Method::GET, "/whoami", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["name"], "on-call");
        assert_eq!(me["role"], "operator");
        let (_, me) = service.json(Method::GET, "/whoami", None).await;
        assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("bootstrap"), Some("admin")));
        // /metrics is a read.
        let metrics = service
            .client
            .get(service.url("/metrics"))
            .bearer_auth(&operator)
            .send()
            .await
            .expect("sent");
        assert_eq!(metrics.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn keys_are_shown_once_listed_without_the_key_and_refused_once_revoked() {
        let service = TestService::start().await;
        let (status, listed) = service.json(Method::GET, "/keys", None).await;
        assert_eq!(status, StatusCode::OK);
        let items = listed["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{listed}");
        assert_eq!(items[0]["name"], "bootstrap");
        assert_eq!(items[0]["role"], "admin");
        let bootstrap_id = items[0]["id"].as_str().expect("id").to_owned();

        let created = create_key(&service, "alice", "admin").await;
        let key = created["key"].as_str().expect("key").to_owned();
        assert!(key.starts_with("hpk_") && key.len() > 40, "{key}");
        assert_eq!(created["name"], "alice");
        assert_eq!(created["role"], "admin");
        assert!(created["last_used_at"].is_null());
        let alice_id = created["id"].as_str().expect("id").to_owned();

        // Bad input names its field and creates nothing.
        let (status, answer) = service
            .json(Method::POST, "/keys", Some(json!({"name": "alice", "role": "operator"})))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["field"], "name");
        let (status, answer) = service
            .json(Method::POST, "/keys", Some(json!({"name": "bob", "role": "root"})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], "role", "{answer}");
        let (status, answer) = service
            .json(Method::POST, "/keys", Some(json!({"name": " ", "role": "operator"})))
            .await;
        assert_field_error(status, &answer, "name");

        // The new key works, and its use is noted.
        let (status, _) = service.json_as(&key, Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        let listed = wait_for("alice's last use", std::time::Duration::from_secs(10), || async {
            let (_, listed) = service.json(Method::GET, "/keys", None).await;
            let alice = listed["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|item| item["id"] == alice_id.as_str())
                .cloned()
                .expect("alice listed");
            (!alice["last_used_at"].is_null()).then_some(listed)
        })
        .await;
        let text = listed.to_string();
        assert!(!text.contains(&key), "a listing never holds a key");
        assert!(!text.contains("key_sha256"), "{text}");

        // The bootstrap key goes; alice is the admin now, and the last one.
        let (status, _) = service
            .json_as(&key, Method::DELETE, &format!("/keys/{bootstrap_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, answer) = service.json(Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked from that moment: {answer}");
        let (status, answer) = service
            .json_as(&key, Method::DELETE, &format!("/keys/{alice_id}"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "last_admin_key");
        let (status, _) = service
            .json_as(&key, Method::DELETE, "/keys/key_nope", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // An operator key does not count as an admin one.
        let operator = create_key_as(&service, &key, "ops", "operator").await;
        let operator_id = operator["id"].as_str().expect("id");
        let (status, _) = service
            .json_as(&key, Method::DELETE, &format!("/keys/{operator_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = service
            .json_as(&key, Method::DELETE, &format!("/keys/{alice_id}"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);

        // Every change was recorded, by name, and no entry holds a key.
        let entries = audit_as(&service, &key, "").await;
        let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(
            actions,
            ["key.delete", "key.create", "key.delete", "key.create"],
            "{entries:?}"
        );
        assert_eq!(entries[2]["actor"], "alice");
        assert_eq!(entries[2]["target_id"], bootstrap_id.as_str());
        assert_eq!(entries[3]["actor"], "bootstrap");
        assert_eq!(entries[3]["detail"], json!({"name": "alice", "role": "admin"}));
        let text = serde_json::to_string(&entries).expect("json");
        assert!(!text.contains(&key) && !text.contains(&service.admin_key));
    }

    #[tokio::test]
    async fn every_change_and_resend_is_in_the_audit_log_with_its_actor() {
        let receiver = Receiver::start().await;
        receiver.set("/down", Behaviour::Status(500));
        let service = TestService::start().await;
        let operator = create_key(&service, "on-call", "operator").await;
        let operator = operator["key"].as_str().expect("key").to_owned();
        let (id, secret) = webhook_to(&service, &receiver.url("/down"), json!(["*"])).await;
        one_entry(&service, "webhook.create", "bootstrap", &id).await;

        let patch = |body: Value| {
            let (service, id) = (&service, &id);
            async move {
                let (status, answer) = service
                    .json(Method::PATCH, &format!("/webhooks/{id}"), Some(body))
                    .await;
                assert_eq!(status, StatusCode::OK, "{answer}");
            }
        };
        patch(json!({"name": "Renamed", "rate_limit": 100})).await;
        let update = one_entry(&service, "webhook.update", "bootstrap", &id).await;
        assert_eq!(update["detail"]["fields"], json!(["name", "rate_limit"]));
        patch(json!({"is_active": false})).await;
        one_entry(&service, "webhook.deactivate", "bootstrap", &id).await;
        patch(json!({"is_active": true})).await;
        one_entry(&service, "webhook.activate", "bootstrap", &id).await;
        let (status, rotated) = service
            .json(Method::POST, &format!("/webhooks/{id}/rotate-secret"), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
        one_entry(&service, "webhook.rotate_secret", "bootstrap", &id).await;
        let (status, _) = service
            .json(Method::POST, &format!("/webhooks/{id}/expire-previous-secrets"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        one_entry(&service, "webhook.expire_previous_secrets", "bootstrap", &id).await;

        // The operator's share: a test, a resend, a recover and a bulk resend.
        let (status, test) = service
            .json_as(&operator, Method::POST, &format!("/webhooks/{id}/test"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{test}");
        one_entry(&service, "webhook.test", "on-call", &id).await;
        let delivery_id = test["delivery_id"].as_str().expect("delivery id").to_owned();
        service.wait_for_delivery(&delivery_id, "failed").await;
        let (status, _) = service
            .json_as(&operator, Method::POST, &format!("/deliveries/{delivery_id}/resend"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        one_entry(&service, "delivery.resend", "on-call", &delivery_id).await;
        service.wait_for_delivery(&delivery_id, "failed").await;
        let (status, _) = service
            .json_as(
                &operator,
                Method::POST,
                &format!("/webhooks/{id}/recover"),
                Some(json!({"since": "2020-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        one_entry(&service, "webhook.recover", "on-call", &id).await;
        service.wait_for_delivery(&delivery_id, "failed").await;
        let (status, resent) = service
            .json_as(
                &operator,
                Method::POST,
                "/deliveries/resend",
                Some(json!({"filter": {"webhook_id": id, "status": "failed"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
        let bulk = audit(&service, "action=deliveries.resend_bulk").await;
        assert_eq!(bulk.len(), 1, "{bulk:?}");
        assert_eq!(bulk[0]["actor"], "on-call");
        assert!(bulk[0]["target_id"].is_null());
        assert_eq!(bulk[0]["detail"]["queued"], resent["queued"]);
        assert_eq!(bulk[0]["detail"]["filter"]["webhook_id"], id.as_str());
        // A dry run changes nothing and records nothing.
        let (status, _) = service
            .json_as(
                &operator,
                Method::POST,
                "/deliveries/resend",
                Some(json!({"ids": [delivery_id], "dry_run": true})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(audit(&service, "action=deliveries.resend_bulk").await.len(), 1);

        let (status, _) = service.json(Method::DELETE, &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        one_entry(&service, "webhook.delete", "bootstrap", &id).await;

        // Filters, newest first, pages by cursor.
        let by_operator = audit(&service, "actor=on-call").await;
        let actions: Vec<&str> = by_operator.iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(
            actions,
            ["deliveries.resend_bulk", "webhook.recover", "delivery.resend", "webhook.test"]
        );
        let all = audit(&service, "limit=500").await;
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..all.len() {
            let query = cursor.as_ref().map_or("limit=3".to_owned(), |c| format!("limit=3&cursor={c}"));
            let (_, page) = service.json(Method::GET, &format!("/audit?{query}"), None).await;
            paged.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(paged, all);
        let ats: Vec<&str> = all.iter().filter_map(|e| e["at"].as_str()).collect();
        assert!(ats.windows(2).all(|w| w[0] >= w[1]), "newest first: {ats:?}");
        let later = (Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
        assert!(audit(&service, &format!("since={}", urlencode(&later))).await.is_empty());
        assert_eq!(
            audit(&service, &format!("until={}", urlencode(&later))).await.len(),
            all.len()
        );
        let (status, answer) = service.json(Method::GET, "/audit?action=webhook.explode", None).await;
        assert_field_error(status, &answer, "action");
        let (status, answer) = service.json(Method::GET, "/audit?limit=0", None).await;
        assert_field_error(status, &answer, "limit");
        let (status, answer) = service.json(Method::GET, "/audit?cursor=dlv_x", None).await;
        assert_field_error(status, &answer, "cursor");

        // No entry ever holds a secret or a key.
        let text = serde_json::to_string(&all).expect("json");
        for secret in [secret.as_str(), new_secret.as_str(), operator.as_str(), service.admin_key.as_str()] {
            assert!(!text.contains(secret), "an audit entry holds a secret");
        }
        assert!(!text.contains(&receiver.url("/down")), "nor a webhook URL, which may carry a token");
    }

    #[tokio::test]
    async fn a_secret_shows_its_age_and_its_predecessors_grace_ends_on_request() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        let before = Utc::now() - chrono::TimeDelta::seconds(1);
        let (id, first_secret) = webhook_to(&service, &receiver.url("/ok"), json!(["*"])).await;
        let (_, created) = service.json(Method::GET, &format!("/webhooks/{id}"), None).await;
        let issued: chrono::DateTime<Utc> =
            serde_json::from_value(created["secret_created_at"].clone()).expect("secret_created_at");
        assert!(issued >= before && issued <= Utc::now(), "{created}");
        assert_eq!(created["previous_secrets"], json!([]));

        let (_, rotated) = service
            .json(
                Method::POST,
                &format!("/webhooks/{id}/rotate-secret"),
                Some(json!({"grace_seconds": 3600})),
            )
            .await;
        let second_secret = rotated["secret"].as_str().expect("secret").to_owned();
        let (_, listed) = service.json(Method::GET, "/webhooks", None).await;
        let webhook = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|w| w["id"] == id.as_str())
            .cloned()
            .expect("listed");
        let rotated_at: chrono::DateTime<Utc> =
            serde_json::from_value(webhook["secret_created_at"].clone()).expect("time");
        assert!(rotated_at >= issued, "{webhook}");
        let previous = webhook["previous_secrets"].as_array().expect("previous");
        assert_eq!(previous.len(), 1, "{webhook}");
        assert_eq!(previous[0]["hint"], first_secret[first_secret.len() - 4..]);
        assert_eq!(previous[0]["expires_at"], rotated["previous_secret_expires_at"]);
        let text = listed.to_string();
        assert!(!text.contains(&first_secret) && !text.contains(&second_secret));

        // Both sign until the grace is ended; then the current one alone.
        let emitted = service.emit(json!({"type": "order.created", "data": {}})).await;
        let first = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&first, "succeeded").await;
        let request = receiver.received("/ok").pop().expect("request");
        let signatures = request.headers[signing::HEADER_SIGNATURE].to_str().expect("ascii");
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");

        let (status, answer) = service
            .json(Method::POST, &format!("/webhooks/{id}/expire-previous-secrets"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
        let (_, after) = service.json(Method::GET, &format!("/webhooks/{id}"), None).await;
        assert_eq!(after["previous_secrets"], json!([]));
        assert_eq!(after["secret_created_at"], webhook["secret_created_at"]);
        let emitted = service.emit(json!({"type": "order.created", "data": {}})).await;
        let second = only_delivery(&service, emitted["event_id"].as_str().expect("id")).await;
        service.wait_for_delivery(&second, "succeeded").await;
        let request = receiver.received("/ok").pop().expect("request");
        let signatures = request.headers[signing::HEADER_SIGNATURE].to_str().expect("ascii");
        assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
        assert!(signing::verify(&second_secret, &request.headers, &request.body, Utc::now()).is_ok());
        assert!(signing::verify(&first_secret, &request.headers, &request.body, Utc::now()).is_err());

        let (status, _) = service
            .json(Method::POST, "/webhooks/wh_nope/expire-previous-secrets", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn keys_survive_a_restart_and_a_configured_key_becomes_the_bootstrap_key() {
        let service = TestService::start().await;
        let generated = service.admin_key.clone();
        let alice = create_key(&service, "alice", "operator").await;
        let alice = alice["key"].as_str().expect("key").to_owned();
        let service = service.restart().await;
        let (status, _) = service.json(Method::GET, "/keys", None).await;
        assert_eq!(status, StatusCode::OK, "the generated key still works");

        let configured = "hpk_configured_for_this_test_0123456789abcdef".to_owned();
        let mut service = service
            .restart_with(|config| config.admin_key = Some(configured.clone().into()))
            .await;
        service.admin_key = configured;
        let (status, listed) = service.json(Method::GET, "/keys", None).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let names: Vec<&str> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|k| k["name"].as_str())
            .collect();
        assert_eq!(names, ["bootstrap", "alice"]);
        let (status, _) = service.json_as(&generated, Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the configured key replaced it");
        let (status, _) = service.json_as(&alice, Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn audit_entries_older_than_the_audit_retention_are_pruned() {
    let service = TestService::start_with(|config| {
        config.audit_retention = Some(std::time::Duration::from_secs(2));
    })
    .await;
    create_key(&service, "short-lived", "operator").await;
    assert_eq!(audit(&service, "").await.len(), 1);
    wait_for(
        "the entry pruned",
        std::time::Duration::from_secs(20),
        || async { audit(&service, "").await.is_empty().then_some(()) },
    )
    .await;
}

async fn create_key_as(service: &TestService, key: &str, name: &str, role: &str) -> Value {
    let (status, created) = service
        .json_as(
            key,
            Method::POST,
            "/keys",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn audit_as(service: &TestService, key: &str, query: &str) -> Vec<Value> {
    let (status, page) = service
        .json_as(key, Method::GET, &format!("/audit?{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
