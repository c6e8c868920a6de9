//! Secrets: generating them, sealing them at rest, and comparing admin keys.
//!
//! Signing secrets are stored sealed with XChaCha20-Poly1305 under a key that lives
//! outside the database (an environment variable for `serve`, the OS keychain for the
//! embedded service), so a copy of the database file alone reveals no secret. The
//! webhook id is the associated data, so a sealed secret cannot be moved to another row.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Prefix of every webhook signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of generated admin keys, so that one found in a log or a paste is recognisable.
pub const ADMIN_KEY_PREFIX: &str = "hpk_";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// First byte of a sealed blob: how the rest is to be read.
const FORMAT_PLAINTEXT: u8 = 0;
const FORMAT_XCHACHA20POLY1305: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("the encryption key must be 32 bytes, base64-encoded (`hookpanel keygen` prints one)")]
    BadKey,
    #[error(
        "a stored secret could not be decrypted: the encryption key is not the one it was sealed with, or the data is damaged"
    )]
    Undecryptable,
    #[error(
        "a stored secret is in plain text but this service encrypts secrets (or the other way round)"
    )]
    WrongFormat,
}

pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(CryptoError::Random)?;
    Ok(bytes)
}

/// A new webhook signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_signing_secret() -> Result<Zeroizing<String>, CryptoError> {
    let bytes = random_bytes::<32>()?;
    Ok(Zeroizing::new(format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(bytes.as_ref())
    )))
}

/// A new admin API key: `hpk_` + base64url of 32 random bytes.
pub fn generate_admin_key() -> Result<Zeroizing<String>, CryptoError> {
    let bytes = random_bytes::<32>()?;
    Ok(Zeroizing::new(format!(
        "{ADMIN_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_ref())
    )))
}

/// A fresh secrets-encryption key, base64, as `hookpanel keygen` prints it.
pub fn generate_encryption_key() -> Result<Zeroizing<String>, CryptoError> {
    let bytes = random_bytes::<KEY_LEN>()?;
    Ok(Zeroizing::new(STANDARD.encode(bytes.as_ref())))
}

/// The last 4 characters of a secret, which the API may show.
pub fn secret_hint(secret: &str) -> String {
    let start = secret
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(index, _)| index);
    secret[start..].to_owned()
}

/// SHA-256 of an admin key, hex. Admin keys are 256-bit random strings, so a plain hash
/// is enough to keep them off disk; the database stores only this.
pub fn admin_key_digest(key: &str) -> String {
    hex_encode(&Sha256::digest(key.as_bytes()))
}

pub fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// What [`SecretCipher::key_id`] says of a cipher that does not encrypt.
pub const PLAINTEXT_KEY_ID: &str = "plaintext";

/// A secret sealed for the database, with the id of the key that sealed it, which is
/// stored beside it so that a key rollover can tell what is left to re-seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub blob: Vec<u8>,
    pub key_id: String,
}

/// Seals and opens secrets stored in the database.
#[derive(Clone)]
pub struct SecretCipher {
    /// `None` only with `--insecure-plaintext-secrets`.
    cipher: Option<XChaCha20Poly1305>,
    key_id: String,
    /// The key being rolled away from: it still opens what it sealed, and seals nothing.
    previous: Option<Box<SecretCipher>>,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCipher")
            .field("encrypts", &self.encrypts())
            .field("key_id", &self.key_id)
            .field("previous", &self.previous_key_id())
            .finish_non_exhaustive()
    }
}

/// A key's id: the first 16 hex digits of SHA-256 over a label and the key. It names the
/// key in the database and in messages without revealing anything of it.
fn key_id(key: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"hookpanel encryption key id\0");
    hash.update(key);
    let mut id = hex_encode(&hash.finalize());
    id.truncate(16);
    id
}

impl SecretCipher {
    /// A cipher from a base64-encoded 32-byte key.
    pub fn from_base64_key(key_base64: &str) -> Result<Self, CryptoError> {
        let key = Zeroizing::new(
            STANDARD
                .decode(key_base64.trim())
                .map_err(|_| CryptoError::BadKey)?,
        );
        if key.len() != KEY_LEN {
            return Err(CryptoError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            cipher: Some(cipher),
            key_id: key_id(&key),
            previous: None,
        })
    }

    /// Stores secrets as they are. Only for throwaway setups, and said loudly at start.
    pub fn insecure_plaintext() -> Self {
        Self {
            cipher: None,
            key_id: PLAINTEXT_KEY_ID.to_owned(),
            previous: None,
        }
    }

    /// This cipher, also opening what `previous` sealed, for the time of a key rollover.
    #[must_use]
    pub fn with_previous(mut self, previous: SecretCipher) -> Self {
        self.previous = Some(Box::new(previous.without_previous()));
        self
    }

    /// This cipher alone, without the key it rolled away from.
    #[must_use]
    pub fn without_previous(mut self) -> Self {
        self.previous = None;
        self
    }

    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// The id of the key that seals: stored beside every secret it seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The id of the key rolled away from, while a rollover is under way.
    pub fn previous_key_id(&self) -> Option<&str> {
        self.previous.as_deref().map(SecretCipher::key_id)
    }

    /// The previous key alone, to open what it sealed.
    pub fn previous(&self) -> Option<&SecretCipher> {
        self.previous.as_deref()
    }

    /// Seals a secret with the current key, labelled with its id.
    pub fn seal_secret(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        Ok(Sealed {
            blob: self.seal(context, plaintext)?,
            key_id: self.key_id.clone(),
        })
    }

    /// Seals `plaintext`, bound to `context` (the owning row's id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let Some(cipher) = &self.cipher else {
            let mut blob = Vec::with_capacity(1 + plaintext.len());
            blob.push(FORMAT_PLAINTEXT);
            blob.extend_from_slice(plaintext);
            return Ok(blob);
        };
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let nonce = XNonce::from_slice(nonce_bytes.as_ref());
        let sealed = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(FORMAT_XCHACHA20POLY1305);
        blob.extend_from_slice(nonce_bytes.as_ref());
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob made by [`Self::seal`] with the same `context`, by this key or, during
    /// a rollover, the previous one.
    pub fn open(&self, context: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match (self.open_with_this_key(context, blob), &self.previous) {
            (Err(CryptoError::Undecryptable), Some(previous)) => previous.open(context, blob),
            (opened, _) => opened,
        }
    }

    /// Opens a blob with this key alone, as the key check must.
    pub fn open_with_this_key(
        &self,
        context: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match (blob.split_first(), &self.cipher) {
            (Some((&FORMAT_PLAINTEXT, rest)), None) => Ok(Zeroizing::new(rest.to_vec())),
            (Some((&FORMAT_XCHACHA20POLY1305, rest)), Some(cipher)) => {
                if rest.len() < NONCE_LEN {
                    return Err(CryptoError::Undecryptable);
                }
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: context.as_bytes(),
                        },
                    )
                    .map(Zeroizing::new)
                    .map_err(|_| CryptoError::Undecryptable)
            }
            (Some((&FORMAT_PLAINTEXT | &FORMAT_XCHACHA20POLY1305, _)), _) => {
                Err(CryptoError::WrongFormat)
            }
            _ => Err(CryptoError::Undecryptable),
        }
    }

    /// Opens a sealed secret that is known to be text.
    pub fn open_string(
        &self,
        context: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<String>, CryptoError> {
        let bytes = self.open(context, blob)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> SecretCipher {
        let key = generate_encryption_key().expect("random");
        SecretCipher::from_base64_key(&key).expect("key")
    }

    #[test]
    fn sealed_secret_opens_with_same_key_and_context_only() {
        let cipher = cipher();
        let blob = cipher.seal("wh_1", b"whsec_abc").expect("seal");
        assert!(!blob.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(
            cipher.open("wh_1", &blob).expect("open").as_slice(),
            b"whsec_abc"
        );
        assert!(matches!(
            cipher.open("wh_2", &blob),
            Err(CryptoError::Undecryptable)
        ));
        assert!(matches!(
            self::cipher().open("wh_1", &blob),
            Err(CryptoError::Undecryptable)
        ));
        assert!(matches!(
            SecretCipher::insecure_plaintext().open("wh_1", &blob),
            Err(CryptoError::WrongFormat)
        ));
    }

    #[test]
    fn during_a_rollover_both_keys_open_and_only_the_new_one_seals() {
        let old = cipher();
        let new = cipher();
        assert_ne!(old.key_id(), new.key_id());
        assert_eq!(old.key_id().len(), 16);
        let from_old = old.seal("wh_1", b"whsec_old").expect("seal");
        let rolling = new.clone().with_previous(old.clone());
        assert_eq!(rolling.previous_key_id(), Some(old.key_id()));
        assert_eq!(
            rolling.open("wh_1", &from_old).expect("open").as_slice(),
            b"whsec_old"
        );
        assert!(rolling.open_with_this_key("wh_1", &from_old).is_err());
        let sealed = rolling.seal_secret("wh_1", b"whsec_new").expect("seal");
        assert_eq!(sealed.key_id, new.key_id());
        assert_eq!(
            new.open("wh_1", &sealed.blob).expect("open").as_slice(),
            b"whsec_new"
        );
        assert!(matches!(
            rolling.open("wh_2", &from_old),
            Err(CryptoError::Undecryptable)
        ));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(SecretCipher::from_base64_key("not base64!").is_err());
        assert!(SecretCipher::from_base64_key(&STANDARD.encode([0u8; 16])).is_err());
    }

    #[test]
    fn signing_secret_has_prefix_and_32_bytes() {
        let secret = generate_signing_secret().expect("random");
        let body = secret.strip_prefix(SECRET_PREFIX).expect("prefix");
        assert_eq!(STANDARD.decode(body).expect("base64").len(), 32);
        assert_ne!(*secret, *generate_signing_secret().expect("random"));
    }

    #[test]
    fn hint_is_last_four_characters() {
        assert_eq!(secret_hint("whsec_abcdefgh"), "efgh");
        assert_eq!(secret_hint("ab"), "ab");
    }

    #[test]
    fn admin_keys_are_found_by_their_digest_alone() {
        let digest = admin_key_digest("hpk_right");
        assert_eq!(admin_key_digest("hpk_right"), digest);
        assert_ne!(admin_key_digest("hpk_wrong"), digest);
        assert_ne!(admin_key_digest(""), digest);
        assert_eq!(digest.len(), 64, "hex SHA-256");
    }
}
