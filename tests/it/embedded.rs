//! The service the panel starts: its keys, and what happens without a keychain.

use hookpanel::embedded::{self, EmbeddedError, Persistence};
use hookpanel::keychain::{Keychain, KeychainError};

#[tokio::test]
async fn a_keychain_without_the_databases_key_is_explained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = embedded::start(Ok(Keychain::in_memory()), dir.path())
        .await
        .expect("first start");
    assert!(matches!(first.persistence, Persistence::Kept { .. }));
    first.service.shutdown().await.expect("stops");

    // Another (empty) keychain: a new key is made, which cannot open this database.
    let second = embedded::start(Ok(Keychain::in_memory()), dir.path()).await;
    match second {
        Err(err @ EmbeddedError::KeyMismatch { .. }) => {
            let message = err.to_string();
            assert!(message.contains("local/encryption-key"), "{message}");
            assert!(message.contains("move the database away"), "{message}");
        }
        Err(other) => panic!("expected KeyMismatch, got {other}"),
        Ok(_) => panic!("a database sealed with another key opened"),
    }
}

#[tokio::test]
async fn without_a_keychain_the_service_runs_for_the_session_and_writes_nothing_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let unavailable = Err(KeychainError::Unavailable {
        detail: "no Secret Service on this bus".to_owned(),
    });
    let running = embedded::start(unavailable, &data_dir)
        .await
        .expect("starts anyway");
    assert!(
        matches!(&running.persistence, Persistence::SessionOnly { reason, .. } if reason.is_unavailable()),
        "{:?}",
        running.persistence
    );
    let health = reqwest::get(format!("{}/healthz", running.service.base_url()))
        .await
        .expect("answers");
    assert!(health.status().is_success());
    running.service.shutdown().await.expect("stops");
    assert!(
        !data_dir.exists(),
        "nothing is written to the data directory"
    );
}

/// The panel's client reaches a service on loopback directly, whatever `HTTP_PROXY` and
/// `ALL_PROXY` say: the admin key never travels to a proxy. The environment is the
/// process's, so the test runs itself again in a child process that has them set, pointing
/// at a listener of the test's own that must see no connection.
#[test]
fn the_client_of_a_loopback_service_never_uses_the_environments_proxy() {
    const PROXY_PORT: &str = "HOOKPANEL_TEST_PROXY_PORT";
    const NAME: &str =
        "embedded::the_client_of_a_loopback_service_never_uses_the_environments_proxy";
    if let Ok(port) = std::env::var(PROXY_PORT) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let service = crate::support::TestService::start().await;
            let client = hookpanel::client::Client::new(
                &service.service.base_url(),
                zeroize::Zeroizing::new(service.admin_key.clone()),
            )
            .expect("client");
            let webhooks = client.webhooks().await.expect("served directly");
            assert!(webhooks.is_empty());
        });
        assert_eq!(
            std::env::var("HTTP_PROXY").ok(),
            Some(format!("http://127.0.0.1:{port}"))
        );
        return;
    }
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("a proxy's port");
    proxy.set_nonblocking(true).expect("nonblocking");
    let port = proxy.local_addr().expect("addr").port();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(PROXY_PORT, port.to_string())
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("the test runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        proxy.accept().is_err(),
        "the proxy was connected to: the admin key went through it"
    );
}
