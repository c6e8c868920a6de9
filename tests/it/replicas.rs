//! Several `hookpanel serve` processes on one PostgreSQL database, as behind a load
//! balancer: they share the work, none loses or doubles what another accepted, one that
//! dies leaves its claims to the others once its lease runs out, and what one changes
//! reaches the others' next deliveries.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use hookpanel::signing;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend::{PostgresDatabase, RawConnection};
use crate::cli::{BINARY, Running, keygen, read_startup, start_serve};
use crate::receiver::Receiver;
use crate::support::wait_for;

const ADMIN_KEY: &str = "hpk_crash_test_0123456789abcdefghijkl";
/// Attempts in flight per replica: what a killed replica can have sent without
/// recording it is bounded by this, and by its queue of attempts to record.
const CONCURRENCY: usize = 64;
/// The dispatcher's queue of attempts waiting to be recorded, and one batch being written
/// (`dispatch::RECORD_BATCH` × 4 + one batch).
const RECORD_QUEUE: usize = 256 * 5;

/// `count` replicas on `database`, with a lease of `lease`, started together: their
/// migrations race, and run once under PostgreSQL's advisory lock.
fn replicas(database: &PostgresDatabase, count: usize, lease: &str) -> Vec<(Running, String)> {
    let encryption_key = keygen();
    let children: Vec<_> = (0..count)
        .map(|_| {
            let mut command = Command::new(BINARY);
            command
                .arg("serve")
                .env("HOOKPANEL_LEASE", lease)
                .env("HOOKPANEL_DELIVERY_CONCURRENCY", CONCURRENCY.to_string())
                .env("HOOKPANEL_WEBHOOK_CONCURRENCY", CONCURRENCY.to_string())
                .env("HOOKPANEL_DB_MAX_CONNECTIONS", "8");
            start_serve(&mut command, database.url(), &encryption_key)
        })
        .collect();
    children
        .into_iter()
        .map(|mut child| {
            let (_, base_url) = read_startup(&mut child);
            (Running(child), base_url)
        })
        .collect()
}

async fn post(
    client: &reqwest::Client,
    base_url: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{base_url}/v1/admin{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a webhook through `base_url`; returns its id and secret.
async fn webhook(
    client: &reqwest::Client,
    base_url: &str,
    url: String,
    events: Value,
) -> (String, String) {
    let (status, created) = post(
        client,
        base_url,
        "/webhooks",
        json!({"name": "replicated", "url": url, "events": events}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

/// The distinct event ids `path` received, and how many requests it got in all.
fn received(receiver: &Receiver, path: &str) -> (HashSet<String>, usize) {
    let requests = receiver.received(path);
    let ids = requests
        .iter()
        .filter_map(|r| Some(r.headers.get("webhook-id")?.to_str().ok()?.to_owned()))
        .collect();
    (ids, requests.len())
}

async fn count(db: &mut RawConnection, sql: &str) -> i64 {
    let rows: Vec<(i64,)> = db.rows(sql).await;
    rows.first().map_or(0, |row| row.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_a_burst_and_one_killed_mid_burst_loses_and_doubles_nothing() {
    const EVENTS: usize = 3_000;
    let receiver = Receiver::start().await;
    let database = PostgresDatabase::create().await;
    let mut replicas = replicas(&database, 3, "2s");
    let urls: Vec<String> = replicas.iter().map(|(_, url)| url.clone()).collect();
    let client = reqwest::Client::new();
    webhook(
        &client,
        &urls[0],
        receiver.url("/orders"),
        json!(["order.created"]),
    )
    .await;
    webhook(&client, &urls[1], receiver.url("/everything"), json!(["*"])).await;

    // The burst, spread over the three; each emit remembered if it was accepted.
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (client, urls, accepted_so_far) =
            (client.clone(), urls.clone(), Arc::clone(&accepted_so_far));
        async move {
            futures_util::stream::iter(0..EVENTS)
                .map(|n| {
                    let (client, base_url) = (client.clone(), urls[n % 3].clone());
                    async move {
                        let answer = client
                            .post(format!("{base_url}/v1/admin/events"))
                            .bearer_auth(ADMIN_KEY)
                            .json(&json!({"type": "order.created", "id": format!("burst-{n}"), "data": {"n": n}}))
                            .send()
                            .await;
                        (n, answer.is_ok_and(|a| a.status() == StatusCode::ACCEPTED))
                    }
                })
                .buffer_unordered(30)
                .filter_map(|(n, accepted)| async move { accepted.then_some(format!("burst-{n}")) })
                .inspect(|_| {
                    accepted_so_far.fetch_add(1, Ordering::Relaxed);
                })
                .collect::<HashSet<String>>()
                .await
        }
    });
    wait_for(
        "a quarter of the burst, and deliveries under way",
        Duration::from_secs(60),
        || async {
            (accepted_so_far.load(Ordering::Relaxed) >= EVENTS / 4
                && received(&receiver, "/orders").1 > 0)
                .then_some(())
        },
    )
    .await;
    drop(replicas.pop()); // SIGKILL, mid-burst and mid-dispatch
    let accepted = burst.await.expect("the burst ends");
    assert!(
        accepted.len() < EVENTS,
        "the kill came after the burst ended ({} accepted)",
        accepted.len()
    );
    assert!(
        accepted.len() >= EVENTS * 2 / 3,
        "the survivors took their share: {}",
        accepted.len()
    );

    // Every accepted event reaches both webhooks, from the survivors; the killed one's
    // claims are theirs once its lease has run out.
    for path in ["/orders", "/everything"] {
        wait_for(
            &format!("every accepted event at {path}"),
            Duration::from_secs(120),
            || async {
                received(&receiver, path)
                    .0
                    .is_superset(&accepted)
                    .then_some(())
            },
        )
        .await;
    }
    let mut db = RawConnection::open(database.url()).await;
    // Three replicas started together applied each migration once.
    let migrations: Vec<(i64, bool)> = db
        .rows("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .await;
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("the migrations folder")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    let expected: Vec<(i64, bool)> = (1..=i64::try_from(shipped).expect("count"))
        .map(|version| (version, true))
        .collect();
    assert!(shipped >= 10, "{shipped} migrations shipped");
    assert_eq!(migrations, expected);
    let settled = wait_for("every delivery settled and no claim left", Duration::from_secs(60), || async {
        let mut db = RawConnection::open(database.url()).await;
        let open = count(&mut db, "SELECT COUNT(*) FROM deliveries WHERE status <> 'succeeded' OR lease_until IS NOT NULL").await;
        (open == 0).then_some(())
    })
    .await;
    let _: () = settled;
    // Exactly one delivery per (event, subscribed webhook), events the killed replica
    // stored but could not answer for included.
    let events = count(&mut db, "SELECT COUNT(*) FROM events").await;
    assert!(events >= accepted.len() as i64);
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM deliveries").await,
        2 * events
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM (SELECT DISTINCT event_id, webhook_id FROM deliveries) d"
        )
        .await,
        2 * events
    );
    // Repeats: requests beyond one per delivery, all from attempts the killed replica
    // had under way or waiting to be recorded.
    let mut repeats = 0;
    for path in ["/orders", "/everything"] {
        let (ids, requests) = received(&receiver, path);
        assert_eq!(ids.len() as i64, events, "{path} got every stored event");
        repeats += requests - ids.len();
    }
    eprintln!(
        "{} of {EVENTS} emits accepted, {events} events stored, {repeats} repeated requests",
        accepted.len()
    );
    assert!(repeats <= CONCURRENCY + RECORD_QUEUE, "{repeats} repeats");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_through_one_replica_signs_the_next_deliveries_of_another() {
    let receiver = Receiver::start().await;
    let database = PostgresDatabase::create().await;
    let replicas = replicas(&database, 2, "60s");
    let (a, b) = (&replicas[0].1, &replicas[1].1);
    let client = reqwest::Client::new();
    let (id, old_secret) = webhook(&client, a, receiver.url("/rotating"), json!(["*"])).await;
    // A signs once, and keeps the secret it read.
    let emit = |n: usize| {
        let client = client.clone();
        async move {
            let (status, body) = post(
                &client,
                a,
                "/events",
                json!({"type": "order.created", "id": format!("rot-{n}"), "data": {}}),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    };
    emit(0).await;
    wait_for("the first delivery", Duration::from_secs(20), || async {
        (!receiver.received("/rotating").is_empty()).then_some(())
    })
    .await;
    let first = &receiver.received("/rotating")[0];
    assert_eq!(
        signing::verify(&old_secret, &first.headers, &first.body, Utc::now()),
        Ok(())
    );

    let (status, rotated) = post(
        &client,
        b,
        &format!("/webhooks/{id}/rotate-secret"),
        json!({"grace_seconds": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    // The bound the README states: a replica reads a secret again after 0.5 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for n in 1..=20 {
        emit(n).await;
    }
    wait_for(
        "the deliveries after the rotation",
        Duration::from_secs(20),
        || async { (receiver.received("/rotating").len() >= 21).then_some(()) },
    )
    .await;
    for request in &receiver.received("/rotating")[1..] {
        let signatures = request.headers[signing::HEADER_SIGNATURE]
            .to_str()
            .expect("ascii");
        assert_eq!(
            signatures.split(' ').count(),
            1,
            "only the new secret signs: {signatures}"
        );
        assert_eq!(
            signing::verify(&new_secret, &request.headers, &request.body, Utc::now()),
            Ok(())
        );
        assert!(signing::verify(&old_secret, &request.headers, &request.body, Utc::now()).is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_id_sent_to_two_replicas_at_once_fans_out_once() {
    const EVENTS: usize = 200;
    let receiver = Receiver::start().await;
    let database = PostgresDatabase::create().await;
    let replicas = replicas(&database, 2, "60s");
    let client = reqwest::Client::new();
    webhook(
        &client,
        &replicas[0].1,
        receiver.url("/a"),
        json!(["order.created"]),
    )
    .await;
    webhook(&client, &replicas[0].1, receiver.url("/b"), json!(["*"])).await;
    let answers: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..EVENTS * 2)
        .map(|n| {
            let (client, base_url) = (client.clone(), replicas[n % 2].1.clone());
            async move {
                post(
                    &client,
                    &base_url,
                    "/events",
                    json!({"type": "order.created", "id": format!("twice-{}", n / 2), "data": {}}),
                )
                .await
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(
            answer["deliveries"], 2,
            "both answers report the one fan-out: {answer}"
        );
    }
    let mut db = RawConnection::open(database.url()).await;
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM events").await,
        EVENTS as i64
    );
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM deliveries").await,
        2 * EVENTS as i64
    );
    for path in ["/a", "/b"] {
        wait_for(
            &format!("every event at {path}"),
            Duration::from_secs(30),
            || async { (received(&receiver, path).0.len() == EVENTS).then_some(()) },
        )
        .await;
        assert_eq!(received(&receiver, path).1, EVENTS, "{path}: each once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_webhooks_rate_limit() {
    let receiver = Receiver::start().await;
    let database = PostgresDatabase::create().await;
    let replicas = replicas(&database, 2, "60s");
    let client = reqwest::Client::new();
    let (status, created) = post(
        &client,
        &replicas[0].1,
        "/webhooks",
        json!({"name": "paced", "url": receiver.url("/paced"), "events": ["*"], "rate_limit": 50}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // Both replicas take emits, and both dispatchers claim: each alone would allow 50
    // a second.
    for n in 0..300 {
        let (status, body) = post(
            &client,
            &replicas[n % 2].1,
            "/events",
            json!({"type": "order.created", "id": format!("shared-{n}"), "data": {}}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let requests = wait_for("300 deliveries", Duration::from_secs(60), || async {
        let requests = receiver.received("/paced");
        (requests.len() >= 300).then_some(requests)
    })
    .await;
    assert_eq!(crate::rate_limits::event_ids(&requests).len(), 300);
    let most = crate::rate_limits::most_in_any_second(&requests);
    assert!(most <= 60, "{most} requests arrived within one second");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_through_one_replica_is_refused_by_the_other_within_half_a_second() {
    let database = PostgresDatabase::create().await;
    let replicas = replicas(&database, 2, "60s");
    let (a, b) = (&replicas[0].1, &replicas[1].1);
    let client = reqwest::Client::new();
    let (status, created) = post(
        &client,
        a,
        "/keys",
        json!({"name": "contractor", "role": "operator"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().expect("key").to_owned();
    let key_id = created["id"].as_str().expect("id").to_owned();
    let list_with = |base: &str| {
        client
            .get(format!("{base}/v1/admin/webhooks"))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(list_with(b).await.expect("sent").status(), StatusCode::OK);
    let revoked = client
        .delete(format!("{a}/v1/admin/keys/{key_id}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    // The replica it was revoked through refuses it at once; the other within the 0.5 s
    // the README states (a replica keeps a key it read that long, as it keeps a secret).
    assert_eq!(
        list_with(a).await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        list_with(b).await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
}
