//! The secrets-encryption key: checking it at start, rolling over to a new one, and
//! `GET /v1/admin/encryption-key`.
//!
//! The database keeps a key-check record (a known text sealed with the current key) in
//! `meta`. A start with a new key and `--previous-encryption-key` finds the record opens
//! with the previous key only: it swaps the record to the new key, marks the previous
//! one retired and writes `encryption_key.rollover` to the audit log, all in one
//! transaction, then re-seals the secrets the previous key sealed in the background, a
//! batch per transaction, while the service serves (it opens both meanwhile). A process
//! that dies partway finds the record already swapped at its next start and carries on
//! with what is left. Until nothing is left, a start without the previous key is
//! refused; a start with the retired key is refused for good.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokio::task::JoinHandle;

use super::error::Result;
use super::{AppState, SecretsAtRest, StartError};
use crate::api::{AuditAction, EncryptionKeyStatus};
use crate::crypto::{CryptoError, SecretCipher};
use crate::store::{self, Audit, Store};

const META_SECRETS_AT_REST: &str = "secrets_at_rest";
const PLAINTEXT_MARKER: &str = "plaintext";
const KEY_CHECK_CONTEXT: &str = "hookpanel-key-check";

/// How the re-seal paces itself: secrets per transaction, and a pause between two.
#[derive(Clone, Copy, Debug)]
pub struct ResealPace {
    pub batch: u32,
    pub pause: Duration,
}

impl Default for ResealPace {
    fn default() -> Self {
        Self {
            batch: 100,
            pause: Duration::ZERO,
        }
    }
}

/// The configured keys, checked before anything is opened: the current one, and the
/// previous one during a rollover.
pub(super) struct Keys {
    cipher: SecretCipher,
    previous: Option<SecretCipher>,
}

impl Keys {
    pub(super) fn from_config(config: &SecretsAtRest) -> std::result::Result<Self, StartError> {
        let (cipher, previous) = match config {
            SecretsAtRest::Encrypted { key, previous } => (
                SecretCipher::from_base64_key(key)?,
                previous
                    .as_deref()
                    .map(|previous| SecretCipher::from_base64_key(previous))
                    .transpose()
                    .map_err(StartError::PreviousKey)?,
            ),
            SecretsAtRest::InsecurePlaintext => (SecretCipher::insecure_plaintext(), None),
        };
        Ok(Self { cipher, previous })
    }
}

/// Checks the configured key (or plain text) against the database's, records it on the
/// first start, and starts a rollover when the previous key is the one recorded.
pub(super) async fn secret_cipher(
    store: &Store,
    keys: Keys,
) -> std::result::Result<SecretCipher, StartError> {
    let Keys { cipher, previous } = keys;
    let previous = previous.filter(|previous| {
        let same = previous.key_id() == cipher.key_id();
        if same {
            tracing::warn!("the previous encryption key is the current one; it is ignored");
        }
        !same
    });
    // Recorded by the first start; replicas starting together record one of theirs, and
    // every one checks its key against what was recorded.
    let record = match store.meta(META_SECRETS_AT_REST).await? {
        Some(record) => record,
        None => {
            store
                .set_meta_once(META_SECRETS_AT_REST, &key_check_record(&cipher)?)
                .await?
        }
    };
    if record == PLAINTEXT_MARKER {
        if cipher.encrypts() {
            return Err(StartError::DatabaseIsPlaintext);
        }
        store.label_unlabelled_secrets(cipher.key_id()).await?;
        return Ok(cipher);
    }
    if !cipher.encrypts() {
        return Err(StartError::DatabaseIsEncrypted);
    }
    if opens(&cipher, &record) {
        // Secrets sealed before key ids were kept were sealed with the recorded key.
        store.label_unlabelled_secrets(cipher.key_id()).await?;
        let left = store.secrets_not_sealed_with(cipher.key_id()).await?;
        return match previous {
            Some(previous) if left > 0 => Ok(cipher.with_previous(previous)),
            Some(_) => {
                tracing::info!(
                    "every secret is sealed with the current encryption key: the previous key is no longer needed"
                );
                Ok(cipher)
            }
            None if left > 0 => Err(StartError::SecretsUnderPreviousKey(left)),
            None => Ok(cipher),
        };
    }
    match previous {
        Some(previous) if opens(&previous, &record) => {
            store.label_unlabelled_secrets(previous.key_id()).await?;
            let audit = Audit::new(
                store::SERVICE_ACTOR,
                AuditAction::EncryptionKeyRollover,
                None,
            )
            .with_detail(json!({"from_key_id": previous.key_id(), "to_key_id": cipher.key_id()}));
            let swapped = store
                .roll_key_record(
                    META_SECRETS_AT_REST,
                    &record,
                    &key_check_record(&cipher)?,
                    previous.key_id(),
                    &audit,
                )
                .await?;
            if swapped {
                tracing::info!(
                    from = previous.key_id(),
                    to = cipher.key_id(),
                    "rolling the encryption key: secrets are re-sealed in the background"
                );
            } else {
                // A replica swapped it a moment ago: to this same key, or it is not ours.
                let now = store.meta(META_SECRETS_AT_REST).await?.unwrap_or_default();
                if !opens(&cipher, &now) {
                    return Err(StartError::WrongEncryptionKey);
                }
            }
            Ok(cipher.with_previous(previous))
        }
        _ => match store
            .meta(&store::retired_key_meta(cipher.key_id()))
            .await?
        {
            Some(retired_at) => Err(StartError::RetiredEncryptionKey {
                retired_at: retired_at
                    .parse::<i64>()
                    .ok()
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or(retired_at, |at| at.to_rfc3339()),
            }),
            None => Err(StartError::WrongEncryptionKey),
        },
    }
}

fn key_check_record(cipher: &SecretCipher) -> std::result::Result<String, CryptoError> {
    Ok(if cipher.encrypts() {
        STANDARD.encode(cipher.seal(KEY_CHECK_CONTEXT, KEY_CHECK_CONTEXT.as_bytes())?)
    } else {
        PLAINTEXT_MARKER.to_owned()
    })
}

/// Whether the key-check record (base64) opens with `cipher`'s own key.
fn opens(cipher: &SecretCipher, record: &str) -> bool {
    STANDARD.decode(record).is_ok_and(|sealed| {
        cipher
            .open_with_this_key(KEY_CHECK_CONTEXT, &sealed)
            .is_ok()
    })
}

/// Re-seals, in the background, what the previous key sealed, when a rollover is under
/// way.
pub(super) fn spawn_reseal(
    store: &Store,
    cipher: &SecretCipher,
    pace: ResealPace,
) -> Option<JoinHandle<()>> {
    let previous = cipher.previous()?.clone();
    let current = cipher.clone().without_previous();
    let store = store.clone();
    Some(tokio::spawn(async move {
        let from = previous.key_id().to_owned();
        let to = current.key_id().to_owned();
        let reseal = move |webhook_id: &str, blob: &[u8]| {
            let secret = previous.open(webhook_id, blob)?;
            current.seal_secret(webhook_id, &secret)
        };
        let mut resealed = 0u64;
        // Ends when nothing is left, or on an error; bounded by the secrets stored.
        loop {
            match store.reseal_batch(&from, pace.batch, &reseal).await {
                Ok(Some(0)) => {
                    match store.secrets_not_sealed_with(&to).await {
                        Ok(0) => tracing::info!(
                            resealed,
                            "re-seal finished: every secret is sealed with the current encryption key; start without the previous one from now on"
                        ),
                        Ok(strays) => tracing::error!(
                            resealed,
                            strays,
                            "re-seal finished, but some secrets are sealed with a key that is neither the current nor the previous one"
                        ),
                        Err(err) => tracing::warn!(
                            resealed,
                            "re-seal finished; counting what is left failed: {err}"
                        ),
                    }
                    return;
                }
                Ok(Some(count)) => resealed += count,
                // Another replica holds the re-seal; look again in a moment.
                Ok(None) => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(err) => {
                    tracing::error!(
                        resealed,
                        "re-sealing stopped: {err}; it is tried again at the next start"
                    );
                    return;
                }
            }
            tokio::time::sleep(pace.pause).await;
        }
    }))
}

/// Which key seals the signing secrets, and how many secrets a rollover has left to
/// re-seal.
#[utoipa::path(
    get, path = "/encryption-key", tag = "keys",
    responses((status = 200, body = EncryptionKeyStatus))
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<EncryptionKeyStatus>> {
    let key_id = state.cipher.key_id();
    Ok(Json(EncryptionKeyStatus {
        key_id: key_id.to_owned(),
        previous_key_id: state.cipher.previous_key_id().map(str::to_owned),
        secrets_left_to_reseal: state.store.secrets_not_sealed_with(key_id).await?,
    }))
}
