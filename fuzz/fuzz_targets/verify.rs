//! Signature verification with hostile headers, secrets and bodies: it must never panic
//! (not on a timestamp such as i64::MIN either, where `now - ts` would overflow), and
//! whatever it signs it must verify.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{TimeZone as _, Utc};
use hookpanel::signing;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    body: &'a [u8],
    msg_id: &'a str,
    timestamp: i64,
    now: i64,
    /// Sent as `webhook-timestamp` beside a well-formed id and signature, so that every
    /// i64 reaches the tolerance check, not only those arbitrary header bytes spell.
    hostile_timestamp: i64,
    signatures: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let Some(now) = Utc.timestamp_opt(input.now, 0).single() else {
        return;
    };
    // Arbitrary headers, as a receiver would get them from a stranger.
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let _ = signing::verify(input.secret, &headers, input.body, now);
    let _ = signing::verify_simple_replayable(input.secret, &headers, input.body);

    let mut hostile = HeaderMap::new();
    hostile.insert(signing::HEADER_ID, HeaderValue::from_static("msg_1"));
    hostile.insert(
        signing::HEADER_TIMESTAMP,
        HeaderValue::from(input.hostile_timestamp),
    );
    if let Ok(signatures) = HeaderValue::from_str(input.signatures) {
        hostile.insert(signing::HEADER_SIGNATURE, signatures);
        let _ = signing::verify(input.secret, &hostile, input.body, now);
    }

    // What we sign, we verify.
    let Ok(signature) =
        signing::sign_standard(input.secret, input.msg_id, input.timestamp, input.body)
    else {
        return;
    };
    let (Ok(id), Ok(signature)) = (
        HeaderValue::from_str(input.msg_id),
        HeaderValue::from_str(&signature),
    ) else {
        return;
    };
    let mut signed = HeaderMap::new();
    signed.insert(signing::HEADER_ID, id);
    signed.insert(
        signing::HEADER_TIMESTAMP,
        HeaderValue::from(input.timestamp),
    );
    signed.insert(signing::HEADER_SIGNATURE, signature);
    if let Some(at) = Utc.timestamp_opt(input.timestamp, 0).single() {
        assert!(
            signing::verify(input.secret, &signed, input.body, at).is_ok(),
            "a signature we made did not verify"
        );
    }
});
