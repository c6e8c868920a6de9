//! PostgreSQL: any number of `hookpanel serve` replicas on one database. Nothing here
//! assumes this process is alone: claims are leases taken with `FOR UPDATE SKIP LOCKED`,
//! an event's id is its table's key, the one-off decisions (deactivating a failing
//! webhook) are conditional updates that one replica wins, and migrations run under
//! sqlx's advisory lock, so replicas starting together run each one once.
//!
//! Statements take their rows as arrays (`UNNEST`), so a batch of any size is one
//! statement with one text, prepared once per connection.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgPoolOptions};

use super::emit::{BatchWritten, emit_batch};
use super::handoff::Handoff;
use super::{NewEvent, Result, StoreError, StoreOptions, WriteTurn, take_turn};

mod access;
mod attempts;
mod claims;
mod emits;
mod history;
mod rekey;
mod search;
mod webhooks;

/// How long a replica signs with a secret it read before reading it again: the bound
/// within which a rotation or deletion made through another replica reaches this one.
pub(super) const SECRETS_MAX_AGE: Duration = Duration::from_millis(500);

/// Connections each replica keeps open, used or not.
const WARM_CONNECTIONS: u32 = 4;

/// How long connecting at start, or waiting for a free connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a PostgreSQL error is a condition that passes: the connection or the server
/// went away or is starting, resources ran out, or a transaction lost a race it may run
/// again (serialization failure, deadlock).
pub(super) fn is_transient(err: &PgDatabaseError) -> bool {
    let code = err.code();
    ["08", "53", "57P01", "57P02", "57P03", "40001", "40P01"]
        .iter()
        .any(|transient| code.starts_with(transient))
}

#[derive(Clone, Debug)]
pub(super) struct Database {
    pool: PgPool,
    /// Held while this process writes a batch of emits (see `Store::emit_event`): the
    /// emits that arrive meanwhile wait and share the next transaction.
    emit_gate: Arc<tokio::sync::Mutex<()>>,
    /// The last event id this process indexed (see `search.rs`).
    search_cursor: Arc<std::sync::Mutex<Option<String>>>,
}

/// Why connecting failed, in one line: the server's own message, or the OS's.
fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

/// Where a URL points, for messages: host, port and database, never the password.
fn location(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}

impl Database {
    pub(super) async fn connect(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|err| StoreError::CannotConnect {
            location: "the --db URL".to_owned(),
            reason: reason(&err),
        })?;
        let cannot_connect = |reason: String| StoreError::CannotConnect {
            location: location(&connect),
            reason,
        };
        // One connection first, for its error: a pool retries until its timeout and then
        // reports only that it timed out.
        let first = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&connect))
            .await
            .map_err(|_| {
                cannot_connect(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
            })?
            .map_err(|err| cannot_connect(reason(&err)))?;
        let _ = first.close().await;
        let max_connections = options.max_connections.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // The emit writer, the attempt writer, the claims and a read or two stay
            // connected: a connection opened under load (a server process forked, every
            // statement prepared again) took tens of milliseconds, the p99 of emits.
            .min_connections(WARM_CONNECTIONS.min(max_connections))
            // No ping before each use: it was one more round trip per batch. A connection
            // that broke fails its statement (503) and is dropped.
            .test_before_acquire(false)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(connect.clone())
            .await
            .map_err(|err| cannot_connect(reason(&err)))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            emit_gate: Arc::default(),
            search_cursor: Arc::default(),
        })
    }

    pub(super) async fn emit_turn(&self) -> Result<WriteTurn> {
        take_turn(&self.emit_gate).await
    }

    /// Writes a batch of emits: one statement for the whole batch (see
    /// `emits.rs`), and one more only for deliveries written claimed that find no slot.
    pub(super) async fn write_emits(
        &self,
        turn: WriteTurn,
        events: &[&NewEvent],
        now: i64,
        handoff: Option<&Handoff>,
    ) -> BatchWritten {
        let written = async {
            let mut connection = self.pool.acquire().await?;
            emit_batch(&mut *connection, events, now, handoff).await
        }
        .await;
        (written, Some(turn))
    }

    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    pub(super) async fn set_meta_once(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let stored = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }
}
