//! The `hookpanel` binary itself: flags and environment, the key printed once.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const BINARY: &str = env!("CARGO_BIN_EXE_hookpanel");

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen() -> String {
    let output = Command::new(BINARY)
        .arg("keygen")
        .output()
        .expect("keygen runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Reads the child's stdout until it says where it listens; returns (admin key, base URL).
fn read_startup(child: &mut Child) -> (Option<String>, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut admin_key = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in BufReader::new(stdout).lines() {
        assert!(
            Instant::now() < deadline,
            "the service did not start in time"
        );
        let line = line.expect("stdout line");
        let trimmed = line.trim();
        if trimmed.starts_with("hpk_") {
            admin_key = Some(trimmed.to_owned());
        }
        if let Some(url) = trimmed.strip_prefix("Hookpanel admin API listening on ") {
            return (admin_key, url.to_owned());
        }
    }
    panic!("the service exited before it listened");
}

#[tokio::test]
async fn serve_reads_its_environment_and_prints_the_generated_key_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let encryption_key = keygen();
    let start = || {
        Command::new(BINARY)
            .arg("serve")
            .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
            .env("HOOKPANEL_DB", &db)
            .env("HOOKPANEL_ENCRYPTION_KEY", &encryption_key)
            .env_remove("HOOKPANEL_ADMIN_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts")
    };

    let mut first = Running(start());
    let (admin_key, base_url) = read_startup(&mut first.0);
    let admin_key = admin_key.expect("the first start prints a generated admin key");
    let client = reqwest::Client::new();
    let list = client
        .get(format!("{base_url}/v1/admin/webhooks"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .expect("sent");
    assert_eq!(list.status(), StatusCode::OK);
    drop(first);

    let mut second = Running(start());
    let (printed_again, base_url) = read_startup(&mut second.0);
    assert!(printed_again.is_none(), "the key is printed only once");
    let list = client
        .get(format!("{base_url}/v1/admin/webhooks"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        list.status(),
        StatusCode::OK,
        "the generated key outlives a restart"
    );
}

#[test]
fn serve_refuses_to_start_without_an_encryption_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .env_remove("HOOKPANEL_ENCRYPTION_KEY")
        .env_remove("HOOKPANEL_INSECURE_PLAINTEXT_SECRETS")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HOOKPANEL_ENCRYPTION_KEY"), "{stderr}");
    assert!(stderr.contains("hookpanel keygen"), "{stderr}");
    assert!(!dir.path().join("x.db").exists(), "nothing was created");
}

#[test]
fn keygen_prints_a_32_byte_base64_key() {
    use base64::Engine as _;
    let key = keygen();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    assert_ne!(key, keygen());
}

/// Starts `hookpanel serve` on `db` with a known admin key; returns it and its base URL.
fn serve_with(db: &str, encryption_key: &str, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(BINARY)
        .arg("serve")
        .args(extra)
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", db)
        .env("HOOKPANEL_ENCRYPTION_KEY", encryption_key)
        .env("HOOKPANEL_ADMIN_KEY", "hpk_crash_test")
        .env("HOOKPANEL_ALLOW_PRIVATE_DESTINATIONS", "1")
        .env("HOOKPANEL_RETRY_SCHEDULE", "0s,200ms,200ms,200ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let (_, base_url) = read_startup(&mut child);
    (Running(child), base_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_burst_loses_no_event_and_leaves_nothing_stuck() {
    use std::collections::HashSet;

    use crate::receiver::{Behaviour, Receiver};
    use crate::support::wait_for;
    use serde_json::{Value, json};

    const EVENTS: usize = 200;
    let receiver = Receiver::start().await;
    receiver.set("/slow", Behaviour::Sleep(Duration::from_millis(100)));
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let encryption_key = keygen();
    // Four attempts at a time against a 100 ms receiver: the burst takes about 5 s.
    let (first, base_url) = serve_with(&db, &encryption_key, &["--delivery-concurrency", "4"]);
    let client = reqwest::Client::new();
    let admin = |path: &str| format!("{base_url}/v1/admin{path}");

    let created = client
        .post(admin("/webhooks"))
        .bearer_auth("hpk_crash_test")
        .json(&json!({"name": "slow", "url": receiver.url("/slow"), "events": ["order.created"]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    for n in 0..EVENTS {
        let emitted = client
            .post(admin("/events"))
            .bearer_auth("hpk_crash_test")
            .json(&json!({"type": "order.created", "id": format!("burst-{n}"), "data": {"n": n}}))
            .send()
            .await
            .expect("sent");
        assert_eq!(emitted.status(), StatusCode::ACCEPTED);
    }
    let distinct = |receiver: &Receiver| -> HashSet<String> {
        receiver
            .received("/slow")
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("webhook-id")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .collect()
    };
    wait_for(
        "the burst to be under way",
        Duration::from_secs(30),
        || async { (distinct(&receiver).len() >= 10).then_some(()) },
    )
    .await;
    drop(first); // SIGKILL, mid-dispatch
    let at_kill = distinct(&receiver).len();
    assert!(
        at_kill < EVENTS,
        "the kill came after the burst ended ({at_kill} delivered)"
    );

    let (_second, base_url) = serve_with(&db, &encryption_key, &["--delivery-concurrency", "16"]);
    let arrived = wait_for(
        "every event after the restart",
        Duration::from_secs(60),
        || async {
            let seen = distinct(&receiver);
            (seen.len() == EVENTS).then_some(seen)
        },
    )
    .await;
    let expected: HashSet<String> = (0..EVENTS).map(|n| format!("burst-{n}")).collect();
    assert_eq!(arrived, expected, "at least once, every one");

    let page: Value = wait_for(
        "every delivery recorded as succeeded",
        Duration::from_secs(30),
        || async {
            let page: Value = client
                .get(format!(
                    "{base_url}/v1/admin/deliveries?status=succeeded&limit=500"
                ))
                .bearer_auth("hpk_crash_test")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (page["items"].as_array().map(Vec::len) == Some(EVENTS)).then_some(page)
        },
    )
    .await;
    assert!(page["next_cursor"].is_null());
    for status in ["pending", "retrying", "failed"] {
        let page: Value = client
            .get(format!("{base_url}/v1/admin/deliveries?status={status}"))
            .bearer_auth("hpk_crash_test")
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(page["items"], json!([]), "{status} deliveries left behind");
    }
}
