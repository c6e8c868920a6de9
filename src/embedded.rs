//! The service the panel starts in-process when no remote profile is chosen: the same
//! [`server::start`] as `hookpanel serve`, on 127.0.0.1 with a random port, reached over
//! HTTP exactly like a remote one.
//!
//! Its SQLite file lives in the platform data directory; its admin key and secrets
//! encryption key live in the OS keychain, so the file alone reveals nothing. Without a
//! keychain it runs for this session only: a database in a directory of the system's
//! temporary directory named `hookpanel-session-…`, sealed with a key that exists only in
//! memory. The directory is removed when the panel quits; one a crash left behind (its
//! key died with it, so nothing in it can be read) is removed at the next start.
//!
//! Rolling the encryption key ([`Keychain::roll_local_encryption_key`]) keeps the old key
//! in the keychain as the previous one; the service started next re-seals what it sealed,
//! and once nothing is left the previous key is removed from the keychain.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{self, SecretCipher};
use crate::dispatch::DeliveryConfig;
use crate::keychain::{Account, Keychain, KeychainError};
use crate::server::{self, RunningService, SecretsAtRest, ServiceConfig, StartError};
use crate::store::Store;
use crate::validate::HttpPolicy;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the local database {database} was sealed with a key this keychain does not hold \
         (entry \"local/encryption-key\" of service \"hookpanel\"). Restore that entry, or move \
         the database away to start afresh: its webhook secrets cannot be recovered without the key"
    )]
    KeyMismatch { database: String },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    #[error("generating a session key failed: {0}")]
    Random(#[from] crypto::CryptoError),
}

/// Where the embedded service keeps its data, and for how long.
#[derive(Debug)]
pub enum Persistence {
    /// A SQLite file in the data directory, keys in the OS keychain.
    Kept { database: PathBuf },
    /// No keychain: a temporary database and in-memory keys, gone at exit.
    SessionOnly {
        reason: KeychainError,
        dir: tempfile::TempDir,
    },
}

pub struct Embedded {
    pub service: RunningService,
    pub admin_key: Zeroizing<String>,
    pub persistence: Persistence,
}

/// The embedded service's keys, as the keychain holds them.
struct Keys {
    admin: Zeroizing<String>,
    encryption: Zeroizing<String>,
    /// The key rolled away from, until every secret is re-sealed.
    previous_encryption: Option<Zeroizing<String>>,
}

fn config(database: &Path, keys: &Keys) -> ServiceConfig {
    ServiceConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!("sqlite://{}", database.display()),
        database: crate::store::StoreOptions::default(),
        admin_key: Some(keys.admin.clone()),
        secrets_at_rest: SecretsAtRest::Encrypted {
            key: keys.encryption.clone(),
            previous: keys.previous_encryption.clone(),
        },
        http_policy: HttpPolicy::LoopbackOnly,
        event_types_path: None,
        delivery: DeliveryConfig {
            // A local tool delivers to local receivers, its own inbox among them.
            allow_private_destinations: true,
            ..DeliveryConfig::default()
        },
        inbox: true,
        http: Default::default(),
        wrong_key_burst: server::FAILED_KEYS_BURST,
        loopback_host_only: true,
        retention: Some(server::DEFAULT_RETENTION),
        audit_retention: Some(server::DEFAULT_AUDIT_RETENTION),
        reseal: server::ResealPace::default(),
    }
}

/// Starts the embedded service. `keychain` is `Err` when no OS keychain is reachable.
/// Keychain calls block, so this runs them on a blocking thread.
pub async fn start(
    keychain: Result<Keychain, KeychainError>,
    data_dir: &Path,
) -> Result<Embedded, EmbeddedError> {
    let keys = match &keychain {
        Ok(keychain) => {
            let keychain = keychain.clone();
            tokio::task::spawn_blocking(move || {
                Ok::<_, KeychainError>(Keys {
                    admin: keychain.local_admin_key()?,
                    encryption: keychain.local_encryption_key()?,
                    previous_encryption: keychain.get(&Account::LocalPreviousEncryptionKey)?,
                })
            })
            .await
            .map_err(|err| KeychainError::Failed {
                detail: err.to_string(),
            })?
        }
        Err(err) => Err(err.clone()),
    };
    match (keys, keychain) {
        (Ok(keys), Ok(keychain)) => {
            std::fs::create_dir_all(data_dir).map_err(|source| EmbeddedError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
            let database = data_dir.join("hookpanel.db");
            let service =
                server::start(config(&database, &keys))
                    .await
                    .map_err(|err| match err {
                        StartError::WrongEncryptionKey
                        | StartError::RetiredEncryptionKey { .. }
                        | StartError::SecretsUnderPreviousKey(_)
                        | StartError::DatabaseIsEncrypted
                        | StartError::DatabaseIsPlaintext => EmbeddedError::KeyMismatch {
                            database: database.display().to_string(),
                        },
                        other => other.into(),
                    })?;
            if keys.previous_encryption.is_some() {
                let current = SecretCipher::from_base64_key(&keys.encryption)?;
                tokio::spawn(forget_previous_key_once_resealed(
                    service.store().clone(),
                    current.key_id().to_owned(),
                    keychain,
                ));
            }
            Ok(Embedded {
                service,
                admin_key: keys.admin,
                persistence: Persistence::Kept { database },
            })
        }
        (Err(reason), _) if reason.is_unavailable() => {
            tracing::warn!("{reason}; the embedded service keeps data for this session only");
            let parent = std::env::temp_dir();
            remove_abandoned_sessions(&parent);
            let dir = tempfile::Builder::new()
                .prefix(SESSION_PREFIX)
                .tempdir_in(&parent)
                .map_err(|source| EmbeddedError::DataDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            let keys = Keys {
                admin: crypto::generate_admin_key()?,
                encryption: crypto::generate_encryption_key()?,
                previous_encryption: None,
            };
            let database = dir.path().join(SESSION_DATABASE);
            let service = server::start(config(&database, &keys)).await?;
            Ok(Embedded {
                service,
                admin_key: keys.admin,
                persistence: Persistence::SessionOnly { reason, dir },
            })
        }
        (Err(other), _) | (Ok(_), Err(other)) => Err(other.into()),
    }
}

/// Removes the previous encryption key from the keychain once no secret is sealed with
/// anything but `current_key_id`. Ends then, or when the service has stopped.
async fn forget_previous_key_once_resealed(
    store: Store,
    current_key_id: String,
    keychain: Keychain,
) {
    loop {
        match store.secrets_not_sealed_with(&current_key_id).await {
            Ok(0) => break,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            // Closed: the service stopped; the next start looks again.
            Err(_) => return,
        }
    }
    let forgotten =
        tokio::task::spawn_blocking(move || keychain.delete(&Account::LocalPreviousEncryptionKey))
            .await;
    match forgotten {
        Ok(Ok(_)) => tracing::info!(
            "re-seal finished: the previous encryption key is removed from the keychain"
        ),
        Ok(Err(err)) => {
            tracing::warn!("cannot remove the previous encryption key from the keychain: {err}")
        }
        Err(err) => {
            tracing::warn!("cannot remove the previous encryption key from the keychain: {err}")
        }
    }
}

/// How the directories of session-only databases start.
const SESSION_PREFIX: &str = "hookpanel-session-";
/// The session database's name in its directory.
const SESSION_DATABASE: &str = "session.db";

/// Removes the session directories in `parent` that no running panel owns: a crash left
/// them, and the key that sealed them is gone. A directory is owned while its database's
/// owner lock (`store/sqlite/owner.rs`) is held; one with no lock file yet is left alone,
/// since a panel starting now may be about to take it.
fn remove_abandoned_sessions(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_session = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(SESSION_PREFIX));
        if !is_session || !dir.is_dir() {
            continue;
        }
        let lock = dir.join(format!("{SESSION_DATABASE}-owner"));
        let Ok(file) = std::fs::File::open(&lock) else {
            continue;
        };
        if file.try_lock().is_ok() {
            drop(file);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!("removed {}, left by a session that ended", dir.display()),
                Err(err) => tracing::warn!("cannot remove {}: {err}", dir.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_session_directories_go_and_live_ones_stay() {
        let parent = tempfile::tempdir().expect("temp dir");
        let session = |name: &str| {
            let dir = parent.path().join(format!("{SESSION_PREFIX}{name}"));
            std::fs::create_dir(&dir).expect("dir");
            std::fs::write(dir.join(SESSION_DATABASE), b"sealed").expect("db");
            dir
        };
        let abandoned = session("crashed");
        std::fs::write(abandoned.join("session.db-owner"), b"4242").expect("lock file");
        let live = session("running");
        let held = std::fs::File::create(live.join("session.db-owner")).expect("lock file");
        held.lock().expect("locked");
        let starting = session("starting");
        let unrelated = parent.path().join("something-else");
        std::fs::create_dir(&unrelated).expect("dir");

        remove_abandoned_sessions(parent.path());
        assert!(!abandoned.exists(), "a session no process owns is removed");
        assert!(live.exists(), "a session a process holds stays");
        assert!(starting.exists(), "a session without a lock yet stays");
        assert!(unrelated.exists());
    }
}
