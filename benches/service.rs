//! The service under load, on loopback only: the real `hookpanel serve` binary as a child
//! process (so its CPU time and peak RSS are its own), a fast local receiver, and a load
//! generator in this process. Prints one table; every loop and wait is bounded.
//!
//! cargo bench --bench service            (N = 20 000 events)
//! cargo bench --bench service -- --quick (N = 2 000, 100 000 rows: a smoke run)
//! cargo bench --bench service -- --only e2e|e2e-1|e2e-4|rate|paging|outage|outage-422|outage-500|neighbour|paced|resend|prune|reseal|search
//! cargo bench --bench service -- --only neighbour|paced --backlog 100000
//!
//! On PostgreSQL: `HOOKPANEL_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres` (an
//! admin URL: each service gets a database of its own, dropped afterwards) runs the
//! end-to-end and emit-rate scenarios with `HOOKPANEL_BENCH_REPLICAS` replicas (default 1)
//! behind the load generator's round robin, and reports PostgreSQL's CPU (every process
//! named `postgres` on the machine, from /proc) beside the service's.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_hookpanel");
/// Runs another build of `hookpanel` instead of this one (to compare two builds).
const BINARY_OVERRIDE: &str = "HOOKPANEL_BENCH_BINARY";
const ADMIN_KEY: &str = "hpk_bench_admin_key_not_secret_0123456789";
const CONCURRENCY: usize = 50;
/// The longest any one scenario may take before the bench gives up on it.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

struct Sizes {
    events: usize,
    outage_events: usize,
    neighbour_events: usize,
    rate_requests: usize,
    paging_rows: usize,
    resend_rows: usize,
    reseal_secrets: usize,
    search_events: usize,
}

fn binary() -> String {
    std::env::var(BINARY_OVERRIDE).unwrap_or_else(|_| BINARY.to_owned())
}

/// Set to a PostgreSQL admin URL: services run on a database of their own there.
const POSTGRES_ADMIN: &str = "HOOKPANEL_BENCH_POSTGRES";
/// How many replicas serve each database on PostgreSQL.
const REPLICAS: &str = "HOOKPANEL_BENCH_REPLICAS";

/// A database of the bench's own on the PostgreSQL server at `admin`.
struct BenchDatabase {
    admin: String,
    name: String,
}

impl BenchDatabase {
    fn create(admin: &str) -> Self {
        let name = format!("hookpanel_bench_{}", ulid::Ulid::new()).to_lowercase();
        run_sql(admin, format!("CREATE DATABASE {name}"));
        Self {
            admin: admin.to_owned(),
            name,
        }
    }

    fn url(&self) -> String {
        let (server, _) = self.admin.rsplit_once('/').expect("a database in the URL");
        format!("{server}/{}", self.name)
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        run_sql(
            &self.admin,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `statement` (one or several, `;`-separated) on the database at `url`, from a thread
/// of its own (callers may be inside the bench's runtime, or dropping a value).
fn run_sql(url: &str, statement: String) {
    use sqlx::Connection as _;
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut connection = sqlx::PgConnection::connect(&url)
                .await
                .expect("the PostgreSQL server answers");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut connection)
                .await
                .expect("statement");
        });
    })
    .join()
    .expect("admin thread");
}

/// User + system CPU seconds of every process named `postgres` (the server's backends
/// and its writers), from /proc; 0 without PostgreSQL.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(|pid| cpu_seconds_of(&pid))
        .sum()
}

/// `hookpanel serve` child processes on one database: one on SQLite, one or more
/// replicas on PostgreSQL.
struct Service {
    children: Vec<Child>,
    bases: Vec<String>,
    /// The replica the next request goes to.
    next: AtomicUsize,
    /// Dropped after the children.
    database: Option<BenchDatabase>,
}

impl Service {
    fn start(db: &Path) -> Self {
        Self::start_with(db, &[])
    }

    /// Starts the service with `env` added (e.g. a shorter retry schedule).
    fn start_with(db: &Path, env: &[(&str, &str)]) -> Self {
        match std::env::var(POSTGRES_ADMIN) {
            Ok(admin) => {
                let database = BenchDatabase::create(&admin);
                let replicas = std::env::var(REPLICAS)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1usize)
                    .max(1);
                let url = database.url();
                let (children, bases) = (0..replicas).map(|_| spawn(&url, env)).unzip();
                Self {
                    children,
                    bases,
                    next: AtomicUsize::new(0),
                    database: Some(database),
                }
            }
            Err(_) => {
                let (child, base) = spawn(&format!("sqlite://{}", db.display()), env);
                Self {
                    children: vec![child],
                    bases: vec![base],
                    next: AtomicUsize::new(0),
                    database: None,
                }
            }
        }
    }

    fn on_postgres(&self) -> bool {
        self.database.is_some()
    }

    /// User + system CPU seconds PostgreSQL has used so far (0 on SQLite).
    fn database_cpu_seconds(&self) -> f64 {
        if self.on_postgres() {
            postgres_cpu_seconds()
        } else {
            0.0
        }
    }

    /// The URL of admin route `path` on the next replica, round robin.
    fn url(&self, path: &str) -> String {
        self.root_url(&format!("/v1/admin{path}"))
    }

    /// The URL of `path` from the root (`/metrics`) on the next replica, round robin.
    fn root_url(&self, path: &str) -> String {
        let replica = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        format!("{}{path}", self.bases[replica])
    }

    /// User + system CPU seconds the service (every replica) has used so far.
    fn cpu_seconds(&self) -> f64 {
        self.children
            .iter()
            .map(|child| cpu_seconds_of(&child.id().to_string()))
            .sum()
    }

    /// Peak resident set size in MiB, from /proc (the largest replica's).
    fn peak_rss_mib(&self) -> f64 {
        self.children
            .iter()
            .map(|child| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                    .map_or(0.0, |kib| kib / 1024.0)
            })
            .fold(0.0, f64::max)
    }
}

/// Starts `hookpanel serve` on `database_url`; returns it and its base URL.
fn keygen() -> String {
    Command::new(binary())
        .arg("keygen")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .expect("keygen runs")
}

/// One key for the whole run: a database reopened later needs the key it was sealed with.
fn run_encryption_key() -> &'static str {
    static ENCRYPTION_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENCRYPTION_KEY.get_or_init(keygen)
}

fn spawn(database_url: &str, env: &[(&str, &str)]) -> (Child, String) {
    let encryption_key = run_encryption_key();
    let mut child = Command::new(binary())
        .arg("serve")
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", database_url)
        .env("HOOKPANEL_ADMIN_KEY", ADMIN_KEY)
        .env("HOOKPANEL_ENCRYPTION_KEY", encryption_key)
        .env("HOOKPANEL_ALLOW_PRIVATE_DESTINATIONS", "1")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line
                .trim()
                .strip_prefix("Hookpanel admin API listening on ")
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the service listens within 30 s");
    (child, base)
}

/// User + system CPU seconds of a process so far, from /proc (`pid` may be "self").
fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at index 2.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for Service {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Then `database`, which drops the PostgreSQL database.
    }
}

/// Arrivals at the receiver: when each event id arrived, once per delivery.
#[derive(Default)]
struct Arrivals {
    count: AtomicUsize,
    at: Mutex<Vec<(String, Instant)>>,
}

/// How a bench receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// At once, with this status.
    Status(StatusCode),
    /// Not before the service's 10 s attempt timeout has passed (bounded: 30 s).
    Hang,
}

struct Receiver {
    arrivals: Arc<Arrivals>,
    answer: Answer,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap) -> StatusCode {
    let now = Instant::now();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut at) = receiver.arrivals.at.lock() {
        at.push((id, now));
    }
    receiver.arrivals.count.fetch_add(1, Ordering::Relaxed);
    match receiver.answer {
        Answer::Status(status) => status,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NO_CONTENT
        }
    }
}

async fn start_receiver() -> (SocketAddr, Arc<Arrivals>) {
    start_receiver_answering(Answer::Status(StatusCode::NO_CONTENT)).await
}

async fn start_receiver_answering(answer: Answer) -> (SocketAddr, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals::default());
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(Arc::new(Receiver {
            arrivals: Arc::clone(&arrivals),
            answer,
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, arrivals)
}

async fn create_webhook(
    client: &reqwest::Client,
    service: &Service,
    name: &str,
    url: &str,
) -> String {
    create_webhook_for(client, service, name, url, "order.created").await
}

/// A webhook subscribed to `event_type` alone.
async fn create_webhook_for(
    client: &reqwest::Client,
    service: &Service,
    name: &str,
    url: &str,
    event_type: &str,
) -> String {
    let created: Value = client
        .post(service.url("/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": name, "url": url, "events": [event_type]}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("webhook created")
        .json()
        .await
        .expect("json");
    created["id"].as_str().expect("id").to_owned()
}

async fn emit(client: &reqwest::Client, service: &Service, id: &str) -> Duration {
    emit_type(client, service, "order.created", id).await
}

async fn emit_type(
    client: &reqwest::Client,
    service: &Service,
    event_type: &str,
    id: &str,
) -> Duration {
    let began = Instant::now();
    let status = client
        .post(service.url("/events"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"type": event_type, "id": id, "data": {"order_id": id, "total": "12.90"}}))
        .send()
        .await
        .map(|r| r.status());
    assert_eq!(
        status.ok(),
        Some(reqwest::StatusCode::ACCEPTED),
        "emit {id}"
    );
    began.elapsed()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// "p50 ms / p99 ms" of sorted latencies.
fn p50_p99(sorted: &[Duration], decimals: usize) -> String {
    format!(
        "{:.decimals$} ms / {:.decimals$} ms",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99)
    )
}

struct Row {
    what: String,
    figure: String,
    target: &'static str,
}

/// ", on PostgreSQL, N replica(s)" where it runs there.
fn backend_label(service: &Service) -> String {
    if service.on_postgres() {
        format!(", on PostgreSQL, {} replica(s)", service.bases.len())
    } else {
        String::new()
    }
}

/// N events at concurrency 50 to `webhooks` webhooks, until the receiver holds every
/// delivery.
async fn end_to_end(sizes: &Sizes, webhooks: usize, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::start(&dir.path().join("bench.db"));
    let (addr, arrivals) = start_receiver().await;
    let client = reqwest::Client::new();
    for n in 0..webhooks {
        create_webhook(
            &client,
            &service,
            &format!("Receiver {n}"),
            &format!("http://{addr}/in/{n}"),
        )
        .await;
    }
    let expected = sizes.events * webhooks;
    let cpu_before = service.cpu_seconds();
    let database_cpu_before = service.database_cpu_seconds();
    let bench_cpu_before = cpu_seconds_of("self");
    let emitted_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let began = Instant::now();
    futures_util::stream::iter(0..sizes.events)
        .map(|n| {
            let (client, service, emitted_at) = (&client, &service, Arc::clone(&emitted_at));
            async move {
                let id = format!("bench-{n}");
                if let Ok(mut at) = emitted_at.lock() {
                    at.insert(id.clone(), Instant::now());
                }
                emit(client, service, &id).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
    let emitted_in = began.elapsed();
    while arrivals.count.load(Ordering::Relaxed) < expected {
        assert!(
            began.elapsed() < SCENARIO_LIMIT,
            "deliveries did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_in = began.elapsed();
    let cpu = service.cpu_seconds() - cpu_before;
    let database_cpu = service.database_cpu_seconds() - database_cpu_before;
    let bench_cpu = cpu_seconds_of("self") - bench_cpu_before;
    let emitted_at = emitted_at.lock().map(|m| m.clone()).unwrap_or_default();
    let mut latencies: Vec<Duration> = arrivals
        .at
        .lock()
        .map(|at| {
            at.iter()
                .filter_map(|(id, arrived)| Some(arrived.duration_since(*emitted_at.get(id)?)))
                .collect()
        })
        .unwrap_or_default();
    latencies.sort_unstable();
    let label = format!(
        "end to end, {} events → {webhooks} webhook(s){}",
        sizes.events,
        backend_label(&service)
    );
    rows.push(Row {
        what: format!("{label}: deliveries/s"),
        figure: format!(
            "{:.0} ({expected} in {:.2} s; emits done in {:.2} s)",
            expected as f64 / all_in.as_secs_f64(),
            all_in.as_secs_f64(),
            emitted_in.as_secs_f64()
        ),
        target: if service.on_postgres() {
            "≥ 2 800"
        } else {
            "≥ 5 000"
        },
    });
    rows.push(Row {
        what: format!("{label}: emit → receive p50 / p99"),
        figure: p50_p99(&latencies, 1),
        target: "",
    });
    rows.push(Row {
        what: format!(
            "{label}: CPU s per 1 000 deliveries, service / PostgreSQL / load generator + \
             receiver; service peak RSS"
        ),
        figure: format!(
            "{:.3} s / {:.3} s / {:.3} s, {:.0} MiB",
            cpu * 1000.0 / expected as f64,
            database_cpu * 1000.0 / expected as f64,
            bench_cpu * 1000.0 / expected as f64,
            service.peak_rss_mib()
        ),
        target: "",
    });
}

/// POST /events at a fixed 1 000 requests per second.
async fn emit_latency(sizes: &Sizes, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::start(&dir.path().join("bench.db"));
    let (addr, _arrivals) = start_receiver().await;
    let client = reqwest::Client::new();
    create_webhook(&client, &service, "Receiver", &format!("http://{addr}/in")).await;
    // Warm the connection pool.
    for n in 0..100 {
        emit(&client, &service, &format!("warm-{n}")).await;
    }
    let cpu_before = service.cpu_seconds();
    let database_cpu_before = service.database_cpu_seconds();
    let bench_cpu_before = cpu_seconds_of("self");
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(sizes.rate_requests);
    for n in 0..sizes.rate_requests {
        ticker.tick().await;
        let (client, service_url) = (client.clone(), service.url("/events"));
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = client
                .post(service_url)
                .bearer_auth(ADMIN_KEY)
                .json(
                    &json!({"type": "order.created", "id": format!("rate-{n}"), "data": {"n": n}}),
                )
                .send()
                .await
                .map(|r| r.status());
            (started.elapsed(), status.ok())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (took, status) = task.await.expect("task");
        assert_eq!(status, Some(reqwest::StatusCode::ACCEPTED));
        latencies.push(took);
    }
    let rate = sizes.rate_requests as f64 / began.elapsed().as_secs_f64();
    // Deliveries may still be finishing: this counts the service's work for all but the
    // last few.
    let cpu = service.cpu_seconds() - cpu_before;
    let database_cpu = service.database_cpu_seconds() - database_cpu_before;
    let bench_cpu = cpu_seconds_of("self") - bench_cpu_before;
    latencies.sort_unstable();
    rows.push(Row {
        what: format!(
            "POST /events at {rate:.0} req/s ({} requests){}: p50 / p99",
            sizes.rate_requests,
            backend_label(&service)
        ),
        figure: p50_p99(&latencies, 2),
        target: if service.on_postgres() {
            "p99 ≤ 10 ms"
        } else {
            "p99 ≤ 5 ms"
        },
    });
    rows.push(Row {
        what: "POST /events at 1 000 req/s: p99.9 / slowest".to_owned(),
        figure: format!(
            "{:.2} ms / {:.2} ms",
            percentile(&latencies, 0.999),
            percentile(&latencies, 1.0)
        ),
        target: "",
    });
    rows.push(Row {
        what: "POST /events at 1 000 req/s: CPU s per 1 000 events (each delivered), \
               service / PostgreSQL / load generator + receiver"
            .to_owned(),
        figure: format!(
            "{:.3} s / {:.3} s / {:.3} s",
            cpu * 1000.0 / sizes.rate_requests as f64,
            database_cpu * 1000.0 / sizes.rate_requests as f64,
            bench_cpu * 1000.0 / sizes.rate_requests as f64
        ),
        target: "",
    });
}

/// Latencies of the reads an open panel makes, sampled every 0.5 s while `running`, and
/// the write-ahead log's largest size meanwhile.
#[derive(Default)]
struct Samples {
    webhooks: Vec<Duration>,
    failed_page: Vec<Duration>,
    stats: Vec<Duration>,
    peak_wal_bytes: u64,
}

async fn sample_reads(
    client: reqwest::Client,
    service_base: String,
    wal: std::path::PathBuf,
    running: Arc<std::sync::atomic::AtomicBool>,
) -> Samples {
    let mut samples = Samples::default();
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while running.load(Ordering::Relaxed) && began.elapsed() < SCENARIO_LIMIT {
        tick.tick().await;
        for (path, into) in [
            ("/webhooks", &mut samples.webhooks),
            (
                "/deliveries?status=failed&limit=100",
                &mut samples.failed_page,
            ),
            ("/stats?bucket=hour", &mut samples.stats),
        ] {
            let asked = Instant::now();
            let answered = client
                .get(format!("{service_base}/v1/admin{path}"))
                .bearer_auth(ADMIN_KEY)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            if let Ok(response) = answered {
                let _ = response.bytes().await;
                into.push(asked.elapsed());
            }
        }
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        samples.peak_wal_bytes = samples.peak_wal_bytes.max(wal_bytes);
    }
    samples
}

/// Arrivals per second over the first and the last fifth of `times` (sorted).
fn first_and_last_fifth_rates(times: &[Instant]) -> (f64, f64) {
    let n = times.len();
    if n < 10 {
        return (f64::NAN, f64::NAN);
    }
    let fifth = n / 5;
    let rate = |from: Instant, to: Instant| fifth as f64 / to.duration_since(from).as_secs_f64();
    (
        rate(times[0], times[fifth]),
        rate(times[n - 1 - fifth], times[n - 1]),
    )
}

/// N events to one webhook whose receiver fails every attempt with `status`, while the
/// reads an open panel makes are sampled. `attempts` is how many attempts the retry
/// schedule makes per delivery.
async fn outage(
    events: usize,
    status: StatusCode,
    schedule: &str,
    attempts: usize,
    rows: &mut Vec<Row>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let service = Service::start_with(&db, &[("HOOKPANEL_RETRY_SCHEDULE", schedule)]);
    let (addr, arrivals) = start_receiver_answering(Answer::Status(status)).await;
    let client = reqwest::Client::new();
    create_webhook(&client, &service, "Failing", &format!("http://{addr}/in")).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn(sample_reads(
        client.clone(),
        service.bases[0].clone(),
        dir.path().join("bench.db-wal"),
        Arc::clone(&running),
    ));
    let cpu_before = service.cpu_seconds();
    let began = Instant::now();
    futures_util::stream::iter(0..events)
        .map(|n| {
            let (client, service) = (&client, &service);
            async move { emit(client, service, &format!("outage-{n}")).await }
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
    let emitted_in = began.elapsed();
    let expected = events * attempts;
    while arrivals.count.load(Ordering::Relaxed) < expected && began.elapsed() < SCENARIO_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrived = arrivals.count.load(Ordering::Relaxed);
    // Recorded: every delivery counted failed by the service itself.
    let mut recorded = 0;
    while began.elapsed() < SCENARIO_LIMIT + Duration::from_secs(60) {
        let points: Value = client
            .get(service.url("/stats?bucket=hour"))
            .bearer_auth(ADMIN_KEY)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("stats")
            .json()
            .await
            .expect("json");
        recorded = points.as_array().map_or(0, |p| {
            p.iter().map(|p| p["failed"].as_u64().unwrap_or(0)).sum()
        });
        if recorded >= events as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_recorded = began.elapsed();
    let cpu = service.cpu_seconds() - cpu_before;
    running.store(false, Ordering::Relaxed);
    let mut samples = sampler.await.expect("sampler");
    let wal_after = std::fs::metadata(dir.path().join("bench.db-wal")).map_or(0, |m| m.len());
    let db_after = std::fs::metadata(&db).map_or(0, |m| m.len()) + wal_after;
    let mut times: Vec<Instant> = arrivals
        .at
        .lock()
        .map(|at| at.iter().map(|(_, t)| *t).collect())
        .unwrap_or_default();
    times.sort_unstable();
    let (first, last) = first_and_last_fifth_rates(&times);
    let label = format!(
        "outage, {events} events → a receiver answering {}, retry schedule {schedule}",
        status.as_u16()
    );
    let finished = if recorded >= events as u64 {
        format!(
            "all {events} failed and recorded in {:.1} s",
            all_recorded.as_secs_f64()
        )
    } else {
        format!(
            "**unfinished**: {recorded} of {events} recorded failed, {arrived} of {expected} \
             attempts made after {:.0} s",
            all_recorded.as_secs_f64()
        )
    };
    rows.push(Row {
        what: format!("{label}: emits/s"),
        figure: format!(
            "{:.0} ({events} in {:.1} s); {finished}",
            events as f64 / emitted_in.as_secs_f64(),
            emitted_in.as_secs_f64()
        ),
        target: "≥ 3 000",
    });
    rows.push(Row {
        what: format!("{label}: failed attempts recorded/s, first / last 20 %"),
        figure: format!("{first:.0} / {last:.0} ({:.0} %)", last / first * 100.0),
        target: "≥ 3 000, last ≥ 80 % of first",
    });
    rows.push(Row {
        what: format!("{label}: service CPU ms per attempt"),
        figure: format!("{:.3} ms", cpu * 1000.0 / arrived.max(1) as f64),
        target: "",
    });
    for (name, took) in [
        ("GET /webhooks", &mut samples.webhooks),
        ("GET /deliveries?status=failed", &mut samples.failed_page),
        ("GET /stats", &mut samples.stats),
    ] {
        took.sort_unstable();
        rows.push(Row {
            what: format!(
                "{label}: {name} every 0.5 s meanwhile, p50 / p99 ({} samples)",
                took.len()
            ),
            figure: p50_p99(took, 1),
            target: "p99 ≤ 50 ms",
        });
    }
    rows.push(Row {
        what: format!("{label}: peak WAL; database size after"),
        figure: format!(
            "{:.1} MiB; {:.1} MiB",
            samples.peak_wal_bytes as f64 / 1_048_576.0,
            db_after as f64 / 1_048_576.0
        ),
        target: "WAL ≤ 64 MiB",
    });
}

/// Sends `events` events to the healthy webhook and returns how long until its receiver
/// held them all. With `with_hanging`, as many events to a webhook whose receiver never
/// answers are sent first, so that its attempts hold their slots and the rest wait for
/// them; also returns the service's CPU seconds meanwhile and how many requests reached
/// the hanging receiver.
/// What shares the service with the healthy webhook in [`healthy_beside`].
#[derive(Clone, Copy, PartialEq)]
enum Neighbour {
    None,
    /// A webhook whose receiver never answers, with a backlog.
    Hanging,
    /// A webhook limited to this many deliveries a second, with a backlog.
    Paced(u32),
}

/// Sends `events` events to a healthy webhook beside `neighbour` (given `backlog` first);
/// returns how long they took to arrive, the CPU seconds of the service (and of
/// PostgreSQL, where it runs there) meanwhile, and how many requests reached the
/// neighbour's receiver meanwhile.
async fn healthy_beside(
    events: usize,
    backlog: usize,
    neighbour: Neighbour,
) -> (Duration, f64, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::start(&dir.path().join("bench.db"));
    let (healthy_addr, healthy) = start_receiver().await;
    let (hanging_addr, hanging) = if matches!(neighbour, Neighbour::Paced(_)) {
        start_receiver().await
    } else {
        start_receiver_answering(Answer::Hang).await
    };
    let client = reqwest::Client::new();
    create_webhook_for(
        &client,
        &service,
        "Healthy",
        &format!("http://{healthy_addr}/in"),
        "order.created",
    )
    .await;
    let send = |event_type: &'static str, prefix: &'static str, events: usize| {
        let (client, service) = (&client, &service);
        futures_util::stream::iter(0..events)
            .map(move |n| async move {
                emit_type(client, service, event_type, &format!("{prefix}-{n}")).await
            })
            .buffer_unordered(CONCURRENCY)
            .for_each(|_| async {})
    };
    if neighbour != Neighbour::None {
        let rate_limit = match neighbour {
            Neighbour::Paced(rate) => json!(rate),
            _ => Value::Null,
        };
        client
            .post(service.url("/webhooks"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({
                "name": "Neighbour",
                "url": format!("http://{hanging_addr}/in"),
                "events": ["order.cancelled"],
                "rate_limit": rate_limit,
            }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("webhook created");
        send("order.cancelled", "neighbour", backlog).await;
        // Measure while they wait, not while the burst that queued them is written.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The service's CPU, and PostgreSQL's where it runs there.
    let cpu = || service.cpu_seconds() + service.database_cpu_seconds();
    let cpu_before = cpu();
    let neighbour_before = hanging.count.load(Ordering::Relaxed);
    let began = Instant::now();
    let arrived = async {
        while healthy.count.load(Ordering::Relaxed) < events && began.elapsed() < SCENARIO_LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::join!(send("order.created", "healthy", events), arrived);
    (
        began.elapsed(),
        cpu() - cpu_before,
        hanging.count.load(Ordering::Relaxed) - neighbour_before,
    )
}

/// A healthy webhook's pace alone, and while deliveries wait on one whose receiver never
/// answers: three rounds of each, alternating, since this VM's speed swings by a third
/// within a minute.
async fn noisy_neighbour(events: usize, backlog: usize, rows: &mut Vec<Row>) {
    let mut ratios = Vec::new();
    let mut rounds = Vec::new();
    let mut hanging_requests = 0;
    for _ in 0..3 {
        let (solo, solo_cpu, _) = healthy_beside(events, 0, Neighbour::None).await;
        let (beside, beside_cpu, hanging) =
            healthy_beside(events, backlog, Neighbour::Hanging).await;
        hanging_requests = hanging;
        let solo_rate = events as f64 / solo.as_secs_f64();
        let beside_rate = events as f64 / beside.as_secs_f64();
        ratios.push(beside_rate / solo_rate);
        rounds.push(format!(
            "{solo_rate:.0} / {beside_rate:.0} ({:.0} %; CPU {:.3} / {:.3} ms each)",
            beside_rate / solo_rate * 100.0,
            solo_cpu * 1000.0 / events as f64,
            beside_cpu * 1000.0 / events as f64,
        ));
    }
    ratios.sort_by(f64::total_cmp);
    rows.push(Row {
        what: format!(
            "noisy neighbour, {events} events to a healthy webhook: deliveries/s alone / \
             while {backlog} deliveries wait on a webhook whose receiver never answers, \
             three rounds"
        ),
        figure: format!(
            "{}; median {:.0} %; {hanging_requests} requests reached the hanging receiver",
            rounds.join(", "),
            ratios[1] * 100.0
        ),
        target: "≥ 80 %",
    });
}

/// A healthy webhook's pace alone, and while a rate-limited webhook (100/s) has a
/// backlog of as many deliveries waiting their turn: rate-limited deliveries stay due, and
/// a claim for the others passes over them. Three rounds, alternating.
async fn paced_neighbour(events: usize, backlog: usize, rows: &mut Vec<Row>) {
    const RATE: u32 = 100;
    let mut ratios = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let (solo, solo_cpu, _) = healthy_beside(events, 0, Neighbour::None).await;
        let (beside, beside_cpu, paced) =
            healthy_beside(events, backlog, Neighbour::Paced(RATE)).await;
        let solo_rate = events as f64 / solo.as_secs_f64();
        let beside_rate = events as f64 / beside.as_secs_f64();
        ratios.push(beside_rate / solo_rate);
        rounds.push(format!(
            "{solo_rate:.0} / {beside_rate:.0} ({:.0} %; CPU {:.3} / {:.3} ms each; the \
             limited webhook got {:.0}/s meanwhile)",
            beside_rate / solo_rate * 100.0,
            solo_cpu * 1000.0 / events as f64,
            beside_cpu * 1000.0 / events as f64,
            paced as f64 / beside.as_secs_f64(),
        ));
    }
    ratios.sort_by(f64::total_cmp);
    rows.push(Row {
        what: format!(
            "rate-limited neighbour, {events} events to a healthy webhook: deliveries/s alone \
             / while {backlog} deliveries wait their turn on a webhook limited to {RATE}/s, \
             three rounds"
        ),
        figure: format!("{}; median {:.0} %", rounds.join(", "), ratios[1] * 100.0),
        target: "≥ 80 %, the limited webhook at its rate",
    });
}

/// Writes `total` finished deliveries (one in `failed_every` failed) over `webhooks`
/// straight into the database, as a long-running service would have accumulated them.
async fn fill(db: &Path, webhooks: &[String], total: usize, failed_every: usize) {
    fill_with(db, webhooks, total, failed_every, |_| "{}".to_owned()).await;
}

/// An order's data as a shop would send it: an order id, a customer's email and name, an
/// amount, a city and two line items.
fn order_data(n: usize) -> String {
    const CITIES: [&str; 4] = ["Berlin", "Köln", "Lyon", "Porto"];
    json!({
        "order_id": format!("ord_{n}"),
        "customer": {"email": format!("customer{n}@example.com"), "name": format!("Customer {}", n % 9973)},
        "total": format!("{}.{:02}", n % 500, n % 100),
        "currency": "EUR",
        "shipping": {"city": CITIES[n % 4], "carrier": "DHL"},
        "items": [{"sku": format!("SKU-{}", n % 1000), "qty": 1}, {"sku": format!("SKU-{}", (n + 7) % 1000), "qty": 2}],
    })
    .to_string()
}

/// [`fill`], each event's data made by `data`. Events with data to index are left queued
/// for the service's indexer; empty ones are not queued at all, so that the scenarios
/// filling `{}` time what they did before payload search.
async fn fill_with(
    db: &Path,
    webhooks: &[String],
    total: usize,
    failed_every: usize,
    data: impl Fn(usize) -> String,
) {
    use sqlx::{Connection as _, QueryBuilder, Sqlite};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    let now = chrono::Utc::now().timestamp_millis();
    let per_event = webhooks.len();
    let events = total / per_event;
    let mut tx = conn.begin().await.expect("tx");
    for chunk in (0..events).collect::<Vec<_>>().chunks(500) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO events (id, event_type, data, created_at) ");
        insert.push_values(chunk, |mut row, n| {
            row.push_bind(format!("fill-{n:08}"))
                .push_bind("order.created")
                .push_bind(data(*n))
                .push_bind(now - (events - n) as i64 * 100);
        });
        insert.build().execute(&mut *tx).await.expect("events");
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, status_code, \
             attempts, created_at, last_attempt_at) ",
        );
        let pairs: Vec<(usize, usize)> = chunk
            .iter()
            .flat_map(|&n| (0..per_event).map(move |w| (n, w)))
            .collect();
        insert.push_values(pairs, |mut row, (n, w)| {
            let failed = (n + w) % failed_every == 0;
            let at = now - (events - n) as i64 * 100;
            row.push_bind(format!(
                "dlv_{}",
                ulid::Ulid::from_parts(at as u64, (n * per_event + w) as u128)
            ))
            .push_bind(format!("fill-{n:08}"))
            .push_bind(webhooks[w].clone())
            .push_bind("order.created")
            .push_bind(if failed { "failed" } else { "succeeded" })
            .push_bind(if failed { 500 } else { 200 })
            .push_bind(1)
            .push_bind(at)
            .push_bind(at);
        });
        insert.build().execute(&mut *tx).await.expect("deliveries");
    }
    sqlx::query(
        "DELETE FROM search_queue WHERE event_rowid IN \
         (SELECT rowid FROM events WHERE data = '{}')",
    )
    .execute(&mut *tx)
    .await
    .expect("nothing to index");
    tx.commit().await.expect("commit");
}

/// [`fill_with`] for PostgreSQL, into the database at `url` (a running service's).
async fn fill_postgres(
    url: &str,
    webhook: &str,
    total: usize,
    failed_every: usize,
    data: impl Fn(usize) -> String,
) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("database");
    let now = chrono::Utc::now().timestamp_millis();
    for chunk in (0..total).collect::<Vec<_>>().chunks(5_000) {
        let at = |n: usize| now - (total - n) as i64 * 100;
        let ids: Vec<String> = chunk.iter().map(|n| format!("fill-{n:08}")).collect();
        let datas: Vec<String> = chunk.iter().map(|&n| data(n)).collect();
        let times: Vec<i64> = chunk.iter().map(|&n| at(n)).collect();
        let delivery_ids: Vec<String> = chunk
            .iter()
            .map(|&n| format!("dlv_{}", ulid::Ulid::from_parts(at(n) as u64, n as u128)))
            .collect();
        let failed: Vec<bool> = chunk.iter().map(|n| n % failed_every == 0).collect();
        let mut tx = conn.begin().await.expect("tx");
        sqlx::query(
            "INSERT INTO events (id, event_type, data, created_at) \
             SELECT id, 'order.created', data, at FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
             AS t (id, data, at)",
        )
        .bind(&ids)
        .bind(&datas)
        .bind(&times)
        .execute(&mut *tx)
        .await
        .expect("events");
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, status_code, \
               attempts, created_at, last_attempt_at) \
             SELECT d, e, $4, 'order.created', CASE WHEN f THEN 'failed' ELSE 'succeeded' END, \
               CASE WHEN f THEN 500 ELSE 200 END, 1, at, at \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $5::bool[]) AS t (d, e, at, f)",
        )
        .bind(&delivery_ids)
        .bind(&ids)
        .bind(&times)
        .bind(webhook)
        .bind(&failed)
        .execute(&mut *tx)
        .await
        .expect("deliveries");
        tx.commit().await.expect("commit");
    }
}

/// The search index's backlog, from `GET /metrics`.
async fn search_backlog(client: &reqwest::Client, service: &Service) -> u64 {
    let text = client
        .get(service.root_url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("hookpanel_search_backlog "))
        .and_then(|value| value.trim().parse().ok())
        .expect("hookpanel_search_backlog")
}

/// Payload search on `events` events with realistic data (SQLite): how long the index
/// takes to catch up with them at start, its size, and `GET /deliveries?q=` for one
/// order id, alone and with `status=failed`, while nothing else runs.
async fn search(events: usize, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let client = reqwest::Client::new();
    // The shop's webhook is unreachable on purpose: nothing is delivered while searches
    // are timed.
    let (service, started) = if std::env::var(POSTGRES_ADMIN).is_ok() {
        // A PostgreSQL database lives as long as its service: fill it under the running
        // service, whose indexer then works through the queue the inserts filled.
        let service = Service::start(&db);
        let webhook = create_webhook(&client, &service, "Shop", "http://127.0.0.1:9/shop").await;
        let url = service.database.as_ref().expect("a database").url();
        // No autovacuum until the searches before ANALYZE are timed: they are what an
        // operator meets between a big fill (or an upgrade) and autovacuum's first pass.
        run_sql(
            &url,
            "ALTER TABLE events SET (autovacuum_enabled = false); \
             ALTER TABLE deliveries SET (autovacuum_enabled = false); \
             ALTER TABLE event_search SET (autovacuum_enabled = false)"
                .to_owned(),
        );
        fill_postgres(&url, &webhook, events, 10, order_data).await;
        (service, Instant::now())
    } else {
        let webhooks = {
            let service = Service::start(&db);
            vec![create_webhook(&client, &service, "Shop", "http://127.0.0.1:9/shop").await]
        };
        fill_with(&db, &webhooks, events, 10, order_data).await;
        let started = Instant::now();
        (Service::start(&db), started)
    };
    let limit = Instant::now() + SCENARIO_LIMIT;
    while search_backlog(&client, &service).await > 0 {
        assert!(Instant::now() < limit, "the index did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = started.elapsed();
    let time = |query: String, expected: usize| time_deliveries(&client, &service, query, expected);
    let mut unanalyzed = Vec::new();
    if let Some(database) = &service.database {
        unanalyzed.push((
            "q=ord_1042, before ANALYZE",
            time("q=ord_1042".to_owned(), 1).await,
        ));
        unanalyzed.push((
            "q=ord_1040&status=failed, before ANALYZE",
            time("q=ord_1040&status=failed".to_owned(), 1).await,
        ));
        // What autovacuum does a little later: statistics for the tables just filled.
        run_sql(
            &database.url(),
            "ALTER TABLE events RESET (autovacuum_enabled); \
             ALTER TABLE deliveries RESET (autovacuum_enabled); \
             ALTER TABLE event_search RESET (autovacuum_enabled); \
             ANALYZE"
                .to_owned(),
        );
    }
    // Event 1040 is failed (one in ten, by its number); 1042 succeeded.
    let one = time("q=ord_1042".to_owned(), 1).await;
    let failed = time("q=ord_1040&status=failed".to_owned(), 1).await;
    let email = time("q=customer77@example.com".to_owned(), 1).await;
    let miss = time("q=ord_x".to_owned(), 0).await;
    // "Customer 77" names 101 of the million (n % 9973 == 77); every event holds "customer".
    let phrase = time("q=%22customer%2077%22&limit=200".to_owned(), 101).await;
    // The lag: from an emit's answer until a search finds it, with emits beside at up to
    // 500 a second (to a webhook of their own).
    let service = Arc::new(service);
    let (addr, _arrivals) = start_receiver().await;
    beside_webhook(&client, &service, addr).await;
    create_webhook_for(
        &client,
        &service,
        "Probe",
        &format!("http://{addr}/probe"),
        "order.cancelled",
    )
    .await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let emitter = emit_beside(&client, &service, &running);
    let mut lags = Vec::new();
    for n in 0..20 {
        let token = format!("probe_{n}");
        client
            .post(service.url("/events"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"type": "order.cancelled", "data": {"order_id": token}}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("emitted");
        let emitted = Instant::now();
        loop {
            let page: Value = client
                .get(service.url(&format!("/deliveries?q={token}")))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("page")
                .json()
                .await
                .expect("json");
            if page["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
            {
                break;
            }
            assert!(emitted.elapsed() < SCENARIO_LIMIT, "never indexed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags.push(emitted.elapsed());
    }
    running.store(false, Ordering::Relaxed);
    let beside = emitter.await.expect("emitter").len();
    lags.sort_unstable();
    let (index_bytes, file_bytes): (i64, i64) = match &service.database {
        Some(database) => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&database.url())
                .await
                .expect("database");
            sqlx::query_as(
                "SELECT pg_total_relation_size('event_search'), pg_database_size(current_database())",
            )
            .fetch_one(&mut conn)
            .await
            .expect("sizes")
        }
        None => {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .expect("database");
            let index =
                sqlx::query_scalar("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'event_text%'")
                    .fetch_one(&mut conn)
                    .await
                    .expect("dbstat");
            (index, std::fs::metadata(&db).map_or(0, |m| m.len() as i64))
        }
    };
    drop(service);
    let label = format!("Payload search, {events} events with order data");
    rows.push(Row {
        what: format!("{label}: indexed at start in"),
        figure: format!("{:.1} s", caught_up.as_secs_f64()),
        target: "",
    });
    for (name, took) in unanalyzed.into_iter().chain([
        ("q=ord_1042", one),
        ("q=ord_1040&status=failed", failed),
        ("q=<email>", email),
        ("q=<no such token>", miss),
        (
            "q=\"customer 77\" (a phrase; every event holds its first word)",
            phrase,
        ),
    ]) {
        rows.push(Row {
            what: format!("{label}: {name} p50 / p99"),
            figure: p50_p99(&took, 2),
            target: "≤ 100 ms",
        });
    }
    rows.push(Row {
        what: format!(
            "{label}: from an emit's 202 until a search finds it, p50 / p99 (20 probes, {beside} emits beside)"
        ),
        figure: p50_p99(&lags, 1),
        target: "≤ 1 s",
    });
    rows.push(Row {
        what: format!("{label}: the index's size, and the whole database's"),
        figure: format!(
            "{:.0} MiB of {:.0} MiB",
            index_bytes as f64 / 1_048_576.0,
            file_bytes as f64 / 1_048_576.0
        ),
        target: "",
    });
}

/// `GET /deliveries?{query}` 50 times, one after another, each answer checked to hold
/// `expected` items; the times, sorted.
async fn time_deliveries(
    client: &reqwest::Client,
    service: &Service,
    query: String,
    expected: usize,
) -> Vec<Duration> {
    let url = service.url(&format!("/deliveries?{query}"));
    let mut took = Vec::new();
    for _ in 0..50 {
        let began = Instant::now();
        let page: Value = client
            .get(&url)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("page")
            .json()
            .await
            .expect("json");
        took.push(began.elapsed());
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(expected),
            "{query}"
        );
    }
    took.sort_unstable();
    took
}

/// GET /deliveries pages on a database of `paging_rows` deliveries.
async fn paging(sizes: &Sizes, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let client = reqwest::Client::new();
    let webhooks: Vec<String> = {
        let service = Service::start(&db);
        let mut ids = Vec::new();
        for n in 0..4 {
            // Unreachable on purpose: nothing new is delivered while pages are timed.
            ids.push(
                create_webhook(
                    &client,
                    &service,
                    &format!("Receiver {n}"),
                    "http://127.0.0.1:9/",
                )
                .await,
            );
        }
        ids
    };
    let filled = Instant::now();
    fill(&db, &webhooks, sizes.paging_rows, 10).await;
    let fill_time = filled.elapsed();
    let service = Service::start(&db);
    let time_page = |query: String| time_deliveries(&client, &service, query, 100);
    let first = time_page("limit=100".to_owned()).await;
    let failed = time_page(format!(
        "limit=100&status=failed&webhook_id={}",
        webhooks[1]
    ))
    .await;
    let deep = time_page(format!(
        "limit=100&status=failed&webhook_id={}&event_type=order.created&code=5xx",
        webhooks[2]
    ))
    .await;
    let label = format!(
        "GET /deliveries, {} rows (filled in {:.1} s)",
        sizes.paging_rows,
        fill_time.as_secs_f64()
    );
    for (name, took) in [
        ("first page", first),
        ("status=failed&webhook_id page", failed),
        ("+ event_type & code=5xx page", deep),
    ] {
        rows.push(Row {
            what: format!("{label}: {name} p50 / p99"),
            figure: p50_p99(&took, 2),
            target: "≤ 20 ms",
        });
    }
}

/// `POST /events` of `payment.received` every 2 ms, one at a time, while `running`:
/// when each began and how long it took.
/// The webhook that receives what [`emit_beside`] emits (`payment.received`).
async fn beside_webhook(client: &reqwest::Client, service: &Service, addr: SocketAddr) {
    create_webhook_for(
        client,
        service,
        "Healthy",
        &format!("http://{addr}/healthy"),
        "payment.received",
    )
    .await;
}

fn emit_beside(
    client: &reqwest::Client,
    service: &Arc<Service>,
    running: &Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(Instant, Duration)>> {
    let (client, service, running) = (client.clone(), Arc::clone(service), Arc::clone(running));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(2));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut emits = Vec::new();
        let began = Instant::now();
        let mut n = 0;
        while running.load(Ordering::Relaxed) && began.elapsed() < SCENARIO_LIMIT {
            ticker.tick().await;
            let started = Instant::now();
            let took = emit_type(
                &client,
                &service,
                "payment.received",
                &format!("beside-{n}"),
            )
            .await;
            emits.push((started, took));
            n += 1;
        }
        emits
    })
}

/// `rows_total` finished deliveries over the last 7 hours, most older than a 1 h
/// retention: pruned at start while `POST /events` runs at up to 500 a second beside it.
async fn prune(rows_total: usize, rows: &mut Vec<Row>) {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let client = reqwest::Client::new();
    let (addr, _arrivals) = start_receiver().await;
    let webhooks = {
        let service = Service::start(&db);
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(
                create_webhook(
                    &client,
                    &service,
                    &format!("Old {n}"),
                    "http://127.0.0.1:9/",
                )
                .await,
            );
        }
        ids
    };
    fill(&db, &webhooks, rows_total, 10).await;
    let cutoff = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("database");
    let count_old = "SELECT COUNT(*) FROM deliveries WHERE created_at < ?";
    let before: i64 = sqlx::query_scalar(count_old)
        .bind(cutoff)
        .fetch_one(&mut reader)
        .await
        .expect("count");
    let began = Instant::now();
    let service = Arc::new(Service::start_with(&db, &[("HOOKPANEL_RETENTION", "1h")]));
    beside_webhook(&client, &service, addr).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let emitter = emit_beside(&client, &service, &running);
    // The oldest delivery is past the cutoff once every old one is gone.
    while began.elapsed() < SCENARIO_LIMIT {
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT created_at FROM deliveries ORDER BY id LIMIT 1")
                .fetch_optional(&mut reader)
                .await
                .expect("oldest");
        if oldest.is_none_or(|at| at >= cutoff) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pruned_in = began.elapsed();
    running.store(false, Ordering::Relaxed);
    let mut during: Vec<Duration> = emitter
        .await
        .expect("emitter")
        .into_iter()
        .map(|(_, took)| took)
        .collect();
    during.sort_unstable();
    let left: i64 = sqlx::query_scalar(count_old)
        .bind(cutoff)
        .fetch_one(&mut reader)
        .await
        .expect("count");
    let file_mib = std::fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    rows.push(Row {
        what: format!(
            "Retention 1 h at start: {} of {rows_total} finished deliveries pruned ({left} old left) in",
            before - left
        ),
        figure: format!("{:.1} s from the service's start", pruned_in.as_secs_f64()),
        target: "",
    });
    rows.push(Row {
        what: format!(
            "POST /events beside the pruning: p50 / p99 ({} emits)",
            during.len()
        ),
        figure: p50_p99(&during, 2),
        target: "",
    });
    rows.push(Row {
        what: "… the SQLite file afterwards (freed pages are kept for reuse)".to_owned(),
        figure: format!("{file_mib:.0} MiB"),
        target: "",
    });
}

/// After an outage: `failed` failed deliveries queued again by one `POST
/// /deliveries/resend` with a filter, to a receiver that answers 204 again, while `POST
/// /events` to another webhook runs at 500 a second beside it.
async fn bulk_resend(failed: usize, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let client = reqwest::Client::new();
    let (addr, arrivals) = start_receiver().await;
    let webhooks = {
        let service = Service::start(&db);
        vec![
            create_webhook(
                &client,
                &service,
                "Recovered",
                &format!("http://{addr}/recovered"),
            )
            .await,
        ]
    };
    fill(&db, &webhooks, failed, 1).await;
    let service = Arc::new(Service::start(&db));
    beside_webhook(&client, &service, addr).await;
    for n in 0..100 {
        emit_type(&client, &service, "payment.received", &format!("warm-{n}")).await;
    }
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let emitter = emit_beside(&client, &service, &running);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = Instant::now();
    let resent: Value = client
        .post(service.url("/deliveries/resend"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"filter": {"status": "failed"}}))
        .timeout(SCENARIO_LIMIT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("bulk resend")
        .json()
        .await
        .expect("json");
    let answered = Instant::now();
    let took = answered - asked;
    assert_eq!(resent["queued"], failed, "{resent}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    let emits = emitter.await.expect("emitter");
    let mut before: Vec<Duration> = emits
        .iter()
        .filter(|(at, _)| *at < asked)
        .map(|(_, took)| *took)
        .collect();
    let mut during: Vec<Duration> = emits
        .iter()
        .filter(|(at, _)| (asked..answered).contains(at))
        .map(|(_, took)| *took)
        .collect();
    before.sort_unstable();
    during.sort_unstable();
    let limit = Instant::now() + SCENARIO_LIMIT;
    let expected = failed + 100 + emits.len();
    while arrivals.count.load(Ordering::Relaxed) < expected && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = asked.elapsed();
    rows.push(Row {
        what: format!(
            "POST /deliveries/resend, filter status=failed: {failed} failed deliveries queued in"
        ),
        figure: format!("{:.2} s", took.as_secs_f64()),
        target: "≤ 2 s (100 000)",
    });
    rows.push(Row {
        what: format!(
            "POST /events beside it at 500/s: p50 / p99 during ({} emits); before ({})",
            during.len(),
            before.len()
        ),
        figure: format!("{}; {}", p50_p99(&during, 2), p50_p99(&before, 2)),
        target: "",
    });
    rows.push(Row {
        what: format!("… and every one of the {failed} delivered (204) within"),
        figure: format!("{:.1} s", delivered.as_secs_f64()),
        target: "",
    });
}

/// A database of `secrets` webhooks started with a new encryption key and the old one as
/// the previous: how long until every secret is re-sealed, with `POST /events` at up to
/// 500 a second beside it.
async fn reseal(secrets: usize, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let client = reqwest::Client::new();
    let (addr, _arrivals) = start_receiver().await;
    {
        let service = Arc::new(Service::start(&db));
        beside_webhook(&client, &service, addr).await;
        futures_util::stream::iter(0..secrets)
            .map(|n| {
                let (client, service) = (client.clone(), Arc::clone(&service));
                async move {
                    create_webhook(
                        &client,
                        &service,
                        &format!("w{n}"),
                        &format!("http://{addr}/w"),
                    )
                    .await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
    }
    let new_key = keygen();
    let started = Instant::now();
    let service = Arc::new(Service::start_with(
        &db,
        &[
            ("HOOKPANEL_ENCRYPTION_KEY", &new_key),
            ("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY", run_encryption_key()),
        ],
    ));
    let listening = started.elapsed();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let emitter = emit_beside(&client, &service, &running);
    let mut left_at_listening = None;
    let finished = loop {
        let status: Value = client
            .get(service.url("/encryption-key"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("status")
            .json()
            .await
            .expect("json");
        let left = status["secrets_left_to_reseal"].as_u64().expect("count");
        left_at_listening.get_or_insert(left);
        if left == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < SCENARIO_LIMIT,
            "the re-seal did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    running.store(false, Ordering::Relaxed);
    let mut during: Vec<Duration> = emitter
        .await
        .expect("emitter")
        .into_iter()
        .filter(|(at, _)| at.duration_since(started) < finished)
        .map(|(_, took)| took)
        .collect();
    during.sort_unstable();
    rows.push(Row {
        what: format!(
            "Encryption key rolled: {} secrets re-sealed within (listening after {:.2} s, {} left then)",
            secrets + 1,
            listening.as_secs_f64(),
            left_at_listening.unwrap_or_default()
        ),
        figure: format!("{:.2} s", finished.as_secs_f64()),
        target: "",
    });
    rows.push(Row {
        what: format!(
            "POST /events beside the re-seal at up to 500/s: p50 / p99 ({} emits)",
            during.len()
        ),
        figure: p50_p99(&during, 2),
        target: "",
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            events: 2_000,
            outage_events: 10_000,
            neighbour_events: 2_000,
            rate_requests: 1_000,
            paging_rows: 100_000,
            resend_rows: 20_000,
            reseal_secrets: 2_000,
            search_events: 100_000,
        }
    } else {
        Sizes {
            events: 20_000,
            outage_events: 100_000,
            neighbour_events: 10_000,
            rate_requests: 5_000,
            paging_rows: 1_000_000,
            resend_rows: 100_000,
            reseal_secrets: 10_000,
            search_events: 1_000_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    // `--only <scenario>` (see the top of this file) runs one scenario (for profiling one at a time).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    // `--backlog <n>`: how many deliveries wait on the neighbour in `neighbour` and
    // `paced` (as many as the healthy webhook gets, unless given).
    let backlog = args
        .iter()
        .position(|a| a == "--backlog")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(sizes.neighbour_events);
    // The scenarios that fill or read the SQLite file directly run on SQLite only.
    let on_postgres = std::env::var(POSTGRES_ADMIN).is_ok();
    let sqlite_only = [
        "paging",
        "outage",
        "outage-422",
        "outage-500",
        "resend",
        "prune",
        "reseal",
    ];
    let runs = |scenario: &str| {
        only.is_none_or(|o| o == scenario) && !(on_postgres && sqlite_only.contains(&scenario))
    };
    runtime.block_on(async {
        if runs("e2e") || runs("e2e-1") {
            end_to_end(&sizes, 1, &mut rows).await;
        }
        if runs("e2e") || runs("e2e-4") {
            end_to_end(&sizes, 4, &mut rows).await;
        }
        if runs("rate") {
            emit_latency(&sizes, &mut rows).await;
        }
        if runs("paging") {
            paging(&sizes, &mut rows).await;
        }
        if runs("outage") || runs("outage-422") {
            outage(
                sizes.outage_events,
                StatusCode::UNPROCESSABLE_ENTITY,
                "0s",
                1,
                &mut rows,
            )
            .await;
        }
        if runs("outage") || runs("outage-500") {
            // Three attempts per delivery, the last 0.2 s after the first.
            let events = sizes.outage_events / 3;
            outage(
                events,
                StatusCode::INTERNAL_SERVER_ERROR,
                "0s,50ms,150ms",
                3,
                &mut rows,
            )
            .await;
        }
        if runs("neighbour") {
            noisy_neighbour(sizes.neighbour_events, backlog, &mut rows).await;
        }
        if runs("paced") {
            paced_neighbour(sizes.neighbour_events, backlog, &mut rows).await;
        }
        if runs("resend") {
            bulk_resend(sizes.resend_rows, &mut rows).await;
        }
        if runs("prune") {
            prune(sizes.paging_rows, &mut rows).await;
        }
        if runs("search") {
            search(sizes.search_events, &mut rows).await;
        }
        if runs("reseal") {
            reseal(sizes.reseal_secrets, &mut rows).await;
        }
    });
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.what, row.figure, row.target);
    }
}
