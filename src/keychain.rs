//! Secrets in the operating system's credential store, over keyring-core.
//!
//! | platform | store |
//! |---|---|
//! | Linux, BSD | Secret Service over D-Bus (GNOME Keyring, KWallet), pure-Rust client (zbus) |
//! | macOS | the login Keychain |
//! | Windows | Credential Manager |
//! | Linux, opt-in | the kernel keyring (keyutils) for headless servers: see [`Keychain::kernel`] |
//!
//! Every entry is under the service `hookpanel`; the account names what it holds (see
//! [`Account`]). The value is the secret exactly as shown. Nothing ever falls back to a
//! file: when no store is reachable the caller gets [`KeychainError::Unavailable`] and must
//! tell the user the secret was not saved.
//!
//! Every call may block (a store can prompt or wait on D-Bus): call from a blocking thread,
//! never from the UI thread or directly inside an async task.

use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as StoreError};
use zeroize::Zeroizing;

use crate::crypto;

/// The service name of every Hookpanel entry.
pub const SERVICE: &str = "hookpanel";

/// The profile name of the embedded service the panel starts.
pub const LOCAL_PROFILE: &str = "local";

/// What an entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// A webhook's signing secret, as shown once: `<profile>/webhook/<webhook id>`.
    WebhookSecret { profile: String, webhook_id: String },
    /// A remote service's admin key: `<profile>/admin-key`.
    AdminKey { profile: String },
    /// The embedded service's secrets-encryption key: `local/encryption-key`.
    LocalEncryptionKey,
    /// The key the embedded service rolls away from, kept until every secret is
    /// re-sealed: `local/previous-encryption-key`.
    LocalPreviousEncryptionKey,
    /// The embedded service's admin key: `local/admin-key`.
    LocalAdminKey,
}

impl Account {
    pub fn webhook_secret(profile: &str, webhook_id: &str) -> Self {
        Self::WebhookSecret {
            profile: profile.to_owned(),
            webhook_id: webhook_id.to_owned(),
        }
    }

    pub fn admin_key(profile: &str) -> Self {
        Self::AdminKey {
            profile: profile.to_owned(),
        }
    }

    /// The account name in the store.
    pub fn name(&self) -> String {
        match self {
            Self::WebhookSecret {
                profile,
                webhook_id,
            } => format!("{profile}/webhook/{webhook_id}"),
            Self::AdminKey { profile } => format!("{profile}/admin-key"),
            Self::LocalEncryptionKey => format!("{LOCAL_PROFILE}/encryption-key"),
            Self::LocalPreviousEncryptionKey => format!("{LOCAL_PROFILE}/previous-encryption-key"),
            Self::LocalAdminKey => format!("{LOCAL_PROFILE}/admin-key"),
        }
    }
}

/// Why the keychain could not do what was asked. Messages are for operators and never
/// contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    #[error("No OS keychain is available: the secret was NOT saved — copy it now. ({detail})")]
    Unavailable { detail: String },
    #[error(
        "The OS keychain is locked or refused access: the secret was NOT saved — copy it now. ({detail})"
    )]
    Refused { detail: String },
    #[error("The OS keychain failed: {detail}")]
    Failed { detail: String },
}

impl KeychainError {
    fn from_store(err: StoreError) -> Self {
        // Never format the error's payload: BadEncoding and BadDataFormat carry the secret.
        match err {
            StoreError::NoStorageAccess(platform) => Self::Refused {
                detail: platform.to_string(),
            },
            StoreError::PlatformFailure(platform) => Self::Unavailable {
                detail: platform.to_string(),
            },
            StoreError::NoDefaultStore => Self::Unavailable {
                detail: "no credential store is set up".to_owned(),
            },
            StoreError::BadEncoding(_) | StoreError::BadDataFormat(..) => Self::Failed {
                detail: "the stored value is not in the expected format".to_owned(),
            },
            other @ (StoreError::NoEntry
            | StoreError::BadStoreFormat(_)
            | StoreError::TooLong(..)
            | StoreError::Invalid(..)
            | StoreError::Ambiguous(_)
            | StoreError::NotSupportedByStore(_)) => Self::Failed {
                detail: other.to_string(),
            },
            _ => Self::Failed {
                detail: "unknown keychain error".to_owned(),
            },
        }
    }

    /// True when the secret cannot be kept on this machine at all.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Refused { .. })
    }
}

/// A handle on one credential store.
#[derive(Clone)]
pub struct Keychain {
    store: Arc<CredentialStore>,
    description: &'static str,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keychain")
            .field("store", &self.description)
            .finish_non_exhaustive()
    }
}

impl Keychain {
    /// The platform's native store. On Linux this connects to the Secret Service on the
    /// session bus, and fails with [`KeychainError::Unavailable`] where there is none.
    pub fn platform() -> Result<Self, KeychainError> {
        #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
        {
            let store = zbus_secret_service_keyring_store::Store::new()
                .map_err(KeychainError::from_store)?;
            Ok(Self {
                store,
                description: "Secret Service (D-Bus)",
            })
        }
        #[cfg(target_os = "macos")]
        {
            let store = apple_native_keyring_store::keychain::Store::new()
                .map_err(KeychainError::from_store)?;
            Ok(Self {
                store,
                description: "macOS Keychain",
            })
        }
        #[cfg(target_os = "windows")]
        {
            let store =
                windows_native_keyring_store::Store::new().map_err(KeychainError::from_store)?;
            Ok(Self {
                store,
                description: "Windows Credential Manager",
            })
        }
        #[cfg(not(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "macos",
            target_os = "windows"
        )))]
        {
            Err(KeychainError::Unavailable {
                detail: "this platform has no supported credential store".to_owned(),
            })
        }
    }

    /// The Linux kernel keyring (keyutils), an explicit opt-in for headless servers with no
    /// Secret Service. It keeps secrets in kernel memory only, for the login session: they
    /// are gone after a reboot (or when the session keyring ends), so use it for keys that
    /// can be provided again, not as the only copy of a webhook secret.
    #[cfg(target_os = "linux")]
    pub fn kernel() -> Result<Self, KeychainError> {
        let store =
            linux_keyutils_keyring_store::Store::new().map_err(KeychainError::from_store)?;
        Ok(Self {
            store,
            description: "Linux kernel keyring (keyutils)",
        })
    }

    /// An in-memory store, for tests of error paths only.
    pub fn in_memory() -> Self {
        Self {
            store: keyring_core::mock::Store::new()
                .unwrap_or_else(|_| unreachable!("the mock store cannot fail")),
            description: "in-memory (test)",
        }
    }

    /// Which store this is, in words.
    pub fn description(&self) -> &'static str {
        self.description
    }

    fn entry(&self, account: &Account) -> Result<Entry, KeychainError> {
        self.store
            .build(SERVICE, &account.name(), None)
            .map_err(KeychainError::from_store)
    }

    /// Stores `secret`, replacing what was there.
    pub fn set(&self, account: &Account, secret: &str) -> Result<(), KeychainError> {
        self.entry(account)?
            .set_password(secret)
            .map_err(KeychainError::from_store)
    }

    /// The stored secret, or `None` when there is none.
    pub fn get(&self, account: &Account) -> Result<Option<Zeroizing<String>>, KeychainError> {
        match self.entry(account)?.get_password() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(StoreError::NoEntry) => Ok(None),
            Err(err) => Err(KeychainError::from_store(err)),
        }
    }

    /// Whether a secret is stored for `account`.
    pub fn contains(&self, account: &Account) -> Result<bool, KeychainError> {
        self.get(account).map(|secret| secret.is_some())
    }

    /// Deletes the entry; `false` when there was none.
    pub fn delete(&self, account: &Account) -> Result<bool, KeychainError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(StoreError::NoEntry) => Ok(false),
            Err(err) => Err(KeychainError::from_store(err)),
        }
    }

    /// The embedded service's secrets-encryption key, created and stored on first use.
    pub fn local_encryption_key(&self) -> Result<Zeroizing<String>, KeychainError> {
        self.get_or_create(
            &Account::LocalEncryptionKey,
            crypto::generate_encryption_key,
        )
    }

    /// Makes a new key the embedded service's encryption key, keeping the one it replaces
    /// as the previous key until every secret is re-sealed (see `embedded.rs`). Refused
    /// while an earlier roll is still under way.
    pub fn roll_local_encryption_key(&self) -> Result<(), KeychainError> {
        if self.contains(&Account::LocalPreviousEncryptionKey)? {
            return Err(KeychainError::Failed {
                detail: "the previous encryption key is still in use: the last roll has not \
                         finished re-sealing"
                    .to_owned(),
            });
        }
        let current = self.local_encryption_key()?;
        let next = crypto::generate_encryption_key().map_err(|err| KeychainError::Failed {
            detail: err.to_string(),
        })?;
        // In this order: a crash in between leaves the current key as both, which starts
        // as before; the previous key is never lost before what it sealed is re-sealed.
        self.set(&Account::LocalPreviousEncryptionKey, &current)?;
        self.set(&Account::LocalEncryptionKey, &next)
    }

    /// The embedded service's admin key, created and stored on first use.
    pub fn local_admin_key(&self) -> Result<Zeroizing<String>, KeychainError> {
        self.get_or_create(&Account::LocalAdminKey, crypto::generate_admin_key)
    }

    fn get_or_create(
        &self,
        account: &Account,
        generate: fn() -> Result<Zeroizing<String>, crypto::CryptoError>,
    ) -> Result<Zeroizing<String>, KeychainError> {
        // Two callers must not both find nothing and store different keys: a database
        // sealed with the first would then be unreadable with the one that stays.
        // (Across processes this is not guarded: start one panel at a time.)
        static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _creating = CREATING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = self.get(account)? {
            return Ok(existing);
        }
        let created = generate().map_err(|err| KeychainError::Failed {
            detail: err.to_string(),
        })?;
        self.set(account, &created)?;
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_documented_scheme() {
        assert_eq!(
            Account::webhook_secret("prod", "wh_1").name(),
            "prod/webhook/wh_1"
        );
        assert_eq!(Account::admin_key("prod").name(), "prod/admin-key");
        assert_eq!(Account::LocalEncryptionKey.name(), "local/encryption-key");
        assert_eq!(Account::LocalAdminKey.name(), "local/admin-key");
        assert_eq!(
            Account::LocalPreviousEncryptionKey.name(),
            "local/previous-encryption-key"
        );
    }

    #[test]
    fn store_errors_become_operator_messages_without_secrets() {
        let secret = b"whsec_do_not_print".to_vec();
        let err = KeychainError::from_store(StoreError::BadEncoding(secret));
        assert!(!err.to_string().contains("whsec_do_not_print"));
        let unavailable = KeychainError::Unavailable {
            detail: "no bus".to_owned(),
        };
        assert!(
            unavailable
                .to_string()
                .contains("the secret was NOT saved — copy it now")
        );
        assert!(unavailable.is_unavailable());
    }

    #[test]
    fn in_memory_round_trip_and_local_key() {
        let keychain = Keychain::in_memory();
        let account = Account::webhook_secret("local", "wh_x");
        assert_eq!(keychain.get(&account), Ok(None));
        keychain.set(&account, "whsec_one").expect("set");
        assert_eq!(
            keychain
                .get(&account)
                .expect("get")
                .as_deref()
                .map(String::as_str),
            Some("whsec_one")
        );
        assert!(keychain.delete(&account).expect("delete"));
        assert!(!keychain.delete(&account).expect("delete again"));
        let key = keychain.local_encryption_key().expect("created");
        assert_eq!(*keychain.local_encryption_key().expect("read back"), *key);
        let admin = keychain.local_admin_key().expect("created");
        assert!(admin.starts_with("hpk_"));
        assert_ne!(*admin, *key);
        assert_eq!(*keychain.local_admin_key().expect("read back"), *admin);
    }
}
