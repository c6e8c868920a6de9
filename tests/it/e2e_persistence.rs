//! Restarts on the same database file, and the key checks made at start.

use hookpanel::crypto;
use hookpanel::server::{self, SecretsAtRest, StartError};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestService, config, orders_webhook};

#[tokio::test]
async fn webhooks_and_the_generated_admin_key_survive_a_restart() {
    let service = TestService::start().await;
    let created = service.create_webhook(orders_webhook()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let old_addr = service.service.local_addr();

    let mut service = service.restart().await;
    assert!(
        service.service.take_generated_admin_key().is_none(),
        "a second start generates no new key"
    );
    assert_ne!(
        service.service.local_addr(),
        old_addr,
        "port 0 picks a fresh port"
    );
    let (status, got) = service
        .json(Method::GET, &format!("/webhooks/{id}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old admin key still works: {got}"
    );
    assert_eq!(got["name"], "Orders");
    assert_eq!(got["events"], created["events"]);
    assert_eq!(got["secret_hint"], created["secret_hint"]);
    assert_eq!(got["created_at"], created["created_at"]);
}

#[tokio::test]
async fn a_wrong_or_missing_encryption_key_is_refused_at_start() {
    let service = TestService::start().await;
    service.create_webhook(orders_webhook()).await;
    let dir = service.dir.path().to_owned();
    let TestService {
        service: running,
        dir: keep_dir,
        ..
    } = service;
    running.shutdown().await.expect("shutdown");

    let other_key = crypto::generate_encryption_key().expect("random");
    let wrong = server::start(config(&dir, &other_key)).await;
    assert!(
        matches!(wrong, Err(StartError::WrongEncryptionKey)),
        "{:?}",
        wrong.err()
    );

    let mut plaintext = config(&dir, &other_key);
    plaintext.secrets_at_rest = SecretsAtRest::InsecurePlaintext;
    let missing = server::start(plaintext).await;
    assert!(
        matches!(missing, Err(StartError::DatabaseIsEncrypted)),
        "{:?}",
        missing.err()
    );
    drop(keep_dir);
}

#[tokio::test]
async fn a_plaintext_database_refuses_an_encryption_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = crypto::generate_encryption_key().expect("random");
    let mut plaintext = config(dir.path(), &key);
    plaintext.secrets_at_rest = SecretsAtRest::InsecurePlaintext;
    let running = server::start(plaintext).await.expect("plaintext start");
    running.shutdown().await.expect("shutdown");
    let encrypted = server::start(config(dir.path(), &key)).await;
    assert!(
        matches!(encrypted, Err(StartError::DatabaseIsPlaintext)),
        "{:?}",
        encrypted.err()
    );
}

#[tokio::test]
async fn a_configured_admin_key_replaces_the_generated_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = crypto::generate_encryption_key().expect("random");
    let mut with_key = config(dir.path(), &key);
    with_key.admin_key = Some(zeroize::Zeroizing::new(
        "hpk_configured_0123456789abcdefghijklm".to_owned(),
    ));
    let mut running = server::start(with_key).await.expect("start");
    assert!(running.take_generated_admin_key().is_none());
    let client = reqwest::Client::new();
    let url = format!("{}/v1/admin/webhooks", running.base_url());
    let ok = client
        .get(&url)
        .bearer_auth("hpk_configured_0123456789abcdefghijklm")
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status(), StatusCode::OK);
    let wrong = client
        .get(&url)
        .bearer_auth("hpk_other")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_catalog_file_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = dir.path().join("events.json");
    std::fs::write(
        &catalog,
        json!([{"name": "invoice.paid", "description": "An invoice was paid.", "example": {"invoice": 7}}])
            .to_string(),
    )
    .expect("write catalog");
    let key = crypto::generate_encryption_key().expect("random");
    let mut custom = config(dir.path(), &key);
    custom.event_types_path = Some(catalog);
    let mut running = server::start(custom).await.expect("start");
    let admin_key = running
        .take_generated_admin_key()
        .expect("generated")
        .to_string();
    let client = reqwest::Client::new();
    let types: serde_json::Value = client
        .get(format!("{}/v1/admin/event-types", running.base_url()))
        .bearer_auth(&admin_key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(types["items"][0]["name"], "invoice.paid");
    assert_eq!(types["items"].as_array().map(Vec::len), Some(1));
    // The served document names this catalog, not the built-in one.
    let doc: serde_json::Value = client
        .get(format!("{}/v1/admin/openapi.json", running.base_url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["components"]["schemas"]["EventIn"]["properties"]["type"]["enum"],
        json!(["invoice.paid"])
    );
    assert_eq!(
        doc["components"]["schemas"]["WebhookIn"]["properties"]["events"]["items"]["enum"],
        json!(["invoice.paid", "*"])
    );
    let refused = client
        .post(format!("{}/v1/admin/webhooks", running.base_url()))
        .bearer_auth(&admin_key)
        .json(&json!({"name": "x", "url": "https://x.example.com", "events": ["order.created"]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    running.shutdown().await.expect("shutdown");

    let mut broken = config(dir.path(), &key);
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, "{not json").expect("write");
    broken.event_types_path = Some(bad_file);
    assert!(matches!(
        server::start(broken).await,
        Err(StartError::Catalog(_))
    ));
}
