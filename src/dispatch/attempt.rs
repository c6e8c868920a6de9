//! One HTTP attempt: send the signed request, keep what came back, classify the result.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::redirect::Policy;
use url::Url;

use super::DeliveryConfig;
use super::guard::{self, GuardedResolver, Lookup, Refused};
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

/// Why a redirect is not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("more than {max} redirects: the receiver must answer at its final URL")]
    TooMany { max: usize },
    /// 301, 302 and 303 make clients repeat a POST as a GET without its body: the payload
    /// would not arrive, yet the final 200 would count as delivered.
    #[error(
        "the receiver answered {status} with Location {location}: following it would \
         resend the POST as a GET without the payload (only 307 and 308 keep it); set the \
         webhook's URL to the final one"
    )]
    ChangesMethod { status: u16, location: String },
    /// A signature sent to another host could be replayed by it to the webhook's receiver.
    #[error(
        "a redirect to another host ({location}): signed deliveries are not sent across \
         hosts; set the webhook's URL to the receiver's"
    )]
    OtherHost { location: String },
    #[error("a redirect from https to http ({to}): the delivery would leave TLS")]
    Downgrade { to: String },
    #[error(transparent)]
    Destination(Refused),
}

/// Whether the redirect answered with `status` to `next`, after the URLs in `previous`
/// (the first being the webhook's), may be followed.
fn redirect_refusal(
    status: reqwest::StatusCode,
    previous: &[Url],
    next: &Url,
    max_redirects: usize,
    allow_private: bool,
) -> Option<RedirectRefused> {
    if previous.len() > max_redirects {
        return Some(RedirectRefused::TooMany { max: max_redirects });
    }
    if !matches!(status.as_u16(), 307 | 308) {
        return Some(RedirectRefused::ChangesMethod {
            status: status.as_u16(),
            location: without_query(next),
        });
    }
    if next.scheme() != "https" && previous.iter().any(|url| url.scheme() == "https") {
        return Some(RedirectRefused::Downgrade {
            to: without_query(next),
        });
    }
    if let Err(refused) = guard::check_url(next, allow_private) {
        return Some(RedirectRefused::Destination(refused));
    }
    let webhook_host = previous.first().and_then(Url::host);
    (webhook_host.is_some() && webhook_host != next.host()).then(|| RedirectRefused::OtherHost {
        location: without_query(next),
    })
}

/// A URL as an error may quote it: its query and fragment, which may carry a token, left out.
fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    let had_query = shown.query().is_some();
    shown.set_query(None);
    shown.set_fragment(None);
    if had_query {
        format!("{shown}?…")
    } else {
        shown.to_string()
    }
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
        Self::with_lookup(config, Lookup::System)
    }

    fn with_lookup(config: &DeliveryConfig, lookup: Lookup) -> Result<Self, reqwest::Error> {
        let allow_private = config.allow_private_destinations;
        let max_redirects = config.max_redirects;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.attempt_timeout)
            .connect_timeout(config.attempt_timeout)
            .no_proxy()
            .dns_resolver(GuardedResolver {
                allow_private,
                lookup,
            })
            .redirect(Policy::custom(move |attempt| {
                match redirect_refusal(
                    attempt.status(),
                    attempt.previous(),
                    attempt.url(),
                    max_redirects,
                    allow_private,
                ) {
                    Some(refusal) => attempt.error(refusal),
                    None => attempt.follow(),
                }
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
        if let Some(redirect) = current.downcast_ref::<RedirectRefused>() {
            return (redirect.to_string(), Verdict::Permanent);
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
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn redirects_may_not_leave_tls_nor_reach_a_refused_destination() {
        let url = |text: &str| Url::parse(text).expect("url");
        let kept = reqwest::StatusCode::TEMPORARY_REDIRECT;
        let from_https = [url("https://hooks.example.com/a")];
        assert!(matches!(
            redirect_refusal(
                kept,
                &from_https,
                &url("http://hooks.example.com/b"),
                2,
                true
            ),
            Some(RedirectRefused::Downgrade { .. })
        ));
        assert!(matches!(
            redirect_refusal(
                kept,
                &from_https,
                &url("https://[64:ff9b::a9fe:a9fe]/"),
                2,
                true
            ),
            Some(RedirectRefused::Destination(_))
        ));
        let from_http = [url("http://localhost:8080/a")];
        let same_host = url("http://localhost:8080/b");
        assert!(redirect_refusal(kept, &from_http, &same_host, 2, true).is_none());
        let upgraded = url("https://localhost/b");
        assert!(redirect_refusal(kept, &from_http, &upgraded, 2, true).is_none());
        let three = [
            url("https://a.example/"),
            url("https://a.example/b"),
            url("https://a.example/c"),
        ];
        assert!(matches!(
            redirect_refusal(kept, &three, &url("https://a.example/d"), 2, true),
            Some(RedirectRefused::TooMany { max: 2 })
        ));
    }

    #[test]
    fn only_redirects_that_keep_the_post_and_its_host_are_followed() {
        let url = |text: &str| Url::parse(text).expect("url");
        let from = [url("https://hooks.example.com/a")];
        let next = url("https://hooks.example.com/b?token=hidden");
        for code in [301, 302, 303] {
            let status = reqwest::StatusCode::from_u16(code).expect("status");
            let refusal = redirect_refusal(status, &from, &next, 2, false);
            assert!(
                matches!(refusal, Some(RedirectRefused::ChangesMethod { status, .. }) if status == code),
                "{code}: {refusal:?}"
            );
            let message = refusal.map(|r| r.to_string()).unwrap_or_default();
            assert!(
                message.contains("https://hooks.example.com/b?…"),
                "{message}"
            );
            assert!(!message.contains("hidden"), "{message}");
        }
        for code in [307, 308] {
            let status = reqwest::StatusCode::from_u16(code).expect("status");
            assert!(redirect_refusal(status, &from, &next, 2, false).is_none());
            let elsewhere = url("https://other.example.com/b");
            assert!(matches!(
                redirect_refusal(status, &from, &elsewhere, 2, false),
                Some(RedirectRefused::OtherHost { .. })
            ));
        }
    }

    /// Names that resolve to disguised destinations are refused by the delivery path
    /// itself, before any connection. The test runs itself again in a network namespace
    /// with no interface at all (`unshare --net`), so that even a guard that let one
    /// through could not send a packet anywhere.
    #[test]
    fn names_resolving_to_disguised_destinations_are_refused_before_any_connect() {
        const INSIDE: &str = "HOOKPANEL_TEST_IN_EMPTY_NETNS";
        const NAME: &str = "dispatch::attempt::tests::names_resolving_to_disguised_destinations_are_refused_before_any_connect";
        if std::env::var_os(INSIDE).is_none() {
            let exe = std::env::current_exe().expect("the test binary");
            let output = std::process::Command::new("unshare")
                .args(["--net", "--"])
                .arg(exe)
                .args(["--exact", NAME, "--test-threads=1"])
                .env(INSIDE, "1")
                .output()
                .expect("unshare (util-linux) runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            eprintln!("in an empty network namespace: {stdout}");
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        let table: HashMap<String, Vec<std::net::IpAddr>> = [
            ("metadata.test", "169.254.169.254"),
            ("nat64-metadata.test", "64:ff9b::a9fe:a9fe"),
            ("nat64-local.test", "64:ff9b:1:a9fe:a9:fe00::"),
            ("sixtofour.test", "2002:a9fe:a9fe::1"),
            ("teredo.test", "2001:0:5db8:d822:0:0:5601:5601"),
            ("compatible.test", "::a9fe:a9fe"),
            ("this-network.test", "0.0.0.1"),
            ("reserved.test", "240.0.0.1"),
            ("alibaba.test", "100.100.100.200"),
            ("ec2-v6.test", "fd00:ec2::254"),
            ("benchmarking.test", "198.18.0.1"),
            ("nat64-loopback.test", "64:ff9b::7f00:1"),
            ("public.test", "93.184.216.34"),
        ]
        .into_iter()
        .map(|(name, ip)| (name.to_owned(), vec![ip.parse().expect("ip")]))
        .collect();
        let sender = |allow_private| {
            let config = DeliveryConfig {
                allow_private_destinations: allow_private,
                attempt_timeout: Duration::from_secs(2),
                ..DeliveryConfig::default()
            };
            Sender::with_lookup(&config, Lookup::Table(Arc::new(table.clone()))).expect("client")
        };
        let (private_allowed, private_refused) = (sender(true), sender(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let error = |sender: &Sender, host: &str| {
            let (record, verdict) = runtime.block_on(sender.send(
                &format!("http://{host}/hook"),
                Vec::new(),
                b"{}".to_vec(),
            ));
            assert_eq!(record.status_code, None, "{host}");
            (record.error.unwrap_or_default(), verdict)
        };
        for host in [
            "metadata.test",
            "nat64-metadata.test",
            "nat64-local.test",
            "sixtofour.test",
            "teredo.test",
            "compatible.test",
            "this-network.test",
            "reserved.test",
            "alibaba.test",
            "ec2-v6.test",
        ] {
            let (error, verdict) = error(&private_allowed, host);
            assert!(error.starts_with("refused: "), "{host}: {error}");
            assert_eq!(verdict, Verdict::Permanent, "{host}");
        }
        for host in ["benchmarking.test", "nat64-loopback.test"] {
            let (error, _) = error(&private_refused, host);
            assert!(error.starts_with("refused: "), "{host}: {error}");
        }
        // A public address passes the guard and meets a network with no route at all.
        let (error, verdict) = error(&private_refused, "public.test");
        assert!(error.starts_with("could not connect"), "{error}");
        assert!(matches!(verdict, Verdict::Transient { .. }));
    }

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
