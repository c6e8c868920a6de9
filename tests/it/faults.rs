//! Load and faults: many concurrent emits, and receivers that misbehave in every way a
//! peer can. Each test is bounded in count and time.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::receiver::{Behaviour, Receiver, breaking_server};
use crate::support::{TestService, wait_for};

const EVENT_TYPES: [&str; 5] = [
    "order.created",
    "order.cancelled",
    "payment.received",
    "shipment.delivered",
    "customer.created",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_emits_make_exactly_one_delivery_per_subscribed_webhook() {
    const WEBHOOKS: usize = 50;
    const EMITS: usize = 2_000;
    let receiver = Receiver::start().await;
    let mut service = TestService::start().await;
    // Webhook n subscribes to one event type; every fifth also to a second one.
    let mut subscribers: HashMap<&str, Vec<String>> = HashMap::new();
    for n in 0..WEBHOOKS {
        let mut events = vec![EVENT_TYPES[n % EVENT_TYPES.len()]];
        if n % 5 == 0 {
            events.push(EVENT_TYPES[(n + 1) % EVENT_TYPES.len()]);
        }
        let created = service
            .create_webhook(json!({
                "name": format!("Receiver {n}"),
                "url": receiver.url(&format!("/r{n}")),
                "events": events,
            }))
            .await;
        let id = created["id"].as_str().expect("id").to_owned();
        for event in events {
            subscribers.entry(event).or_default().push(id.clone());
        }
    }

    // A connection closes once answered, rather than wait idle in the pool holding one
    // of the service's 1 024 connection permits until its 10 s header deadline: the
    // emits beyond that many would wait in the listen backlog for it.
    service.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    // Every emit at once; every tenth id sent twice, which must fan out once.
    let emits = (0..EMITS).map(|n| {
        let base = if n % 10 == 1 { n - 1 } else { n };
        let event_type = EVENT_TYPES[base % EVENT_TYPES.len()];
        let id = format!("evt-{base}");
        let service = &service;
        async move {
            let body = json!({"type": event_type, "id": id, "data": {"n": n}});
            let (status, answer) = service.json(Method::POST, "/events", Some(body)).await;
            (status, answer, event_type, id)
        }
    });
    let answers = futures_util::future::join_all(emits).await;
    let mut expected: HashMap<String, usize> = HashMap::new();
    for (status, answer, event_type, id) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{answer}");
        let fan_out = subscribers[event_type].len();
        assert_eq!(answer["deliveries"], fan_out, "{answer}");
        expected.insert(id.clone(), fan_out);
    }

    // The rows, counted in the database itself.
    let pool = sqlx::SqlitePool::connect(&crate::support::database_url(service.dir.path()))
        .await
        .expect("database readable");
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT event_id, webhook_id, COUNT(*) FROM deliveries GROUP BY event_id, webhook_id",
    )
    .fetch_all(&pool)
    .await
    .expect("counted");
    assert!(
        rows.iter().all(|(_, _, count)| *count == 1),
        "a duplicated delivery row"
    );
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for (event_id, _, _) in &rows {
        *per_event.entry(event_id.clone()).or_default() += 1;
    }
    assert_eq!(per_event, expected, "a lost or extra delivery row");
    let total: usize = expected.values().sum();

    // Every delivery is sent exactly once, whether the emit handed it to the dispatcher
    // or the dispatcher claimed it.
    let unfinished = || async {
        let unfinished: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status != 'succeeded'")
                .fetch_one(&pool)
                .await
                .expect("counted");
        (unfinished == 0).then_some(())
    };
    wait_for(
        "every delivery to succeed",
        Duration::from_secs(60),
        unfinished,
    )
    .await;
    let attempts: i64 = sqlx::query_scalar("SELECT SUM(attempts) FROM deliveries")
        .fetch_one(&pool)
        .await
        .expect("summed");
    assert_eq!(
        usize::try_from(attempts).ok(),
        Some(total),
        "one attempt each"
    );
    let mut arrivals: HashMap<(String, String), usize> = HashMap::new();
    for received in receiver.all_received() {
        let event_id = received.headers["webhook-id"]
            .to_str()
            .expect("ascii id")
            .to_owned();
        *arrivals.entry((received.path, event_id)).or_default() += 1;
    }
    assert_eq!(arrivals.len(), total, "every delivery arrived");
    assert!(
        arrivals.values().all(|&count| count == 1),
        "a delivery arrived twice"
    );
    eprintln!(
        "{EMITS} concurrent emits, {} distinct events: {total} delivery rows, each sent once",
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_receivers_end_as_recorded_attempts_while_others_are_served() {
    let receiver = Receiver::start().await;
    receiver.set("/hang", Behaviour::Sleep(Duration::from_secs(60)));
    receiver.set("/huge", Behaviour::Huge(50 * 1024 * 1024));
    receiver.set("/trickle", Behaviour::Trickle(1_000));
    receiver.set("/headers", Behaviour::ManyHeaders(90));
    let loop_url = receiver.url("/loop");
    receiver.set("/loop", Behaviour::RedirectTo(loop_url.clone()));
    let reset = breaking_server(b"").await;
    let half = breaking_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").await;
    let service = TestService::start().await;

    let mut webhooks = Vec::new();
    for (name, url) in [
        ("hang", receiver.url("/hang")),
        ("huge", receiver.url("/huge")),
        ("trickle", receiver.url("/trickle")),
        ("headers", receiver.url("/headers")),
        ("loop", loop_url),
        ("reset", format!("http://{reset}/")),
        ("half", format!("http://{half}/")),
    ] {
        let created = service
            .create_webhook(json!({"name": name, "url": url, "events": ["order.created"]}))
            .await;
        webhooks.push((name, created["id"].as_str().expect("id").to_owned()));
    }
    let healthy = service
        .create_webhook(json!({
            "name": "healthy",
            "url": receiver.url("/healthy"),
            "events": ["payment.received"],
        }))
        .await;

    service
        .emit(json!({"type": "order.created", "data": {"n": 1}}))
        .await;
    // While the hostile ones hold their attempts, a healthy webhook is served.
    for n in 0..5 {
        service
            .emit(json!({"type": "payment.received", "data": {"n": n}}))
            .await;
    }
    wait_for("the healthy receiver", Duration::from_secs(5), || async {
        (receiver.received("/healthy").len() == 5).then_some(())
    })
    .await;
    assert!(healthy["id"].is_string());

    // Each hostile receiver ends as a recorded attempt with an error that says what happened.
    let first_attempt = |id: String| {
        let service = &service;
        async move {
            wait_for(
                &format!("an attempt of webhook {id}"),
                Duration::from_secs(20),
                || async {
                    let (_, page) = service
                        .json(Method::GET, &format!("/deliveries?webhook_id={id}"), None)
                        .await;
                    let delivery = page["items"].get(0)?.clone();
                    let (_, detail) = service
                        .json(
                            Method::GET,
                            &format!("/deliveries/{}", delivery["id"].as_str()?),
                            None,
                        )
                        .await;
                    detail["attempts"].get(0).cloned()
                },
            )
            .await
        }
    };
    let mut seen: HashMap<&str, Value> = HashMap::new();
    for (name, id) in webhooks {
        seen.insert(name, first_attempt(id).await);
    }
    let error = |name: &str| seen[name]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error("hang").contains("timed out"), "{}", seen["hang"]);
    assert_eq!(seen["huge"]["status_code"], 200);
    assert_eq!(
        seen["huge"]["response_body"].as_str().map(str::len),
        Some(4096),
        "at most 4 KiB kept of a 50 MB body"
    );
    assert!(
        error("trickle").contains("timed out"),
        "{}",
        seen["trickle"]
    );
    assert!(error("loop").contains("redirect"), "{}", seen["loop"]);
    // 90 KiB of headers: 16 KiB kept, and a marker saying what was left out.
    let headers = seen["headers"]["response_headers"]
        .as_object()
        .expect("headers");
    let kept: usize = headers
        .iter()
        .map(|(n, v)| n.len() + v.as_str().map_or(0, str::len))
        .sum();
    assert!(
        kept <= hookpanel::dispatch::RESPONSE_HEADERS_MAX_BYTES + 200,
        "{kept} bytes of headers kept"
    );
    let marker = headers
        .get(hookpanel::dispatch::TRUNCATED_HEADERS_MARKER)
        .unwrap_or_else(|| panic!("{}", seen["headers"]))
        .as_str()
        .unwrap_or_default();
    assert!(marker.contains("more headers"), "{marker}");
    for name in ["reset", "half"] {
        let text = error(name);
        assert!(!text.is_empty(), "{name}: {}", seen[name]);
        eprintln!("{name}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_database_answers_503_keeps_what_was_accepted_and_recovers() {
    let service = TestService::start().await;
    let emitted = service
        .emit(json!({"type": "order.created", "id": "before-the-lock", "data": {}}))
        .await;
    assert_eq!(emitted["event_id"], "before-the-lock");

    // Another process takes the database's write lock and keeps it past the busy timeout.
    let url = crate::support::database_url(service.dir.path());
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("second connection");
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .expect("lock taken");
    let (status, error) = service
        .json(
            Method::POST,
            "/events",
            Some(json!({"type": "order.created", "id": "during-the-lock", "data": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"]["code"], "storage_unavailable");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing was changed")),
        "{error}"
    );
    // Reading still works meanwhile.
    let (status, _) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("lock released");
    let emitted = service
        .emit(json!({"type": "order.created", "id": "after-the-lock", "data": {}}))
        .await;
    assert_eq!(emitted["event_id"], "after-the-lock");
    // The refused event was not half-stored: sending it again creates it once.
    let emitted = service
        .emit(json!({"type": "order.created", "id": "during-the-lock", "data": {}}))
        .await;
    assert_eq!(emitted["event_id"], "during-the-lock");
    let events: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&mut other)
        .await
        .expect("events");
    assert_eq!(
        events,
        ["after-the-lock", "before-the-lock", "during-the-lock"]
    );
}

/// A failure before the request leaves (here: the signing secret cannot be read, its table
/// gone for a moment) never fails a delivery for good: the delivery stays due, no attempt
/// is counted, and once the database is whole it is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_read_for_a_moment_delays_the_delivery_and_loses_nothing() {
    use sqlx::Connection as _;

    let receiver = Receiver::start().await;
    let service = TestService::start().await;
    let created = service
        .create_webhook(
            json!({"name": "orders", "url": receiver.url("/orders"), "events": ["order.created"]}),
        )
        .await;
    assert!(created["id"].is_string());
    let mut db = sqlx::SqliteConnection::connect(&service.database_url)
        .await
        .expect("a connection of the test's own");
    sqlx::raw_sql("ALTER TABLE webhook_secrets RENAME TO webhook_secrets_away")
        .execute(&mut db)
        .await
        .expect("the secrets are out of reach");

    let emitted = service
        .emit(json!({"type": "order.created", "data": {"order_id": "ord_1"}}))
        .await;
    let deliveries = service
        .deliveries_of(emitted["event_id"].as_str().expect("id"))
        .await;
    let delivery_id = deliveries[0]["id"].as_str().expect("id").to_owned();
    // The dispatcher tries every 200 ms (the test schedule's next delay) meanwhile.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, waiting) = service
        .json(Method::GET, &format!("/deliveries/{delivery_id}"), None)
        .await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(
        waiting["attempts"].as_array().map(Vec::len),
        Some(0),
        "{waiting}"
    );
    assert!(receiver.received("/orders").is_empty());

    sqlx::raw_sql("ALTER TABLE webhook_secrets_away RENAME TO webhook_secrets")
        .execute(&mut db)
        .await
        .expect("the secrets are back");
    let detail = service.wait_for_delivery(&delivery_id, "succeeded").await;
    assert_eq!(
        detail["attempts"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    assert_eq!(receiver.received("/orders").len(), 1);
}
