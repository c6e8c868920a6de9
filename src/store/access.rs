//! Named admin keys and the audit log: who may call the admin API, and what each caller
//! changed. The SQL both backends share is built here; each backend runs it in its own
//! transactions (`sqlite/access.rs`, `postgres/access.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::model::{from_millis, millis};
use super::{Result, Store, StoreError, lookup, names_nothing_stored};
use crate::api::{AdminKey, AuditAction, AuditEntry, Role};

/// The name of the key the service starts with (`--admin-key`, or the one it generates).
pub const BOOTSTRAP_KEY_NAME: &str = "bootstrap";

/// The actor of the changes the service makes on its own account.
pub const SERVICE_ACTOR: &str = "hookpanel";

/// How often a key's `last_used_at` is written, at most, per key and process.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// A key to store: its hash, never the key.
#[derive(Debug)]
pub struct NewAdminKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub key_sha256: String,
}

/// Who presented a key: what the audit log names, and what the key may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHolder {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// A change's entry in the audit log, written in the change's own transaction.
#[derive(Clone, Debug)]
pub struct Audit {
    pub actor: String,
    pub action: AuditAction,
    pub target_id: Option<String>,
    /// A JSON object; never a secret or a key.
    pub detail: serde_json::Value,
}

impl Audit {
    pub fn new(actor: &str, action: AuditAction, target_id: Option<&str>) -> Self {
        Self {
            actor: actor.to_owned(),
            action,
            target_id: target_id.map(str::to_owned),
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    #[must_use]
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// `GET /audit`'s conditions, checked.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The id of the last entry of the previous page.
    pub cursor: Option<String>,
}

/// What this process keeps of the keys: the holders of keys seen, by hash, with when
/// they were read (see [`Store::key_holder`]), and when it last wrote each key's
/// `last_used_at`.
#[derive(Debug, Default)]
pub(super) struct KeyCache {
    holders: HashMap<String, (Instant, KeyHolder)>,
    last_used_written: HashMap<String, Instant>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    role: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl KeyRow {
    fn role(&self) -> Result<Role> {
        Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("key {} has role {:?}", self.id, self.role)))
    }

    fn holder(self) -> Result<KeyHolder> {
        Ok(KeyHolder {
            role: self.role()?,
            id: self.id,
            name: self.name,
        })
    }

    fn into_key(self) -> Result<AdminKey> {
        Ok(AdminKey {
            role: self.role()?,
            created_at: from_millis(self.created_at)?,
            last_used_at: self.last_used_at.map(from_millis).transpose()?,
            id: self.id,
            name: self.name,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    actor: String,
    action: String,
    target_id: Option<String>,
    detail: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self> {
        Ok(Self {
            action: AuditAction::parse(&row.action).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "audit entry {} has action {:?}",
                    row.id, row.action
                ))
            })?,
            at: from_millis(row.at)?,
            detail: serde_json::from_str(&row.detail)
                .map_err(|err| StoreError::Corrupt(format!("audit entry {}: {err}", row.id)))?,
            id: row.id,
            actor: row.actor,
            target_id: row.target_id,
        })
    }
}

/// Every key, oldest first, or the one whose SHA-256 is `key_sha256`, on whichever
/// backend `pool` is.
async fn key_rows<DB>(pool: &sqlx::Pool<DB>, key_sha256: Option<&str>) -> Result<Vec<KeyRow>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    KeyRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    Ok(keys_query::<DB>(key_sha256)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

/// A page of the audit log on whichever backend `pool` is: see [`audit_page`].
async fn audit_rows<DB>(
    pool: &sqlx::Pool<DB>,
    filter: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditRow>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    AuditRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    Ok(audit_page::<DB>(filter, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

fn keys_query<DB>(key_sha256: Option<&str>) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql =
        QueryBuilder::new("SELECT id, name, role, created_at, last_used_at FROM admin_keys");
    if let Some(key_sha256) = key_sha256 {
        sql.push(" WHERE key_sha256 = ")
            .push_bind(key_sha256.to_owned());
    }
    sql.push(" ORDER BY created_at, id");
    sql
}

/// The INSERT of `audit` into the audit log, made at `at`.
pub(super) fn insert_audit<DB>(audit: &Audit, at: DateTime<Utc>) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = QueryBuilder::new(
        "INSERT INTO audit_log (id, at, actor, action, target_id, detail) VALUES (",
    );
    let mut values = sql.separated(", ");
    values
        .push_bind(super::new_ordered_id("aud"))
        .push_bind(millis(at))
        .push_bind(audit.actor.clone())
        .push_bind(audit.action.as_str().to_owned())
        .push_bind(audit.target_id.clone())
        .push_bind(audit.detail.to_string());
    sql.push(")");
    sql
}

/// A page of the audit log, newest first: `limit` entries and one more, which tells
/// whether a next page exists.
fn audit_page<DB>(filter: &AuditFilter, limit: u32) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = QueryBuilder::new(
        "SELECT id, at, actor, action, target_id, detail FROM audit_log WHERE 1 = 1",
    );
    if let Some(actor) = &filter.actor {
        sql.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = filter.action {
        sql.push(" AND action = ")
            .push_bind(action.as_str().to_owned());
    }
    if let Some(target) = &filter.target_id {
        sql.push(" AND target_id = ").push_bind(target.clone());
    }
    if let Some(since) = filter.since {
        sql.push(" AND at >= ").push_bind(millis(since));
    }
    if let Some(until) = filter.until {
        sql.push(" AND at < ").push_bind(millis(until));
    }
    if let Some(cursor) = &filter.cursor {
        sql.push(" AND id < ").push_bind(cursor.clone());
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    sql
}

impl Store {
    /// The holder of the key whose SHA-256 is `key_sha256`, if it is a key of this
    /// service. Served from memory after the first look, as signing secrets are (see
    /// [`Store::secrets_max_age`]): for ever where this process is the database's only
    /// writer (a revocation through it drops the entry), otherwise for at most that age,
    /// so a key revoked through another replica is refused here within it. A key not
    /// found is looked up again each time, so a new key works at once everywhere.
    pub async fn key_holder(&self, key_sha256: &str) -> Result<Option<KeyHolder>> {
        let max_age = self.secrets_max_age();
        let cached = self.shared.keys.lock().ok().and_then(|cache| {
            cache
                .holders
                .get(key_sha256)
                .filter(|(read_at, _)| max_age.is_none_or(|max| read_at.elapsed() < max))
                .map(|(_, holder)| holder.clone())
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let read_at = Instant::now();
        let key_sha256 = lookup(key_sha256)?;
        let rows = on_backend!(self, db => key_rows(db.pool(), Some(key_sha256)).await)?;
        let holder = rows.into_iter().next().map(KeyRow::holder).transpose()?;
        if let Some(holder) = &holder
            && let Ok(mut cache) = self.shared.keys.lock()
        {
            cache
                .holders
                .insert(key_sha256.to_owned(), (read_at, holder.clone()));
        }
        Ok(holder)
    }

    /// Whether `holder`'s use should be written now ([`Store::note_key_use`]): once a
    /// minute per key and process at most. Answered from memory, without waiting.
    pub fn key_use_due(&self, holder: &KeyHolder) -> bool {
        let now = Instant::now();
        self.shared.keys.lock().is_ok_and(|mut cache| {
            let due = cache
                .last_used_written
                .get(&holder.id)
                .is_none_or(|at| now.duration_since(*at) >= LAST_USED_EVERY);
            if due {
                cache.last_used_written.insert(holder.id.clone(), now);
            }
            due
        })
    }

    /// Writes that `key_id` was presented now.
    pub async fn note_key_use(&self, key_id: &str) -> Result<()> {
        on_backend!(self, db => db.touch_admin_key(key_id, millis(Utc::now())).await)
    }

    /// Every key, oldest first.
    pub async fn admin_keys(&self) -> Result<Vec<AdminKey>> {
        let rows = on_backend!(self, db => key_rows(db.pool(), None).await)?;
        rows.into_iter().map(KeyRow::into_key).collect()
    }

    /// Stores a new key. [`StoreError::NameTaken`] when another key has its name.
    pub async fn insert_admin_key(&self, new: &NewAdminKey, audit: &Audit) -> Result<AdminKey> {
        // Milliseconds, as stored, so the answer matches what a listing says.
        let created_at = millis(Utc::now());
        on_backend!(self, db => db.insert_admin_key(new, created_at, audit).await)?;
        Ok(AdminKey {
            id: new.id.clone(),
            name: new.name.clone(),
            role: new.role,
            created_at: from_millis(created_at)?,
            last_used_at: None,
        })
    }

    /// Revokes a key: refused from now on. [`StoreError::LastAdminKey`] for the one admin
    /// key left.
    pub async fn delete_admin_key(&self, id: &str, audit: &Audit) -> Result<()> {
        on_backend!(self, db => db.delete_admin_key(lookup(id)?, audit).await)?;
        if let Ok(mut cache) = self.shared.keys.lock() {
            cache.holders.retain(|_, (_, holder)| holder.id != id);
        }
        Ok(())
    }

    /// Makes the key with SHA-256 `key_sha256` the admin key named `bootstrap`: the one
    /// given to the service at start (`--admin-key`), which counts whatever key had that
    /// name before.
    pub async fn set_bootstrap_key(&self, key_sha256: &str) -> Result<()> {
        on_backend!(self, db => db.set_bootstrap_key(key_sha256).await)?;
        if let Ok(mut cache) = self.shared.keys.lock() {
            cache.holders.clear();
        }
        Ok(())
    }

    /// Stores `key_sha256` as the `bootstrap` admin key if the service has no key at all:
    /// `false` when it has one (another replica, starting at the same moment, may have
    /// stored its own).
    pub async fn add_first_key(&self, key_sha256: &str) -> Result<bool> {
        on_backend!(self, db => db.add_first_key(key_sha256).await)
    }

    /// A page of the audit log, newest first, after `filter.cursor`. Fetches `limit + 1`
    /// entries so the caller can tell whether there is a next page.
    pub async fn audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        if names_nothing_stored(&[&filter.actor, &filter.target_id, &filter.cursor]) {
            return Ok(Vec::new());
        }
        let rows = on_backend!(self, db => audit_rows(db.pool(), filter, limit).await)?;
        rows.into_iter().map(AuditEntry::try_from).collect()
    }

    /// Records `audit` on its own, for a change made of several transactions (a bulk
    /// resend), once they are all done.
    pub async fn record_audit(&self, audit: &Audit) -> Result<()> {
        on_backend!(self, db => db.record_audit(audit).await)
    }

    /// Deletes audit entries made before `before`: the number deleted.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        on_backend!(self, db => db.prune_audit(millis(before)).await)
    }
}
