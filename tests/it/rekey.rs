//! Rolling the secrets-encryption key: the re-seal, what the service says of it, and the
//! starts it refuses, end to end on both backends; and a re-seal cut short by SIGKILL and
//! finished at the next start.

use std::time::Duration;

use chrono::Utc;
use hookpanel::crypto::{self, SecretCipher};
use hookpanel::server::{ResealPace, SecretsAtRest, StartError};
use hookpanel::signing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::receiver::Receiver;
use crate::support::{TestService, wait_for};

fn key_id(key: &str) -> String {
    SecretCipher::from_base64_key(key)
        .expect("key")
        .key_id()
        .to_owned()
}

fn rolling(key: &Zeroizing<String>, previous: &Zeroizing<String>) -> SecretsAtRest {
    SecretsAtRest::Encrypted {
        key: key.clone(),
        previous: Some(previous.clone()),
    }
}

fn only(key: &Zeroizing<String>) -> SecretsAtRest {
    SecretsAtRest::Encrypted {
        key: key.clone(),
        previous: None,
    }
}

async fn key_status(service: &TestService) -> Value {
    let (status, answer) = service.json(Method::GET, "/encryption-key", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Emits one event and checks that every webhook's request verifies with its secret
/// (the current one), as the receiver got it.
async fn every_webhook_signs_with(
    service: &TestService,
    receiver: &Receiver,
    secrets: &[(String, String)],
) {
    let emitted = service
        .emit(json!({"type": "order.created", "data": {"order": "ord_1"}}))
        .await;
    let event_id = emitted["event_id"].as_str().expect("event id");
    wait_for(
        "every webhook's delivery",
        Duration::from_secs(20),
        || async {
            let deliveries = service.deliveries_of(event_id).await;
            (deliveries.len() == secrets.len()
                && deliveries.iter().all(|d| d["status"] == "succeeded"))
            .then_some(())
        },
    )
    .await;
    for (path, secret) in secrets {
        let request = receiver
            .received(path)
            .into_iter()
            .rev()
            .find(|request| String::from_utf8_lossy(&request.body).contains(event_id))
            .unwrap_or_else(|| panic!("{path} got the event"));
        assert!(
            signing::verify(secret, &request.headers, &request.body, Utc::now()).is_ok(),
            "{path} verifies with its secret"
        );
    }
}

on_both_backends! {
    /// A start with a new key and the previous one re-seals every secret in the
    /// background and says so; the webhooks keep signing with the secrets they had. A
    /// start without the previous key is refused while secrets are left under it,
    /// accepted once none is, and the retired key is refused for good.
    #[tokio::test]
    async fn rolling_the_encryption_key_reseals_every_secret_and_retires_the_old_key() {
        let receiver = Receiver::start().await;
        let service = TestService::start().await;
        let mut secrets = Vec::new();
        for name in ["billing", "shipping", "crm"] {
            let path = format!("/{name}");
            let created = service
                .create_webhook(json!({
                    "name": name, "url": receiver.url(&path), "events": ["order.created"],
                }))
                .await;
            secrets.push((path, created["secret"].as_str().expect("secret").to_owned(), created["id"].as_str().expect("id").to_owned()));
        }
        // A rotated webhook keeps its previous secret too: four sealed secrets, three current.
        let (status, rotated) = service
            .json(
                Method::POST,
                &format!("/webhooks/{}/rotate-secret", secrets[0].2),
                Some(json!({"grace_seconds": 3600})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let first_billing_secret = secrets[0].1.clone();
        secrets[0].1 = rotated["secret"].as_str().expect("secret").to_owned();
        let old_key = service.encryption_key.clone();
        let before = key_status(&service).await;
        assert_eq!(before["key_id"], key_id(&old_key));
        assert_eq!(before["previous_key_id"], Value::Null);
        assert_eq!(before["secrets_left_to_reseal"], 0);

        // Rolled, with the re-seal held after its first secret: one left behind.
        let new_key = crypto::generate_encryption_key().expect("random");
        let paced = ResealPace { batch: 1, pause: Duration::from_secs(3600) };
        let service = service
            .restart_with(|config| {
                config.secrets_at_rest = rolling(&new_key, &old_key);
                config.reseal = paced;
            })
            .await;
        let during = wait_for("the first batch", Duration::from_secs(10), || async {
            let status = key_status(&service).await;
            (status["secrets_left_to_reseal"] == 3).then_some(status)
        })
        .await;
        assert_eq!(during["key_id"], key_id(&new_key));
        assert_eq!(during["previous_key_id"], key_id(&old_key));
        let current: Vec<(String, String)> =
            secrets.iter().map(|(path, secret, _)| (path.clone(), secret.clone())).collect();
        // Mid-rollover, secrets under either key sign.
        every_webhook_signs_with(&service, &receiver, &current).await;

        let mut stopped = service.stop().await;
        stopped.encryption_key = new_key.clone();
        let (err, stopped) = match stopped.start_with(|config| config.secrets_at_rest = only(&new_key)).await {
            Ok(_) => panic!("a start without the previous key, secrets left under it, is refused"),
            Err(refused) => refused,
        };
        assert!(matches!(err, StartError::SecretsUnderPreviousKey(3)), "{err}");
        assert!(err.to_string().contains("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY"), "{err}");

        // The next start with both keys finishes the job.
        let service = match stopped.start_with(|config| config.secrets_at_rest = rolling(&new_key, &old_key)).await {
            Ok(service) => service,
            Err((err, _)) => panic!("restarts: {err}"),
        };
        wait_for("the re-seal to finish", Duration::from_secs(10), || async {
            (key_status(&service).await["secrets_left_to_reseal"] == 0).then_some(())
        })
        .await;
        let (_, log) = service.json(Method::GET, "/audit?action=encryption_key.rollover", None).await;
        let entries = log["items"].as_array().expect("items");
        assert_eq!(entries.len(), 1, "one rollover, however many starts: {log}");
        assert_eq!(entries[0]["actor"], "hookpanel");
        assert_eq!(entries[0]["detail"]["from_key_id"], key_id(&old_key));
        assert_eq!(entries[0]["detail"]["to_key_id"], key_id(&new_key));
        let text = log.to_string();
        assert!(!text.contains(old_key.as_str()) && !text.contains(new_key.as_str()));

        // The new key alone now; the webhooks sign as before.
        let service = service.restart_with(|config| config.secrets_at_rest = only(&new_key)).await;
        let status = key_status(&service).await;
        assert_eq!(status["previous_key_id"], Value::Null);
        assert_eq!(status["secrets_left_to_reseal"], 0);
        every_webhook_signs_with(&service, &receiver, &current).await;
        // The rotated webhook's previous secret was re-sealed too: it still signs.
        let request = receiver.received(&secrets[0].0).pop().expect("request");
        let signatures = request.headers[signing::HEADER_SIGNATURE].to_str().expect("ascii");
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(signing::verify(&first_billing_secret, &request.headers, &request.body, Utc::now()).is_ok());

        // The retired key is refused, saying so.
        let (err, _) = match service.stop().await.start_with(|config| config.secrets_at_rest = only(&old_key)).await {
            Ok(_) => panic!("the retired key is refused"),
            Err(refused) => refused,
        };
        assert!(matches!(err, StartError::RetiredEncryptionKey { .. }), "{err}");
        assert!(err.to_string().contains("retired"), "{err}");
    }
}

on_both_backends! {
    /// The re-seal of a `hookpanel serve` killed with SIGKILL partway: the next start with
    /// the new key alone is refused, naming how many secrets are left; the next with both
    /// keys finishes; then the new key alone starts, every webhook signs with its secret,
    /// and the retired key is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_reseal_killed_partway_finishes_at_the_next_start() {
        use std::process::Command;

        use crate::cli::{BINARY, keygen, spawn_serve};

        const WEBHOOKS: usize = 30;
        const ADMIN_KEY: &str = "hpk_crash_test_0123456789abcdefghijkl";
        let receiver = Receiver::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (_postgres, db) = crate::backend::spawned_database(dir.path(), "rekey.db").await;
        let client = reqwest::Client::new();
        // An admin request to the service at `base_url`, its answer as JSON.
        let call = |base_url: &str, path: &str, body: Option<Value>| {
            let request = match body {
                Some(body) => client
                    .post(format!("{base_url}/v1/admin{path}"))
                    .json(&body),
                None => client.get(format!("{base_url}/v1/admin{path}")),
            };
            async move {
                let answer: Value = request
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("json");
                answer
            }
        };
        let left = |base_url: String| async move {
            call(&base_url, "/encryption-key", None).await["secrets_left_to_reseal"]
                .as_u64()
                .expect("count")
        };
        // A start refused: what it said.
        let refused_start = |encryption_key: &str| {
            let output = Command::new(BINARY)
                .arg("serve")
                .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
                .env("HOOKPANEL_DB", &db)
                .env("HOOKPANEL_ENCRYPTION_KEY", encryption_key)
                .env("HOOKPANEL_ADMIN_KEY", ADMIN_KEY)
                .env_remove("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY")
                .output()
                .expect("runs");
            assert!(!output.status.success(), "refused");
            String::from_utf8_lossy(&output.stderr).into_owned()
        };

        let old_key = keygen();
        let (first, base_url) = spawn_serve(Command::new(BINARY).arg("serve"), &db, &old_key);
        let mut secrets = Vec::new();
        for n in 0..WEBHOOKS {
            let path = format!("/w{n}");
            let created = call(
                &base_url,
                "/webhooks",
                Some(json!({"name": format!("w{n}"), "url": receiver.url(&path), "events": ["order.created"]})),
            )
            .await;
            secrets.push((path, created["secret"].as_str().expect("secret").to_owned()));
        }
        drop(first);

        // Rolled, one secret per transaction, 50 ms apart: killed once some are done.
        let new_key = keygen();
        let (mut rolling, base_url) = spawn_serve(
            Command::new(BINARY)
                .args(["serve", "--reseal-batch", "1", "--reseal-pause", "50ms"])
                .env("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY", &old_key),
            &db,
            &new_key,
        );
        let left_at_kill = wait_for("some secrets re-sealed", Duration::from_secs(20), || {
            let base_url = base_url.clone();
            let left = &left;
            async move {
                let count = left(base_url).await;
                (count < WEBHOOKS as u64 - 2).then_some(count)
            }
        })
        .await;
        rolling.0.kill().expect("SIGKILL");
        let _ = rolling.0.wait();
        assert!(left_at_kill > 0, "killed partway: {left_at_kill} left");

        let stderr = refused_start(&new_key);
        assert!(
            stderr.contains("still sealed with the previous encryption key"),
            "{stderr}"
        );

        let (finishing, base_url) = spawn_serve(
            Command::new(BINARY)
                .arg("serve")
                .env("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY", &old_key),
            &db,
            &new_key,
        );
        wait_for("the re-seal to finish", Duration::from_secs(20), || {
            let base_url = base_url.clone();
            let left = &left;
            async move { (left(base_url).await == 0).then_some(()) }
        })
        .await;
        drop(finishing);

        let (new_alone, base_url) = spawn_serve(Command::new(BINARY).arg("serve"), &db, &new_key);
        let emitted = call(
            &base_url,
            "/events",
            Some(json!({"type": "order.created", "data": {"order": "ord_2"}})),
        )
        .await;
        let event_id = emitted["event_id"].as_str().expect("event id").to_owned();
        let received = wait_for(
            "every webhook's request",
            Duration::from_secs(30),
            || async {
                let got: Vec<_> = secrets
                    .iter()
                    .filter_map(|(path, secret)| {
                        receiver
                            .received(path)
                            .into_iter()
                            .find(|r| String::from_utf8_lossy(&r.body).contains(&event_id))
                            .map(|request| (secret.clone(), request))
                    })
                    .collect();
                (got.len() == WEBHOOKS).then_some(got)
            },
        )
        .await;
        for (secret, request) in &received {
            assert!(
                signing::verify(secret, &request.headers, &request.body, Utc::now()).is_ok(),
                "{} verifies with its secret",
                request.path
            );
        }
        drop(new_alone);

        let stderr = refused_start(&old_key);
        assert!(stderr.contains("retired"), "{stderr}");
    }
}
