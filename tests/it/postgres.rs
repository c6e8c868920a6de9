//! What only the PostgreSQL backend has: TLS to the server. (Everything else runs on both
//! backends: see `on_both_backends!`.)

use reqwest::Method;
use serde_json::json;

use crate::backend::{RawConnection, postgres_admin_url};
use crate::support::TestService;

#[tokio::test]
async fn a_url_that_asks_for_tls_gets_it_on_every_connection() {
    let service = crate::backend::Backend::Postgres
        .run(async {
            let service = TestService::start_with(|config| {
                config.database_url.push_str("?sslmode=require");
            })
            .await;
            let created = service
                .create_webhook(
                    json!({"name": "tls", "url": "https://tls.example.com/hooks", "events": ["*"]}),
                )
                .await;
            let (status, _) = service
                .json(
                    Method::GET,
                    &format!("/webhooks/{}", created["id"].as_str().expect("id")),
                    None,
                )
                .await;
            assert!(status.is_success());
            service
        })
        .await;
    let database = service.postgres.as_ref().expect("a PostgreSQL database");
    let mut admin = RawConnection::open(&postgres_admin_url()).await;
    let connections: Vec<(bool,)> = admin
        .rows(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{}'",
            database.name()
        ))
        .await;
    assert!(!connections.is_empty(), "the service holds connections");
    assert!(
        connections.iter().all(|(ssl,)| *ssl),
        "every connection is encrypted: {connections:?}"
    );
}
