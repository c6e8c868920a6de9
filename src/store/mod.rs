//! Persistence. Routes and the dispatcher see only [`Store`]'s methods, never SQL, so a
//! PostgreSQL backend can be added here without touching them.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a process crash loses nothing that
//! was committed. The schema is created and upgraded by the versioned migrations in
//! `migrations/`, embedded in the binary and run at start.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqlitePool};

use crate::api::{Webhook, WebhookKind};

mod deliveries;
mod handoff;
mod owner;

pub use deliveries::{
    AttemptOutcome, AttemptRecord, AttemptToRecord, Claimed, DeliveryJob, Emitted, NewEvent,
};
pub use handoff::{AttemptSlot, ClaimLimits, HandedJob, Handoff};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    UnsupportedUrl(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A failure inside this process, not in what is stored.
    #[error("internal error: {0}")]
    Internal(String),
    /// Another process owns this SQLite database (see `owner.rs`).
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
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        // SQLite primary result codes for conditions that pass: busy, read-only, I/O
        // error, disk full, cannot open.
        const TRANSIENT_SQLITE_CODES: [i64; 5] = [5, 8, 10, 13, 14];
        let transient_database_error = err
            .as_database_error()
            .and_then(|db| db.code())
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| TRANSIENT_SQLITE_CODES.contains(&(code & 0xff)));
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err)
            }
            _ if transient_database_error => Self::Unavailable(err),
            _ => Self::Database(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A webhook to insert, already validated, with its sealed first secret.
#[derive(Debug)]
pub struct NewWebhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub kind: WebhookKind,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub secret_hint: String,
    pub sealed_secret: Vec<u8>,
}

/// Validated changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub owner: Option<Option<String>>,
}

/// A new current secret replacing the previous one, which keeps signing until
/// `previous_expires_at`.
#[derive(Debug)]
pub struct SecretRotation {
    pub sealed_secret: Vec<u8>,
    pub secret_hint: String,
    pub previous_expires_at: DateTime<Utc>,
}

/// A sealed signing secret as stored; open it with the service's cipher.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub sealed: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct Store {
    /// Connections for reads.
    pool: SqlitePool,
    /// The one connection every write transaction uses: see [`Store::connect`].
    writer: SqlitePool,
    /// Held for the length of every write transaction: see [`Store::begin_write`].
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// Emits waiting to be written by whoever writes next: see [`Store::emit_event`].
    queued_emits: Arc<std::sync::Mutex<Vec<QueuedEmit>>>,
    /// Signing secrets as last read: see [`Store::signing_secrets`].
    secrets: Arc<std::sync::Mutex<SecretCache>>,
    /// Where new deliveries go claimed, while a dispatcher runs in this process.
    handoff: Arc<std::sync::Mutex<Option<Handoff>>>,
    /// Told after each commit; wakes the checkpoint task.
    written: Arc<tokio::sync::Notify>,
    /// The checkpoint task's connection: see [`checkpoint_after_writes`].
    checkpoints: SqlitePool,
    /// Stopped when the last clone of the store is dropped.
    _checkpointer: Arc<AbortOnDrop>,
    /// This process's hold on the SQLite file, let go by [`Store::close`] (or when the
    /// last clone is dropped).
    owner: Arc<std::sync::Mutex<Option<owner::Owner>>>,
}

/// WAL size (in 4 KiB pages) at which a committing writer checkpoints by itself.
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";
/// Log size (in 4 KiB pages, 16 MiB) past which a checkpoint waits for the write turn.
const WAL_RESTART_PAGES: i64 = 4096;
/// How long after a commit the checkpoint task runs: short, so that each checkpoint
/// has little to copy (see [`checkpoint_after_writes`]).
const CHECKPOINT_DELAY: Duration = Duration::from_millis(25);
/// How long without writes before the log is truncated.
const IDLE_BEFORE_TRUNCATE: Duration = Duration::from_secs(1);
/// How long the checkpoint's connection waits for others: a truncation that meets a
/// reader gives up, rather than keep writers waiting behind it.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(50);

/// Every webhook's sealed signing secrets as last read, expired ones included. Only this
/// process writes the database, and every change to secrets goes through [`Store`],
/// which drops the cache after it commits; `generation` keeps a read that raced with
/// such a change from putting its stale answer back.
#[derive(Debug, Default)]
struct SecretCache {
    generation: u64,
    by_webhook: HashMap<String, Arc<Vec<SealedSecret>>>,
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Checkpoints the WAL on its own connection, outside the write gate, shortly after
/// writes. SQLite would otherwise checkpoint inside the commit that fills the log, with
/// two syncs, while every queued writer waits. A passive checkpoint blocks neither
/// writers nor readers; frequent small ones kept `POST /events` p99 at 7 ms where one
/// every 250 ms gave 30 ms and SQLite's own 200 ms and more (BENCHMARKS.md). An idle
/// service does not wake up.
///
/// Once writes have stopped for [`IDLE_BEFORE_TRUNCATE`], the log is emptied and cut to
/// nothing: otherwise it keeps its largest size for good (64 MiB after a burst). Cutting
/// it back as SQLite's `journal_size_limit` does, whenever it starts over under load,
/// raised `POST /events` p99 from 3–5 ms to 50–60 ms.
///
/// Under steady writes a passive checkpoint always lags a little behind the log, and the
/// log starts over only after a checkpoint that caught up with it: an outage's stream of
/// failed attempts grew it past 64 MiB before SQLite's own backstop ran. Once the log
/// holds more than [`WAL_RESTART_PAGES`], the next checkpoint runs in the write turn, so
/// that no write overlaps it and the next write starts the log over.
async fn checkpoint_after_writes(
    connection: SqlitePool,
    written: Arc<tokio::sync::Notify>,
    write_gate: Arc<tokio::sync::Mutex<()>>,
) {
    let mut wrote = false;
    loop {
        if !wrote {
            written.notified().await;
        }
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        if connection.is_closed() {
            return;
        }
        let log_pages = checkpoint(&connection, "PRAGMA wal_checkpoint(PASSIVE)").await;
        if log_pages > WAL_RESTART_PAGES {
            let turn = write_gate.lock().await;
            checkpoint(&connection, "PRAGMA wal_checkpoint(PASSIVE)").await;
            drop(turn);
        }
        wrote = tokio::time::timeout(IDLE_BEFORE_TRUNCATE, written.notified())
            .await
            .is_ok();
        if !wrote && !connection.is_closed() {
            checkpoint(&connection, "PRAGMA wal_checkpoint(TRUNCATE)").await;
        }
    }
}

/// Runs a checkpoint; returns how many pages the log holds (0 when it failed).
async fn checkpoint(connection: &SqlitePool, statement: &'static str) -> i64 {
    match sqlx::query_as::<_, (i64, i64, i64)>(statement)
        .fetch_one(connection)
        .await
    {
        Ok((_busy, log_pages, _checkpointed)) => log_pages,
        Err(err) => {
            tracing::debug!("checkpointing the database log failed: {err}");
            0
        }
    }
}

/// The right to write: the write gate, held.
type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

/// An emit waiting for a shared transaction; `done` gets its outcome, or its event back
/// when the shared transaction failed and it should be written alone.
struct QueuedEmit {
    ticket: u64,
    event: NewEvent,
    done: tokio::sync::oneshot::Sender<std::result::Result<Emitted, NewEvent>>,
}

impl std::fmt::Debug for QueuedEmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedEmit")
            .field("event_id", &self.event.id)
            .finish_non_exhaustive()
    }
}

/// How long a write may wait for its turn before the service answers 503.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A write transaction holding the write gate until it commits or drops.
struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _gate: WriteTurn,
    written: Arc<tokio::sync::Notify>,
}

impl WriteTx {
    async fn commit(self) -> Result<()> {
        self.finish_keeping_turn(true).await.0
    }

    /// Commits, or rolls back on failure, and hands back the turn still held.
    async fn finish_keeping_turn(self, ok: bool) -> (Result<()>, WriteTurn) {
        let Self {
            tx,
            _gate: turn,
            written,
        } = self;
        let result = if ok {
            let committed = tx.commit().await.map_err(StoreError::from);
            if committed.is_ok() {
                written.notify_one();
            }
            committed
        } else {
            tx.rollback().await.map_err(StoreError::from)
        };
        (result, turn)
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::Transaction<'static, sqlx::Sqlite>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

/// The columns [`webhook_from_row`] reads, as a literal for `concat!`: sqlx takes only
/// static SQL text.
macro_rules! webhook_columns {
    () => {
        "id, name, url, kind, description, owner, is_active, disabled_reason, \
         secret_hint, created_at, updated_at, \
         h.last_attempt_at AS last_delivery_at, h.last_status_code, h.last_success_at, \
         h.failing_since, \
         (SELECT COALESCE(SUM(c.succeeded), 0) FROM delivery_counts c \
            WHERE c.webhook_id = webhooks.id AND c.hour_start >= ?) AS success_24h, \
         (SELECT COALESCE(SUM(c.failed), 0) FROM delivery_counts c \
            WHERE c.webhook_id = webhooks.id AND c.hour_start >= ?) AS failed_24h"
    };
}

/// What [`webhook_columns`] selects from.
macro_rules! webhook_tables {
    () => {
        " FROM webhooks LEFT JOIN webhook_health h ON h.webhook_id = webhooks.id"
    };
}

/// Pool settings shared by the read pool, the writer and the checkpoint connection.
fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        // A SQLite connection is a file handle in this process: nothing to ping, and
        // each ping is a round trip to its worker thread.
        .test_before_acquire(false)
        // A COMMIT that fails with an I/O error (a full disk) leaves sqlx counting a
        // transaction that SQLite already rolled back; every BEGIN on that connection
        // then fails. By the time a connection is idle its queued rollback has run, so
        // one still "in a transaction" is such a one: close it, open a fresh one.
        .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
}

impl Store {
    /// A write transaction. Writers queue in order on the in-process gate, so the
    /// service's own connections never fight over SQLite's lock: under load, SQLite's
    /// busy handler sleeps and retries unfairly, and requests time out although the
    /// database is idle most of the time. `BEGIN IMMEDIATE` then takes the lock at once (a
    /// deferred transaction that reads first would fail with SQLITE_BUSY if another
    /// process wrote in between). Every transaction here writes, so all use this.
    async fn begin_write(&self) -> Result<WriteTx> {
        let turn = self.write_turn().await?;
        self.begin_in_turn(turn).await
    }

    /// Waits for this caller's turn to write.
    async fn write_turn(&self) -> Result<WriteTurn> {
        tokio::time::timeout(WRITE_QUEUE_TIMEOUT, self.write_gate.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))
    }

    async fn begin_in_turn(&self, turn: WriteTurn) -> Result<WriteTx> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            _gate: turn,
            written: Arc::clone(&self.written),
        })
    }

    /// Opens (creating if need be) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StoreError::UnsupportedUrl(
                "PostgreSQL storage is not available in this build yet; use a sqlite:// URL"
                    .to_owned(),
            ));
        }
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(format!(
                "the database URL must start with sqlite:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Sorts and statement journals in memory, not in files opened and deleted
            // in /var/tmp for each batch.
            .pragma("temp_store", "MEMORY")
            // A backstop for the checkpoint task. The log starts over only after a
            // checkpoint that no write overlapped; under steady load it reached about
            // 10 000 pages here between such moments.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES);
        // Before anything is written: one process owns the file.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let owner = if in_memory {
            None
        } else {
            Some(owner::claim(options.get_filename())?)
        };
        let pool = pool_options(8).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        // Writes take turns anyway (the write gate), so they share one connection, whose
        // page cache stays warm: in WAL mode a connection drops its whole cache when it
        // finds that another connection has written, so writes spread over the pool read
        // the same index pages again and again.
        let writer = pool_options(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let written = Arc::new(tokio::sync::Notify::new());
        let checkpoint_connection = pool_options(1)
            .connect_with(options.busy_timeout(CHECKPOINT_BUSY_TIMEOUT))
            .await?;
        let write_gate = Arc::default();
        let checkpointer = tokio::spawn(checkpoint_after_writes(
            checkpoint_connection.clone(),
            Arc::clone(&written),
            Arc::clone(&write_gate),
        ));
        Ok(Self {
            pool,
            writer,
            write_gate,
            queued_emits: Arc::default(),
            secrets: Arc::default(),
            handoff: Arc::default(),
            written,
            checkpoints: checkpoint_connection,
            _checkpointer: Arc::new(AbortOnDrop(checkpointer)),
            owner: Arc::new(std::sync::Mutex::new(owner)),
        })
    }

    /// From now on, new deliveries that find a free slot in `handoff` are written claimed
    /// and handed to its dispatcher (see [`Handoff`]).
    pub fn hand_new_deliveries_to(&self, handoff: Handoff) {
        if let Ok(mut current) = self.handoff.lock() {
            *current = Some(handoff);
        }
    }

    /// New deliveries are written unclaimed again, for a dispatcher to claim.
    pub fn stop_handing_over(&self) {
        if let Ok(mut current) = self.handoff.lock() {
            *current = None;
        }
    }

    fn handoff(&self) -> Option<Handoff> {
        self.handoff.lock().ok().and_then(|current| current.clone())
    }

    pub async fn close(&self) {
        self.checkpoints.close().await;
        self.writer.close().await;
        self.pool.close().await;
        if let Ok(mut owner) = self.owner.lock() {
            owner.take();
        }
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        let now = millis(Utc::now());
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, name, url, kind, description, owner, is_active, \
             secret_hint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, TRUE, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.url)
        .bind(new.kind.as_str())
        .bind(&new.description)
        .bind(&new.owner)
        .bind(&new.secret_hint)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        replace_events(&mut tx, &new.id, &new.events).await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (webhook_id, sealed, created_at) VALUES (?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.sealed_secret)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        self.webhook(&new.id).await
    }

    /// Every webhook that is not deleted, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            webhook_columns!(),
            webhook_tables!(),
            " WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(health_window_start())
        .bind(health_window_start())
        .fetch_all(&self.pool)
        .await?;
        let mut events: HashMap<String, Vec<String>> = HashMap::new();
        let event_rows = sqlx::query(
            "SELECT e.webhook_id, e.event_type FROM webhook_events e \
             JOIN webhooks w ON w.id = e.webhook_id WHERE w.deleted_at IS NULL \
             ORDER BY e.webhook_id, e.event_type",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in event_rows {
            events
                .entry(row.try_get("webhook_id")?)
                .or_default()
                .push(row.try_get("event_type")?);
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let webhook_events = events.remove(&id).unwrap_or_default();
                webhook_from_row(row, webhook_events)
            })
            .collect()
    }

    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        let row = sqlx::query(concat!(
            "SELECT ",
            webhook_columns!(),
            webhook_tables!(),
            " WHERE id = ? AND deleted_at IS NULL"
        ))
        .bind(health_window_start())
        .bind(health_window_start())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let events = sqlx::query_scalar(
            "SELECT event_type FROM webhook_events WHERE webhook_id = ? ORDER BY event_type",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        webhook_from_row(&row, events)
    }

    pub async fn update_webhook(&self, id: &str, changes: WebhookChanges) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ? AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        // Reactivating clears the reason the service gave for deactivating.
        let clear_reason = changes.is_active == Some(true);
        sqlx::query(
            "UPDATE webhooks SET \
               name = COALESCE(?, name), \
               url = COALESCE(?, url), \
               is_active = COALESCE(?, is_active), \
               disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
               description = CASE WHEN ? THEN ? ELSE description END, \
               owner = CASE WHEN ? THEN ? ELSE owner END, \
               updated_at = ? \
             WHERE id = ?",
        )
        .bind(changes.name)
        .bind(changes.url)
        .bind(changes.is_active)
        .bind(clear_reason)
        .bind(changes.description.is_some())
        .bind(changes.description.flatten())
        .bind(changes.owner.is_some())
        .bind(changes.owner.flatten())
        .bind(millis(Utc::now()))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if let Some(events) = &changes.events {
            replace_events(&mut tx, id, events).await?;
        }
        if changes.is_active == Some(false) {
            deliveries::cancel_unfinished(&mut tx, id, "cancelled: the webhook was deactivated")
                .await?;
        }
        tx.commit().await?;
        self.webhook(id).await
    }

    /// Marks a webhook deleted and destroys its secrets. Its delivery history stays.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = millis(Utc::now());
        let deleted = sqlx::query(
            "UPDATE webhooks SET deleted_at = ?, is_active = FALSE, updated_at = ? \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        deliveries::cancel_unfinished(&mut tx, id, "cancelled: the webhook was deleted").await?;
        sqlx::query("DELETE FROM webhook_events WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        self.forget_signing_secrets();
        Ok(())
    }

    /// Makes `rotation` the current secret. Every previous secret stays valid until
    /// `rotation.previous_expires_at` at the latest; secrets already expired are destroyed.
    pub async fn rotate_secret(&self, id: &str, rotation: SecretRotation) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = millis(Utc::now());
        let updated = sqlx::query(
            "UPDATE webhooks SET secret_hint = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&rotation.secret_hint)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
        )
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // The replaced secret expires after the grace period, and no older one outlives it:
        // a rotation with no grace stops every previous secret at once.
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) \
             WHERE webhook_id = ?2",
        )
        .bind(millis(rotation.previous_expires_at))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_secrets (webhook_id, sealed, created_at) VALUES (?, ?, ?)",
        )
        .bind(id)
        .bind(&rotation.sealed_secret)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        self.forget_signing_secrets();
        Ok(())
    }

    /// The secrets a delivery made at `at` is signed with: the current one first, then any
    /// previous one still in its grace period. Served from memory after the first read
    /// (the dispatcher asks for each batch of attempts); a rotation or deletion drops it.
    pub async fn signing_secrets(&self, id: &str, at: DateTime<Utc>) -> Result<Vec<SealedSecret>> {
        let cached = self
            .secrets
            .lock()
            .ok()
            .map(|cache| (cache.generation, cache.by_webhook.get(id).map(Arc::clone)));
        let secrets = match cached {
            Some((_, Some(secrets))) => secrets,
            Some((generation, None)) => {
                let secrets = Arc::new(self.read_signing_secrets(id).await?);
                if let Ok(mut cache) = self.secrets.lock()
                    && cache.generation == generation
                {
                    cache.by_webhook.insert(id.to_owned(), Arc::clone(&secrets));
                }
                secrets
            }
            None => Arc::new(self.read_signing_secrets(id).await?),
        };
        Ok(secrets
            .iter()
            .filter(|secret| secret.expires_at.is_none_or(|expires| expires > at))
            .cloned()
            .collect())
    }

    /// Every stored secret of a webhook, the current one first, then by expiry.
    async fn read_signing_secrets(&self, id: &str) -> Result<Vec<SealedSecret>> {
        let rows = sqlx::query(
            "SELECT sealed, expires_at FROM webhook_secrets WHERE webhook_id = ? \
             ORDER BY expires_at IS NOT NULL, id DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SealedSecret {
                    sealed: row.try_get("sealed")?,
                    expires_at: row
                        .try_get::<Option<i64>, _>("expires_at")?
                        .map(from_millis)
                        .transpose()?,
                })
            })
            .collect()
    }

    /// After a committed change to any secret: what was read before it is stale.
    fn forget_signing_secrets(&self) {
        if let Ok(mut cache) = self.secrets.lock() {
            cache.generation += 1;
            cache.by_webhook.clear();
        }
    }
}

async fn replace_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    events: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM webhook_events WHERE webhook_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for event in events {
        sqlx::query("INSERT INTO webhook_events (webhook_id, event_type) VALUES (?, ?)")
            .bind(id)
            .bind(event)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Width of the buckets in `delivery_counts`.
const HOUR_MILLIS: i64 = 3_600_000;

/// The start of the window a webhook's 24 h counts cover: the current UTC hour and the
/// 23 before it, as whole buckets of `delivery_counts`.
fn health_window_start() -> i64 {
    millis(Utc::now()).div_euclid(HOUR_MILLIS) * HOUR_MILLIS - 23 * HOUR_MILLIS
}

fn webhook_from_row(row: &sqlx::sqlite::SqliteRow, events: Vec<String>) -> Result<Webhook> {
    let kind: String = row.try_get("kind")?;
    let count = |column: &str| -> Result<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
    };
    Ok(Webhook {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        events,
        kind: WebhookKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook kind {kind:?}")))?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        is_active: row.try_get("is_active")?,
        disabled_reason: row.try_get("disabled_reason")?,
        secret_hint: row.try_get("secret_hint")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        success_24h: count("success_24h")?,
        failed_24h: count("failed_24h")?,
        last_delivery_at: optional_time(row, "last_delivery_at")?,
        last_success_at: optional_time(row, "last_success_at")?,
        failing_since: optional_time(row, "failing_since")?,
        last_status_code: row
            .try_get::<Option<i64>, _>("last_status_code")?
            .and_then(|code| u16::try_from(code).ok()),
    })
}

/// A nullable time column.
fn optional_time(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(from_millis)
        .transpose()
}

/// A new sortable id: `prefix_` + a ULID (time-ordered, 128 bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}
