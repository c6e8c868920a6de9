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
