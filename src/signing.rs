//! Webhook signatures: what the dispatcher puts on a delivery, and [`verify`] for receivers.
//!
//! Two forms travel on every delivery:
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where
//!   key is the base64-decoded part of the secret after `whsec_`. During a rotation's grace
//!   period it carries one signature per valid secret, space-separated.
//! - Simple: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret string as shown, body)>`.
//!   It covers the body alone, so a captured request verifies forever: receivers should
//!   check the standard form with [`verify`]; [`verify_simple_replayable`] is for those
//!   that cannot.
//!
//! Neither header's value is ever stored or served: history keeps them as [`REDACTED`].

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
pub const TIMESTAMP_TOLERANCE_SECS: u64 = 5 * 60;

/// Most signatures tried from one `webhook-signature` header: a rotation's grace period
/// puts two or three there, and a stranger's 50 000 must not cost seconds of CPU.
pub const MAX_SIGNATURE_CANDIDATES: usize = 10;

/// What history holds in place of a signature header's value.
pub const REDACTED: &str = "[redacted]";

/// Whether `name` is a header whose value is a signature: such a value, captured, could be
/// replayed to the receiver, so it is never stored or served.
pub fn is_signature_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(HEADER_SIGNATURE)
        || name.eq_ignore_ascii_case(HEADER_SIMPLE_SIGNATURE)
}

/// `value`, or [`REDACTED`] when `name` is a signature header.
pub fn redacted<'a>(name: &str, value: &'a str) -> &'a str {
    if is_signature_header(name) {
        REDACTED
    } else {
        value
    }
}

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the secret is not a Hookpanel secret (whsec_ followed by base64)")]
    BadSecret,
    #[error("the request carries no webhook-signature header")]
    MissingSignature,
    #[error("the request carries no X-Webhook-Signature header")]
    MissingSimpleSignature,
    #[error("the {0} header is missing or not text")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not a unix time in seconds")]
    BadTimestamp,
    #[error("the timestamp is more than 5 minutes away from now: a replay or a wrong clock")]
    TimestampOutOfTolerance,
    #[error("no signature matches this secret")]
    NoMatch,
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

/// Checks a received delivery against `secret`, as a receiver should: the Standard
/// Webhooks headers, with the timestamp no more than 5 minutes from `now` either way, so a
/// captured request cannot be replayed later. The first [`MAX_SIGNATURE_CANDIDATES`]
/// signatures are tried, each comparison in constant time.
///
/// There is no fallback to `X-Webhook-Signature`: stripping `webhook-signature` would
/// skip the timestamp check.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let signatures = headers
        .get(HEADER_SIGNATURE)
        .ok_or(VerifyError::MissingSignature)
        .and_then(|_| header(headers, HEADER_SIGNATURE))?;
    let msg_id = header(headers, HEADER_ID)?;
    let timestamp: i64 = header(headers, HEADER_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // `abs_diff`: a hostile timestamp such as i64::MIN must not overflow a subtraction.
    if now.timestamp().abs_diff(timestamp) > TIMESTAMP_TOLERANCE_SECS {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let key = standard_key(secret)?;
    let matches = signatures
        .split_ascii_whitespace()
        .take(MAX_SIGNATURE_CANDIDATES)
        .any(|candidate| {
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
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Checks `X-Webhook-Signature` against `secret`, in constant time.
///
/// **Replayable by design**: the signature covers the body alone, with no timestamp, so
/// whoever captures one request can send it again, at any time, and it verifies. Use
/// [`verify`] (the Standard Webhooks form) wherever you can; this is for receivers that
/// cannot read the standard headers, and they must deduplicate on the event id themselves.
pub fn verify_simple_replayable(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), VerifyError> {
    let simple = headers
        .get(HEADER_SIMPLE_SIGNATURE)
        .ok_or(VerifyError::MissingSimpleSignature)?
        .to_str()
        .map_err(|_| VerifyError::MissingHeader(HEADER_SIMPLE_SIGNATURE))?;
    let hex = simple
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::NoMatch)?;
    let tag = hex_decode(hex).ok_or(VerifyError::NoMatch)?;
    let mut mac = keyed(secret.as_bytes());
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| VerifyError::NoMatch)
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
        assert_eq!(verify(SECRET, &headers, BODY, at(TIMESTAMP + 299)), Ok(()));
        assert_eq!(verify(SECRET, &headers, BODY, at(TIMESTAMP - 299)), Ok(()));
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
        assert_eq!(verify(SECRET, &headers, BODY, at(TIMESTAMP)), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_verifies() {
        let both = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SIGNATURE}");
        let headers = standard_headers(&both, TIMESTAMP);
        assert_eq!(verify(SECRET, &headers, BODY, at(TIMESTAMP)), Ok(()));
        let tampered = standard_headers("v2,abc v1,notbase64!", TIMESTAMP);
        assert_eq!(
            verify(SECRET, &tampered, BODY, at(TIMESTAMP)),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn simple_form_round_trips_through_its_own_function_only() {
        let signature = sign_simple(SECRET, BODY);
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_SIMPLE_SIGNATURE,
            HeaderValue::from_str(&signature).expect("ascii"),
        );
        assert_eq!(verify_simple_replayable(SECRET, &headers, BODY), Ok(()));
        assert_eq!(
            verify_simple_replayable(SECRET, &headers, b"other"),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_simple_replayable(SECRET, &HeaderMap::new(), BODY),
            Err(VerifyError::MissingSimpleSignature)
        );
        // Stripping webhook-signature does not fall back to the replayable form.
        assert_eq!(
            verify(SECRET, &headers, BODY, at(0)),
            Err(VerifyError::MissingSignature)
        );
    }

    #[test]
    fn hostile_timestamps_are_out_of_tolerance_not_a_panic() {
        for hostile in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let headers = standard_headers(SIGNATURE, hostile);
            assert_eq!(
                verify(SECRET, &headers, BODY, at(TIMESTAMP)),
                Err(VerifyError::TimestampOutOfTolerance),
                "{hostile}"
            );
        }
    }

    #[test]
    fn only_the_first_ten_candidates_are_tried() {
        let decoy = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let tenth = format!(
            "{} {SIGNATURE}",
            [decoy; MAX_SIGNATURE_CANDIDATES - 1].join(" ")
        );
        assert_eq!(
            verify(
                SECRET,
                &standard_headers(&tenth, TIMESTAMP),
                BODY,
                at(TIMESTAMP)
            ),
            Ok(())
        );
        let eleventh = format!(
            "{} {SIGNATURE}",
            [decoy; MAX_SIGNATURE_CANDIDATES].join(" ")
        );
        assert_eq!(
            verify(
                SECRET,
                &standard_headers(&eleventh, TIMESTAMP),
                BODY,
                at(TIMESTAMP)
            ),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn signature_headers_are_redacted_whatever_their_case() {
        assert_eq!(redacted("Webhook-Signature", "v1,abc"), REDACTED);
        assert_eq!(redacted("X-Webhook-Signature", "sha256=00"), REDACTED);
        assert_eq!(redacted("webhook-timestamp", "1614265330"), "1614265330");
    }
}
