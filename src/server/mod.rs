//! The admin API service: configuration, routing, and a running instance's lifetime.
//!
//! [`start`] is the one way to run it — `hookpanel serve`, the panel's embedded service
//! and the tests all go through it.

mod access;
mod auth;
pub mod contract;
mod deliveries;
pub mod error;
mod event_types;
mod events;
pub mod extract;
pub mod inbox;
mod indexer;
mod listen;
mod metrics;
mod paging;
mod rekey;
mod stats;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router, middleware};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use self::error::ApiError;
use crate::api::Health;
use crate::catalog::{Catalog, CatalogError};
use crate::crypto::{self, CryptoError, SecretCipher};
use crate::dispatch::{DeliveryConfig, DispatchHandle, Dispatcher};
use crate::store::{Store, StoreError, StoreOptions};
use crate::validate::HttpPolicy;

pub use auth::FAILED_KEYS_BURST;
pub use listen::{DEFAULT_MAX_CONNECTIONS, HttpLimits};
pub use paging::MAX_PAGE as MAX_DELIVERY_PAGE;
pub use rekey::ResealPace;
pub use webhooks::{DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS};

/// Where signing secrets at rest get their protection.
#[derive(Clone)]
pub enum SecretsAtRest {
    /// Sealed with `key`, a base64-encoded 32-byte key. With `previous`, the key this
    /// database was sealed with until now: what it sealed is re-sealed with `key`.
    Encrypted {
        key: Zeroizing<String>,
        previous: Option<Zeroizing<String>>,
    },
    /// Stored as they are (`--insecure-plaintext-secrets`).
    InsecurePlaintext,
}

impl std::fmt::Debug for SecretsAtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Encrypted { previous: None, .. } => "Encrypted(..)",
            Self::Encrypted {
                previous: Some(_), ..
            } => "Encrypted(.., previous ..)",
            Self::InsecurePlaintext => "InsecurePlaintext",
        })
    }
}

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    /// `sqlite://PATH`, or `postgres://…` for a database that replicas share.
    pub database_url: String,
    pub database: StoreOptions,
    /// The admin key callers must present. `None`: the one whose hash the database keeps,
    /// generated on first start.
    pub admin_key: Option<Zeroizing<String>>,
    pub secrets_at_rest: SecretsAtRest,
    pub http_policy: HttpPolicy,
    /// A catalog file instead of the built-in one.
    pub event_types_path: Option<PathBuf>,
    pub delivery: DeliveryConfig,
    /// Host test receivers at `/inbox/{name}` (the embedded service).
    pub inbox: bool,
    /// Connection cap and read timeouts.
    pub http: HttpLimits,
    /// Wrong admin keys one client address may send at once before it gets 429 (then
    /// 10 a second).
    pub wrong_key_burst: u32,
    /// Answer only requests whose `Host` is `127.0.0.1:<port>` or `localhost:<port>`: a
    /// service on loopback for one user (the embedded one), which a web page in that
    /// user's browser must not reach by DNS rebinding.
    pub loopback_host_only: bool,
    /// Finished deliveries older than this are pruned (see `store/retention.rs`); `None`
    /// keeps everything.
    pub retention: Option<std::time::Duration>,
    /// How a key rollover's re-seal paces itself.
    pub reseal: ResealPace,
    /// Audit entries older than this are pruned; `None` keeps them all.
    pub audit_retention: Option<std::time::Duration>,
}

/// `--audit-retention`'s default: a year.
pub const DEFAULT_AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(365 * 86_400);

/// `--retention`'s default.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client for deliveries: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("the admin key is empty")]
    EmptyAdminKey,
    #[error(
        "the admin key is {0} characters long; at least {MIN_ADMIN_KEY_CHARS} are needed (leave it unset and one is generated)"
    )]
    ShortAdminKey(usize),
    #[error(
        "this database keeps its signing secrets in plain text (it was created with --insecure-plaintext-secrets), but this service was given an encryption key; start it again with --insecure-plaintext-secrets"
    )]
    DatabaseIsPlaintext,
    #[error(
        "this database keeps its signing secrets encrypted; set HOOKPANEL_ENCRYPTION_KEY to the key it was created with"
    )]
    DatabaseIsEncrypted,
    #[error("HOOKPANEL_ENCRYPTION_KEY is not the key this database's secrets were encrypted with")]
    WrongEncryptionKey,
    #[error(
        "HOOKPANEL_ENCRYPTION_KEY is a key this database retired at {retired_at}, when it rolled over to a new one; start with the current key"
    )]
    RetiredEncryptionKey { retired_at: String },
    #[error(
        "{0} signing secrets are still sealed with the previous encryption key: start with HOOKPANEL_PREVIOUS_ENCRYPTION_KEY set to it until the re-seal has finished (GET /v1/admin/encryption-key says how many are left)"
    )]
    SecretsUnderPreviousKey(u64),
    #[error("HOOKPANEL_PREVIOUS_ENCRYPTION_KEY: {0}")]
    PreviousKey(CryptoError),
}

impl AppState {
    /// What the served OpenAPI document depends on.
    fn contract(&self) -> contract::Configuration<'_> {
        contract::Configuration {
            catalog: &self.catalog,
            http_policy: self.http_policy,
            allow_private_destinations: self.allow_private_destinations,
            loopback_host_only: self.allowed_hosts.is_some(),
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cipher: SecretCipher,
    pub catalog: Arc<Catalog>,
    pub http_policy: HttpPolicy,
    /// Whether webhook URLs may name loopback and private addresses.
    pub allow_private_destinations: bool,
    pub dispatch: DispatchHandle,
    /// Test receivers, when this service hosts them.
    pub inbox: Option<inbox::Inbox>,
    /// Failed admin-key attempts per client address.
    pub failed_keys: Arc<auth::FailedKeyLimiter>,
    /// The only `Host` values answered, when the service is for loopback alone.
    pub allowed_hosts: Option<Arc<[String]>>,
    /// What `GET /metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookpanel admin API",
        version = "1",
        description = "Manage webhooks, their secrets and their deliveries. Every /v1/admin route but this document needs `Authorization: Bearer <admin key>`."
    ),
    modifiers(&AdminKeyAuth),
    security(("admin_key" = [])),
    tags(
        (name = "webhooks", description = "Endpoints that receive events"),
        (name = "event-types", description = "The catalog of event types"),
        (name = "events", description = "Emit events to subscribed webhooks"),
        (name = "deliveries", description = "Delivery history, attempts and resends"),
        (name = "keys", description = "Admin keys, their roles, and the audit log of what each changed"),
        (name = "inbox", description = "Test receivers hosted by the embedded service"),
        (name = "service", description = "Liveness"),
    )
)]
struct ApiDoc;

struct AdminKeyAuth;

impl Modify for AdminKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The service's admin key"))
                    .build(),
            ),
        );
    }
}

/// Liveness: answers without authentication.
#[utoipa::path(
    get, path = "/healthz", tag = "service", security(),
    responses((status = 200, body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Every `/v1/admin` route with its OpenAPI description, before authentication.
fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::send_test))
        .routes(routes!(webhooks::recover))
        .routes(routes!(webhooks::expire_previous_secrets))
        .routes(routes!(access::list, access::create))
        .routes(routes!(access::delete))
        .routes(routes!(access::audit))
        .routes(routes!(access::whoami))
        .routes(routes!(rekey::status))
        .routes(routes!(event_types::list))
        .routes(routes!(events::emit))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::resend))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(deliveries::resend_many))
                .layer(DefaultBodyLimit::max(deliveries::BULK_BODY_LIMIT_BYTES)),
        )
        .routes(routes!(stats::get))
        .routes(routes!(inbox::list))
}

/// The routes and their OpenAPI document, collected from the same handlers so that
/// the document cannot drift from what is served.
fn documented_routes(
    admin: OpenApiRouter<AppState>,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1/admin", admin)
        .routes(routes!(healthz))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/v1/admin/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes(admin_routes()).1
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let admin = admin_routes().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin_key,
    ));
    let (router, openapi) = documented_routes(admin);
    let openapi = Arc::new(contract::document(&openapi, &state.contract()));
    router
        .route(
            "/v1/admin/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { Json(openapi) }
            }),
        )
        .route(
            "/metrics",
            get(metrics::get).route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_admin_key,
            )),
        )
        .route(
            "/inbox/{name}",
            axum::routing::post(inbox::receive).layer(DefaultBodyLimit::max(inbox::BODY_MAX_BYTES)),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_allowed_host,
        ))
        .with_state(state)
}

/// The shortest admin key an operator may choose; a generated one is `hpk_` and 43 more.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;
/// Makes sure the service has a key to be reached with: the configured one becomes the
/// admin key named `bootstrap`; with none configured, a service without any key generates
/// one and returns it, to be shown once.
async fn bootstrap_key(
    store: &Store,
    configured: Option<&Zeroizing<String>>,
) -> Result<Option<Zeroizing<String>>, StartError> {
    if let Some(key) = configured {
        let length = key.trim().chars().count();
        if length == 0 {
            return Err(StartError::EmptyAdminKey);
        }
        if length < MIN_ADMIN_KEY_CHARS {
            return Err(StartError::ShortAdminKey(length));
        }
        store
            .set_bootstrap_key(&crypto::admin_key_digest(key.trim()))
            .await?;
        return Ok(None);
    }
    let key = crypto::generate_admin_key()?;
    // Another replica, starting at the same moment, may store the key that counts.
    let added = store.add_first_key(&crypto::admin_key_digest(&key)).await?;
    Ok(added.then_some(key))
}

/// A service answering on [`Self::local_addr`] until [`Self::shutdown`].
pub struct RunningService {
    local_addr: SocketAddr,
    generated_admin_key: Option<Zeroizing<String>>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    dispatcher: Dispatcher,
    /// Prune the history and the audit log, where retentions are set, index events for
    /// payload search, and re-seal secrets during a key rollover.
    background: Vec<JoinHandle<()>>,
    store: Store,
}

impl RunningService {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ip:port`, the base for API paths.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The store this service runs on: the only one on its SQLite file (see
    /// `store/owner.rs`), so tests that look inside the database use this one.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The admin key generated on this first start, to be shown once. Taking it leaves
    /// `None` behind.
    pub fn take_generated_admin_key(&mut self) -> Option<Zeroizing<String>> {
        self.generated_admin_key.take()
    }

    /// Stops accepting requests, finishes those under way, stops the dispatcher and closes
    /// the database.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        let served = self
            .server
            .await
            .unwrap_or_else(|join_error| Err(std::io::Error::other(join_error)));
        for task in self.background {
            // A batch cut short is rolled back: nothing is half deleted or re-sealed.
            task.abort();
            let _ = task.await;
        }
        self.dispatcher.stop().await;
        self.store.close().await;
        served
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// Opens the database, checks keys, binds `config.listen` and starts serving.
pub async fn start(config: ServiceConfig) -> Result<RunningService, StartError> {
    let catalog = match &config.event_types_path {
        Some(path) => Catalog::from_file(path)?,
        None => Catalog::builtin()?,
    };
    let keys = rekey::Keys::from_config(&config.secrets_at_rest)?;
    let store = Store::connect_with(&config.database_url, &config.database).await?;
    let cipher = rekey::secret_cipher(&store, keys).await?;
    let reseal = rekey::spawn_reseal(&store, &cipher, config.reseal);
    let generated_admin_key = bootstrap_key(&store, config.admin_key.as_ref()).await?;
    // On SQLite, claims left by a crashed run of this process are released now rather than
    // when their lease runs out (see `Store::release_claims_at_start`).
    let released = store.release_claims_at_start().await?;
    if released > 0 {
        tracing::info!(released, "released claims left by the previous run");
    }
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let dispatcher = Dispatcher::start(
        store.clone(),
        cipher.clone(),
        config.delivery.clone(),
        Arc::clone(&metrics),
    )?;
    let state = AppState {
        store: store.clone(),
        cipher,
        catalog: Arc::new(catalog),
        http_policy: config.http_policy,
        allow_private_destinations: config.delivery.allow_private_destinations,
        dispatch: dispatcher.handle(),
        inbox: config.inbox.then(inbox::Inbox::default),
        failed_keys: Arc::new(auth::FailedKeyLimiter::with_burst(config.wrong_key_burst)),
        allowed_hosts: None,
        metrics,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut state = state;
    if config.loopback_host_only {
        let port = local_addr.port();
        state.allowed_hosts = Some(Arc::from([
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
        ]));
    }
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let app = router(state);
    let limits = config.http;
    let server = tokio::spawn(async move {
        listen::serve(listener, app, limits, async {
            let _ = shutdown_signal.await;
        })
        .await
    });
    tracing::info!(%local_addr, "admin API listening");
    let background = [
        reseal,
        Some(indexer::spawn(store.clone())),
        config.retention.map(|retention| {
            tokio::spawn(prune_periodically(
                store.clone(),
                retention,
                Pruned::History,
            ))
        }),
        config.audit_retention.map(|retention| {
            tokio::spawn(prune_periodically(store.clone(), retention, Pruned::Audit))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(RunningService {
        local_addr,
        generated_admin_key,
        shutdown,
        server,
        dispatcher,
        background,
        store,
    })
}

/// What a pruning task prunes.
#[derive(Clone, Copy, Debug)]
enum Pruned {
    /// Finished deliveries, their attempts and events (`--retention`).
    History,
    /// Audit entries (`--audit-retention`).
    Audit,
}

/// Prunes at start and then every minute, or more often for a retention shorter than two
/// minutes (half of it, at least a second apart).
async fn prune_periodically(store: Store, retention: std::time::Duration, pruned: Pruned) {
    let every = (retention / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let outcome = match pruned {
            Pruned::History => store.prune(now, retention).await,
            Pruned::Audit => {
                store
                    .prune_audit(
                        now - chrono::TimeDelta::from_std(retention)
                            .unwrap_or(chrono::TimeDelta::MAX),
                    )
                    .await
            }
        };
        match outcome {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "pruned {pruned:?} past its retention"),
            // Tried again on the next tick.
            Err(err) => tracing::warn!("pruning {pruned:?} failed: {err}"),
        }
    }
}
