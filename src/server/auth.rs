//! The admin key check in front of every `/v1/admin` route, and the limit on failed
//! attempts per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, HOST, RETRY_AFTER};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::AppState;
use super::error::ApiError;
use crate::api::{AuditAction, Role};
use crate::crypto;
use crate::store::{Audit, KeyHolder};

/// Refuses a request whose `Host` is not one this service answers to (see
/// `ServiceConfig::loopback_host_only`), before anything else looks at it.
pub async fn require_allowed_host(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(allowed) = &state.allowed_hosts else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_ascii_lowercase);
    if host.is_some_and(|host| allowed.contains(&host)) {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        format!(
            "this service answers only to Host: {}",
            allowed.join(" or ")
        ),
    )
    .into_response()
}

/// The holder of the key a request presented, as [`require_admin_key`] found it: what
/// the audit log names as the actor of what the request changes.
#[derive(Clone, Debug)]
pub struct Caller(pub KeyHolder);

impl Caller {
    /// An audit entry of `action` on `target_id` by this caller.
    pub fn audit(&self, action: AuditAction, target_id: Option<&str>) -> Audit {
        Audit::new(&self.0.name, action, target_id)
    }
}

/// The role a request needs: any key reads, resends and sends tests; everything else
/// takes an admin key. `path` is the route's pattern, e.g. `/v1/admin/webhooks/{id}`.
pub fn role_needed(method: &Method, path: &str) -> Role {
    const OPERATOR_POSTS: [&str; 4] = [
        "/v1/admin/deliveries/{id}/resend",
        "/v1/admin/deliveries/resend",
        "/v1/admin/webhooks/{id}/recover",
        "/v1/admin/webhooks/{id}/test",
    ];
    if *method == Method::GET
        || *method == Method::HEAD
        || (*method == Method::POST && OPERATOR_POSTS.contains(&path))
    {
        Role::Operator
    } else {
        Role::Admin
    }
}

/// Whether a key of role `held` may do what takes `needed`.
fn allows(held: Role, needed: Role) -> bool {
    held == Role::Admin || needed == Role::Operator
}

/// Lets through a request that presents a key of this service whose role may take its
/// route, with the key's [`Caller`] in its extensions.
pub async fn require_admin_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
        });
    // Looked up by its SHA-256: a lookup's timing could tell only about a hash, and
    // knowing a key's hash does not give the key.
    let holder = match presented {
        Some(key) if !key.is_empty() => {
            match state.store.key_holder(&crypto::admin_key_digest(key)).await {
                Ok(holder) => holder,
                Err(err) => return ApiError::from(err).into_response(),
            }
        }
        _ => None,
    };
    if let Some(holder) = holder {
        // A valid key is never slowed, whatever others at its address tried.
        let needed = role_needed(
            req.method(),
            req.extensions()
                .get::<MatchedPath>()
                .map_or_else(|| req.uri().path(), MatchedPath::as_str),
        );
        if !allows(holder.role, needed) {
            return ApiError::forbidden(needed).into_response();
        }
        if state.store.key_use_due(&holder) {
            let store = state.store.clone();
            let key_id = holder.id.clone();
            tokio::spawn(async move {
                if let Err(err) = store.note_key_use(&key_id).await {
                    tracing::warn!("could not note the use of key {key_id}: {err}");
                }
            });
        }
        req.extensions_mut().insert(Caller(holder));
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(client) = client
        && let Err(wait) = state.failed_keys.fail(client, Instant::now())
    {
        tracing::warn!(%client, "too many wrong admin keys: refused for {wait:?}");
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many requests with a wrong or missing admin key from this address; try again in {seconds} s"
            ),
        )
        .into_response();
        response.headers_mut().insert(RETRY_AFTER, seconds.into());
        return response;
    }
    match presented {
        Some(_) => {
            ApiError::unauthorized("the admin key is not valid for this service").into_response()
        }
        None => ApiError::unauthorized(
            "this route needs the header `Authorization: Bearer <admin key>`",
        )
        .into_response(),
    }
}

/// Failed admin-key attempts allowed per client address: [`FAILED_KEYS_PER_SECOND`] a
/// second, after a burst of [`FAILED_KEYS_BURST`]. A generic cell rate algorithm: each
/// address keeps only the time its budget is next whole ("theoretical arrival time").
///
/// Written here rather than taken from `governor`: it must not count the attempts that it
/// refuses, and it stays bounded in memory under a spray of addresses.
#[derive(Debug)]
pub struct FailedKeyLimiter {
    per_attempt: Duration,
    burst: u32,
    next_whole: Mutex<HashMap<IpAddr, Instant>>,
}

pub const FAILED_KEYS_PER_SECOND: u32 = 10;
pub const FAILED_KEYS_BURST: u32 = 20;
/// Addresses tracked at most; past it, those whose budget is whole again are forgotten,
/// and while it stays full, new addresses go uncounted rather than grow the map.
const TRACKED_ADDRESSES: usize = 65_536;

impl Default for FailedKeyLimiter {
    fn default() -> Self {
        Self {
            per_attempt: Duration::from_secs(1) / FAILED_KEYS_PER_SECOND,
            burst: FAILED_KEYS_BURST,
            next_whole: Mutex::new(HashMap::new()),
        }
    }
}

impl FailedKeyLimiter {
    /// [`FAILED_KEYS_PER_SECOND`] a second after a burst of `burst`.
    pub fn with_burst(burst: u32) -> Self {
        Self {
            burst: burst.max(1),
            ..Self::default()
        }
    }

    /// Counts a failed attempt from `client` at `now`; `Err` with how long until one more
    /// is allowed when its budget is spent (the refused attempt is not counted).
    pub fn fail(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut next_whole) = self.next_whole.lock() else {
            return Ok(());
        };
        let tolerance = self.per_attempt * self.burst;
        let whole_at = next_whole.get(&client).copied().unwrap_or(now).max(now);
        let after = whole_at + self.per_attempt;
        if after - now > tolerance {
            return Err(after - now - tolerance);
        }
        if next_whole.len() >= TRACKED_ADDRESSES && !next_whole.contains_key(&client) {
            next_whole.retain(|_, at| *at > now);
            if next_whole.len() >= TRACKED_ADDRESSES {
                return Ok(());
            }
        }
        next_whole.insert(client, after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_ten_a_second_and_refusals_do_not_count() {
        let limiter = FailedKeyLimiter::default();
        let client: IpAddr = "192.0.2.7".parse().expect("ip");
        let other: IpAddr = "2001:db8::1".parse().expect("ip");
        let start = Instant::now();
        for n in 0..FAILED_KEYS_BURST {
            assert_eq!(limiter.fail(client, start), Ok(()), "attempt {n}");
        }
        let wait = limiter.fail(client, start).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(100));
        // Refused attempts do not push the budget further away.
        for _ in 0..100 {
            assert!(limiter.fail(client, start).is_err());
        }
        assert_eq!(
            limiter.fail(client, start + Duration::from_millis(100)),
            Ok(())
        );
        assert!(
            limiter
                .fail(client, start + Duration::from_millis(100))
                .is_err()
        );
        // Another address has its own budget.
        assert_eq!(limiter.fail(other, start), Ok(()));
        // Two seconds of quiet make the whole burst available again.
        let later = start + Duration::from_secs(3);
        for _ in 0..FAILED_KEYS_BURST {
            assert_eq!(limiter.fail(client, later), Ok(()));
        }
        assert!(limiter.fail(client, later).is_err());
    }
}
