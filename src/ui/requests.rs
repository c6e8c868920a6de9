//! The panel's requests that repeat (each view's refresh), kept to one in flight each, and
//! how slow the service has been answering them.
//!
//! A refresh whose previous answer has not come back is skipped, so a slow service never
//! has a pile of the panel's requests on it; while answers are slow the panel refreshes
//! less often, and says so.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::backend::ListTag;

/// A request that a view repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKey {
    Webhooks,
    /// The newest page of a deliveries list.
    Page(ListTag),
    /// The delivery open in a list's inspector.
    Detail(ListTag),
    Stats,
    Inbox,
    Keys,
    /// The newest page of the audit log.
    Audit,
}

/// How often open views refresh while the service answers quickly.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);
/// The longest the panel waits between refreshes while the service is slow.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// An answer this slow (or a request waiting this long) is worth saying.
pub const SLOW_AFTER: Duration = Duration::from_secs(2);

/// The repeating requests under way, and how long the service took lately.
#[derive(Debug, Default)]
pub struct Requests {
    /// When each request under way was sent, oldest first.
    under_way: HashMap<RequestKey, VecDeque<Instant>>,
    /// How long the latest answer took.
    latest: Option<Duration>,
}

impl Requests {
    /// Whether a `key` request is still waiting for its answer.
    pub fn is_waiting(&self, key: RequestKey) -> bool {
        self.under_way
            .get(&key)
            .is_some_and(|sent| !sent.is_empty())
    }

    pub fn sent(&mut self, key: RequestKey, at: Instant) {
        self.under_way.entry(key).or_default().push_back(at);
    }

    /// The answer to the oldest `key` request under way came at `at`.
    pub fn answered(&mut self, key: RequestKey, at: Instant) {
        if let Some(sent) = self.under_way.get_mut(&key).and_then(VecDeque::pop_front) {
            self.latest = Some(at.saturating_duration_since(sent));
        }
    }

    /// Forgets every request under way (their answers will be for another service).
    pub fn clear(&mut self) {
        self.under_way.clear();
        self.latest = None;
    }

    /// How slow the service is, when it is worth saying: the latest answer's time, or
    /// how long the oldest request under way has waited, whichever is longer.
    pub fn slowness(&self, now: Instant) -> Option<Duration> {
        let waiting = self
            .under_way
            .values()
            .filter_map(VecDeque::front)
            .map(|sent| now.saturating_duration_since(*sent))
            .max();
        let slowest = waiting.max(self.latest)?;
        (slowest >= SLOW_AFTER).then_some(slowest)
    }

    /// How long after a refresh the next is due: [`REFRESH_EVERY`], or twice the latest
    /// answer's time while that is longer (at most [`REFRESH_AT_MOST_EVERY`]).
    pub fn refresh_every(&self) -> Duration {
        let backed_off = self.latest.map_or(Duration::ZERO, |took| took * 2);
        backed_off.clamp(REFRESH_EVERY, REFRESH_AT_MOST_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_key_and_slowness_said_and_backed_off() {
        let start = Instant::now();
        let mut requests = Requests::default();
        assert!(!requests.is_waiting(RequestKey::Webhooks));
        assert_eq!(requests.refresh_every(), REFRESH_EVERY);

        requests.sent(RequestKey::Webhooks, start);
        requests.sent(RequestKey::Page(ListTag::Failed), start);
        assert!(requests.is_waiting(RequestKey::Webhooks));
        assert!(!requests.is_waiting(RequestKey::Page(ListTag::All)));
        assert_eq!(requests.slowness(start + Duration::from_secs(1)), None);
        assert_eq!(
            requests.slowness(start + Duration::from_millis(5_100)),
            Some(Duration::from_millis(5_100)),
            "a request still waiting counts"
        );

        requests.answered(RequestKey::Webhooks, start + Duration::from_millis(500));
        requests.answered(
            RequestKey::Page(ListTag::Failed),
            start + Duration::from_secs(6),
        );
        assert!(!requests.is_waiting(RequestKey::Webhooks));
        assert_eq!(
            requests.slowness(start + Duration::from_secs(7)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(requests.refresh_every(), Duration::from_secs(12));

        requests.sent(RequestKey::Stats, start + Duration::from_secs(7));
        requests.answered(RequestKey::Stats, start + Duration::from_millis(7_200));
        assert_eq!(requests.slowness(start + Duration::from_secs(8)), None);
        assert_eq!(requests.refresh_every(), REFRESH_EVERY);

        // An answer nobody waits for (sent before a reconnect) changes nothing.
        requests.clear();
        requests.answered(RequestKey::Inbox, start + Duration::from_secs(60));
        assert_eq!(requests.slowness(start + Duration::from_secs(60)), None);
    }
}
