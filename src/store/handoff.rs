//! New deliveries handed straight to the dispatcher of this process, claimed as they
//! are written.
//!
//! Without a handoff, an emit writes its deliveries unclaimed and wakes the dispatcher,
//! which claims them with a write of its own (`UPDATE … SET lease_until`) before it can
//! send them: one more transaction in the single write turn for every emit at a
//! trickle, and about a fifth of the writer's time under load. With one, an emit takes a
//! free attempt slot per delivery, writes the delivery with its lease already set, and
//! after the commit sends the job, slot included, down a channel: the dispatcher starts
//! it without touching the database. A crash loses nothing: the rows are committed and
//! leased like claimed ones, and are released at the next start or when the lease ends.
//!
//! The slots are also counted per webhook: no webhook has more than its share of
//! attempts under way at once, so one whose receiver hangs for the whole attempt timeout
//! cannot take every slot from the others (see [`AttemptSlot`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::DeliveryJob;

/// A delivery claimed at its creation, with the attempt slot it holds.
#[derive(Debug)]
pub struct HandedJob {
    pub job: DeliveryJob,
    /// Released when the attempt is over.
    pub slot: AttemptSlot,
}

/// The right to make one attempt: one of the dispatcher's slots, held until the attempt
/// is queued to be recorded, and one of its webhook's, held while the request is under way.
#[derive(Debug)]
pub struct AttemptSlot {
    _permit: OwnedSemaphorePermit,
    webhook: Option<WebhookTicket>,
}

impl AttemptSlot {
    /// The request is over: the webhook may start another while this one is queued.
    pub fn release_webhook(&mut self) {
        self.webhook = None;
    }
}

/// One attempt counted against its webhook's share, until dropped.
#[derive(Debug)]
struct WebhookTicket {
    in_flight: Arc<InFlight>,
    webhook_id: String,
}

impl Drop for WebhookTicket {
    fn drop(&mut self) {
        let Ok(mut counts) = self.in_flight.by_webhook.lock() else {
            return;
        };
        let Some(count) = counts.under_way.get_mut(&self.webhook_id) else {
            return;
        };
        let before = *count;
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.under_way.remove(&self.webhook_id);
        }
        drop(counts);
        // Its due deliveries were left out of claims while it was full: look again once
        // it has room for a batch, rather than claim one delivery per request that ends.
        let look_at = self.in_flight.per_webhook - (self.in_flight.per_webhook / 4).max(1);
        if before > look_at && before - 1 <= look_at {
            self.in_flight.room.notify_one();
        }
    }
}

/// Requests under way per webhook.
#[derive(Debug)]
struct InFlight {
    per_webhook: usize,
    by_webhook: Mutex<Counts>,
    /// Told when a webhook that had (nearly) its whole share under way has room for a
    /// quarter of it again.
    room: Notify,
}

#[derive(Debug, Default)]
struct Counts {
    /// Requests under way, per webhook that has any.
    under_way: HashMap<String, usize>,
    /// Webhooks whose new deliveries were left in the database because they had their
    /// whole share under way: the next ones wait behind those, in order, until a claim
    /// has taken them all.
    queued: HashSet<String>,
}

/// What a claim may take: nothing of the webhooks in `full`, at most `room` of those
/// listed there, and at most `per_webhook` of any other.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClaimLimits {
    pub full: Vec<String>,
    pub room: Vec<(String, usize)>,
    pub per_webhook: usize,
}

/// How many due deliveries a claim looks at per delivery it may take, so that webhooks
/// at their share's end do not make it look at every due delivery.
pub(super) const CLAIM_CANDIDATES_PER_SLOT: i64 = 4;

/// How many of the earliest due deliveries the look for the next due time reads before it
/// looks per webhook instead.
pub(super) const NEXT_DUE_WINDOW: i64 = 4096;

impl ClaimLimits {
    /// How many of the earliest due deliveries of all webhooks a claim of `limit` walks
    /// before it looks per webhook instead: those under way (they stay due until
    /// recorded) and [`CLAIM_CANDIDATES_PER_SLOT`] per slot.
    ///
    /// Walking on cost 20-40 ms a claim past 100 000 deliveries waiting their turn at a
    /// rate limit (BENCHMARKS.md, 2026-12-03).
    pub(super) fn claim_window(&self, limit: u32) -> i64 {
        let under_way = self
            .room
            .iter()
            .map(|(_, room)| self.per_webhook.saturating_sub(*room))
            .chain(self.full.iter().map(|_| self.per_webhook))
            .fold(0_usize, usize::saturating_add);
        i64::from(limit)
            .saturating_mul(CLAIM_CANDIDATES_PER_SLOT)
            .saturating_add(i64::try_from(under_way).unwrap_or(i64::MAX))
    }

    /// No webhook has anything under way.
    pub fn unlimited() -> Self {
        Self {
            per_webhook: usize::MAX,
            ..Self::default()
        }
    }

    /// How many deliveries of `webhook_id` the claim may take.
    pub fn room_for(&self, webhook_id: &str) -> usize {
        if self.full.iter().any(|id| id == webhook_id) {
            return 0;
        }
        self.room
            .iter()
            .find(|(id, _)| id == webhook_id)
            .map_or(self.per_webhook, |(_, room)| *room)
    }

    /// What is left of these limits once a claim has taken deliveries of `taken` (a
    /// webhook once per delivery).
    pub fn after_taking<'a>(&self, taken: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for webhook_id in taken {
            *counts.entry(webhook_id).or_default() += 1;
        }
        let mut left = Self {
            full: self.full.clone(),
            room: Vec::with_capacity(self.room.len() + counts.len()),
            per_webhook: self.per_webhook,
        };
        for (webhook_id, room) in &self.room {
            if !counts.contains_key(webhook_id.as_str()) {
                left.room.push((webhook_id.clone(), *room));
            }
        }
        for (webhook_id, took) in counts {
            match self.room_for(webhook_id).saturating_sub(took) {
                0 => left.full.push(webhook_id.to_owned()),
                room => left.room.push((webhook_id.to_owned(), room)),
            }
        }
        left
    }
}

/// The dispatcher's side of the handoff, registered with [`Store::hand_new_deliveries_to`].
///
/// [`Store::hand_new_deliveries_to`]: super::Store::hand_new_deliveries_to
#[derive(Clone, Debug)]
pub struct Handoff {
    /// The dispatcher's attempt slots, shared with its own claims: one per attempt in
    /// flight or handed over and about to start.
    slots: Arc<Semaphore>,
    /// How many slots there are.
    total: usize,
    in_flight: Arc<InFlight>,
    jobs: mpsc::Sender<HandedJob>,
    lease: Duration,
    /// Open while the dispatcher has no due work left in the database to claim: new
    /// deliveries then skip the queue. Closed, they wait their turn behind what is due,
    /// so a stream of new events cannot keep older due deliveries from their slots.
    open: Arc<AtomicBool>,
}

/// Why a new delivery was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Closed, every slot taken, or earlier deliveries of its webhook wait in the
    /// database: the dispatcher must be told to claim it.
    NoSlot,
    /// Its webhook has its whole share under way: the dispatcher looks again by itself
    /// when one of them ends.
    WebhookFull,
}

impl Handoff {
    /// A handoff for a dispatcher with `slots` attempt slots, of which `per_webhook` at
    /// most serve one webhook's requests at once; `jobs` must hold `slots` jobs, so that
    /// a send never waits.
    pub fn new(
        slots: usize,
        per_webhook: usize,
        jobs: mpsc::Sender<HandedJob>,
        lease: Duration,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            total: slots,
            in_flight: Arc::new(InFlight {
                per_webhook: per_webhook.max(1),
                by_webhook: Mutex::default(),
                room: Notify::new(),
            }),
            jobs,
            lease,
            open: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Lets new deliveries through (`true`) or sends them to the queue (`false`).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    /// How many attempt slots are free.
    /// How many attempt slots there are.
    pub fn slots(&self) -> usize {
        self.total
    }

    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Resolves when a webhook that had its whole share under way has room again.
    pub async fn webhook_room(&self) {
        self.in_flight.room.notified().await;
    }

    /// Up to `wanted` free attempt slots for the dispatcher's own claim, open or not; each
    /// is tied to a webhook with [`Handoff::slot_for`] once the claim says which.
    pub fn slots_for_claim(&self, wanted: usize) -> Vec<OwnedSemaphorePermit> {
        (0..wanted)
            .map_while(|_| Arc::clone(&self.slots).try_acquire_owned().ok())
            .collect()
    }

    /// A claimed slot, counted against `webhook_id` (a claim keeps to [`ClaimLimits`], so
    /// this stays within the share but for a race with an emit).
    pub fn slot_for(&self, permit: OwnedSemaphorePermit, webhook_id: &str) -> AttemptSlot {
        if let Ok(mut counts) = self.in_flight.by_webhook.lock() {
            *counts.under_way.entry(webhook_id.to_owned()).or_default() += 1;
        }
        AttemptSlot {
            _permit: permit,
            webhook: Some(self.ticket(webhook_id)),
        }
    }

    fn ticket(&self, webhook_id: &str) -> WebhookTicket {
        WebhookTicket {
            in_flight: Arc::clone(&self.in_flight),
            webhook_id: webhook_id.to_owned(),
        }
    }

    /// What the next claim may take of each webhook.
    pub fn claim_limits(&self) -> ClaimLimits {
        let per_webhook = self.in_flight.per_webhook;
        let mut limits = ClaimLimits {
            per_webhook,
            ..ClaimLimits::default()
        };
        if let Ok(counts) = self.in_flight.by_webhook.lock() {
            for (webhook_id, &count) in &counts.under_way {
                if count >= per_webhook {
                    limits.full.push(webhook_id.clone());
                } else {
                    limits.room.push((webhook_id.clone(), per_webhook - count));
                }
            }
        }
        limits
    }

    /// After a claim made with `limits` that was given `limit` slots and returned
    /// `claimed`: a webhook whose queued deliveries it took fewer of than it could has
    /// none left in the database, so its new deliveries may be handed over again.
    pub fn claimed(&self, limits: &ClaimLimits, limit: usize, claimed: &[DeliveryJob]) {
        if claimed.len() >= limit {
            // Cut short by the slots: nothing can be said of any webhook.
            return;
        }
        let Ok(mut counts) = self.in_flight.by_webhook.lock() else {
            return;
        };
        if counts.queued.is_empty() {
            return;
        }
        let mut taken: HashMap<&str, usize> = HashMap::new();
        for job in claimed {
            *taken.entry(job.webhook_id.as_str()).or_default() += 1;
        }
        counts.queued.retain(|webhook_id| {
            if limits.full.contains(webhook_id) {
                return true;
            }
            taken.get(webhook_id.as_str()).copied().unwrap_or(0) >= limits.room_for(webhook_id)
        });
    }

    /// A free attempt slot for a new delivery to `webhook_id`: none while closed, while
    /// every slot is taken, while the webhook has its whole share under way, or while
    /// earlier deliveries of it wait in the database.
    pub(super) fn take_slot(&self, webhook_id: &str) -> Result<AttemptSlot, Refused> {
        if !self.open.load(Ordering::Acquire) {
            return Err(Refused::NoSlot);
        }
        let Ok(mut counts) = self.in_flight.by_webhook.lock() else {
            return Err(Refused::NoSlot);
        };
        let count = counts.under_way.get(webhook_id).copied().unwrap_or(0);
        if count >= self.in_flight.per_webhook {
            counts.queued.insert(webhook_id.to_owned());
            return Err(Refused::WebhookFull);
        }
        if counts.queued.contains(webhook_id) {
            // It has room, and the dispatcher is to claim what waits first.
            return Err(Refused::NoSlot);
        }
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Refused::NoSlot)?;
        counts.under_way.insert(webhook_id.to_owned(), count + 1);
        drop(counts);
        Ok(AttemptSlot {
            _permit: permit,
            webhook: Some(self.ticket(webhook_id)),
        })
    }

    /// Whether a new delivery may get a slot now: open, with a slot free.
    pub(super) fn may_take(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.slots.available_permits() > 0
    }

    pub(super) fn lease(&self) -> Duration {
        self.lease
    }

    /// Hands over jobs whose deliveries are committed. A dispatcher that has stopped
    /// leaves them claimed: they are released at the next start, or when the lease ends.
    pub(super) fn send(&self, handed: Vec<HandedJob>) {
        for job in handed {
            if let Err(err) = self.jobs.try_send(job) {
                let job = err.into_inner().job;
                tracing::warn!(
                    delivery_id = job.delivery_id,
                    "the dispatcher did not take a new delivery; it is sent when its claim ends"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(webhook_id: &str) -> DeliveryJob {
        DeliveryJob {
            delivery_id: "dlv_1".to_owned(),
            event_id: "evt_1".to_owned(),
            event_type: "order.created".to_owned(),
            data: "{}".to_owned(),
            event_created_at: chrono::Utc::now(),
            webhook_id: webhook_id.to_owned(),
            url: "https://example.com/".to_owned(),
            kind: crate::api::WebhookKind::Generic,
            webhook_deleted: false,
            retry_step: 0,
        }
    }

    fn handoff(slots: usize, per_webhook: usize) -> Handoff {
        let (jobs, _) = mpsc::channel(slots);
        Handoff::new(slots, per_webhook, jobs, Duration::from_secs(60))
    }

    #[test]
    fn a_webhook_gets_no_more_than_its_share_and_the_others_keep_theirs() {
        let handoff = handoff(10, 2);
        let a1 = handoff.take_slot("a").expect("a slot");
        let _a2 = handoff.take_slot("a").expect("a slot");
        assert_eq!(handoff.take_slot("a").err(), Some(Refused::WebhookFull));
        let _b = handoff.take_slot("b").expect("b has its own share");
        assert_eq!(handoff.free_slots(), 7);
        let limits = handoff.claim_limits();
        assert_eq!(limits.full, ["a"]);
        assert_eq!(limits.room, [("b".to_owned(), 1)]);
        assert_eq!(limits.per_webhook, 2);

        // The request is over: the webhook has room again, the slot stays taken until
        // the attempt is recorded.
        let mut a1 = a1;
        a1.release_webhook();
        assert!(handoff.claim_limits().full.is_empty());
        assert_eq!(handoff.free_slots(), 7);
        // The refused delivery waits in the database: the next ones queue behind it
        // (and the dispatcher is told to claim) until a claim has taken every one of them.
        assert_eq!(handoff.take_slot("a").err(), Some(Refused::NoSlot));
        let limits = handoff.claim_limits();
        let cut_short = vec![job("a")];
        handoff.claimed(&limits, 1, &cut_short);
        assert_eq!(
            handoff.take_slot("a").err(),
            Some(Refused::NoSlot),
            "a claim cut short by its slots says nothing"
        );
        // A claim that took all the room it had may have left more behind.
        handoff.claimed(&limits, 10, &cut_short);
        assert_eq!(handoff.take_slot("a").err(), Some(Refused::NoSlot));
        // One that found fewer than it had room for took them all.
        handoff.claimed(&limits, 10, &[]);
        let _a3 = handoff.take_slot("a").expect("room again, nothing queued");
        drop(a1);
        assert_eq!(handoff.free_slots(), 7);
    }

    #[test]
    fn a_full_dispatcher_or_a_closed_handoff_refuses_every_webhook() {
        let handoff = handoff(1, 5);
        let _only = handoff.take_slot("a").expect("the one slot");
        assert_eq!(handoff.take_slot("b").err(), Some(Refused::NoSlot));
        let open = self::handoff(4, 5);
        open.set_open(false);
        assert_eq!(open.take_slot("a").err(), Some(Refused::NoSlot));
    }

    #[tokio::test]
    async fn room_freed_by_a_full_webhook_is_announced() {
        let handoff = handoff(4, 1);
        let mut slot = handoff.take_slot("a").expect("slot");
        let waiting = handoff.clone();
        let announced = tokio::spawn(async move { waiting.webhook_room().await });
        tokio::task::yield_now().await;
        slot.release_webhook();
        tokio::time::timeout(Duration::from_secs(5), announced)
            .await
            .expect("announced")
            .expect("task");
        // A claimed slot counts too.
        let permits = handoff.slots_for_claim(2);
        let slots: Vec<AttemptSlot> = permits
            .into_iter()
            .map(|permit| handoff.slot_for(permit, "b"))
            .collect();
        assert_eq!(handoff.claim_limits().full, ["b"]);
        drop(slots);
        assert!(handoff.claim_limits().full.is_empty());
    }
}
