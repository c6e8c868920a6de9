//! Webhook signatures: what the dispatcher puts on a delivery, and [`verify`] for receivers.
//!
//! Two forms travel on every delivery:
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where
//!   key is the base64-decoded part of the secret after `whsec_`. During a rotation's grace
//!   period it carries one signature per valid secret, space-separated.
//! - Simple: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret string as shown, body)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::HeaderMap;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::{SECRET_PREFIX, hex_encode};

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
pub const HEADER_SIMPLE_SIGNATURE: &str = "x-webhook-signature";

/// How far a delivery's timestamp may be from the receiver's clock, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the secret is not a Hookpanel secret (whsec_ followed by base64)")]
    BadSecret,
    #[error("the request carries no signature header (webhook-signature or X-Webhook-Signature)")]
    MissingSignature,
    #[error("the {0} header is missing or not text")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not a unix time in seconds")]
    BadTimestamp,
    #[error("the timestamp is more than 5 minutes away from now: a replay or a wrong clock")]
    TimestampOutOfTolerance,
    #[error("no signature matches this secret")]
    NoMatch,
}

/// Which form of signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    StandardWebhooks,
    Simple,
}

fn standard_key(secret: &str) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map(Zeroizing::new)
        .map_err(|_| VerifyError::BadSecret)
}

/// HMAC-SHA256 keyed with `key`. HMAC takes keys of any length, so this cannot fail.
fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn standard_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64>` for one secret.
pub fn sign_standard(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let key = standard_key(secret)?;
    let tag = standard_mac(&key, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// `sha256=<hex>`, keyed with the whole secret string as shown to the user.
pub fn sign_simple(secret: &str, body: &[u8]) -> String {
    let mut mac = keyed(secret.as_bytes());
    mac.update(body);
    format!("sha256={}", hex_encode(&mac.finalize().into_bytes()))
}

/// A header as UTF-8. Not `HeaderValue::to_str`, which refuses anything but visible
/// ASCII: a sender may put any UTF-8 in `webhook-id`, and its signature covers those bytes.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Checks a received delivery against `secret`, as a receiver would.
///
/// Prefers the Standard Webhooks headers (with a 5-minute timestamp tolerance around
/// `now`); falls back to `X-Webhook-Signature`. Every comparison is constant-time.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, VerifyError> {
    if headers.contains_key(HEADER_SIGNATURE) {
        let msg_id = header(headers, HEADER_ID)?;
        let timestamp: i64 = header(headers, HEADER_TIMESTAMP)?
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        if (now.timestamp() - timestamp).abs() > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        let key = standard_key(secret)?;
        let signatures = header(headers, HEADER_SIGNATURE)?;
        let matches = signatures.split(' ').any(|candidate| {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                return false;
            };
            standard_mac(&key, msg_id, timestamp, body)
                .verify_slice(&tag)
                .is_ok()
        });
        return if matches {
            Ok(Verified::StandardWebhooks)
        } else {
            Err(VerifyError::NoMatch)
        };
    }
    let simple = headers
        .get(HEADER_SIMPLE_SIGNATURE)
        .ok_or(VerifyError::MissingSignature)?
        .to_str()
        .map_err(|_| VerifyError::MissingHeader(HEADER_SIMPLE_SIGNATURE))?;
    let hex = simple
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::NoMatch)?;
    let tag = hex_decode(hex).ok_or(VerifyError::NoMatch)?;
    let mut mac = keyed(secret.as_bytes());
    mac.update(body);
    mac.verify_slice(&tag)
        .map(|()| Verified::Simple)
        .map_err(|_| VerifyError::NoMatch)
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use http::HeaderValue;

    // The Standard Webhooks specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(timestamp: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(timestamp, 0).single().expect("valid")
    }

    fn standard_headers(signature: &str, timestamp: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, HeaderValue::from_static(MSG_ID));
        headers.insert(
            HEADER_TIMESTAMP,
            HeaderValue::from_str(&timestamp.to_string()).expect("ascii"),
        );
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(signature).expect("ascii"),
        );
        headers
    }

    #[test]
    fn signs_the_published_vector() {
        assert_eq!(
            sign_standard(SECRET, MSG_ID, TIMESTAMP, BODY).expect("sign"),
            SIGNATURE
        );
    }

    #[test]
    fn verifies_the_published_vector_within_tolerance_only() {
        let headers = standard_headers(SIGNATURE, TIMESTAMP);
        assert_eq!(
            verify(SECRET, &headers, BODY, at(TIMESTAMP + 299)),
            Ok(Verified::StandardWebhooks)
        );
        assert_eq!(
            verify(SECRET, &headers, BODY, at(TIMESTAMP - 299)),
            Ok(Verified::StandardWebhooks)
        );
        assert_eq!(
            verify(SECRET, &headers, BODY, at(TIMESTAMP + 301)),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, &headers, b"{\"test\": 1}", at(TIMESTAMP)),
            Err(VerifyError::NoMatch)
        );
        let other_secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            verify(other_secret, &headers, BODY, at(TIMESTAMP)),
            Err(VerifyError::NoMatch)
        );
    }

    /// Found by the `verify` fuzz target: a UTF-8 `webhook-id` was refused as missing.
    #[test]
    fn a_non_ascii_message_id_verifies() {
        let id = "évènement-1";
        let signature = sign_standard(SECRET, id, TIMESTAMP, BODY).expect("sign");
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_ID,
            HeaderValue::from_bytes(id.as_bytes()).expect("bytes"),
        );
        headers.insert(HEADER_TIMESTAMP, HeaderValue::from(TIMESTAMP));
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(&signature).expect("ascii"),
        );
        assert_eq!(
            verify(SECRET, &headers, BODY, at(TIMESTAMP)),
            Ok(Verified::StandardWebhooks)
        );
    }

    #[test]
    fn any_of_several_signatures_verifies() {
        let both = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SIGNATURE}");
        let headers = standard_headers(&both, TIMESTAMP);
        assert_eq!(
            verify(SECRET, &headers, BODY, at(TIMESTAMP)),
            Ok(Verified::StandardWebhooks)
        );
        let tampered = standard_headers("v2,abc v1,notbase64!", TIMESTAMP);
        assert_eq!(
            verify(SECRET, &tampered, BODY, at(TIMESTAMP)),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn simple_form_round_trips() {
        let signature = sign_simple(SECRET, BODY);
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_SIMPLE_SIGNATURE,
            HeaderValue::from_str(&signature).expect("ascii"),
        );
        assert_eq!(verify(SECRET, &headers, BODY, at(0)), Ok(Verified::Simple));
        assert_eq!(
            verify(SECRET, &headers, b"other", at(0)),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), BODY, at(0)),
            Err(VerifyError::MissingSignature)
        );
    }
}
