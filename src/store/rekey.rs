//! Rolling the secrets-encryption key: the stored half. Every sealed secret carries the
//! id of the key that sealed it (`webhook_secrets.key_id`); a rollover swaps the
//! database's key-check record to the new key, then re-seals what the previous key
//! sealed, a batch per transaction, until none is left (`server/rekey.rs` drives it).

use chrono::Utc;

use super::model::millis;
use super::{Audit, Result, Store, StoreError};
use crate::crypto::{CryptoError, Sealed};

/// The `meta` key under which a retired key's id is kept, with when it was retired.
pub fn retired_key_meta(key_id: &str) -> String {
    format!("retired_encryption_key:{key_id}")
}

/// A secret to re-seal, as stored.
#[derive(sqlx::FromRow)]
pub(super) struct SealedRow {
    pub id: i64,
    pub webhook_id: String,
    pub sealed: Vec<u8>,
}

/// Opens a secret (bound to its webhook id) and seals it with the new key.
pub type Reseal<'a> = &'a (dyn Fn(&str, &[u8]) -> std::result::Result<Sealed, CryptoError> + Sync);

impl SealedRow {
    pub(super) fn resealed(&self, reseal: Reseal<'_>) -> Result<Sealed> {
        reseal(&self.webhook_id, &self.sealed).map_err(|err| {
            StoreError::Corrupt(format!(
                "secret {} of webhook {} cannot be re-sealed: {err}",
                self.id, self.webhook_id
            ))
        })
    }
}

impl Store {
    /// Labels the secrets sealed before key ids were kept with `key_id`, the key the
    /// database's key check opens with (the only key such a database has had).
    pub async fn label_unlabelled_secrets(&self, key_id: &str) -> Result<u64> {
        on_backend!(self, db => db.label_unlabelled_secrets(key_id).await)
    }

    /// How many stored secrets a key other than `key_id` sealed.
    pub async fn secrets_not_sealed_with(&self, key_id: &str) -> Result<u64> {
        on_backend!(self, db => db.secrets_not_sealed_with(key_id).await)
    }

    /// Makes `replacement` the key-check record kept under `meta_key`, if it is still
    /// `expected`, and records `retired_key_id` as retired and `audit` in the same
    /// transaction. `false`: another process swapped it first.
    pub async fn roll_key_record(
        &self,
        meta_key: &str,
        expected: &str,
        replacement: &str,
        retired_key_id: &str,
        audit: &Audit,
    ) -> Result<bool> {
        let retired = (
            retired_key_meta(retired_key_id),
            millis(Utc::now()).to_string(),
        );
        on_backend!(self, db => db
            .roll_key_record(meta_key, expected, replacement, (&retired.0, &retired.1), audit)
            .await)
    }

    /// Re-seals up to `limit` of the secrets `from_key_id` sealed, in one transaction.
    /// `None`: another replica is re-sealing at this moment.
    pub async fn reseal_batch(
        &self,
        from_key_id: &str,
        limit: u32,
        reseal: Reseal<'_>,
    ) -> Result<Option<u64>> {
        let resealed = on_backend!(self, db => db.reseal_batch(from_key_id, limit, reseal).await)?;
        if resealed.is_some_and(|count| count > 0) {
            // The cached blobs still open with the previous key, but need not stay.
            self.forget_signing_secrets();
        }
        Ok(resealed)
    }
}
