//! SQLite: one process owns the file (see `owner.rs`). WAL mode with
//! `synchronous=NORMAL`: a process crash loses nothing that was committed. Writes take
//! turns on an in-process gate and share one connection; a background task checkpoints
//! the log (see [`checkpoint_after_writes`]).

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteError, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, SqlitePool};

use super::emit::{BatchWritten, emit_batch};
use super::handoff::Handoff;
use super::{NewEvent, Result, StoreError, WriteTurn, take_turn};

mod access;
mod attempts;
mod claims;
mod emits;
mod history;
mod owner;
mod rekey;
mod search;
mod webhooks;

/// Whether a SQLite error is a condition that passes: busy, read-only, I/O error, disk
/// full, cannot open (primary result codes).
pub(super) fn is_transient(err: &SqliteError) -> bool {
    const TRANSIENT_SQLITE_CODES: [i64; 5] = [5, 8, 10, 13, 14];
    use sqlx::error::DatabaseError as _;
    err.code()
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| TRANSIENT_SQLITE_CODES.contains(&(code & 0xff)))
}

/// Rows per multi-row statement (or ids per `IN` list), within SQLite's bound-parameter
/// limit.
const ROWS_PER_STATEMENT: usize = 256;

#[derive(Clone, Debug)]
pub(super) struct Database {
    /// Connections for reads.
    pool: SqlitePool,
    /// The one connection every write transaction uses: see [`Database::connect`].
    writer: SqlitePool,
    /// Held for the length of every write transaction: see [`Database::begin_write`].
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// Held shared by each bulk resend while it runs: see [`Database::hold_claims_back`].
    bulk_resends: Arc<tokio::sync::RwLock<()>>,
    /// Told after each commit; wakes the checkpoint task.
    written: Arc<tokio::sync::Notify>,
    /// The checkpoint task's connection: see [`checkpoint_after_writes`].
    checkpoints: SqlitePool,
    /// Stopped when the last clone of the store is dropped.
    _checkpointer: Arc<AbortOnDrop>,
    /// This process's hold on the SQLite file, let go by [`Database::close`] (or when the
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
/// How long a claim waits while a bulk resend runs: see [`Database::hold_claims_back`].
pub(super) const CLAIMS_GIVE_WAY_FOR: Duration = Duration::from_millis(100);
/// How long without writes before the log is truncated.
const IDLE_BEFORE_TRUNCATE: Duration = Duration::from_secs(1);
/// How long the checkpoint's connection waits for others: a truncation that meets a
/// reader gives up, rather than keep writers waiting behind it.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(50);

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

/// Claims held back while this is held: see [`Database::hold_claims_back`].
pub(super) type ClaimsHeldBack = tokio::sync::OwnedRwLockReadGuard<()>;

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

impl Database {
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

    /// Runs `statement` in a write transaction of its own; the rows it changed.
    async fn write_one(
        &self,
        statement: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let changed = statement.execute(&mut **tx).await?.rows_affected();
        tx.commit().await?;
        Ok(changed)
    }

    /// Waits for this caller's turn to write.
    pub(super) async fn write_turn(&self) -> Result<WriteTurn> {
        take_turn(&self.write_gate).await
    }

    /// Makes the dispatcher's claims wait, each up to [`CLAIMS_GIVE_WAY_FOR`], until the
    /// guard is dropped: held by a bulk resend while it runs. Its pages and the claims
    /// take turns on the one writer. The deliveries each page queued were claimed and
    /// sent at once, and those claims, and the records of the attempts they started,
    /// each took a turn before the next page: 100 000 were queued in 1.50–2.15 s. With
    /// claims waiting 100 ms, 1.04–1.44 s, and all 100 000 were delivered sooner too
    /// (BENCHMARKS.md, 2026-12-03). The deliveries an emit hands straight to the
    /// dispatcher, and the records of attempts under way, do not wait.
    pub(in crate::store) async fn hold_claims_back(&self) -> ClaimsHeldBack {
        Arc::clone(&self.bulk_resends).read_owned().await
    }

    /// Waits while a bulk resend holds claims back ([`Database::hold_claims_back`]), at
    /// most [`CLAIMS_GIVE_WAY_FOR`].
    async fn give_way_to_bulk_resends(&self) {
        // Taken and let go at once: the wait is all that is wanted.
        let _ = tokio::time::timeout(CLAIMS_GIVE_WAY_FOR, self.bulk_resends.write()).await;
    }

    async fn begin_in_turn(&self, turn: WriteTurn) -> Result<WriteTx> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            _gate: turn,
            written: Arc::clone(&self.written),
        })
    }

    /// Writes a batch of emits in one transaction in `turn`. A handful of statements for
    /// the whole batch, whatever its size: with sqlx's SQLite driver every statement is a
    /// hop to its worker thread, and those hops, not SQLite, are the cost.
    pub(super) async fn write_emits(
        &self,
        turn: WriteTurn,
        events: &[&NewEvent],
        now: i64,
        handoff: Option<&Handoff>,
    ) -> BatchWritten {
        match self.begin_in_turn(turn).await {
            Ok(mut tx) => {
                let written = emit_batch(&mut tx.tx, events, now, handoff).await;
                let (finished, turn) = tx.finish_keeping_turn(written.is_ok()).await;
                (
                    written.and_then(|outcomes| finished.map(|()| outcomes)),
                    Some(turn),
                )
            }
            Err(err) => (Err(err), None),
        }
    }

    /// Opens (creating if need be) the database at `url` and brings its schema up to date.
    pub(super) async fn connect(url: &str) -> Result<Self> {
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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
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
            bulk_resends: Arc::default(),
            written,
            checkpoints: checkpoint_connection,
            _checkpointer: Arc::new(AbortOnDrop(checkpointer)),
            owner: Arc::new(std::sync::Mutex::new(owner)),
        })
    }

    pub(in crate::store) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn close(&self) {
        self.checkpoints.close().await;
        self.writer.close().await;
        self.pool.close().await;
        if let Ok(mut owner) = self.owner.lock() {
            owner.take();
        }
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    pub(super) async fn set_meta_once(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        let stored = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }
}
