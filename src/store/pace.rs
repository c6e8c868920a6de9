//! Per-webhook rate limits: how many deliveries a webhook may start now, by GCRA (the
//! generic cell rate algorithm, a token bucket kept as one timestamp).
//!
//! A webhook limited to `r` deliveries a second has one delivery every `T = 1/r`, and may
//! run up to [`burst`] of them together after a pause. Its pace is one number, `next_at`:
//! the time at which it would be back on schedule had it started every delivery it was
//! allowed. A delivery may start at `now` while `next_at − (burst − 1)·T ≤ now`, and each
//! one started moves `next_at` on by `T` from `max(next_at, now)`. So in any window of one
//! second no more than `r + burst − 1` start.
//!
//! The pace lives in the database (`webhook_pace`), read and moved on by the claim that
//! starts the deliveries: on PostgreSQL every replica's claim locks the same row, so the
//! replicas share one budget.

use super::ClaimLimits;
use crate::validate::{RATE_LIMIT_MAX, RATE_LIMIT_MIN};

/// Microseconds per second.
const MICROS: i64 = 1_000_000;

/// How many deliveries a webhook limited to `rate` a second may start together: a
/// twentieth of a second's worth, at least one. Claims then come every 50 ms at most
/// rather than once per delivery, and any one second holds at most 5 % more than `rate`.
pub fn burst(rate: u32) -> u32 {
    (rate / 20).max(1)
}

/// What a claim looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// Every webhook's due deliveries.
    All,
    /// Rate-limited webhooks' alone. Their deliveries waiting for a turn stay due, and a
    /// look at every webhook passes over them in the due index: when only a turn has
    /// come, this look costs nothing of the kind.
    Paced,
}

/// When the dispatcher should look again, as [`Store::next_due_at`] says.
///
/// [`Store::next_due_at`]: super::Store::next_due_at
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextDue {
    /// The next due delivery of a webhook without a rate limit (not looked for with
    /// [`ClaimScope::Paced`]).
    pub unpaced: Option<chrono::DateTime<chrono::Utc>>,
    /// The next turn of a rate-limited webhook that has a delivery due by then.
    pub paced: Option<chrono::DateTime<chrono::Utc>>,
}

/// A rate-limited webhook's pace, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Deliveries per second, [`RATE_LIMIT_MIN`]..=[`RATE_LIMIT_MAX`].
    pub rate: u32,
    /// GCRA's theoretical arrival time, in microseconds since the epoch (0 for a webhook
    /// that never started a paced delivery).
    pub next_at_us: i64,
}

impl Pace {
    /// Time between two deliveries, in microseconds.
    fn interval(self) -> i64 {
        MICROS / i64::from(self.rate.clamp(RATE_LIMIT_MIN, RATE_LIMIT_MAX))
    }

    /// How far ahead of schedule a burst may run.
    fn tolerance(self) -> i64 {
        i64::from(burst(self.rate) - 1) * self.interval()
    }

    /// How many deliveries may start at `now_us`, at most `wanted`.
    pub fn allowed(self, now_us: i64, wanted: usize) -> usize {
        let from = self.next_at_us.max(now_us);
        let ahead = now_us + self.tolerance() - from;
        if ahead < 0 {
            return 0;
        }
        let allowed = ahead / self.interval() + 1;
        usize::try_from(allowed).unwrap_or(usize::MAX).min(wanted)
    }

    /// The pace after `started` deliveries started at `now_us`.
    pub fn after(self, now_us: i64, started: usize) -> Self {
        if started == 0 {
            return self;
        }
        let started = i64::try_from(started).unwrap_or(i64::MAX);
        Self {
            next_at_us: self
                .next_at_us
                .max(now_us)
                .saturating_add(started.saturating_mul(self.interval())),
            ..self
        }
    }

    /// When a whole burst may start again, in microseconds since the epoch.
    pub fn whole_burst_at_us(self) -> i64 {
        self.next_at_us
    }
}

/// A rate-limited webhook as a claim reads it: its pace, and whether any of its
/// deliveries is due now and held by no attempt.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PacedRow {
    pub webhook_id: String,
    pub rate_limit: i64,
    pub next_at_us: i64,
    pub due: bool,
}

impl Pace {
    /// A pace as its columns store it: `webhooks.rate_limit` and `webhook_pace.next_at_us`.
    fn stored(rate_limit: i64, next_at_us: i64) -> Self {
        let rate = rate_limit.clamp(i64::from(RATE_LIMIT_MIN), i64::from(RATE_LIMIT_MAX));
        Self {
            rate: u32::try_from(rate).unwrap_or(RATE_LIMIT_MAX),
            next_at_us,
        }
    }
}

/// What a claim takes of one rate-limited webhook.
#[derive(Debug)]
pub(super) struct Planned {
    pub webhook_id: String,
    /// At most this many of its due deliveries, oldest first.
    pub take: usize,
    /// Its pace before them: move it on by those taken with [`Pace::after`].
    pub pace: Pace,
}

/// What a claim of at most `limit` deliveries at `now_us` takes of each rate-limited
/// webhook that has deliveries due: what its pace allows, within its share of the
/// attempt slots.
pub(super) fn plan(
    paced: &[PacedRow],
    limits: &ClaimLimits,
    limit: usize,
    now_us: i64,
) -> Vec<Planned> {
    let mut left = limit;
    let mut planned = Vec::new();
    for row in paced.iter().filter(|row| row.due) {
        let pace = Pace::stored(row.rate_limit, row.next_at_us);
        let take = pace.allowed(now_us, limits.room_for(&row.webhook_id).min(left));
        if take > 0 {
            left -= take;
            planned.push(Planned {
                webhook_id: row.webhook_id.clone(),
                take,
                pace,
            });
        }
    }
    planned
}

/// A rate-limited webhook as the dispatcher's next look reads it: its pace, and when its
/// first delivery held by no attempt is due (in milliseconds since the epoch), if any.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PacedDue {
    pub webhook_id: String,
    pub rate_limit: i64,
    pub next_at_us: i64,
    pub due_at: Option<i64>,
}

/// When the dispatcher should next claim for a rate-limited webhook not in `full`, in
/// milliseconds since the epoch: once its first delivery is due and its pace allows a
/// whole burst again. Not at the first single turn: with a backlog, that would be a claim
/// (a write transaction) per delivery, 100 a second at 100/s, which cost the other
/// webhooks a third of their pace (BENCHMARKS.md); a burst's worth takes one claim every
/// 50 ms. A lone delivery waits at most that long more.
pub(super) fn next_start(paced: &[PacedDue], full: &[String]) -> Option<i64> {
    paced
        .iter()
        .filter(|row| !full.contains(&row.webhook_id))
        .filter_map(|row| {
            let pace = Pace::stored(row.rate_limit, row.next_at_us);
            let allowed_ms = pace.whole_burst_at_us().div_euclid(1_000) + 1;
            row.due_at.map(|due_at| due_at.max(allowed_ms))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts everything allowed, once every `step_us`, for `span_us`; returns the start
    /// times.
    fn starts(rate: u32, step_us: i64, span_us: i64) -> Vec<i64> {
        let mut pace = Pace {
            rate,
            next_at_us: 0,
        };
        let mut starts = Vec::new();
        let mut now = 1_000_000_000;
        let end = now + span_us;
        while now < end {
            let n = pace.allowed(now, usize::MAX);
            starts.extend(std::iter::repeat_n(now, n));
            pace = pace.after(now, n);
            now += step_us;
        }
        starts
    }

    fn most_in_any_second(starts: &[i64]) -> usize {
        (0..starts.len())
            .map(|i| {
                starts[i..]
                    .iter()
                    .take_while(|&&t| t < starts[i] + MICROS)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_webhook_keeps_to_its_rate_in_every_second_whatever_the_claims_cadence() {
        for (rate, step_us) in [(50, 1_000), (50, 7_000), (2_000, 1_000), (1, 100_000)] {
            let starts = starts(rate, step_us, 10 * MICROS);
            let most = most_in_any_second(&starts);
            let limit = (rate + burst(rate) - 1) as usize;
            assert!(
                most <= limit,
                "{rate}/s claimed every {step_us} µs: {most} in one second"
            );
            // And it is not held back: ten seconds give about ten seconds' worth.
            assert!(
                starts.len() >= (rate as usize) * 10 - 1,
                "{rate}/s claimed every {step_us} µs: only {} in 10 s",
                starts.len()
            );
        }
    }

    #[test]
    fn a_burst_is_allowed_after_a_pause_and_no_more() {
        let pace = Pace {
            rate: 200,
            next_at_us: 0,
        };
        assert_eq!(burst(200), 10);
        assert_eq!(pace.allowed(5 * MICROS, usize::MAX), 10);
        assert_eq!(pace.allowed(5 * MICROS, 3), 3);
        let after = pace.after(5 * MICROS, 10);
        assert_eq!(after.allowed(5 * MICROS, usize::MAX), 0);
        // One interval (5 ms) later, one more; a whole burst once the burst's time is up.
        assert_eq!(after.allowed(5 * MICROS + 4_999, usize::MAX), 0);
        assert_eq!(after.allowed(5 * MICROS + 5_000, usize::MAX), 1);
        assert_eq!(after.whole_burst_at_us(), 5 * MICROS + 50_000);
        assert_eq!(after.allowed(after.whole_burst_at_us(), usize::MAX), 10);
        // Taking fewer than allowed keeps the rest for later.
        let some = pace.after(5 * MICROS, 4);
        assert_eq!(some.allowed(5 * MICROS, usize::MAX), 6);
        // Nothing started, nothing moves.
        assert_eq!(pace.after(5 * MICROS, 0), pace);
    }
}
