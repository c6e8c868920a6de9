//! `hookpanel migrate`: a populated SQLite database moved to PostgreSQL is served as it
//! was, and its deliveries still verify with the same secrets.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use hookpanel::api::{DeliveryQuery, EventIn, WebhookIn};
use hookpanel::client::Client;
use hookpanel::server;
use hookpanel::signing;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::backend::PostgresDatabase;
use crate::cli::BINARY;
use crate::receiver::{Behaviour, Receiver};
use crate::support::{TestService, config_on, wait_for};

/// Everything the typed client shows of a service: webhooks, every delivery with its
/// attempts, and the stats.
async fn everything(client: &Client) -> Value {
    let webhooks = client.webhooks().await.expect("webhooks");
    let mut deliveries = Vec::new();
    let mut query = DeliveryQuery::default();
    loop {
        let page = client.deliveries(&query).await.expect("a page");
        for delivery in &page.items {
            deliveries.push(client.delivery(&delivery.id).await.expect("detail"));
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let stats = client.stats(&Default::default()).await.expect("stats");
    json!({"webhooks": webhooks, "deliveries": deliveries, "stats": stats})
}

fn migrate(from: &str, to: &str) -> std::process::Output {
    Command::new(BINARY)
        .args(["migrate", "--from", from, "--to", to])
        .output()
        .expect("migrate runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migrated_database_serves_the_same_history_and_signs_with_the_same_secrets() {
    let receiver = Receiver::start().await;
    receiver.set("/flaky", Behaviour::FailTimes(2));
    receiver.set("/down", Behaviour::Status(500));
    let sqlite = TestService::start().await;
    let admin_key = Zeroizing::new(sqlite.admin_key.clone());
    let client = Client::new(&sqlite.service.base_url(), admin_key.clone()).expect("client");
    let mut secrets = Vec::new();
    for (name, path) in [("flaky", "/flaky"), ("down", "/down"), ("fine", "/fine")] {
        let created = client
            .create_webhook(&WebhookIn {
                name: name.to_owned(),
                url: receiver.url(path),
                events: vec!["*".to_owned()],
                kind: Default::default(),
                description: None,
                owner: None,
                // A rate limit and its pace move too.
                rate_limit: (name == "fine").then_some(1_000),
            })
            .await
            .expect("created");
        secrets.push((created.webhook.id.clone(), created.secret.to_string()));
    }
    // A rotation with grace: two sealed secrets to carry over.
    let fine = secrets[2].0.clone();
    let rotated = client.rotate_secret(&fine, 3_600).await.expect("rotated");
    for n in 0..20 {
        client
            .emit(&EventIn {
                event_type: "order.created".to_owned(),
                id: Some(format!("evt-{n}")),
                data: json!({"n": n}),
            })
            .await
            .expect("emitted");
    }
    wait_for(
        "every delivery to settle",
        Duration::from_secs(60),
        || async {
            let open = client
                .deliveries(&DeliveryQuery::default())
                .await
                .expect("page")
                .items
                .iter()
                .filter(|d| d.next_attempt_at.is_some())
                .count();
            (open == 0).then_some(())
        },
    )
    .await;
    // An hour whose deliveries retention pruned: counted for the chart, with no rows.
    {
        use sqlx::Connection as _;
        let mut source = sqlx::SqliteConnection::connect(&sqlite.database_url)
            .await
            .expect("the source");
        let hour = (Utc::now().timestamp_millis() / 3_600_000 - 5) * 3_600_000;
        sqlx::query(
            "INSERT INTO delivery_counts (webhook_id, hour_start, succeeded, failed) \
             VALUES (?, ?, 7, 2)",
        )
        .bind(&fine)
        .bind(hour)
        .execute(&mut source)
        .await
        .expect("a pruned hour's counts");
    }
    let before = everything(&client).await;
    assert!(
        before["stats"].to_string().contains("\"succeeded\":7"),
        "the pruned hour is in the chart: {}",
        before["stats"]
    );
    let encryption_key = sqlite.encryption_key.clone();
    let from = sqlite.database_url.clone();
    sqlite.service.shutdown().await.expect("stopped");

    let target = PostgresDatabase::create().await;
    let output = migrate(&from, target.url());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("deliveries") && stdout.contains("60 rows"),
        "{stdout}"
    );

    // The same admin key (its digest moved with the data) and encryption key.
    let postgres = server::start(config_on(target.url().to_owned(), &encryption_key))
        .await
        .expect("a PostgreSQL-backed service starts on the copy");
    let client = Client::new(&postgres.base_url(), admin_key).expect("client");
    assert_eq!(everything(&client).await, before);

    // New deliveries sign with the moved secrets: both of the rotated webhook's.
    client
        .emit(&EventIn {
            event_type: "order.created".to_owned(),
            id: Some("after-the-move".to_owned()),
            data: json!({}),
        })
        .await
        .expect("emitted");
    let signed = wait_for(
        "the first delivery after the move",
        Duration::from_secs(20),
        || async {
            receiver
                .received("/fine")
                .into_iter()
                .find(|r| r.headers["webhook-id"] == "after-the-move")
        },
    )
    .await;
    for secret in [secrets[2].1.as_str(), rotated.secret.as_str()] {
        assert_eq!(
            signing::verify(secret, &signed.headers, &signed.body, Utc::now()),
            Ok(())
        );
    }
    postgres.shutdown().await.expect("stopped");

    // A second move into the same, now populated, database is refused and changes nothing.
    let again = migrate(&from, target.url());
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
}
