//! Desktop notifications when deliveries fail for good while the panel runs.
//!
//! Each refresh of the webhooks list brings every webhook's `failed_total`, a count that
//! only grows. [`FailureWatch`] compares it with the count it saw before: the first list
//! after connecting is the baseline (what failed before the panel looked is not news),
//! later growth is new failures. They are told in one notification at most every
//! [`NOTIFY_EVERY`], naming how many failed and for which webhooks; what fails in between
//! waits for the next one. The platform call (`notify-rust`: freedesktop notifications over
//! D-Bus on Linux) runs in the background, as [`Command::Notify`].
//!
//! [`Command::Notify`]: super::backend::Command::Notify

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::api::Webhook;

/// At most one notification this often.
pub const NOTIFY_EVERY: Duration = Duration::from_secs(60);

/// Most webhooks a notification names; the rest are counted.
const NAMED_AT_MOST: usize = 5;

/// What one notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureNote {
    pub summary: String,
    pub body: String,
}

/// New failures, per webhook, since the panel connected.
#[derive(Debug, Default)]
pub struct FailureWatch {
    /// Each webhook's `failed_total` when last seen; `None` until the first list.
    seen: Option<HashMap<String, u64>>,
    /// New failures not told yet, by webhook name.
    pending: BTreeMap<String, u64>,
    last_told: Option<Instant>,
}

impl FailureWatch {
    /// Takes in a fresh webhooks list.
    pub fn observe(&mut self, webhooks: &[Webhook]) {
        let counts = webhooks
            .iter()
            .map(|w| (w.id.clone(), w.failed_total))
            .collect();
        let Some(seen) = self.seen.replace(counts) else {
            return;
        };
        for webhook in webhooks {
            // A webhook registered since the last list starts from nothing.
            let before = seen.get(&webhook.id).copied().unwrap_or(0);
            let new = webhook.failed_total.saturating_sub(before);
            if new > 0 {
                *self.pending.entry(webhook.name.clone()).or_default() += new;
            }
        }
    }

    /// Forgets what is pending: notifications are off, and what failed meanwhile is not
    /// told later.
    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// The notification to show now, if failures are pending and none was shown in the
    /// last [`NOTIFY_EVERY`].
    pub fn due(&mut self, now: Instant) -> Option<FailureNote> {
        if self.pending.is_empty()
            || self
                .last_told
                .is_some_and(|at| now.duration_since(at) < NOTIFY_EVERY)
        {
            return None;
        }
        self.last_told = Some(now);
        let pending = std::mem::take(&mut self.pending);
        Some(note(pending))
    }
}

/// Shows `note` through the platform's notification service; blocks until it answers.
pub fn show(note: &FailureNote) -> Result<(), String> {
    notify_rust::Notification::new()
        .appname("Hookpanel")
        .summary(&note.summary)
        .body(&note.body)
        .show()
        .map(drop)
        .map_err(|err| err.to_string())
}

fn note(pending: BTreeMap<String, u64>) -> FailureNote {
    let total: u64 = pending.values().sum();
    let mut by_count: Vec<(String, u64)> = pending.into_iter().collect();
    // The most failures first; names break ties, so the text is stable.
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut named: Vec<String> = by_count
        .iter()
        .take(NAMED_AT_MOST)
        .map(|(name, count)| format!("{name} ({count})"))
        .collect();
    if by_count.len() > NAMED_AT_MOST {
        named.push(format!("{} more webhooks", by_count.len() - NAMED_AT_MOST));
    }
    FailureNote {
        summary: format!("{} failed for good", super::widgets::deliveries(total)),
        body: named.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(id: &str, name: &str, failed_total: u64) -> Webhook {
        Webhook {
            failed_total,
            ..Webhook::sample(id, name, chrono::Utc::now())
        }
    }

    #[test]
    fn failures_before_the_first_list_are_not_news_and_later_ones_are_told_once_a_minute() {
        let start = Instant::now();
        let mut watch = FailureWatch::default();
        watch.observe(&[webhook("a", "Orders", 40), webhook("b", "Billing", 2)]);
        assert_eq!(watch.due(start), None, "the baseline is not news");

        watch.observe(&[webhook("a", "Orders", 43), webhook("b", "Billing", 2)]);
        watch.observe(&[
            webhook("a", "Orders", 44),
            webhook("b", "Billing", 3),
            webhook("c", "New one", 2),
        ]);
        assert_eq!(
            watch.due(start),
            Some(FailureNote {
                summary: "7 deliveries failed for good".to_owned(),
                body: "Orders (4), New one (2), Billing (1)".to_owned(),
            })
        );
        assert_eq!(watch.due(start), None, "nothing pending");

        // Within the minute: held back, then told together.
        watch.observe(&[webhook("a", "Orders", 45)]);
        assert_eq!(watch.due(start + Duration::from_secs(30)), None);
        watch.observe(&[webhook("a", "Orders", 46)]);
        assert_eq!(
            watch.due(start + NOTIFY_EVERY),
            Some(FailureNote {
                summary: "2 deliveries failed for good".to_owned(),
                body: "Orders (2)".to_owned(),
            })
        );

        // Off: what failed meanwhile is dropped.
        watch.observe(&[webhook("a", "Orders", 50)]);
        watch.drop_pending();
        assert_eq!(watch.due(start + NOTIFY_EVERY * 3), None);
    }

    #[test]
    fn many_webhooks_are_named_up_to_five_and_the_rest_counted() {
        let mut watch = FailureWatch::default();
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        watch.observe(&names.map(|n| webhook(n, n, 0)));
        watch.observe(&names.map(|n| webhook(n, n, 1)));
        let note = watch.due(Instant::now()).expect("due");
        assert_eq!(note.summary, "7 deliveries failed for good");
        assert_eq!(
            note.body,
            "a (1), b (1), c (1), d (1), e (1), 2 more webhooks"
        );
    }
}
