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
