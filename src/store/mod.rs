//! Persistence. Routes and the dispatcher see only [`Store`]'s methods, never SQL, and
//! nothing outside this module knows which backend runs:
//!
//! - `sqlite/`: one process owns a SQLite file (WAL mode, `synchronous=NORMAL`), the
//!   default and the panel's embedded service;
//! - `postgres/`: any number of `hookpanel serve` replicas share one PostgreSQL database.
//!
//! Each backend has its own SQL and its own versioned migrations (`migrations/sqlite/`,
//! `migrations/postgres/`), embedded in the binary and run at start. What a batch of
//! emits means (`emit.rs`), the rows both decode (`model.rs`), the hand-off of new
//! deliveries to this process's dispatcher (`handoff.rs`) and the signing-secret cache
//! are shared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::api::{Attempt, Delivery, DeliveryQuery, StatsBucket, StatsPoint, Webhook};

#[macro_use]
mod model;
#[macro_use]
mod claim_sql;
mod emit;
mod handoff;
mod pace;
mod postgres;
mod query;
mod sqlite;
#[cfg(test)]
mod tests;
pub mod transfer;

pub use access::{Audit, AuditFilter, BOOTSTRAP_KEY_NAME, KeyHolder, NewAdminKey, SERVICE_ACTOR};
pub use handoff::{AttemptSlot, ClaimLimits, HandedJob, Handoff};
pub use model::{
    AttemptOutcome, AttemptRecord, AttemptToRecord, Claimed, DeliveryJob, Emitted, NewEvent,
    NewWebhook, SealedSecret, SecretRotation, WebhookChanges, new_id, new_ordered_id,
};
pub use pace::{ClaimScope, NextDue};
pub use rekey::{Reseal, retired_key_meta};
pub use retention::COUNTS_KEPT;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    UnsupportedUrl(String),
    /// Shared (`Arc`) so that every emit of a batch that met it can be told.
    #[error("the database is unavailable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    /// The database cannot be reached or refused this service at start, in one line
    /// naming where it is.
    #[error("cannot use the database at {location}: {reason}")]
    CannotConnect { location: String, reason: String },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A failure inside this process, not in what is stored.
    #[error("internal error: {0}")]
    Internal(String),
    /// Another process owns this SQLite database (see `sqlite/owner.rs`).
    #[error(
        "the database {} is in use by another Hookpanel process{}: a SQLite database has \
         one owner, so stop that one first (a panel and `hookpanel serve` need a database \
         each)",
        database.display(),
        holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
    )]
    InUse {
        database: std::path::PathBuf,
        holder: Option<u32>,
    },
    #[error("an attempt is under way")]
    Busy,
    /// A delivery cannot go out: its webhook is deactivated, or deleted.
    #[error("its webhook is {}", if *deleted { "deleted" } else { "deactivated" })]
    WebhookInactive { deleted: bool },
    /// A key's name is another key's already.
    #[error("another key has this name")]
    NameTaken,
    /// The one admin key left cannot be deleted.
    #[error("this is the only admin key left")]
    LastAdminKey,
    /// `hookpanel migrate` copies into an empty database only.
    #[error(
        "the target database is not empty (its table {0} holds rows): migrate copies into \
         an empty database only, so nothing was copied"
    )]
    TargetNotEmpty(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        let transient = err.as_database_error().is_some_and(|db| {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                sqlite::is_transient(sqlite)
            } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres::is_transient(pg)
            } else {
                false
            }
        });
        if !matches!(err, sqlx::Error::RowNotFound) {
            crate::metrics::storage_error();
        }
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(Arc::new(err))
            }
            _ if transient => Self::Unavailable(Arc::new(err)),
            _ => Self::Database(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How the store connects, beyond its URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections to a PostgreSQL server (SQLite sizes its own pools).
    pub max_connections: u32,
}

/// PostgreSQL connections per replica by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The database URL schemes [`Store::connect`] accepts.
pub const ACCEPTED_SCHEMES: &str = "sqlite://, postgres:// or postgresql://";

#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::Database),
    Postgres(postgres::Database),
}

/// Runs `$body` with `$db` bound to whichever backend `$store` runs on.
macro_rules! on_backend {
    ($store:expr, $db:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($db) => $body,
            $crate::store::Backend::Postgres($db) => $body,
        }
    };
}

// Use `on_backend!`, so declared after it.
mod access;
mod rekey;
mod resend;
mod retention;
mod search;

/// What this process keeps beside the database, whatever the backend.
#[derive(Debug, Default)]
struct Shared {
    /// Emits waiting to be written by whoever writes next: see [`Store::emit_event`].
    queued_emits: std::sync::Mutex<Vec<emit::QueuedEmit>>,
    /// Signing secrets as last read: see [`Store::signing_secrets`].
    secrets: std::sync::Mutex<SecretCache>,
    /// Where new deliveries go claimed, while a dispatcher runs in this process.
    handoff: std::sync::Mutex<Option<Handoff>>,
    /// Key holders as last read: see [`Store::key_holder`].
    keys: std::sync::Mutex<access::KeyCache>,
    /// Told when this process has written emits, which queued their events for the
    /// search index: see [`Store::emits_written`].
    emits_written: tokio::sync::Notify,
    /// Where retention's pass over events goes on from: see `Store::prune`.
    undelivered_scan: std::sync::Mutex<String>,
}

/// Every webhook's sealed signing secrets as last read, expired ones included. Every
/// change to secrets made through this process drops the cache after it commits;
/// `generation` keeps a read that raced with such a change from putting its stale answer
/// back. Where other processes write too (PostgreSQL replicas), an entry is also read
/// again once it is older than the backend's [`Store::secrets_max_age`].
#[derive(Debug, Default)]
struct SecretCache {
    generation: u64,
    by_webhook: HashMap<String, (Instant, Arc<Vec<SealedSecret>>)>,
}

/// The right to write: on SQLite the write gate, on PostgreSQL the emit gate, held.
type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

/// How long a write may wait for its turn before the service answers 503.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for `gate`, at most [`WRITE_QUEUE_TIMEOUT`].
async fn take_turn(gate: &Arc<tokio::sync::Mutex<()>>) -> Result<WriteTurn> {
    tokio::time::timeout(WRITE_QUEUE_TIMEOUT, Arc::clone(gate).lock_owned())
        .await
        .map_err(|_| StoreError::Unavailable(Arc::new(sqlx::Error::PoolTimedOut)))
}

/// No stored id holds a NUL character (PostgreSQL's text cannot hold one, and every id
/// the store writes is checked text): such an id is not found, on every backend, rather
/// than a database error on one of them.
fn lookup(id: &str) -> Result<&str> {
    if id.contains('\0') {
        Err(StoreError::NotFound)
    } else {
        Ok(id)
    }
}

/// Whether `query` names a text no stored row holds (see [`lookup`]), so that it lists
/// nothing on every backend.
fn matches_nothing(query: &DeliveryQuery) -> bool {
    names_nothing_stored(&[
        &query.webhook_id,
        &query.event_type,
        &query.q,
        &query.cursor,
    ])
}

/// Whether any of `texts` is one no stored row holds (see [`lookup`]).
fn names_nothing_stored(texts: &[&Option<String>]) -> bool {
    texts
        .iter()
        .any(|text| text.as_deref().is_some_and(|t| lookup(t).is_err()))
}

impl Store {
    /// Opens the database at `url` (a SQLite file is created if need be) and brings its
    /// schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Like [`Store::connect`], with `options`.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::Database::connect(url, options).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::Database::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(format!(
                "the database URL must start with {ACCEPTED_SCHEMES} (got {:?})",
                url.split(':').next().unwrap_or_default()
            )));
        };
        Ok(Self {
            backend,
            shared: Arc::default(),
        })
    }

    /// From now on, new deliveries that find a free slot in `handoff` are written claimed
    /// and handed to its dispatcher (see [`Handoff`]).
    pub fn hand_new_deliveries_to(&self, handoff: Handoff) {
        if let Ok(mut current) = self.shared.handoff.lock() {
            *current = Some(handoff);
        }
    }

    /// New deliveries are written unclaimed again, for a dispatcher to claim.
    pub fn stop_handing_over(&self) {
        if let Ok(mut current) = self.shared.handoff.lock() {
            *current = None;
        }
    }

    fn handoff(&self) -> Option<Handoff> {
        self.shared
            .handoff
            .lock()
            .ok()
            .and_then(|current| current.clone())
    }

    pub async fn close(&self) {
        on_backend!(self, db => db.close().await);
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        on_backend!(self, db => db.meta(key).await)
    }

    /// Stores `value` under `key` unless the key holds a value already; returns the value
    /// stored, which is another process's when it got there first.
    pub async fn set_meta_once(&self, key: &str, value: &str) -> Result<String> {
        on_backend!(self, db => db.set_meta_once(key, value).await)
    }

    pub async fn insert_webhook(&self, new: NewWebhook, audit: &Audit) -> Result<Webhook> {
        on_backend!(self, db => db.insert_webhook(&new, audit).await)?;
        self.webhook(&new.id).await
    }

    /// Every webhook that is not deleted, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        on_backend!(self, db => db.webhooks().await)
    }

    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        on_backend!(self, db => db.webhook(lookup(id)?).await)
    }

    pub async fn update_webhook(
        &self,
        id: &str,
        changes: WebhookChanges,
        audit: &Audit,
    ) -> Result<Webhook> {
        on_backend!(self, db => db.update_webhook(lookup(id)?, changes, audit).await)?;
        self.webhook(id).await
    }

    /// Marks a webhook deleted and destroys its secrets. Its delivery history stays.
    pub async fn delete_webhook(&self, id: &str, audit: &Audit) -> Result<()> {
        on_backend!(self, db => db.delete_webhook(lookup(id)?, audit).await)?;
        self.forget_signing_secrets();
        Ok(())
    }

    /// Makes `rotation` the current secret. Every previous secret stays valid until
    /// `rotation.previous_expires_at` at the latest; secrets already expired are destroyed.
    pub async fn rotate_secret(
        &self,
        id: &str,
        rotation: SecretRotation,
        audit: &Audit,
    ) -> Result<()> {
        on_backend!(self, db => db.rotate_secret(lookup(id)?, &rotation, audit).await)?;
        self.forget_signing_secrets();
        Ok(())
    }

    /// Ends the grace period of every previous secret of a webhook now: its deliveries are
    /// signed with the current secret alone from the next attempt (on other replicas,
    /// within their cache's age). The secrets are destroyed.
    pub async fn expire_previous_secrets(&self, id: &str, audit: &Audit) -> Result<()> {
        on_backend!(self, db => db.expire_previous_secrets(lookup(id)?, audit).await)?;
        self.forget_signing_secrets();
        Ok(())
    }

    /// How long a cached signing secret may be used before it is read again: for ever
    /// where this process is the database's only writer, otherwise the bound within which
    /// a rotation or deletion made elsewhere reaches this process's next attempt.
    fn secrets_max_age(&self) -> Option<Duration> {
        match self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(_) => Some(postgres::SECRETS_MAX_AGE),
        }
    }

    /// The secrets a delivery made at `at` is signed with: the current one first, then any
    /// previous one still in its grace period. Served from memory after the first read
    /// (the dispatcher asks for each batch of attempts); a rotation or deletion drops it.
    pub async fn signing_secrets(&self, id: &str, at: DateTime<Utc>) -> Result<Vec<SealedSecret>> {
        let max_age = self.secrets_max_age();
        let cached = self.shared.secrets.lock().ok().map(|cache| {
            let fresh = cache
                .by_webhook
                .get(id)
                .filter(|(read_at, _)| max_age.is_none_or(|max| read_at.elapsed() < max))
                .map(|(_, secrets)| Arc::clone(secrets));
            (cache.generation, fresh)
        });
        let secrets = match cached {
            Some((_, Some(secrets))) => secrets,
            Some((generation, None)) => {
                let read_at = Instant::now();
                let secrets = Arc::new(on_backend!(self, db => db.signing_secrets(id).await)?);
                if let Ok(mut cache) = self.shared.secrets.lock()
                    && cache.generation == generation
                {
                    cache
                        .by_webhook
                        .insert(id.to_owned(), (read_at, Arc::clone(&secrets)));
                }
                secrets
            }
            None => Arc::new(on_backend!(self, db => db.signing_secrets(id).await)?),
        };
        Ok(secrets
            .iter()
            .filter(|secret| secret.expires_at.is_none_or(|expires| expires > at))
            .cloned()
            .collect())
    }

    /// After a committed change to any secret: what was read before it is stale.
    fn forget_signing_secrets(&self) {
        if let Ok(mut cache) = self.shared.secrets.lock() {
            cache.generation += 1;
            cache.by_webhook.clear();
        }
    }

    /// Stores `event` with a single delivery to `webhook_id`, subscribed or not.
    pub async fn emit_to_one(
        &self,
        webhook_id: &str,
        event: NewEvent,
        audit: &Audit,
    ) -> Result<String> {
        on_backend!(self, db => db.emit_to_one(lookup(webhook_id)?, &event, audit).await)
    }

    /// Claims up to `limit` due deliveries, the oldest due first, until `lease_until` and
    /// returns their jobs, keeping to `limits`: nothing of a webhook that has its whole
    /// share of attempts under way, and no more of any other than its room; of a
    /// rate-limited webhook no more than its pace allows now (`pace.rs`). A delivery
    /// claimed by any process is taken by no other until its lease runs out. With
    /// [`ClaimScope::Paced`], only rate-limited webhooks' deliveries are looked at: the
    /// cheap look the dispatcher makes when one of them has its next turn.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        limits: &ClaimLimits,
        scope: ClaimScope,
    ) -> Result<Claimed> {
        on_backend!(self, db => db.claim_due(now, lease_until, limit, limits, scope).await)
    }

    /// When the next unclaimed delivery of a webhook not in `full` falls due, if any is
    /// waiting (those of full webhooks are looked at again when one has room): of the
    /// webhooks without a rate limit (not looked at with [`ClaimScope::Paced`]), and of
    /// those with one, whose deliveries wait for their turn as well.
    pub async fn next_due_at(
        &self,
        now: DateTime<Utc>,
        full: &[String],
        scope: ClaimScope,
    ) -> Result<NextDue> {
        on_backend!(self, db => db.next_due_at(now, full, scope).await)
    }

    /// How many deliveries are due at `now` and held by no attempt, and when the one due
    /// longest fell due.
    pub async fn due_backlog(&self, now: DateTime<Utc>) -> Result<(u64, Option<DateTime<Utc>>)> {
        let (count, oldest) =
            on_backend!(self, db => query::due_backlog(db.pool(), model::millis(now)).await)?;
        Ok((
            u64::try_from(count).unwrap_or(0),
            oldest.map(model::from_millis).transpose()?,
        ))
    }

    /// At start: drops the claims a crashed run of this process left, so that they are
    /// retried at once rather than after their lease. Only where this process is the
    /// database's one owner (SQLite); replicas on PostgreSQL leave every claim to its lease,
    /// since they cannot tell a dead replica's claims from a live one's.
    pub async fn release_claims_at_start(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(db) => db.release_all_claims().await,
            Backend::Postgres(_) => Ok(0),
        }
    }

    /// Gives a claimed delivery back, due again at `until`, with no attempt recorded: for
    /// a delivery that could not be sent for a reason that passes (its secret could not
    /// be read). Its retry cycle does not advance. `false` when it was no longer claimed.
    pub async fn postpone(&self, delivery_id: &str, until: DateTime<Utc>) -> Result<bool> {
        on_backend!(self, db => db.postpone(lookup(delivery_id)?, until).await)
    }

    /// Records attempts and moves each delivery on, releasing its claim, and keeps each
    /// webhook's health up to date: the dispatcher's writes, batched in one transaction.
    /// Returns, per webhook of the batch, since when its attempts have been failing (the
    /// start of the first failed attempt after its latest success; `None` while it
    /// succeeds), read in the same transaction.
    pub async fn record_attempts(
        &self,
        attempts: &[AttemptToRecord<'_>],
    ) -> Result<HashMap<String, Option<DateTime<Utc>>>> {
        if attempts.is_empty() {
            return Ok(HashMap::new());
        }
        on_backend!(self, db => db.record_attempts(attempts).await)
    }

    /// Queues a new attempt now with a fresh retry cycle, whatever the delivery's status.
    /// Refused (`Busy`) while an attempt is under way.
    pub async fn resend(&self, delivery_id: &str, audit: &Audit) -> Result<Delivery> {
        on_backend!(self, db => db.resend(lookup(delivery_id)?, audit).await)?;
        self.delivery(delivery_id).await
    }

    /// Queues every failed delivery of `webhook_id` created at or after `since` again.
    pub async fn recover(
        &self,
        webhook_id: &str,
        since: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<u64> {
        on_backend!(self, db => db.recover(lookup(webhook_id)?, since, audit).await)
    }

    pub async fn delivery(&self, delivery_id: &str) -> Result<Delivery> {
        on_backend!(self, db => db.delivery(lookup(delivery_id)?).await)
    }

    /// A delivery with its event's data (JSON text) and every attempt, oldest first.
    pub async fn delivery_detail(
        &self,
        delivery_id: &str,
    ) -> Result<(Delivery, String, Vec<Attempt>)> {
        on_backend!(self, db => db.delivery_detail(lookup(delivery_id)?).await)
    }

    /// A page of deliveries, newest first, after `query.cursor` (a delivery id). Fetches
    /// `limit + 1` rows so the caller can tell whether there is a next page.
    pub async fn deliveries(&self, query: &DeliveryQuery, limit: u32) -> Result<Vec<Delivery>> {
        if matches_nothing(query) {
            return Ok(Vec::new());
        }
        on_backend!(self, db => db.deliveries(query, limit).await)
    }

    /// How many deliveries `query`'s filters match, up to `cap` and one more (see
    /// [`crate::api::DELIVERY_TOTAL_CAP`]).
    pub async fn count_deliveries(&self, query: &DeliveryQuery, cap: u64) -> Result<u64> {
        if matches_nothing(query) {
            return Ok(0);
        }
        on_backend!(self, db => query::count_deliveries(db.pool(), query, cap).await)
    }

    /// Finished deliveries per time bucket since `since`, by their last attempt's time.
    /// Read from the hourly counts kept as deliveries change, never from the history: an
    /// hour or a day of any size costs the same. A bucket starts on a whole UTC hour or
    /// day, so `since` is rounded down to one.
    pub async fn stats(
        &self,
        webhook_id: Option<&str>,
        since: DateTime<Utc>,
        bucket: StatsBucket,
    ) -> Result<Vec<StatsPoint>> {
        let width = bucket.millis();
        debug_assert_eq!(width % model::HOUR_MILLIS, 0, "buckets are whole hours");
        let start = model::millis(since).div_euclid(width) * width;
        if webhook_id.is_some_and(|id| lookup(id).is_err()) {
            return model::stats_points(start, width, Vec::new());
        }
        let rows = on_backend!(self, db => db.stats(webhook_id, start, width).await)?;
        model::stats_points(start, width, rows)
    }

    /// Deactivates a webhook on the service's own account, saying why, and cancels its
    /// unfinished deliveries; the audit log names the service as the actor. Returns false
    /// when it was already inactive or is gone: of several processes that decide to at
    /// once, one does it.
    pub async fn deactivate_webhook(&self, webhook_id: &str, reason: &str) -> Result<bool> {
        let audit = Audit::new(
            SERVICE_ACTOR,
            crate::api::AuditAction::WebhookDeactivate,
            Some(webhook_id),
        )
        .with_detail(serde_json::json!({ "reason": reason }));
        on_backend!(self, db => db.deactivate_webhook(webhook_id, reason, &audit).await)
    }
}

#[cfg(test)]
impl Store {
    /// The SQLite read pool, for tests that look inside the database.
    fn sqlite_pool(&self) -> &sqlx::SqlitePool {
        match &self.backend {
            Backend::Sqlite(db) => db.pool(),
            Backend::Postgres(_) => panic!("a SQLite store was expected"),
        }
    }
}
