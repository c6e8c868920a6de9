//! Starts a real service for a test and talks to it.

use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::backend::{Backend, PostgresDatabase};
use hookpanel::crypto;
use hookpanel::dispatch::DeliveryConfig;
use hookpanel::server::{self, RunningService, SecretsAtRest, ServiceConfig};
use hookpanel::validate::HttpPolicy;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use zeroize::Zeroizing;

pub struct TestService {
    pub service: RunningService,
    pub client: reqwest::Client,
    pub admin_key: String,
    pub encryption_key: Zeroizing<String>,
    pub dir: tempfile::TempDir,
    /// Where the service keeps its data: a SQLite file in `dir`, or `postgres`.
    pub database_url: String,
    /// The test's own PostgreSQL database, when it runs on that backend.
    pub postgres: Option<PostgresDatabase>,
}

pub fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("hookpanel.db").display())
}

pub fn config(dir: &Path, encryption_key: &Zeroizing<String>) -> ServiceConfig {
    config_on(database_url(dir), encryption_key)
}

/// The test configuration on the database at `database_url`.
pub fn config_on(database_url: String, encryption_key: &Zeroizing<String>) -> ServiceConfig {
    ServiceConfig {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        database_url,
        database: Default::default(),
        admin_key: None,
        secrets_at_rest: SecretsAtRest::Encrypted {
            key: encryption_key.clone(),
            previous: None,
        },
        http_policy: HttpPolicy::LoopbackOnly,
        event_types_path: None,
        delivery: test_delivery_config(),
        inbox: false,
        http: Default::default(),
        wrong_key_burst: server::FAILED_KEYS_BURST,
        loopback_host_only: false,
        retention: None,
        audit_retention: None,
        reseal: Default::default(),
    }
}

/// Fast retries, a short timeout, and loopback receivers allowed.
pub fn test_delivery_config() -> DeliveryConfig {
    DeliveryConfig {
        retry_schedule: vec![
            Duration::ZERO,
            Duration::from_millis(200),
            Duration::from_millis(200),
        ],
        attempt_timeout: Duration::from_secs(2),
        allow_private_destinations: true,
        ..DeliveryConfig::default()
    }
}

/// A [`TestService`] stopped, with what it needs to start again.
pub struct StoppedService {
    client: reqwest::Client,
    admin_key: String,
    pub encryption_key: Zeroizing<String>,
    dir: tempfile::TempDir,
    database_url: String,
    postgres: Option<PostgresDatabase>,
}

impl StoppedService {
    /// Starts it again with the test configuration changed by `adjust`; a start refused
    /// gives back the error and this.
    pub async fn start_with(
        self,
        adjust: impl FnOnce(&mut ServiceConfig),
    ) -> Result<TestService, (server::StartError, Self)> {
        let mut config = config_on(self.database_url.clone(), &self.encryption_key);
        adjust(&mut config);
        match server::start(config).await {
            Ok(service) => Ok(TestService {
                service,
                client: self.client,
                admin_key: self.admin_key,
                encryption_key: self.encryption_key,
                dir: self.dir,
                database_url: self.database_url,
                postgres: self.postgres,
            }),
            Err(err) => Err((err, self)),
        }
    }
}

impl TestService {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test configuration changed by `adjust`, on the backend of the
    /// running test (see [`Backend::current`]).
    pub async fn start_with(adjust: impl FnOnce(&mut ServiceConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let encryption_key = crypto::generate_encryption_key().expect("random");
        let (database_url, postgres) = match Backend::current() {
            Backend::Sqlite => (database_url(dir.path()), None),
            Backend::Postgres => {
                let database = PostgresDatabase::create().await;
                (database.url().to_owned(), Some(database))
            }
        };
        let mut config = config_on(database_url.clone(), &encryption_key);
        adjust(&mut config);
        let mut service = server::start(config).await.expect("service starts");
        let admin_key = service
            .take_generated_admin_key()
            .expect("first start generates an admin key")
            .to_string();
        Self {
            service,
            client: reqwest::Client::new(),
            admin_key,
            encryption_key,
            dir,
            database_url,
            postgres,
        }
    }

    /// Stops the service and starts it again on the same database and keys.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Like [`Self::restart`], with the test configuration changed by `adjust`.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut ServiceConfig)) -> Self {
        self.stop()
            .await
            .start_with(adjust)
            .await
            .unwrap_or_else(|(err, _)| panic!("the service restarts: {err}"))
    }

    /// Stops the service, keeping its database and keys to start it again.
    pub async fn stop(self) -> StoppedService {
        let Self {
            service,
            client,
            admin_key,
            encryption_key,
            dir,
            database_url,
            postgres,
        } = self;
        service.shutdown().await.expect("clean shutdown");
        StoppedService {
            client,
            admin_key,
            encryption_key,
            dir,
            database_url,
            postgres,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service.base_url())
    }

    /// Every file the service keeps: the database and its WAL and shared-memory files.
    pub fn database_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .expect("temp dir readable")
            .map(|entry| entry.expect("dir entry").path())
            .collect()
    }

    /// An authenticated admin request; returns the status and the raw body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        self.call_as(&self.admin_key, method, path, body).await
    }

    /// Like [`Self::call`], presenting `key`.
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(method, self.url(&format!("/v1/admin{path}")))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the service");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// An authenticated admin POST of `body` as it is, JSON or not.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/admin{path}")))
            .bearer_auth(&self.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request reaches the service")
    }

    /// Like [`Self::call`], parsing the body as JSON.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.json_as(&self.admin_key, method, path, body).await
    }

    /// Like [`Self::json`], presenting `key`.
    pub async fn json_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.call_as(key, method, path, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
        };
        (status, value)
    }

    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, created) = self.json(Method::POST, "/webhooks", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }
}

pub fn orders_webhook() -> Value {
    serde_json::json!({
        "name": "Orders",
        "url": "https://orders.example.com/hooks",
        "events": ["order.created", "order.cancelled"],
        "description": "ERP sync",
        "owner": "team-orders",
    })
}

/// Asserts a 4xx error body naming `field`, and returns its message.
pub fn assert_field_error(status: StatusCode, body: &Value, field: &str) -> String {
    assert!(
        status.is_client_error(),
        "expected a 4xx, got {status}: {body}"
    );
    assert_eq!(body["error"]["field"], field, "{body}");
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "{body}");
    body["error"]["message"]
        .as_str()
        .expect("error message")
        .to_owned()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestService {
    /// Waits until delivery `id` reaches `status`; returns its detail.
    pub async fn wait_for_delivery(&self, id: &str, status: &str) -> Value {
        let path = format!("/deliveries/{id}");
        wait_for(
            &format!("delivery {id} to be {status}"),
            Duration::from_secs(20),
            || async {
                let (_, detail) = self.json(Method::GET, &path, None).await;
                (detail["status"] == status).then_some(detail)
            },
        )
        .await
    }

    /// The deliveries of one event.
    pub async fn deliveries_of(&self, event_id: &str) -> Vec<Value> {
        let (status, page) = self
            .json(Method::GET, &format!("/deliveries?q={event_id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// Emits an event and returns the answer.
    pub async fn emit(&self, body: Value) -> Value {
        let (status, emitted) = self.json(Method::POST, "/events", Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{emitted}");
        emitted
    }
}
