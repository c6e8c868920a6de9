//! Slow and guessing clients: unfinished headers and trickled bodies are cut off,
//! connections beyond the cap wait, wrong admin keys are limited per address, and an
//! operator-chosen admin key shorter than 32 characters is refused at start.

use std::time::Duration;

use hookpanel::server::{self, HttpLimits};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::support::{TestService, config};

fn limits(header_read_timeout: Duration, body_read_timeout: Duration) -> HttpLimits {
    HttpLimits {
        header_read_timeout,
        body_read_timeout,
        ..HttpLimits::default()
    }
}

/// Reads until the service closes the connection (bounded: 20 s), and returns what came.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the service closed the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_defaults_are_ten_and_thirty_seconds_and_1024_connections() {
    let defaults = HttpLimits::default();
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.max_connections, 1024);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let service = TestService::start_with(|config| {
        config.http = limits(Duration::from_secs(1), Duration::from_secs(30));
    })
    .await;
    let mut stream = TcpStream::connect(service.service.local_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("part of the headers");
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // The service goes on serving others.
    let healthy = service
        .client
        .get(service.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(healthy.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_trickles_past_its_deadline_gets_408_and_nothing_is_stored() {
    let service = TestService::start_with(|config| {
        config.http = limits(Duration::from_secs(10), Duration::from_secs(1));
    })
    .await;
    let mut stream = TcpStream::connect(service.service.local_addr())
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/admin/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"type\": ",
        service.admin_key
    );
    stream.write_all(head.as_bytes()).await.expect("the head");
    // A byte now and then, never the whole body: bounded at 40 bytes.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    trickle.await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let (_, page) = service.json(Method::GET, "/deliveries", None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let service = TestService::start_with(|config| {
        config.http = HttpLimits {
            max_connections: 2,
            ..HttpLimits::default()
        };
    })
    .await;
    let addr = service.service.local_addr();
    let held = [
        TcpStream::connect(addr).await.expect("first"),
        TcpStream::connect(addr).await.expect("second"),
    ];
    let mut third = TcpStream::connect(addr)
        .await
        .expect("queued by the kernel");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut first_byte = [0u8; 1];
    let waited =
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut first_byte)).await;
    assert!(
        waited.is_err(),
        "the third connection was served while two were held"
    );
    drop(held);
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn wrong_admin_keys_are_limited_per_address_and_a_valid_key_is_not() {
    let service = TestService::start().await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..300 {
        let response = service
            .client
            .get(service.url("/v1/admin/webhooks"))
            .bearer_auth(format!("hpk_guess_{n}"))
            .send()
            .await
            .expect("sent");
        if response.status() == StatusCode::TOO_MANY_REQUESTS && retry_after.is_none() {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
        statuses.push(response.status());
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized + limited, 300);
    assert!(
        (20..100).contains(&unauthorized),
        "{unauthorized} answered 401: a burst of 20, then about 10 a second"
    );
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    // A caller with the valid key, at the same address, is served at once.
    let (status, _) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_key_shorter_than_32_characters_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let encryption_key = hookpanel::crypto::generate_encryption_key().expect("key");
    let mut short = config(dir.path(), &encryption_key);
    short.admin_key = Some(Zeroizing::new("hpk_only_twenty_chars".to_owned()));
    let err = server::start(short)
        .await
        .err()
        .expect("a short key is refused");
    let message = err.to_string();
    assert!(
        message.contains("21 characters") && message.contains("at least 32"),
        "{message}"
    );
    assert!(!message.contains("hpk_only_twenty_chars"), "{message}");
    let mut long = config(dir.path(), &encryption_key);
    long.admin_key = Some(Zeroizing::new("hpk_".to_owned() + &"k".repeat(28)));
    let started = server::start(long).await.expect("32 characters are enough");
    started.shutdown().await.expect("shutdown");
}

/// The embedded service answers only to `Host: 127.0.0.1:<port>` or `localhost:<port>`: a
/// page that rebinds its own name to 127.0.0.1 still sends its own name.
#[tokio::test]
async fn a_loopback_only_service_refuses_any_other_host() {
    let service = TestService::start_with(|config| config.loopback_host_only = true).await;
    let port = service.service.local_addr().port();
    let mut stream = TcpStream::connect(service.service.local_addr())
        .await
        .expect("connect");
    let request = format!(
        "GET /v1/admin/webhooks HTTP/1.1\r\nHost: rebound.example:{port}\r\n\
         Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
        service.admin_key
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(answer.contains("host_not_allowed"), "{answer}");
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let mut stream = TcpStream::connect(service.service.local_addr())
            .await
            .expect("connect");
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    // The usual client sends 127.0.0.1:<port> and is served.
    let (status, _) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_inbox_takes_bodies_up_to_256_kib() {
    let service = TestService::start_with(|config| config.inbox = true).await;
    let post = |bytes: usize| {
        service
            .client
            .post(service.url("/inbox/big"))
            .body(vec![b'x'; bytes])
            .send()
    };
    let too_large = post(server::inbox::BODY_MAX_BYTES + 1).await.expect("sent");
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = too_large.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let fits = post(server::inbox::BODY_MAX_BYTES).await.expect("sent");
    assert_eq!(fits.status(), StatusCode::OK);
    let (_, kept) = service.json(Method::GET, "/inbox/big", None).await;
    assert_eq!(kept["items"].as_array().map(Vec::len), Some(1));
}
