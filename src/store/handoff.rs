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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::DeliveryJob;

/// A delivery claimed at its creation, with the attempt slot it holds.
#[derive(Debug)]
pub struct HandedJob {
    pub job: DeliveryJob,
    /// Released when the attempt is over.
    pub slot: OwnedSemaphorePermit,
}

/// The dispatcher's side of the handoff, registered with [`Store::hand_new_deliveries_to`].
///
/// [`Store::hand_new_deliveries_to`]: super::Store::hand_new_deliveries_to
#[derive(Clone, Debug)]
pub struct Handoff {
    /// The dispatcher's attempt slots, shared with its own claims: one per attempt in
    /// flight or handed over and about to start.
    slots: Arc<Semaphore>,
    jobs: mpsc::Sender<HandedJob>,
    lease: Duration,
    /// Open while the dispatcher has no due work left in the database to claim: new
    /// deliveries then skip the queue. Closed, they wait their turn behind what is due,
    /// so a stream of new events cannot keep older due deliveries from their slots.
    open: Arc<AtomicBool>,
}

impl Handoff {
    /// A handoff for a dispatcher with `slots` attempt slots; `jobs` must hold as many
    /// jobs, so that a send never waits.
    pub fn new(slots: usize, jobs: mpsc::Sender<HandedJob>, lease: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
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
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Up to `wanted` free attempt slots for the dispatcher's own claim, open or not.
    pub fn slots_for_claim(&self, wanted: usize) -> Vec<OwnedSemaphorePermit> {
        (0..wanted)
            .map_while(|_| Arc::clone(&self.slots).try_acquire_owned().ok())
            .collect()
    }

    /// Up to `wanted` free attempt slots for new deliveries, none while closed.
    pub(super) fn take_slots(&self, wanted: usize) -> Vec<OwnedSemaphorePermit> {
        if !self.open.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.slots_for_claim(wanted)
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
