//! Emits: an event and its fan-out to subscribed webhooks, written in batches (group
//! commit) and, where the dispatcher has room, handed to it already claimed. What is
//! written is the backend's; what a batch means is here, the same for both.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::handoff::{HandedJob, Handoff, Refused};
use super::model::{Subscriber, from_millis, millis};
use super::{Emitted, NewEvent, Result, Store, StoreError, WriteTurn};
use crate::api::WebhookKind;
use crate::store::DeliveryJob;

/// The statements an emit batch needs, written by each backend.
pub(super) trait EmitSql {
    /// Inserts the events whose ids are new, and one pending delivery per active webhook
    /// subscribed to each one's type (directly or through `*`), claimed until
    /// `lease_until` when it is given; returns each new id with its deliveries, sorted by
    /// webhook id.
    async fn insert_fan_out(
        &mut self,
        events: &[&NewEvent],
        now: i64,
        lease_until: Option<i64>,
    ) -> Result<HashMap<String, Vec<FannedOut>>>;

    /// Drops the claim of deliveries [`EmitSql::insert_fan_out`] wrote claimed.
    async fn release(&mut self, delivery_ids: &[String]) -> Result<()>;

    /// How many deliveries each of `event_ids` has.
    async fn delivery_counts(&mut self, event_ids: &[&str]) -> Result<HashMap<String, u64>>;
}

/// A new delivery, as the fan-out wrote it.
#[derive(Debug)]
pub(super) struct FannedOut {
    pub delivery_id: String,
    pub webhook: Subscriber,
}

/// Writes events and their deliveries; an id already stored creates nothing, and an id
/// repeated within `events` is created once.
///
/// While the dispatcher may take new deliveries, they are written claimed; each that
/// gets a slot comes back as a job to hand over once the write has committed, and the
/// others are released for a claim. (Writing them claimed, rather than taking the slots
/// first, lets a backend fan out in the statement that inserts the events.)
pub(super) async fn emit_batch(
    tx: &mut impl EmitSql,
    events: &[&NewEvent],
    now: i64,
    handoff: Option<&Handoff>,
) -> Result<(Vec<Emitted>, Vec<HandedJob>)> {
    let handoff = handoff.filter(|handoff| handoff.may_take());
    let lease_until = handoff.map(|handoff| {
        now.saturating_add(i64::try_from(handoff.lease().as_millis()).unwrap_or(i64::MAX))
    });
    let created = tx.insert_fan_out(events, now, lease_until).await?;
    // The first occurrence of each new id creates it; later ones report its fan-out.
    let mut creators: HashMap<&str, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if created.contains_key(event.id.as_str()) {
            creators.entry(event.id.as_str()).or_insert(index);
        }
    }
    let created_at = from_millis(now)?;
    let mut handed = Vec::new();
    let mut released = Vec::new();
    let mut unclaimed: HashMap<&str, u64> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if creators.get(event.id.as_str()) != Some(&index) {
            continue;
        }
        for delivery in created.get(event.id.as_str()).into_iter().flatten() {
            // One whose webhook's kind is unreadable is left to a claim, which reports it.
            let kind = WebhookKind::parse(&delivery.webhook.kind);
            // One whose webhook is rate-limited was written unclaimed: a claim keeps to
            // its pace.
            let claim = match (handoff, kind) {
                (Some(handoff), Some(kind)) if !delivery.webhook.paced => handoff
                    .take_slot(&delivery.webhook.id)
                    .map(|slot| (slot, kind)),
                _ => Err(Refused::NoSlot),
            };
            match claim {
                Ok((slot, kind)) => handed.push(HandedJob {
                    job: new_job(event, delivery, kind, created_at),
                    slot,
                }),
                Err(refused) => {
                    if lease_until.is_some() && !delivery.webhook.paced {
                        released.push(delivery.delivery_id.clone());
                    }
                    // A webhook with its whole share under way: the dispatcher claims
                    // its deliveries when it has room, without being told.
                    if refused == Refused::NoSlot {
                        *unclaimed.entry(event.id.as_str()).or_default() += 1;
                    }
                }
            }
        }
    }
    if !released.is_empty() {
        tx.release(&released).await?;
    }
    let earlier: Vec<&str> = events
        .iter()
        .map(|event| event.id.as_str())
        .filter(|id| !creators.contains_key(id))
        .collect();
    let earlier_counts = if earlier.is_empty() {
        HashMap::new()
    } else {
        tx.delivery_counts(&earlier).await?
    };
    let emitted = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let id = event.id.as_str();
            let (deliveries, created, unclaimed) = match creators.get(id) {
                Some(&creator) => {
                    let fan_out = created.get(id).map_or(0, Vec::len);
                    let first = creator == index;
                    let unclaimed = if first {
                        unclaimed.get(id).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    (fan_out as u64, first, unclaimed)
                }
                None => (earlier_counts.get(id).copied().unwrap_or(0), false, 0),
            };
            Emitted {
                event_id: event.id.clone(),
                deliveries,
                created,
                unclaimed,
            }
        })
        .collect();
    Ok((emitted, handed))
}

/// The job of a delivery just written, as a claim would have read it back.
fn new_job(
    event: &NewEvent,
    delivery: &FannedOut,
    kind: WebhookKind,
    event_created_at: DateTime<Utc>,
) -> DeliveryJob {
    DeliveryJob {
        delivery_id: delivery.delivery_id.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        data: event.data.clone(),
        event_created_at,
        webhook_id: delivery.webhook.id.clone(),
        url: delivery.webhook.url.clone(),
        kind,
        webhook_deleted: false,
        retry_step: 0,
    }
}

/// What writing a batch of emits gave: each emit's outcome and the jobs to hand over, or
/// the error; and the emit turn, still held when the write got that far.
pub(super) type BatchWritten = (Result<(Vec<Emitted>, Vec<HandedJob>)>, Option<WriteTurn>);

/// An emit waiting for a shared transaction; `done` gets its answer.
pub(super) struct QueuedEmit {
    ticket: u64,
    event: NewEvent,
    done: tokio::sync::oneshot::Sender<Answer>,
}

/// What a queued emit hears from the writer that took it.
enum Answer {
    Written(Emitted),
    /// The shared write failed: write it alone, so that one bad event does not fail the
    /// others.
    Alone(NewEvent),
    /// The database is unavailable: every emit of the batch is answered so at once, rather
    /// than each waiting its turn to meet the same outage again.
    Failed(StoreError),
}

impl std::fmt::Debug for QueuedEmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedEmit")
            .field("event_id", &self.event.id)
            .finish_non_exhaustive()
    }
}

/// Tells queued emits apart (two may carry the same event id).
static NEXT_EMIT_TICKET: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Stores the event and one pending delivery per active webhook subscribed to its type,
    /// in one transaction. An id seen before creates nothing and reports the first fan-out;
    /// the event id is the table's key, so two emits of one id, on two replicas at once,
    /// fan out once.
    ///
    /// Group commit: concurrent emits queue up; whoever gets the emit turn writes every
    /// queued event in its transaction and tells the others, so a burst of emits costs a
    /// few commits instead of one each. If that shared transaction fails, each waiting
    /// emit tries again alone, so each gets its own error.
    pub async fn emit_event(&self, event: NewEvent) -> Result<Emitted> {
        let (done, mut written) = tokio::sync::oneshot::channel();
        let ticket = NEXT_EMIT_TICKET.fetch_add(1, Ordering::Relaxed);
        self.shared
            .queued_emits
            .lock()
            .map_err(|_| StoreError::Internal("the emit queue was poisoned".to_owned()))?
            .push(QueuedEmit {
                ticket,
                event,
                done,
            });
        // Wait for a turn to write, unless a writer takes this event along first: then
        // there is no need to queue for the turn behind everyone else.
        let turn = tokio::select! {
            outcome = &mut written => return self.emit_answer(outcome).await,
            turn = self.emit_turn() => turn,
        };
        match turn {
            Ok(turn) => {
                // The write runs as a task of its own: a caller that goes away (a client
                // that disconnects drops its request) must not roll back a transaction
                // that others wait on.
                let store = self.clone();
                tokio::spawn(async move { store.write_queued_emits(turn).await });
                self.emit_answer(written.await).await
            }
            Err(err) => {
                // Still queued: withdraw, so that an emit answered 503 is not written later.
                // Already taken by a writer: its answer is on the way.
                let withdrawn = self.shared.queued_emits.lock().is_ok_and(|mut queued| {
                    let before = queued.len();
                    queued.retain(|q| q.ticket != ticket);
                    queued.len() < before
                });
                if withdrawn {
                    return Err(err);
                }
                match written.await {
                    Ok(Answer::Written(emitted)) => Ok(emitted),
                    Ok(Answer::Alone(_) | Answer::Failed(_)) | Err(_) => Err(err),
                }
            }
        }
    }

    /// What a queued emit heard: its outcome, or its event back to write alone because the
    /// shared transaction failed.
    async fn emit_answer(
        &self,
        answer: std::result::Result<Answer, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<Emitted> {
        match answer {
            Ok(Answer::Written(emitted)) => Ok(emitted),
            Ok(Answer::Failed(err)) => Err(err),
            Ok(Answer::Alone(event)) => {
                let turn = self.emit_turn().await?;
                self.emit_alone(turn, event).await
            }
            Err(_) => Err(StoreError::Internal(
                "a queued emit was dropped unanswered".to_owned(),
            )),
        }
    }

    /// Writes every queued emit in one transaction and answers each; holds the turn until
    /// all have heard, so that an emit that gets the turn next finds its answer waiting.
    async fn write_queued_emits(&self, turn: WriteTurn) {
        let batch = self
            .shared
            .queued_emits
            .lock()
            .map(|mut queued| std::mem::take(&mut *queued))
            .unwrap_or_default();
        if batch.is_empty() {
            return;
        }
        let handoff = self.handoff();
        let events: Vec<&NewEvent> = batch.iter().map(|queued| &queued.event).collect();
        // `_turn` is held to the end, past the answers.
        let (written, _turn) = self.write_emits(turn, &events, handoff.as_ref()).await;
        drop(events);
        match written {
            Ok((outcomes, handed)) => {
                if let Some(handoff) = &handoff {
                    handoff.send(handed);
                }
                for (queued, emitted) in batch.into_iter().zip(outcomes) {
                    let _ = queued.done.send(Answer::Written(emitted));
                }
            }
            Err(StoreError::Unavailable(cause)) => {
                for queued in batch {
                    let failed = StoreError::Unavailable(Arc::clone(&cause));
                    let _ = queued.done.send(Answer::Failed(failed));
                }
            }
            // Each tries again alone and gets its own answer: one bad event must not fail
            // the others.
            Err(_) => {
                for queued in batch {
                    let _ = queued.done.send(Answer::Alone(queued.event));
                }
            }
        }
    }

    /// One event in its own transaction (after a shared one failed).
    async fn emit_alone(&self, turn: WriteTurn, event: NewEvent) -> Result<Emitted> {
        let handoff = self.handoff();
        let (written, _turn) = self.write_emits(turn, &[&event], handoff.as_ref()).await;
        let (mut emitted, handed) = written?;
        let emitted = emitted
            .pop()
            .ok_or_else(|| StoreError::Internal("an emit wrote nothing".to_owned()))?;
        if let Some(handoff) = &handoff {
            handoff.send(handed);
        }
        Ok(emitted)
    }

    /// Writes `events` in one transaction in `turn`, and hands the turn back.
    pub(super) async fn write_emits(
        &self,
        turn: WriteTurn,
        events: &[&NewEvent],
        handoff: Option<&Handoff>,
    ) -> BatchWritten {
        let now = millis(Utc::now());
        let written = match &self.backend {
            super::Backend::Sqlite(db) => db.write_emits(turn, events, now, handoff).await,
            super::Backend::Postgres(db) => db.write_emits(turn, events, now, handoff).await,
        };
        if written.0.is_ok() {
            self.shared.emits_written.notify_one();
        }
        written
    }

    /// Waits for this process's turn to write a batch of emits.
    pub(super) async fn emit_turn(&self) -> Result<WriteTurn> {
        match &self.backend {
            super::Backend::Sqlite(db) => db.write_turn().await,
            super::Backend::Postgres(db) => db.emit_turn().await,
        }
    }

    /// How many emits wait for a writer (tests watch the queue).
    #[cfg(test)]
    pub(super) fn queued_emits(&self) -> usize {
        self.shared.queued_emits.lock().map_or(0, |q| q.len())
    }
}
