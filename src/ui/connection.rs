//! Reaching a service: the embedded one, or a remote one from a saved profile. Runs in the
//! background; every failure comes back as a sentence an operator can act on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::client::{Client, ClientError};
use crate::embedded::{self, Embedded, Persistence};
use crate::keychain::{Account, Keychain, KeychainError};

/// A remote service the panel can manage. Its admin key lives in the keychain under
/// `<name>/admin-key`, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteProfile {
    pub name: String,
    pub base_url: String,
}

/// What the status bar warns of while connected to `base_url`: plain http to a host other
/// than loopback sends the admin key, and everything else, unencrypted.
pub fn cleartext_warning(base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    (url.scheme() == "http" && !crate::validate::is_loopback_host(&url)).then(|| {
        format!(
            "⚠ unencrypted: http:// to {} sends the admin key in clear",
            url.host_str().unwrap_or_default()
        )
    })
}

/// A service the panel is connected to.
pub struct Connected {
    pub client: Client,
    /// The profile name that prefixes keychain accounts.
    pub profile: String,
    /// Where keys and data are, in words.
    pub note: String,
    /// Set when this connection started the embedded service.
    pub embedded: Option<Embedded>,
}

/// Starts the embedded service and connects to it.
pub async fn local(
    keychain: Result<Keychain, KeychainError>,
    data_dir: PathBuf,
) -> Result<Connected, String> {
    let embedded = embedded::start(keychain.clone(), &data_dir)
        .await
        .map_err(|err| format!("The local service could not start: {err:#}"))?;
    let client = Client::new(&embedded.service.base_url(), embedded.admin_key.clone())
        .map_err(|err| err.to_string())?;
    let note = match (&embedded.persistence, &keychain) {
        (Persistence::Kept { database }, Ok(keychain)) => {
            format!(
                "keys in {} · data in {}",
                keychain.description(),
                database.display()
            )
        }
        (Persistence::SessionOnly { reason, dir }, _) => format!(
            "No OS keychain ({reason}) — this session's data is in {}, sealed with a key held \
             in memory only: removed when you quit (after a crash, at the next start)",
            dir.path().display()
        ),
        (Persistence::Kept { .. }, Err(err)) => err.to_string(),
    };
    Ok(Connected {
        client,
        profile: crate::keychain::LOCAL_PROFILE.to_owned(),
        note,
        embedded: Some(embedded),
    })
}

/// The part of a version that must match: the major version, or major.minor before 1.0.
fn compatible_part(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    if major == "0" {
        format!("0.{}", parts.next().unwrap_or_default())
    } else {
        major.to_owned()
    }
}

/// Connects to a remote service with the admin key the keychain holds for `profile`.
pub async fn remote(
    keychain: Result<Keychain, KeychainError>,
    profile: RemoteProfile,
) -> Result<Connected, String> {
    let keychain = keychain.map_err(|err| {
        format!(
            "The admin key of {} is kept in the OS keychain, which is not available: {err}",
            profile.name
        )
    })?;
    let account = Account::admin_key(&profile.name);
    let description = keychain.description();
    let admin_key: Option<Zeroizing<String>> =
        tokio::task::spawn_blocking(move || keychain.get(&account))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?;
    let admin_key = admin_key.ok_or_else(|| {
        format!(
            "The keychain holds no admin key for {}: edit the profile and type the key again",
            profile.name
        )
    })?;
    let client = Client::new(&profile.base_url, admin_key).map_err(|err| err.to_string())?;
    let health = client.health().await.map_err(|err| match err {
        ClientError::Unreachable { base_url, detail } => {
            format!(
                "Cannot reach {base_url} ({detail}). Is the service running, and is the URL right?"
            )
        }
        ClientError::Protocol { .. } | ClientError::Api { .. } => format!(
            "{} answers, but not like a Hookpanel service: check the URL ({err})",
            profile.base_url
        ),
        ClientError::Unauthorized { .. } => err.to_string(),
    })?;
    let ours = env!("CARGO_PKG_VERSION");
    if compatible_part(&health.version) != compatible_part(ours) {
        return Err(format!(
            "Version mismatch: the service runs Hookpanel {}, this panel is {ours}. Their admin APIs may differ: use a panel of the same version",
            health.version
        ));
    }
    // An authenticated call tells whether the key is right.
    client.event_types().await.map_err(|err| match err {
        ClientError::Unauthorized { .. } => format!(
            "{} refused the admin key (401): edit the profile and paste the key the service printed",
            profile.base_url
        ),
        other => other.to_string(),
    })?;
    Ok(Connected {
        client,
        note: format!("{} · admin key in {description}", profile.base_url),
        profile: profile.name,
        embedded: None,
    })
}

/// Keeps a profile's admin key in the keychain.
pub async fn save_admin_key(
    keychain: Result<Keychain, KeychainError>,
    profile: String,
    admin_key: Zeroizing<String>,
) -> Result<(), String> {
    let keychain = keychain.map_err(|err| err.to_string())?;
    tokio::task::spawn_blocking(move || keychain.set(&Account::admin_key(&profile), &admin_key))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())
}

/// Moves a renamed profile's admin key to its new name.
pub async fn move_admin_key(
    keychain: Result<Keychain, KeychainError>,
    from: String,
    to: String,
) -> Result<(), String> {
    let keychain = keychain.map_err(|err| err.to_string())?;
    tokio::task::spawn_blocking(move || {
        let key = keychain
            .get(&Account::admin_key(&from))
            .map_err(|err| err.to_string())?
            .ok_or_else(|| format!("the keychain holds no admin key for {from}"))?;
        keychain
            .set(&Account::admin_key(&to), &key)
            .map_err(|err| err.to_string())?;
        keychain
            .delete(&Account::admin_key(&from))
            .map(drop)
            .map_err(|err| err.to_string())
    })
    .await
    .map_err(|err| err.to_string())?
}

/// Forgets a profile's admin key.
pub async fn forget_admin_key(
    keychain: Result<Keychain, KeychainError>,
    profile: String,
) -> Result<(), String> {
    let keychain = keychain.map_err(|err| err.to_string())?;
    tokio::task::spawn_blocking(move || keychain.delete(&Account::admin_key(&profile)))
        .await
        .map_err(|err| err.to_string())?
        .map(drop)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::{cleartext_warning, compatible_part};

    #[test]
    fn versions_compare_by_their_compatible_part() {
        assert_eq!(compatible_part("0.1.0"), compatible_part("0.1.7"));
        assert_ne!(compatible_part("0.1.0"), compatible_part("0.2.0"));
        assert_eq!(compatible_part("1.2.0"), compatible_part("1.9.3"));
        assert_ne!(compatible_part("1.2.0"), compatible_part("2.0.0"));
    }

    #[test]
    fn plain_http_is_warned_of_beyond_loopback_only() {
        let warning = cleartext_warning("http://hooks.internal.example:8080").expect("warned");
        assert!(warning.contains("hooks.internal.example"), "{warning}");
        assert!(cleartext_warning("http://10.1.2.3").is_some());
        for quiet in [
            "https://hooks.example.com",
            "http://127.0.0.1:8790",
            "http://localhost:8790",
            "http://[::1]:8790",
            "http://[::ffff:127.0.0.1]:8790",
        ] {
            assert_eq!(cleartext_warning(quiet), None, "{quiet}");
        }
    }
}
