//! A real HTTP receiver on 127.0.0.1:0 that records what arrives and answers as told.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// How the receiver answers on one path.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Status(u16),
    /// Fails with 500 this many times, then answers 200.
    FailTimes(u32),
    /// Answers 200 after this long.
    Sleep(Duration),
    /// A 307 to `/redirect/{n-1}`; `/redirect/0` answers 200.
    RedirectChain,
    /// A 307 to this absolute URL.
    RedirectTo(String),
    /// This redirect status (301, 302, 303, 307, 308) to this URL.
    Redirect {
        status: u16,
        to: String,
    },
    /// 200 with a body of this many bytes, streamed in 64 KiB chunks.
    Huge(usize),
    /// 200, then the body one byte every 100 ms, for this many bytes.
    Trickle(usize),
    /// 500 with this many headers `x-filler-{n}`, each of 1 KiB.
    ManyHeaders(usize),
}

#[derive(Clone, Debug)]
pub struct Received {
    /// When the request arrived (its body read).
    pub arrived: std::time::Instant,
    pub method: axum::http::Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    behaviours: HashMap<String, Behaviour>,
    failures: HashMap<String, u32>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        let mut shared = self.shared.lock().expect("lock");
        shared.failures.remove(path);
        shared.behaviours.insert(path.to_owned(), behaviour);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        let shared = self.shared.lock().expect("lock");
        shared
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all_received(&self) -> Vec<Received> {
        self.shared.lock().expect("lock").received.clone()
    }
}

async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let behaviour = {
        let mut shared = shared.lock().expect("lock");
        shared.received.push(Received {
            arrived: std::time::Instant::now(),
            method,
            path: path.clone(),
            headers,
            body,
        });
        let behaviour = if path.starts_with("/redirect/") {
            Some(Behaviour::RedirectChain)
        } else {
            shared.behaviours.get(&path).cloned()
        };
        match behaviour {
            Some(Behaviour::FailTimes(times)) => {
                let failed = shared.failures.entry(path.clone()).or_insert(0);
                *failed += 1;
                Behaviour::Status(if *failed <= times { 500 } else { 200 })
            }
            Some(other) => other,
            None => Behaviour::Status(200),
        }
    };
    match behaviour {
        Behaviour::Status(code) => {
            let status = StatusCode::from_u16(code).expect("status");
            (status, format!("answered {code}")).into_response()
        }
        Behaviour::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::OK, "slow").into_response()
        }
        Behaviour::RedirectChain => {
            let left: u32 = path.trim_start_matches("/redirect/").parse().unwrap_or(0);
            if left == 0 {
                (StatusCode::OK, "arrived").into_response()
            } else {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, format!("/redirect/{}", left - 1))],
                )
                    .into_response()
            }
        }
        Behaviour::RedirectTo(url) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response()
        }
        Behaviour::Redirect { status, to } => {
            let status = StatusCode::from_u16(status).expect("status");
            (status, [(header::LOCATION, to)]).into_response()
        }
        Behaviour::Huge(bytes) => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = bytes.div_ceil(chunk.len());
            let stream = futures_util::stream::iter(
                (0..chunks).map(move |_| Ok::<_, std::convert::Infallible>(chunk.clone())),
            );
            (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
        }
        Behaviour::Trickle(bytes) => {
            let stream = futures_util::stream::unfold(0, move |sent| async move {
                if sent == bytes {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b".")),
                    sent + 1,
                ))
            });
            (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
        }
        Behaviour::ManyHeaders(count) => {
            let mut headers = HeaderMap::new();
            for n in 0..count {
                headers.insert(
                    header::HeaderName::try_from(format!("x-filler-{n}")).expect("name"),
                    header::HeaderValue::from_str(&"f".repeat(1024)).expect("value"),
                );
            }
            (StatusCode::INTERNAL_SERVER_ERROR, headers, "many headers").into_response()
        }
        Behaviour::FailTimes(_) => unreachable!("resolved above"),
    }
}

/// A bare TCP server on 127.0.0.1:0 that reads the request's first bytes, writes `answer`
/// (possibly a partial response) and closes the connection: a peer that breaks off.
pub async fn breaking_server(answer: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0_u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(answer).await;
                // Dropping the socket closes it mid-response.
            });
        }
    });
    addr
}
