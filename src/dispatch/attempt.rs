//! One HTTP attempt: send the signed request, keep what came back, classify the result.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::redirect::Policy;
use url::Url;

use super::DeliveryConfig;
use super::guard::{self, GuardedResolver, Refused};
use crate::signing;
use crate::store::AttemptRecord;

pub const USER_AGENT: &str = concat!("Hookpanel-Webhook/", env!("CARGO_PKG_VERSION"));
/// How much of a response body is kept.
pub const RESPONSE_BODY_MAX_BYTES: usize = 4096;
/// How much of a response's headers is kept (names and values). A receiver could
/// otherwise make each attempt store hundreds of kilobytes.
pub const RESPONSE_HEADERS_MAX_BYTES: usize = 16 * 1024;
/// The header that stands for those not kept, with how many and how large they were.
pub const TRUNCATED_HEADERS_MARKER: &str = "hookpanel-truncated";

#[derive(Debug, thiserror::Error)]
#[error("more than {max} redirects: the receiver must answer at its final URL")]
struct TooManyRedirects {
    max: usize,
}

/// What an attempt means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// Network error, timeout, 408, 429 or 5xx: try again later.
    Transient {
        /// The receiver's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// 410 Gone: fail, and deactivate the webhook.
    Gone,
    /// Any other failure: retrying will not help.
    Permanent,
}

/// The HTTP client all attempts share, so connections are reused.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    pub fn new(config: &DeliveryConfig) -> Result<Self, reqwest::Error> {
        let allow_private = config.allow_private_destinations;
        let max_redirects = config.max_redirects;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.attempt_timeout)
            .connect_timeout(config.attempt_timeout)
            .no_proxy()
            .dns_resolver(GuardedResolver { allow_private })
            .redirect(Policy::custom(move |attempt| {
                if attempt.previous().len() > max_redirects {
                    return attempt.error(TooManyRedirects { max: max_redirects });
                }
                if let Err(refused) = guard::check_url(attempt.url(), allow_private) {
                    return attempt.error(refused);
                }
                attempt.follow()
            }))
            .build()?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// POSTs `body` to `url` with `headers` and records what happened.
    pub async fn send(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> (AttemptRecord, Verdict) {
        let started_at = Utc::now();
        let clock = Instant::now();
        let mut record = AttemptRecord {
            started_at,
            duration_ms: 0,
            status_code: None,
            error: None,
            // What went out, less the signatures: a stored one could be replayed.
            request_headers: headers
                .iter()
                .map(|(name, value)| (name.clone(), signing::redacted(name, value).to_owned()))
                .collect(),
            response_headers: Vec::new(),
            response_body: None,
        };
        let verdict = match self.exchange(url, headers, body, &mut record).await {
            Ok(verdict) => verdict,
            Err((message, verdict)) => {
                record.error = Some(message);
                verdict
            }
        };
        record.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        (record, verdict)
    }

    async fn exchange(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        record: &mut AttemptRecord,
    ) -> Result<Verdict, (String, Verdict)> {
        let parsed = Url::parse(url).map_err(|err| {
            (
                format!("the webhook URL is not valid: {err}"),
                Verdict::Permanent,
            )
        })?;
        guard::check_url(&parsed, self.allow_private)
            .map_err(|refused| (refused.to_string(), Verdict::Permanent))?;
        let mut request = self.client.post(parsed).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|err| describe(&err))?;
        let status = response.status();
        record.status_code = Some(status.as_u16());
        record.response_headers = kept_headers(response.headers());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, Utc::now()));

        // Keep at most RESPONSE_BODY_MAX_BYTES; never read more than that.
        let mut kept = Vec::new();
        let mut body_error = None;
        while kept.len() < RESPONSE_BODY_MAX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => {
                    body_error = Some(describe(&err).0);
                    break;
                }
            }
        }
        kept.truncate(RESPONSE_BODY_MAX_BYTES);
        if !kept.is_empty() {
            record.response_body = Some(String::from_utf8_lossy(&kept).into_owned());
        }

        let code = status.as_u16();
        let verdict = if status.is_success() {
            Verdict::Delivered
        } else if code == 410 {
            Verdict::Gone
        } else if code == 408 || code == 429 || status.is_server_error() {
            Verdict::Transient { retry_after }
        } else {
            Verdict::Permanent
        };
        record.error = match (verdict, body_error) {
            (Verdict::Delivered, None) => None,
            (Verdict::Delivered, Some(err)) => {
                Some(format!("answered {status}, then the body failed: {err}"))
            }
            (_, _) => Some(format!("the receiver answered {status}")),
        };
        Ok(verdict)
    }
}

/// A response's headers in order, up to [`RESPONSE_HEADERS_MAX_BYTES`]; when more came,
/// a last [`TRUNCATED_HEADERS_MARKER`] header says how many were left out.
fn kept_headers(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut size = 0;
    let (mut dropped, mut dropped_bytes) = (0usize, 0usize);
    for (name, value) in headers {
        let bytes = name.as_str().len() + value.len();
        if dropped == 0 && size + bytes <= RESPONSE_HEADERS_MAX_BYTES {
            size += bytes;
            kept.push((
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        } else {
            dropped += 1;
            dropped_bytes += bytes;
        }
    }
    if dropped > 0 {
        kept.push((
            TRUNCATED_HEADERS_MARKER.to_owned(),
            format!(
                "{dropped} more headers ({dropped_bytes} bytes) were not kept: \
                 at most {RESPONSE_HEADERS_MAX_BYTES} bytes of headers are"
            ),
        ));
    }
    kept
}

/// An error's message, and what it means for retrying. reqwest wraps the cause that
/// matters (connection refused, DNS failure, TLS error) in several layers of "error sending
/// request": the innermost one says what happened.
fn describe(err: &reqwest::Error) -> (String, Verdict) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = err.to_string();
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return (refused.to_string(), Verdict::Permanent);
        }
        if let Some(too_many) = current.downcast_ref::<TooManyRedirects>() {
            return (too_many.to_string(), Verdict::Permanent);
        }
        innermost = current.to_string();
        cause = current.source();
    }
    let transient = Verdict::Transient { retry_after: None };
    if err.is_timeout() {
        return (
            "timed out: the receiver did not answer in time".to_owned(),
            transient,
        );
    }
    let kind = if err.is_connect() {
        "could not connect"
    } else if err.is_body() {
        "the connection broke while reading the answer"
    } else {
        "the request failed"
    };
    (format!("{kind}: {innermost}"), transient)
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    #[test]
    fn response_headers_are_kept_up_to_their_budget_then_marked() {
        let mut headers = HeaderMap::new();
        for n in 0..100 {
            headers.insert(
                HeaderName::try_from(format!("x-filler-{n}")).expect("name"),
                HeaderValue::from_str(&"f".repeat(1000)).expect("value"),
            );
        }
        let kept = kept_headers(&headers);
        let size: usize = kept.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(size <= RESPONSE_HEADERS_MAX_BYTES + 200, "{size}");
        let (name, marker) = kept.last().expect("marker");
        assert_eq!(name, TRUNCATED_HEADERS_MARKER);
        assert!(marker.starts_with("84 more headers"), "{marker}");
        assert_eq!(kept.len(), 16 + 1);

        let small = kept_headers(&HeaderMap::from_iter([(
            HeaderName::from_static("server"),
            HeaderValue::from_static("tiny"),
        )]));
        assert_eq!(small, [("server".to_owned(), "tiny".to_owned())]);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .single()
            .expect("time");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            None
        );
    }
}
