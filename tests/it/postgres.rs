//! What only the PostgreSQL backend meets: TLS to the server, a server that refuses the
//! password, and a server that goes away and comes back. (Everything else runs on both
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

/// A PostgreSQL cluster of the test's own, which it may stop and start: `initdb` in a
/// temporary directory and `pg_ctl` on a free port, as the `postgres` user (`initdb`
/// refuses root). Needs Debian's PostgreSQL server binaries, which every machine running
/// these tests has (`.ci/run` installs them where none runs).
struct Cluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Self {
        Self::start_with_password(None)
    }

    /// With `password`, TCP connections must give it (SCRAM); without, trust.
    fn start_with_password(password: Option<&str>) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|version| version.path().join("bin"))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("a pg_ctl");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status()
            .expect("chown runs");
        assert!(chown.success());
        let cluster = Self { dir, bin, port };
        let mut initdb = vec![
            "-D".to_owned(),
            cluster.data(),
            "-U".to_owned(),
            "postgres".to_owned(),
        ];
        match password {
            None => initdb.extend(["-A".to_owned(), "trust".to_owned()]),
            Some(password) => {
                let file = cluster.dir.path().join("password");
                std::fs::write(&file, password).expect("password file");
                let chown = std::process::Command::new("chown")
                    .arg("postgres")
                    .arg(&file)
                    .status()
                    .expect("chown runs");
                assert!(chown.success());
                initdb.extend([
                    "--auth-local=trust".to_owned(),
                    "--auth-host=scram-sha-256".to_owned(),
                    format!("--pwfile={}", file.display()),
                ]);
            }
        }
        let initdb: Vec<&str> = initdb.iter().map(String::as_str).collect();
        cluster.as_postgres("initdb", &initdb);
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        self.url_with_password("")
    }

    /// The URL with `:password` after the user, or none when it is empty.
    fn url_with_password(&self, password: &str) -> String {
        let password = if password.is_empty() {
            String::new()
        } else {
            format!(":{password}")
        };
        format!(
            "postgres://postgres{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let output = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl start`, or `stop` (fast: sessions are cut off, as in a crash or a failover).
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-l", &log, "-w"];
        if action == "start" {
            args.extend(["-o", &options]);
        } else {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.as_postgres("pg_ctl", &args);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn while_postgresql_is_down_the_api_answers_503_and_loses_nothing_it_accepted() {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures_util::StreamExt as _;

    use crate::receiver::Receiver;
    use crate::support::wait_for;

    const EVENTS: usize = 6_000;
    let cluster = Cluster::start();
    let receiver = Receiver::start().await;
    let service = TestService::start_with(|config| {
        config.database_url = cluster.url();
        // Attempts whose record was lost with the server are tried again soon.
        config.delivery.lease = Duration::from_secs(2);
    })
    .await;
    service
        .create_webhook(json!({"name": "steady", "url": receiver.url("/steady"), "events": ["*"]}))
        .await;

    let answered = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (client, url, key, answered) = (
            service.client.clone(),
            service.url("/v1/admin/events"),
            service.admin_key.clone(),
            Arc::clone(&answered),
        );
        async move {
            let began = tokio::time::Instant::now();
            futures_util::stream::iter(0..EVENTS)
                .map(|n| {
                    let (client, url, key) = (client.clone(), url.clone(), key.clone());
                    async move {
                        // 500 a second, so that the burst outlasts the outage.
                        tokio::time::sleep_until(began + Duration::from_millis(n as u64 * 2))
                            .await;
                        let answer = client
                            .post(url)
                            .bearer_auth(key)
                            .json(&json!({"type": "order.created", "id": format!("pg-{n}"), "data": {}}))
                            .send()
                            .await
                            .expect("the service answers");
                        let status = answer.status();
                        let body: serde_json::Value = answer.json().await.unwrap_or_default();
                        (format!("pg-{n}"), status, body)
                    }
                })
                .buffer_unordered(50)
                .inspect(|_| {
                    answered.fetch_add(1, Ordering::Relaxed);
                })
                .collect::<Vec<_>>()
                .await
        }
    });
    wait_for(
        "a quarter of the burst",
        Duration::from_secs(60),
        || async { (answered.load(Ordering::Relaxed) >= EVENTS / 4).then_some(()) },
    )
    .await;
    // Down for longer than a request waits for a connection (5 s): requests meanwhile
    // are answered 503, reads as well as writes.
    cluster.pg_ctl("stop");
    let (status, body) = service.json(Method::GET, "/webhooks", None).await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.pg_ctl("start");
    let answers = burst.await.expect("the burst ends");

    let mut accepted = HashSet::new();
    let mut unavailable = 0;
    for (id, status, body) in &answers {
        match status.as_u16() {
            202 => {
                accepted.insert(id.clone());
            }
            503 => {
                assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
                unavailable += 1;
            }
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(unavailable > 0, "the outage was seen");
    assert!(
        accepted.len() > EVENTS / 4,
        "the service recovered without a restart: {} accepted",
        accepted.len()
    );
    // Every accepted event arrives, the ones whose attempt was under way during the
    // outage after their lease.
    wait_for("every accepted event", Duration::from_secs(60), || async {
        let arrived: HashSet<String> = receiver
            .received("/steady")
            .iter()
            .filter_map(|r| Some(r.headers.get("webhook-id")?.to_str().ok()?.to_owned()))
            .collect();
        arrived.is_superset(&accepted).then_some(())
    })
    .await;
    eprintln!(
        "{} accepted, {unavailable} answered 503 while PostgreSQL was down",
        accepted.len()
    );
}

#[test]
fn a_wrong_password_is_refused_at_start_in_one_line_naming_the_server() {
    let cluster = Cluster::start_with_password(Some("the-right-one"));
    let location = format!("127.0.0.1:{}/postgres", cluster.port);
    let started = std::time::Instant::now();
    let output = std::process::Command::new(crate::cli::BINARY)
        .arg("serve")
        .env("HOOKPANEL_LISTEN", "127.0.0.1:0")
        .env("HOOKPANEL_DB", cluster.url_with_password("a-wrong-one"))
        .env("HOOKPANEL_ENCRYPTION_KEY", crate::cli::keygen())
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&location), "{stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("a-wrong-one"),
        "the password is not shown: {stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
