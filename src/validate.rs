//! Validation of what callers send, with an error that names the field.

use std::collections::BTreeSet;
use std::net::IpAddr;

use url::{Host, Url};

use crate::catalog::{Catalog, WILDCARD};

pub const NAME_MAX_CHARS: usize = 100;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
pub const OWNER_MAX_CHARS: usize = 200;
pub const URL_MAX_CHARS: usize = 2048;
pub const EVENTS_MAX: usize = 200;
/// The smallest and largest per-webhook rate limits, in deliveries per second.
pub const RATE_LIMIT_MIN: u32 = 1;
pub const RATE_LIMIT_MAX: u32 = 10_000;

/// A request field that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Whether webhook URLs may use plain http.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpPolicy {
    /// http only to loopback hosts (localhost, 127.0.0.0/8, ::1); https everywhere else.
    #[default]
    LoopbackOnly,
    /// http to any host (`--allow-http`).
    Anywhere,
}

/// Query parameter names that suggest a credential in the URL.
const SECRET_LOOKING_WORDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "pwd",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "private_key",
    "auth",
    "signature",
    "credential",
];

fn looks_like_secret(parameter: &str) -> bool {
    let lower = parameter.to_ascii_lowercase();
    lower == "key"
        || lower == "sig"
        || lower.ends_with("_key")
        || lower.ends_with("-key")
        || SECRET_LOOKING_WORDS.iter().any(|word| lower.contains(word))
}

pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
        None => false,
    }
}

/// A webhook URL this service takes. The language is exactly [`webhook_url_pattern`]'s
/// (the OpenAPI document serves that pattern): `https://`, or `http://` where `policy`
/// allows it; a host name of letters, digits and hyphens whose last label starts with a
/// letter (no IP literal but 127.0.0.1 and [::1], and those only with private destinations
/// allowed; no `xn--` label); a port; a path; and a query of `name=value` pairs of
/// letters, digits and `-._~` whose names do not look like credentials. Each refusal
/// says why.
pub fn webhook_url(
    field: &str,
    text: &str,
    policy: HttpPolicy,
    allow_private: bool,
) -> Result<Url, FieldError> {
    let error = |message: String| FieldError::new(field, message);
    if text.trim().is_empty() {
        return Err(error("the URL is empty".into()));
    }
    if text.chars().count() > URL_MAX_CHARS {
        return Err(error(format!(
            "the URL is longer than {URL_MAX_CHARS} characters"
        )));
    }
    if text.trim() != text {
        return Err(error("the URL starts or ends with white space".into()));
    }
    let url = Url::parse(text).map_err(|err| error(format!("not a valid URL: {err}")))?;
    match url.scheme() {
        "https" => {}
        "http" if policy == HttpPolicy::Anywhere || is_loopback_host(&url) => {}
        "http" => {
            return Err(error(
                "the URL must use https (plain http is allowed only for localhost unless the server runs with --allow-http)".into(),
            ));
        }
        other => return Err(error(format!("the URL must be https, not {other}:"))),
    }
    if url.host().is_none() {
        return Err(error("the URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            "the URL must not carry a user name or password; receivers verify the signature instead"
                .into(),
        ));
    }
    if let Some((name, _)) = url.query_pairs().find(|(name, _)| looks_like_secret(name)) {
        return Err(error(format!(
            "the query parameter {name:?} looks like a credential; credentials in URLs end up in logs — verify the signature instead"
        )));
    }
    if let Some(Host::Domain(domain)) = url.host()
        && domain.split('.').any(|label| {
            label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        })
    {
        return Err(error(
            "internationalized (xn--) host names are not taken yet".into(),
        ));
    }
    let accepted = url_language(policy, allow_private)
        .as_ref()
        .is_ok_and(|language| language.is_match(text));
    if !accepted {
        let literal = matches!(url.host(), Some(Host::Ipv4(_) | Host::Ipv6(_)));
        return Err(error(if literal && !is_loopback_host(&url) {
            "use a host name, not an IP address".into()
        } else if literal {
            "a loopback address is a destination only with --allow-private-destinations".into()
        } else {
            "write the URL as scheme://host[:port][/path][?name=value&…], with a host name whose last part starts with a letter, and a path and query of letters, digits and -._~ (no %-escapes, no #fragment)".into()
        }));
    }
    Ok(url)
}

/// The URLs [`webhook_url`] takes, as an ECMA-262 pattern for the OpenAPI document.
pub fn webhook_url_pattern(policy: HttpPolicy, allow_private: bool) -> String {
    url_pattern(policy, allow_private, true)
}

/// The same language without its lookaheads (which the `regex` crate does not have): what
/// they exclude, `xn--` labels and credential-like query names, [`webhook_url`] refuses
/// by itself first.
fn url_language(
    policy: HttpPolicy,
    allow_private: bool,
) -> &'static Result<regex::Regex, regex::Error> {
    use std::sync::OnceLock;
    static LANGUAGES: [OnceLock<Result<regex::Regex, regex::Error>>; 4] =
        [const { OnceLock::new() }; 4];
    let index = usize::from(policy == HttpPolicy::Anywhere) * 2 + usize::from(allow_private);
    LANGUAGES[index].get_or_init(|| regex::Regex::new(&url_pattern(policy, allow_private, false)))
}

/// `word`, matched whatever its letters' case (ECMA patterns in OpenAPI carry no flags).
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                regex_escape(c)
            }
        })
        .collect()
}

fn regex_escape(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == '_' {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}

fn url_pattern(policy: HttpPolicy, allow_private: bool, lookaheads: bool) -> String {
    let no_idn = if lookaheads { "(?![Xx][Nn]--)" } else { "" };
    let label = format!("{no_idn}[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?");
    let top = format!("{no_idn}[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?");
    let domain = format!("(?:{label}\\.)*{top}");
    let localhost = format!("(?:{label}\\.)*{}", any_case("localhost"));
    let loopback_ip = "127\\.0\\.0\\.1|\\[::1\\]";
    let with_ip = |hosts: String| {
        if allow_private {
            format!("{hosts}|{loopback_ip}")
        } else {
            hosts
        }
    };
    let https_hosts = with_ip(domain.clone());
    let http_hosts = with_ip(match policy {
        HttpPolicy::Anywhere => domain,
        HttpPolicy::LoopbackOnly => localhost,
    });
    let port =
        "(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?";
    let path = "(?:/[A-Za-z0-9._~!$&'()*+,;=:@-]*)*";
    let name_chars = "[A-Za-z0-9._~-]";
    let name = if lookaheads {
        let words: Vec<String> = SECRET_LOOKING_WORDS.iter().map(|w| any_case(w)).collect();
        let key = any_case("key");
        let sig = any_case("sig");
        format!(
            "(?!{name_chars}*(?:{})|(?:{key}|{sig})(?:[=&]|$)|{name_chars}*[_-]{key}(?:[=&]|$)){name_chars}+",
            words.join("|")
        )
    } else {
        format!("{name_chars}+")
    };
    let pair = format!("{name}(?:={name_chars}*)?");
    let query = format!("(?:\\?{pair}(?:&{pair})*)?");
    format!("^(?:https://(?:{https_hosts})|http://(?:{http_hosts})){port}{path}{query}$")
}

/// A name: 1–100 characters as sent, not blank, no control characters; kept trimmed.
pub fn name(field: &str, text: &str) -> Result<String, FieldError> {
    let trimmed = text.trim();
    let count = text.chars().count();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "the name is empty"));
    }
    if count > NAME_MAX_CHARS {
        return Err(FieldError::new(
            field,
            format!("the name is {count} characters long; at most {NAME_MAX_CHARS} are allowed"),
        ));
    }
    no_control_characters(field, trimmed)?;
    Ok(trimmed.to_owned())
}

/// A rate limit in deliveries per second: [`RATE_LIMIT_MIN`]..=[`RATE_LIMIT_MAX`].
pub fn rate_limit(field: &str, value: i64) -> Result<u32, FieldError> {
    u32::try_from(value)
        .ok()
        .filter(|rate| (RATE_LIMIT_MIN..=RATE_LIMIT_MAX).contains(rate))
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "{value} is not a rate limit: give {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX} \
                     deliveries per second, or null for none"
                ),
            )
        })
}

/// A rate limit as typed in the panel: empty for none, else as [`rate_limit`] takes it.
pub fn rate_limit_text(field: &str, text: &str) -> Result<Option<u32>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = text.parse::<i64>().map_err(|_| {
        FieldError::new(
            field,
            format!(
                "{text:?} is not a whole number: give {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX} \
                 deliveries per second, or leave it empty for none"
            ),
        )
    })?;
    rate_limit(field, value).map(Some)
}

/// An optional free text: empty means none.
pub fn optional_text(
    field: &str,
    text: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, FieldError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let count = text.chars().count();
    if count > max_chars {
        return Err(FieldError::new(
            field,
            format!("{count} characters is too long; at most {max_chars} are allowed"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(field, "control characters are not allowed"));
    }
    no_bidi_controls(field, text)?;
    let trimmed = text.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

fn no_control_characters(field: &str, text: &str) -> Result<(), FieldError> {
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(field, "control characters are not allowed"));
    }
    no_bidi_controls(field, text)
}

/// Characters that reorder how text is displayed (the "Trojan Source" ones): a name
/// holding them can show something other than what it says.
fn no_bidi_controls(field: &str, text: &str) -> Result<(), FieldError> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if text.chars().any(bidi) {
        return Err(FieldError::new(
            field,
            "text direction controls are not allowed: they can disguise what the text says",
        ));
    }
    Ok(())
}

/// Event subscriptions: non-empty, each in the catalog or `*`. Returns them sorted, once each.
pub fn events(
    field: &str,
    events: &[String],
    catalog: &Catalog,
) -> Result<Vec<String>, FieldError> {
    if events.is_empty() {
        return Err(FieldError::new(
            field,
            "subscribe to at least one event type (or \"*\" for all)",
        ));
    }
    if events.len() > EVENTS_MAX {
        return Err(FieldError::new(
            field,
            format!("at most {EVENTS_MAX} event types"),
        ));
    }
    let mut unique = BTreeSet::new();
    for event in events {
        if event != WILDCARD && !catalog.contains(event) {
            return Err(FieldError::new(
                field,
                format!("{event:?} is not in the event-type catalog (GET /v1/admin/event-types)"),
            ));
        }
        unique.insert(event.clone());
    }
    Ok(unique.into_iter().collect())
}

pub const EVENT_ID_MAX_CHARS: usize = 100;

/// A caller-chosen event id: 1–100 of `A-Z a-z 0-9 _ - . :`, so it travels safely in a header.
pub fn event_id(field: &str, text: &str) -> Result<String, FieldError> {
    if text.is_empty() || text.len() > EVENT_ID_MAX_CHARS {
        return Err(FieldError::new(
            field,
            format!("an event id has 1 to {EVENT_ID_MAX_CHARS} characters"),
        ));
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(FieldError::new(
            field,
            "an event id may hold only letters, digits, and _ - . :",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| webhook_url("url", u, HttpPolicy::LoopbackOnly, true).is_ok();
        assert!(ok("https://example.com/hooks"));
        assert!(ok("http://127.0.0.1:9000/in"));
        assert!(ok("http://localhost/in"));
        assert!(ok("http://[::1]:8080/in"));
        assert!(ok("https://example.com/hooks?tenant=4"));
        assert!(!ok("http://example.com/hooks"));
        assert!(!ok("ftp://example.com/hooks"));
        assert!(!ok("not a url"));
        assert!(!ok(""));
        assert!(!ok("https://user:pw@example.com/"));
        assert!(!ok("https://example.com/?token=abc"));
        assert!(!ok("https://example.com/?api_key=abc"));
        assert!(!ok("https://example.com/?Key=abc"));
        assert!(!ok("https://example.com/?client_secret=abc"));
        assert!(!ok("https://93.184.216.34/hooks"), "an IP literal");
        assert!(!ok("https://xn--a.example/"), "xn-- labels");
        assert!(!ok("https://example.com/%41"), "percent-escapes");
        assert!(!ok(" https://example.com/"), "white space");
        assert!(!ok("https://example.com:65536/"), "port out of range");
        assert!(ok("https://example.com:65535/a/b.c;d=e?x=1&y"));
        assert!(webhook_url("url", "http://example.com/", HttpPolicy::Anywhere, false).is_ok());
        assert!(
            webhook_url(
                "url",
                "http://127.0.0.1:9000/",
                HttpPolicy::LoopbackOnly,
                false
            )
            .is_err()
        );
        assert!(
            webhook_url(
                "url",
                "http://localhost:9000/",
                HttpPolicy::LoopbackOnly,
                false
            )
            .is_ok()
        );
    }

    /// The served pattern (with lookaheads) and the server's language agree: every URL the
    /// pattern's lookaheads exclude is refused by the server's own checks.
    #[test]
    fn the_served_pattern_names_what_the_lookaheads_exclude() {
        let pattern = webhook_url_pattern(HttpPolicy::LoopbackOnly, true);
        for word in ["[Xx][Nn]--", "[Tt][Oo][Kk][Ee][Nn]", "[Kk][Ee][Yy]"] {
            assert!(pattern.contains(word), "{word} in {pattern}");
        }
        assert!(url_language(HttpPolicy::LoopbackOnly, true).is_ok());
        assert!(url_language(HttpPolicy::Anywhere, false).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  Orders  ").as_deref(), Ok("Orders"));
        assert!(name("name", "").is_err());
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"é".repeat(100)).is_ok());
        assert!(name("name", &"é".repeat(101)).is_err());
        assert!(name("name", "a\u{7}b").is_err());
        assert!(name("name", "invoice\u{202e}fdp.exe").is_err());
        assert!(name("name", "Zahlungen 💶 عربي").is_ok());
    }

    #[test]
    fn event_lists() {
        let catalog = Catalog::builtin().expect("catalog");
        let sorted = events(
            "events",
            &["order.created".into(), "*".into(), "order.created".into()],
            &catalog,
        );
        assert_eq!(sorted, Ok(vec!["*".to_owned(), "order.created".to_owned()]));
        assert!(events("events", &[], &catalog).is_err());
        let unknown = events("events", &["nope".into()], &catalog).expect_err("unknown");
        assert_eq!(unknown.field, "events");
    }
}
