//! The `hookpanel` binary itself: flags and environment, the key printed once.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_hookpanel");

/// Kills the child when the test ends, however it ends.
pub(crate) struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn keygen() -> String {
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
pub(crate) fn read_startup(child: &mut Child) -> (Option<String>, String) {
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
fn serve_refuses_a_malformed_previous_key_before_touching_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .env("HOOKPANEL_ENCRYPTION_KEY", keygen())
        .env("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY", "not a key")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY") && stderr.contains("32 bytes"),
        "{stderr}"
    );
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

/// Starts `hookpanel serve` on `db` with a known admin key; returns it and its base URL.
fn serve_with(db: &str, encryption_key: &str, extra: &[&str]) -> (Running, String) {
    let mut command = Command::new(BINARY);
    command.arg("serve").args(extra);
    spawn_serve(&mut command, db, encryption_key)
}

/// Spawns `command` (which runs `hookpanel serve`) on `db`, listening on port 0 with the
/// test admin key and a short retry schedule; returns it and its base URL.
pub(crate) fn spawn_serve(
    command: &mut Command,
    db: &str,
    encryption_key: &str,
) -> (Running, String) {
    let mut child = start_serve(command, db, encryption_key);
    let (_, base_url) = read_startup(&mut child);
    (Running(child), base_url)
}

/// Starts `command` like [`spawn_serve`], without waiting for it to listen.
pub(crate) fn start_serve(command: &mut Command, db: &str, encryption_key: &str) -> Child {
    command
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", db)
        .env("HOOKPANEL_ENCRYPTION_KEY", encryption_key)
        .env(
            "HOOKPANEL_ADMIN_KEY",
            "hpk_crash_test_0123456789abcdefghijkl",
        )
        .env("HOOKPANEL_ALLOW_PRIVATE_DESTINATIONS", "1")
        .env("HOOKPANEL_RETRY_SCHEDULE", "0s,200ms,200ms,200ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts")
}

#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("owned.db");
    let db = format!("sqlite://{}", path.display());
    let encryption_key = keygen();
    let (first, base_url) = serve_with(&db, &encryption_key, &[]);
    // Once the first is idle, it has copied its start-up writes into the file and emptied
    // its log (about a second after its last write): from then on, neither changes unless
    // someone writes.
    let log = dir.path().join("owned.db-wal");
    let log_len = || std::fs::metadata(&log).map_or(0, |m| m.len());
    for _ in 0..100 {
        if log_len() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log_len(), 0, "the idle owner emptied its log");
    let before = std::fs::metadata(&path)
        .expect("the first created it")
        .len();

    let output = Command::new(BINARY)
        .arg("serve")
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", &db)
        .env("HOOKPANEL_ENCRYPTION_KEY", &encryption_key)
        .env(
            "HOOKPANEL_ADMIN_KEY",
            "hpk_second_process_0123456789abcdefgh",
        )
        .output()
        .expect("runs");
    assert!(
        !output.status.success(),
        "the second process must not start"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("process {}", first.0.id())),
        "names the owner: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it never listened"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("still there").len(),
        before,
        "the refused process wrote nothing"
    );
    assert_eq!(log_len(), 0, "nor into the log");

    let health = reqwest::get(format!("{base_url}/healthz"))
        .await
        .expect("the first still answers");
    assert_eq!(health.status(), StatusCode::OK);
    // Once the owner has gone, the file may be taken again.
    drop(first);
    let (_again, _) = serve_with(&db, &encryption_key, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_burst_loses_no_event_and_leaves_nothing_stuck() {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt as _;
    use serde_json::json;

    use crate::receiver::Receiver;
    use crate::support::wait_for;

    const EVENTS: usize = 5_000;
    const CONCURRENCY: usize = 50;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let encryption_key = keygen();
    let (first, base_url) = serve_with(&db, &encryption_key, &[]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base_url}/v1/admin/webhooks"))
        .bearer_auth("hpk_crash_test_0123456789abcdefghijkl")
        .json(&json!({"name": "burst", "url": receiver.url("/burst"), "events": ["order.created"]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);

    // The burst: 50 emits at a time, each remembered if the service accepted it.
    let emit = |client: reqwest::Client, base_url: String, n: usize| async move {
        let answer = client
            .post(format!("{base_url}/v1/admin/events"))
            .bearer_auth("hpk_crash_test_0123456789abcdefghijkl")
            .json(&json!({"type": "order.created", "id": format!("burst-{n}"), "data": {"n": n}}))
            .send()
            .await;
        (n, answer.is_ok_and(|a| a.status() == StatusCode::ACCEPTED))
    };
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (client, base_url, accepted_so_far) = (
            client.clone(),
            base_url.clone(),
            Arc::clone(&accepted_so_far),
        );
        async move {
            futures_util::stream::iter(0..EVENTS)
                .map(|n| emit(client.clone(), base_url.clone(), n))
                .buffer_unordered(CONCURRENCY)
                .filter_map(|(n, accepted)| async move { accepted.then_some(n) })
                .inspect(|_| {
                    accepted_so_far.fetch_add(1, Ordering::Relaxed);
                })
                .collect::<HashSet<usize>>()
                .await
        }
    });
    let distinct = |receiver: &Receiver| -> HashSet<String> {
        receiver
            .received("/burst")
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("webhook-id")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .collect()
    };
    wait_for(
        "the burst and its deliveries to be under way",
        Duration::from_secs(60),
        || async {
            (accepted_so_far.load(Ordering::Relaxed) >= EVENTS / 4
                && !distinct(&receiver).is_empty())
            .then_some(())
        },
    )
    .await;
    drop(first); // SIGKILL, mid-burst and mid-dispatch
    let accepted = burst
        .await
        .expect("the burst ends once the service is gone");
    assert!(
        accepted.len() < EVENTS,
        "the kill came after the burst ended ({} accepted)",
        accepted.len()
    );

    // Restart on the same database. Whatever was accepted is delivered without help; the
    // client then sends the rest again, with the same ids, as a client would.
    let (_second, base_url) = serve_with(&db, &encryption_key, &[]);
    let accepted_ids: HashSet<String> = accepted.iter().map(|n| format!("burst-{n}")).collect();
    wait_for(
        "every accepted event after the restart",
        Duration::from_secs(120),
        || async { distinct(&receiver).is_superset(&accepted_ids).then_some(()) },
    )
    .await;
    let resent: Vec<(usize, bool)> =
        futures_util::stream::iter((0..EVENTS).filter(|n| !accepted.contains(n)))
            .map(|n| emit(client.clone(), base_url.clone(), n))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    assert!(
        resent.iter().all(|(_, ok)| *ok),
        "a resent emit was refused"
    );
    let everything: HashSet<String> = (0..EVENTS).map(|n| format!("burst-{n}")).collect();
    wait_for(
        "every event once the rest was sent again",
        Duration::from_secs(120),
        || async { (distinct(&receiver) == everything).then_some(()) },
    )
    .await;

    // The rows themselves: one delivery per event, all succeeded, none claimed.
    let pool = sqlx::SqlitePool::connect(&db)
        .await
        .expect("database readable");
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .expect("counted")
        }
    };
    let settled = wait_for(
        "every delivery recorded as succeeded",
        Duration::from_secs(30),
        || async {
            let succeeded =
                count("SELECT COUNT(*) FROM deliveries WHERE status = 'succeeded'").await;
            (succeeded == EVENTS as i64).then_some(succeeded)
        },
    )
    .await;
    assert_eq!(settled, EVENTS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM events").await, EVENTS as i64);
    assert_eq!(
        count("SELECT COUNT(*) FROM deliveries").await,
        EVENTS as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM deliveries WHERE lease_until IS NOT NULL").await,
        0,
        "a delivery still claimed"
    );
    eprintln!(
        "killed with {} of {EVENTS} emits accepted; {} requests reached the receiver in all",
        accepted.len(),
        receiver.received("/burst").len()
    );
}

/// Sets the largest file the process `pid` may write (the soft limit, which needs no
/// privilege to raise again), with util-linux's `prlimit`.
fn limit_file_size(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={limit}:unlimited"))
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

/// A full disk, as the service sees one: a file-size limit (`RLIMIT_FSIZE`) set on the
/// running process makes every write past its first byte fail, as writes to a full
/// filesystem do. (CI runs as root, so a read-only file would not stop it.)
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_keeps_what_was_accepted_and_recovers() {
    use std::collections::HashSet;

    use serde_json::{Value, json};

    use crate::receiver::Receiver;
    use crate::support::wait_for;

    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("full.db").display());
    // Through a shell that ignores SIGXFSZ, so that a write past the limit fails with
    // an error instead of killing the process: what a full disk does.
    let mut through_shell = Command::new("sh");
    through_shell.args(["-c", "trap '' XFSZ; exec \"$0\" serve", BINARY]);
    let (service, base_url) = spawn_serve(&mut through_shell, &db, &keygen());
    let pid = service.0.id();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base_url}/v1/admin{path}"))
            .bearer_auth("hpk_crash_test_0123456789abcdefghijkl")
            .json(&body)
            .send()
    };
    let created = post(
        "/webhooks",
        json!({"name": "full", "url": receiver.url("/full"), "events": ["order.created"]}),
    )
    .await
    .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let emit = |id: String| {
        post(
            "/events",
            json!({"type": "order.created", "id": id, "data": {}}),
        )
    };
    for n in 0..20 {
        let answer = emit(format!("before-{n}")).await.expect("sent");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }

    limit_file_size(pid, "1");
    let mut refused = Vec::new();
    for n in 0..5 {
        let id = format!("while-full-{n}");
        let answer = emit(id.clone()).await.expect("sent");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let error: Value = answer.json().await.expect("json");
        assert_eq!(error["error"]["code"], "storage_unavailable", "{error}");
        refused.push(id);
    }
    // Reads go on meanwhile.
    let listed = client
        .get(format!("{base_url}/v1/admin/webhooks"))
        .bearer_auth("hpk_crash_test_0123456789abcdefghijkl")
        .send()
        .await
        .expect("sent");
    assert_eq!(listed.status(), StatusCode::OK);

    limit_file_size(pid, "unlimited");
    for id in &refused {
        let answer = emit(id.clone()).await.expect("sent");
        assert_eq!(
            answer.status(),
            StatusCode::ACCEPTED,
            "{id} after the disk cleared"
        );
    }
    let expected: HashSet<String> = (0..20)
        .map(|n| format!("before-{n}"))
        .chain(refused.iter().cloned())
        .collect();
    wait_for("every event delivered", Duration::from_secs(60), || async {
        let seen: HashSet<String> = receiver
            .received("/full")
            .iter()
            .filter_map(|r| Some(r.headers.get("webhook-id")?.to_str().ok()?.to_owned()))
            .collect();
        (seen == expected).then_some(())
    })
    .await;
    let pool = sqlx::SqlitePool::connect(&db).await.expect("readable");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("counted");
    assert_eq!(
        stored, 25,
        "each accepted event once, each refused one once when sent again"
    );
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("checked");
    assert_eq!(integrity, "ok");
}

/// Runs `serve` on `db`, which must fail at start; returns its stderr and how long it ran.
fn serve_refused(db: &str) -> (String, Duration) {
    let started = Instant::now();
    let output = Command::new(BINARY)
        .arg("serve")
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", db)
        .env("HOOKPANEL_ENCRYPTION_KEY", keygen())
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!output.status.success(), "{db} must be refused");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "{db}: it never listened"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stderr, started.elapsed())
}

#[test]
fn a_database_that_cannot_be_used_is_named_in_one_line_with_the_reason() {
    let admin = crate::backend::postgres_admin_url();
    let (server, _) = admin.rsplit_once('/').expect("a database in the URL");
    let unknown = format!("{server}/hookpanel_no_such_database");
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let cases = [
        (
            "postgres://hookpanel@127.0.0.1:1/hookpanel".to_owned(),
            "127.0.0.1:1/hookpanel",
            "refused",
        ),
        (
            unknown,
            "/hookpanel_no_such_database",
            "\"hookpanel_no_such_database\" does not exist",
        ),
        (
            "mysql://127.0.0.1/hookpanel".to_owned(),
            "sqlite://, postgres:// or postgresql://",
            "\"mysql\"",
        ),
    ];
    for (db, names, reason) in cases {
        let (stderr, took) = serve_refused(&db);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(names), "{db}: {stderr}");
        assert!(stderr.contains(reason), "{db}: {stderr}");
        assert!(took < Duration::from_secs(10), "{db}: took {took:?}");
    }
}
