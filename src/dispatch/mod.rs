//! The dispatcher: turns pending deliveries into signed HTTP attempts, schedules retries,
//! and records every attempt.
//!
//! One loop runs up to `concurrency` attempts at once on a shared HTTP client. Most new
//! deliveries come to it straight from the emit that wrote them, already claimed (see
//! [`Handoff`]); the rest, and every retry, it claims from the database with a lease (a
//! crashed worker's claim expires and the delivery is tried again).
//! [`DispatchHandle::wake`] makes it look at once after work is queued unclaimed.

mod attempt;
pub mod guard;
pub mod payload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

pub use attempt::{
    RESPONSE_BODY_MAX_BYTES, RESPONSE_HEADERS_MAX_BYTES, TRUNCATED_HEADERS_MARKER, USER_AGENT,
};
use attempt::{Sender, Verdict};

use crate::crypto::{self, SecretCipher};
use crate::metrics::{Metrics, Outcome};
use crate::signing;
use crate::store::{
    AttemptOutcome, AttemptRecord, AttemptSlot, AttemptToRecord, ClaimScope, Claimed, DeliveryJob,
    HandedJob, Handoff, NewEvent, SealedSecret, Store,
};

/// The event emitted when the service deactivates a failing webhook.
pub const WEBHOOK_FAILED_EVENT: &str = "webhook.failed";

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// One entry per attempt of a cycle: the first is 0 (at once; `parse_schedule` refuses
    /// anything else), each later one the delay after the previous attempt.
    pub retry_schedule: Vec<Duration>,
    pub attempt_timeout: Duration,
    /// Redirects followed per attempt; one more fails the attempt.
    pub max_redirects: usize,
    /// Allow loopback and private-network destinations (tests, the embedded service).
    pub allow_private_destinations: bool,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Requests in flight at once to any one webhook: a receiver that hangs holds no more
    /// than these, and the other webhooks keep the rest.
    pub per_webhook_concurrency: usize,
    /// Deactivate a webhook whose deliveries have all failed for this long.
    pub auto_disable_after: Duration,
    /// How long a claim keeps other workers off a delivery.
    pub lease: Duration,
}

/// Attempts in flight at once by default. Waiting on receivers costs little; with 64,
/// four webhooks were served at 4 100 deliveries/s, with 256 at 5 700 (BENCHMARKS.md).
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Requests in flight at once to one webhook by default: half the slots, so that a
/// receiver hanging for its whole timeout leaves the other half to the others. A smaller
/// share costs a busy webhook its pace: beyond its share, new deliveries wait in the
/// database for a claim instead of going straight to the dispatcher. One webhook to a fast
/// receiver made 4 400 deliveries/s with 32, 7 200 with 64, 9 300 with 128 (BENCHMARKS.md).
pub const DEFAULT_PER_WEBHOOK_CONCURRENCY: usize = DEFAULT_CONCURRENCY / 2;

/// The default retry schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_schedule: parse_schedule(DEFAULT_RETRY_SCHEDULE)
                .unwrap_or_else(|_| vec![Duration::ZERO]),
            attempt_timeout: Duration::from_secs(10),
            max_redirects: 2,
            allow_private_destinations: false,
            concurrency: DEFAULT_CONCURRENCY,
            per_webhook_concurrency: DEFAULT_PER_WEBHOOK_CONCURRENCY,
            auto_disable_after: Duration::from_secs(5 * 86_400),
            lease: Duration::from_secs(60),
        }
    }
}

/// Parses `0s,5s,5m,30m,2h` into delays: the first attempt (at once, so `0s`), then the
/// delay before each retry.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let schedule = text
        .split(',')
        .map(|part| {
            humantime::parse_duration(part.trim()).map_err(|err| {
                format!(
                    "{:?} is not a duration like 5s, 5m or 2h: {err}",
                    part.trim()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match schedule.first() {
        None => return Err("the retry schedule needs at least one entry".to_owned()),
        // A new delivery goes to the dispatcher as it is stored: its first attempt is made
        // at once, and the schedule says so rather than promise a delay it would not keep.
        Some(first) if !first.is_zero() => {
            return Err(format!(
                "the first entry is the first attempt, which is made at once: start the schedule with 0s, not {}",
                humantime::format_duration(*first)
            ));
        }
        Some(_) => {}
    }
    Ok(schedule)
}

/// Tells a running dispatcher that work is waiting.
#[derive(Clone, Debug, Default)]
pub struct DispatchHandle {
    wake: Arc<Notify>,
    /// The attempt slots (see [`Handoff`]), once started.
    handoff: Option<Handoff>,
}

impl DispatchHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Attempt slots in use and in all.
    pub fn slots(&self) -> (usize, usize) {
        self.handoff.as_ref().map_or((0, 0), |handoff| {
            let total = handoff.slots();
            (total.saturating_sub(handoff.free_slots()), total)
        })
    }
}

/// A running dispatcher; stop it with [`Dispatcher::stop`].
pub struct Dispatcher {
    handle: DispatchHandle,
    store: Store,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct Context {
    store: Store,
    metrics: Arc<Metrics>,
    /// Attempts to record, written in batches by [`record_batches`].
    recorder: mpsc::Sender<Recording>,
    cipher: SecretCipher,
    sender: Sender,
    config: DeliveryConfig,
    handle: DispatchHandle,
}

impl Dispatcher {
    pub fn start(
        store: Store,
        cipher: SecretCipher,
        config: DeliveryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let (recorder, queue) = mpsc::channel(RECORD_BATCH * 4);
        let writer = tokio::spawn(record_batches(store.clone(), queue));
        let concurrency = config.concurrency.max(1);
        // Every handed job holds a slot, so the channel never holds more than there are.
        let (handed_jobs, handed) = mpsc::channel(concurrency);
        let handoff = Handoff::new(
            concurrency,
            config.per_webhook_concurrency,
            handed_jobs,
            config.lease,
        );
        let handle = DispatchHandle {
            wake: Arc::default(),
            handoff: Some(handoff.clone()),
        };
        let context = Arc::new(Context {
            metrics,
            sender: Sender::new(&config)?,
            recorder,
            store: store.clone(),
            cipher,
            config,
            handle: handle.clone(),
        });
        store.hand_new_deliveries_to(handoff.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(context, Work { handoff, handed }, stopped));
        Ok(Self {
            handle,
            store,
            stop,
            task,
            writer,
        })
    }

    pub fn handle(&self) -> DispatchHandle {
        self.handle.clone()
    }

    /// Stops claiming, lets attempts under way finish (bounded by their timeout), and returns.
    pub async fn stop(self) {
        self.store.stop_handing_over();
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            tracing::error!("the dispatcher ended abnormally: {err}");
        }
        // The loop and its attempts are done, so the queue is closed: the writer records
        // what is left and ends.
        if let Err(err) = self.writer.await {
            tracing::error!("the attempt writer ended abnormally: {err}");
        }
    }
}

/// Most attempts recorded in one transaction.
const RECORD_BATCH: usize = 256;
/// How long the first attempt of a batch waits for others to share its transaction.
const RECORD_GATHER: Duration = Duration::from_millis(5);

/// An attempt on its way to the database; `done` says whether it was recorded, and if
/// so since when its webhook has been failing.
struct Recording {
    delivery_id: String,
    webhook_id: String,
    record: AttemptRecord,
    outcome: AttemptOutcome,
    done: oneshot::Sender<Result<FailingSince, String>>,
}

/// Since when a webhook's attempts have been failing, as recorded: `None` while it
/// succeeds.
type FailingSince = Option<DateTime<Utc>>;

/// Writes attempts as they come, each batch in one transaction: under load, many
/// attempts finish while one batch commits, and they share the next commit instead of
/// queueing for one transaction each.
async fn record_batches(store: Store, mut queue: mpsc::Receiver<Recording>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while queue.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        // Give attempts finishing about now a moment to join: at a steady trickle each
        // would otherwise be a transaction of its own.
        let gather_until = tokio::time::Instant::now() + RECORD_GATHER;
        while batch.len() < RECORD_BATCH {
            let room = RECORD_BATCH - batch.len();
            match tokio::time::timeout_at(gather_until, queue.recv_many(&mut batch, room)).await {
                Ok(received) if received > 0 => {}
                _ => break,
            }
        }
        let rows: Vec<AttemptToRecord<'_>> = batch
            .iter()
            .map(|r| AttemptToRecord {
                delivery_id: &r.delivery_id,
                webhook_id: &r.webhook_id,
                record: &r.record,
                outcome: r.outcome,
            })
            .collect();
        let result = store
            .record_attempts(&rows)
            .await
            .map_err(|e| e.to_string());
        for recording in batch.drain(..) {
            let answer = match &result {
                Ok(failing) => Ok(failing.get(&recording.webhook_id).copied().flatten()),
                Err(err) => Err(err.clone()),
            };
            // The attempt's task may be gone (aborted at shutdown): nothing to tell.
            let _ = recording.done.send(answer);
        }
    }
}

impl Context {
    /// Records an attempt. Its `slot` is given back once the attempt is in the writer's
    /// queue, not when it is written: a slot stands for a request, and the queue's own
    /// bound keeps the dispatcher from running ahead of the writer.
    async fn record(
        &self,
        job: &DeliveryJob,
        record: AttemptRecord,
        outcome: AttemptOutcome,
        slot: AttemptSlot,
    ) -> Result<FailingSince, String> {
        let (done, recorded) = oneshot::channel();
        let recording = Recording {
            delivery_id: job.delivery_id.clone(),
            webhook_id: job.webhook_id.clone(),
            record,
            outcome,
            done,
        };
        self.recorder
            .send(recording)
            .await
            .map_err(|_| "the attempt writer has stopped".to_owned())?;
        drop(slot);
        recorded
            .await
            .unwrap_or_else(|_| Err("the attempt writer has stopped".to_owned()))
    }
}

/// Longest the loop sleeps before looking for due work again.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long the loop waits after being told of new work before it claims.
const CLAIM_GATHER: Duration = Duration::from_millis(2);
/// Due deliveries that waited longer than this are a backlog: while claims find them,
/// new deliveries wait behind them instead of being handed over.
const BACKLOG_AFTER: Duration = Duration::from_millis(250);
/// Most deliveries claimed in one query, or taken from the handoff at once.
const CLAIM_BATCH: usize = 100;

/// Where the loop's work comes from besides its claims.
struct Work {
    /// The attempt slots, and the way in for new deliveries: open while nothing due
    /// waits in the database (see [`Handoff`]).
    handoff: Handoff,
    /// Deliveries written claimed by emits, each with its slot.
    handed: mpsc::Receiver<HandedJob>,
}

async fn run(context: Arc<Context>, mut work: Work, mut stopped: oneshot::Receiver<()>) {
    let concurrency = context.config.concurrency.max(1);
    // While attempts are under way, claim once a quarter of the slots are free rather
    // than for each attempt that ends: a claim is a transaction, whatever its size. Not
    // more than a quarter of one webhook's share, though: while a hanging receiver holds
    // its share, the others' deliveries are claimed as soon as one of them has room for
    // a batch (as its share allows), not only once the rest has drained further.
    let per_webhook = context.config.per_webhook_concurrency.max(1);
    let claim_at = (concurrency / 4).min(per_webhook / 4).clamp(1, CLAIM_BATCH);
    let mut in_flight = JoinSet::new();
    let mut handed = Vec::with_capacity(CLAIM_BATCH);
    // Whether due work may be waiting in the database: at start, after a wake (work was
    // queued unclaimed) and when the time comes that the last look said.
    let mut look = true;
    let mut look_again_at = tokio::time::Instant::now();
    // What the next look covers: every webhook, or (when only a rate-limited webhook's
    // turn has come) those alone; and when a look must cover every webhook again (it
    // learns of retries scheduled since the last one).
    let mut scope = ClaimScope::All;
    let mut full_look_at = tokio::time::Instant::now();
    // Whether the last claim found deliveries that had waited (at start: a crashed run's
    // may), and since when a look has waited for slots to claim with.
    let mut backlog = true;
    let mut waiting_since = None;
    loop {
        while in_flight.try_join_next().is_some() {}
        if look {
            let free = work.handoff.free_slots().min(CLAIM_BATCH);
            // A rate-limited webhook's turn takes a few slots at most: it does not wait
            // for a batch's worth, and waiting for a slot says nothing of a backlog.
            let enough = match scope {
                ClaimScope::All => free >= claim_at || in_flight.is_empty(),
                ClaimScope::Paced => true,
            };
            let slots = if free > 0 && enough {
                work.handoff.slots_for_claim(free)
            } else {
                Vec::new()
            };
            if slots.is_empty() && scope == ClaimScope::Paced {
                // Looked at again when an attempt ends.
            } else if slots.is_empty() {
                // Too few slots are free for a claim. Behind a backlog, or once this has
                // lasted a while, new deliveries wait their turn while attempts finish,
                // rather than take each slot as it frees. (Closing it at once would send
                // new deliveries to the database whenever the slots run low, and claiming
                // them keeps the slots low.)
                let since = *waiting_since.get_or_insert_with(tokio::time::Instant::now);
                if backlog || since.elapsed() > BACKLOG_AFTER {
                    work.handoff.set_open(false);
                }
            } else {
                waiting_since = None;
                let wanted = slots.len();
                let looked_at = Utc::now();
                match claim(&context, &work.handoff, slots, scope, &mut in_flight).await {
                    // A claim that filled every slot taken may have left more due work:
                    // new deliveries keep waiting behind it while it is older than what
                    // arrives now. What fell due only just now is new deliveries that
                    // met a closed handoff; those may go straight to the dispatcher again.
                    Some((claimed, oldest_due_at)) if claimed >= wanted => {
                        if scope == ClaimScope::All {
                            backlog = oldest_due_at.is_some_and(|due| {
                                looked_at - due
                                    > TimeDelta::from_std(BACKLOG_AFTER).unwrap_or_default()
                            });
                            work.handoff.set_open(!backlog);
                        }
                        continue;
                    }
                    Some(_) => {
                        let now = tokio::time::Instant::now();
                        let next = next_look(&context, &work.handoff, scope).await;
                        if scope == ClaimScope::All {
                            backlog = false;
                            work.handoff.set_open(true);
                            full_look_at = now + next.unpaced.unwrap_or(IDLE_POLL);
                        }
                        look = false;
                        look_again_at = next
                            .paced
                            .map_or(full_look_at, |paced| full_look_at.min(now + paced));
                        scope = if look_again_at < full_look_at {
                            ClaimScope::Paced
                        } else {
                            ClaimScope::All
                        };
                    }
                    None => {
                        look = false;
                        scope = ClaimScope::All;
                        look_again_at = tokio::time::Instant::now() + IDLE_POLL;
                    }
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = context.handle.wake.notified() => {
                // Caught up, and new work arrives: let emits arriving about now share
                // the claim rather than claim one delivery per emit. (Waiting for
                // slots instead, the next claim comes when attempts end.)
                if !look {
                    tokio::time::sleep(CLAIM_GATHER).await;
                }
                look = true;
                scope = ClaimScope::All;
            }
            received = work.handed.recv_many(&mut handed, CLAIM_BATCH) => {
                if received == 0 {
                    break;
                }
                start_handed(&context, &mut handed, &mut in_flight).await;
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            // A webhook that had its whole share under way has room: its due
            // deliveries were left out of the last claim.
            () = work.handoff.webhook_room() => {
                look = true;
                scope = ClaimScope::All;
            }
            // The scope the last look chose: every webhook, or a rate-limited one's turn.
            () = tokio::time::sleep_until(look_again_at), if !look => look = true,
        }
    }
    // Deliveries already handed over are attempted like those under way.
    work.handed.close();
    while let Ok(job) = work.handed.try_recv() {
        handed.push(job);
    }
    start_handed(&context, &mut handed, &mut in_flight).await;
    // Attempts under way end by their own timeout; the rest are released at the next start.
    let drain = context.config.attempt_timeout + Duration::from_secs(1);
    if tokio::time::timeout(drain, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        in_flight.abort_all();
    }
}

/// Claims as many due deliveries as there are `slots`, within each webhook's share, and
/// starts them; returns how many it claimed and when the longest-waiting of them fell
/// due, or `None` when the claim failed.
async fn claim(
    context: &Arc<Context>,
    handoff: &Handoff,
    slots: Vec<OwnedSemaphorePermit>,
    scope: ClaimScope,
    in_flight: &mut JoinSet<()>,
) -> Option<(usize, Option<DateTime<Utc>>)> {
    let now = Utc::now();
    let lease_until = now + TimeDelta::from_std(context.config.lease).unwrap_or(TimeDelta::MAX);
    let limit = u32::try_from(slots.len()).unwrap_or(u32::MAX);
    let limits = handoff.claim_limits();
    match context
        .store
        .claim_due(now, lease_until, limit, &limits, scope)
        .await
    {
        Ok(Claimed {
            jobs,
            oldest_due_at,
        }) => {
            let claimed = jobs.len();
            // A look at rate-limited webhooks alone says nothing of the others' queues.
            if scope == ClaimScope::All {
                handoff.claimed(&limits, slots.len(), &jobs);
            }
            // Slots left over are freed here.
            let slots = jobs
                .iter()
                .zip(slots)
                .map(|(job, permit)| handoff.slot_for(permit, &job.webhook_id))
                .collect();
            start_attempts(context, jobs, slots, in_flight).await;
            Some((claimed, oldest_due_at))
        }
        Err(err) => {
            tracing::warn!("claiming due deliveries failed: {err}");
            None
        }
    }
}

/// How long until the next look: at the next due delivery of a webhook without a rate
/// limit (not looked for with [`ClaimScope::Paced`]), and at a rate-limited webhook's next
/// turn with a delivery due by then; each at most [`IDLE_POLL`] away.
async fn next_look(context: &Context, handoff: &Handoff, scope: ClaimScope) -> NextLook {
    let full = handoff.claim_limits().full;
    let now = Utc::now();
    let until = |at: DateTime<Utc>| (at - now).to_std().unwrap_or(Duration::ZERO).min(IDLE_POLL);
    match context.store.next_due_at(now, &full, scope).await {
        Ok(next) => NextLook {
            unpaced: next.unpaced.map(until),
            paced: next.paced.map(until),
        },
        Err(err) => {
            tracing::warn!("looking for due deliveries failed: {err}");
            NextLook::default()
        }
    }
}

/// When to look again, from now: `None` for nothing known to fall due (at most
/// [`IDLE_POLL`] then).
#[derive(Debug, Default)]
struct NextLook {
    unpaced: Option<Duration>,
    paced: Option<Duration>,
}

/// Starts the attempts of jobs handed over by emits, each in the slot it brought.
async fn start_handed(
    context: &Arc<Context>,
    handed: &mut Vec<HandedJob>,
    in_flight: &mut JoinSet<()>,
) {
    let (jobs, slots): (Vec<_>, Vec<_>) = handed.drain(..).map(|h| (h.job, h.slot)).unzip();
    start_attempts(context, jobs, slots, in_flight).await;
}

/// Starts one attempt per job, each holding one of `slots`; slots left over are freed.
async fn start_attempts(
    context: &Arc<Context>,
    jobs: Vec<DeliveryJob>,
    slots: Vec<AttemptSlot>,
    in_flight: &mut JoinSet<()>,
) {
    for ((job, secrets), slot) in with_secrets(context, jobs).await.into_iter().zip(slots) {
        let context = Arc::clone(context);
        in_flight.spawn(async move {
            deliver(&context, &job, &secrets, slot).await;
        });
    }
}

/// The signing secrets of one webhook, as stored (sealed), or why they could not be read.
type SealedSecrets = Arc<Result<Vec<SealedSecret>, String>>;

/// Claimed jobs, each with its webhook's secrets: one query per webhook, not one per
/// delivery.
async fn with_secrets(
    context: &Context,
    jobs: Vec<DeliveryJob>,
) -> Vec<(DeliveryJob, SealedSecrets)> {
    let now = Utc::now();
    let mut secrets: HashMap<String, SealedSecrets> = HashMap::new();
    let mut loaded = Vec::with_capacity(jobs.len());
    for job in jobs {
        let sealed = match secrets.get(&job.webhook_id) {
            Some(sealed) => Arc::clone(sealed),
            None => {
                let sealed = Arc::new(
                    context
                        .store
                        .signing_secrets(&job.webhook_id, now)
                        .await
                        .map_err(|err| format!("reading the signing secret failed: {err}")),
                );
                secrets.insert(job.webhook_id.clone(), Arc::clone(&sealed));
                sealed
            }
        };
        loaded.push((job, sealed));
    }
    loaded
}

/// Why a claimed delivery was not sent: no request left, so the receiver saw nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotSent {
    /// A condition that passes: the database busy, locked or full, or a secret that could
    /// not be read or opened. The delivery stays due, and its retry cycle does not advance:
    /// at-least-once has no hole here.
    Transient(String),
    /// The delivery cannot be sent as it stands (its webhook deleted, its data not JSON):
    /// it fails, recorded as an attempt that says why.
    Permanent(String),
}

/// How long a delivery that could not be sent for a passing reason waits before it is
/// tried again: its schedule's next delay, within 100 ms..=60 s.
fn not_sent_delay(config: &DeliveryConfig, retry_step: u32) -> Duration {
    let next = usize::try_from(retry_step)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    config
        .retry_schedule
        .get(next)
        .copied()
        .unwrap_or(NOT_SENT_MAX_DELAY)
        .clamp(Duration::from_millis(100), NOT_SENT_MAX_DELAY)
}

const NOT_SENT_MAX_DELAY: Duration = Duration::from_secs(60);

/// Makes one attempt of a claimed delivery and records it; `slot` is held until the
/// attempt is queued to be recorded.
async fn deliver(
    context: &Context,
    job: &DeliveryJob,
    sealed: &SealedSecrets,
    mut slot: AttemptSlot,
) {
    let delivery_id = job.delivery_id.as_str();
    let attempted = attempt(context, job, sealed).await;
    // The receiver is done with: its webhook may start another request while this
    // attempt waits to be recorded.
    slot.release_webhook();
    let (record, outcome, verdict) = match attempted {
        Ok((record, verdict)) => {
            context
                .metrics
                .attempt(record.status_code, record.duration_ms as f64 / 1000.0);
            let outcome = outcome(&context.config, job.retry_step, verdict, record.started_at);
            (record, outcome, Some(verdict))
        }
        Err(NotSent::Transient(reason)) => {
            drop(slot);
            let delay = not_sent_delay(&context.config, job.retry_step);
            tracing::warn!(delivery_id, "not sent, tried again in {delay:?}: {reason}");
            let until = Utc::now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
            if let Err(err) = context.store.postpone(delivery_id, until).await {
                // Its claim runs out and it is tried again all the same.
                tracing::warn!(delivery_id, "postponing failed: {err}");
            }
            return;
        }
        Err(NotSent::Permanent(message)) => (
            AttemptRecord {
                started_at: Utc::now(),
                duration_ms: 0,
                status_code: None,
                error: Some(message),
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                response_body: None,
            },
            AttemptOutcome::Failed,
            None,
        ),
    };
    let failing_since = match context.record(job, record, outcome, slot).await {
        Ok(failing_since) => {
            match outcome {
                AttemptOutcome::Succeeded => context
                    .metrics
                    .finished(&job.webhook_id, Outcome::succeeded),
                AttemptOutcome::Failed => {
                    context.metrics.finished(&job.webhook_id, Outcome::failed)
                }
                AttemptOutcome::RetryAt(_) => {}
            }
            failing_since
        }
        Err(err) => {
            // The claim runs out and the delivery is tried again: at-least-once.
            tracing::error!(delivery_id, "recording an attempt failed: {err}");
            return;
        }
    };
    if verdict == Some(Verdict::Gone) {
        deactivate(context, job, "the endpoint answered 410 Gone").await;
    } else if let Some(since) = failing_since {
        auto_disable_if_failing_too_long(context, job, since).await;
    }
}

/// Builds, signs and sends the request. `Err` is a delivery no request was made for.
async fn attempt(
    context: &Context,
    job: &DeliveryJob,
    sealed: &SealedSecrets,
) -> Result<(AttemptRecord, Verdict), NotSent> {
    if job.webhook_deleted {
        return Err(NotSent::Permanent("the webhook was deleted".to_owned()));
    }
    let now = Utc::now();
    let sealed = sealed
        .as_ref()
        .as_ref()
        .map_err(|err| NotSent::Transient(err.clone()))?;
    let secrets = sealed
        .iter()
        .map(|secret| context.cipher.open_string(&job.webhook_id, &secret.sealed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| NotSent::Transient(format!("opening the signing secret failed: {err}")))?;
    let Some(current) = secrets.first() else {
        // Read between a rotation's writes, or damaged: it is read again next time.
        return Err(NotSent::Transient(
            "the webhook has no signing secret".to_owned(),
        ));
    };
    let body = payload::body(job)
        .map_err(|err| NotSent::Permanent(format!("the event's data is not valid JSON: {err}")))?;
    let timestamp = now.timestamp();
    let signatures = secrets
        .iter()
        .map(|secret| signing::sign_standard(secret, &job.event_id, timestamp, &body))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| NotSent::Permanent(format!("signing failed: {err}")))?
        .join(" ");
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (signing::HEADER_ID.to_owned(), job.event_id.clone()),
        (signing::HEADER_TIMESTAMP.to_owned(), timestamp.to_string()),
        (signing::HEADER_SIGNATURE.to_owned(), signatures),
        (
            signing::HEADER_SIMPLE_SIGNATURE.to_owned(),
            signing::sign_simple(current, &body),
        ),
        ("x-webhook-event".to_owned(), job.event_type.clone()),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
    ];
    Ok(context.sender.send(&job.url, headers, body).await)
}

/// Where the delivery goes after an attempt with `verdict`, the attempt being number
/// `retry_step + 1` of its cycle.
fn outcome(
    config: &DeliveryConfig,
    retry_step: u32,
    verdict: Verdict,
    at: DateTime<Utc>,
) -> AttemptOutcome {
    match verdict {
        Verdict::Delivered => AttemptOutcome::Succeeded,
        Verdict::Gone | Verdict::Permanent => AttemptOutcome::Failed,
        Verdict::Transient { retry_after } => {
            let next = usize::try_from(retry_step)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let Some(&scheduled) = config.retry_schedule.get(next) else {
                return AttemptOutcome::Failed;
            };
            let delay = retry_delay(scheduled, retry_after, jitter_fraction());
            AttemptOutcome::RetryAt(at + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX))
        }
    }
}

/// The scheduled delay with ±10 % jitter (`jitter` in -1..=1); a receiver's `Retry-After`
/// is honoured between 1× and 2× the scheduled delay.
fn retry_delay(scheduled: Duration, retry_after: Option<Duration>, jitter: f64) -> Duration {
    match retry_after {
        Some(asked) => asked.clamp(scheduled, scheduled.saturating_mul(2)),
        None => scheduled.mul_f64((1.0 + 0.1 * jitter.clamp(-1.0, 1.0)).max(0.0)),
    }
}

/// A uniform value in -1..=1.
fn jitter_fraction() -> f64 {
    let bytes = crypto::random_bytes::<4>()
        .map(|b| *b)
        .unwrap_or([0x80, 0, 0, 0]);
    f64::from(u32::from_be_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}

async fn deactivate(context: &Context, job: &DeliveryJob, reason: &str) {
    match context
        .store
        .deactivate_webhook(&job.webhook_id, reason)
        .await
    {
        Ok(true) => {
            tracing::warn!(webhook_id = job.webhook_id, "webhook deactivated: {reason}");
            let data = serde_json::json!({
                "webhook_id": job.webhook_id,
                "url": job.url,
                "reason": reason,
            });
            let event = NewEvent {
                id: crate::store::new_id("msg"),
                event_type: WEBHOOK_FAILED_EVENT.to_owned(),
                data: data.to_string(),
            };
            match context.store.emit_event(event).await {
                Ok(emitted) if emitted.unclaimed > 0 => context.handle.wake(),
                Ok(_) => {}
                Err(err) => tracing::error!("emitting {WEBHOOK_FAILED_EVENT} failed: {err}"),
            }
        }
        Ok(false) => {}
        Err(err) => tracing::error!(
            webhook_id = job.webhook_id,
            "deactivating a webhook failed: {err}"
        ),
    }
}

/// Deactivates the webhook when its attempts have all failed for `auto_disable_after`.
async fn auto_disable_if_failing_too_long(
    context: &Context,
    job: &DeliveryJob,
    since: DateTime<Utc>,
) {
    let failing_for = (Utc::now() - since).to_std().unwrap_or(Duration::ZERO);
    if failing_for >= context.config.auto_disable_after {
        let reason = format!(
            "every delivery failed for {}",
            humantime::format_duration(Duration::from_secs(
                context.config.auto_disable_after.as_secs()
            ))
        );
        deactivate(context, job, &reason).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_has_eight_attempts() {
        let schedule = DeliveryConfig::default().retry_schedule;
        assert_eq!(schedule.len(), 8);
        assert_eq!(schedule[0], Duration::ZERO);
        assert_eq!(schedule[1], Duration::from_secs(5));
        assert_eq!(schedule[7], Duration::from_secs(36_000));
        assert!(parse_schedule("1s,nope").is_err());
        let delayed = parse_schedule("5s,1m").expect_err("a first attempt later than at once");
        assert!(delayed.contains("start the schedule with 0s"), "{delayed}");
        assert_eq!(
            parse_schedule("0s,1m"),
            Ok(vec![Duration::ZERO, Duration::from_secs(60)])
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let scheduled = Duration::from_secs(100);
        assert_eq!(retry_delay(scheduled, None, -1.0), Duration::from_secs(90));
        assert_eq!(retry_delay(scheduled, None, 1.0), Duration::from_secs(110));
        for _ in 0..100 {
            let delay = retry_delay(scheduled, None, jitter_fraction());
            assert!((90..=110).contains(&delay.as_secs()), "{delay:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_within_one_to_two_times() {
        let scheduled = Duration::from_secs(60);
        let delay = |asked| retry_delay(scheduled, Some(Duration::from_secs(asked)), 0.0);
        assert_eq!(delay(90), Duration::from_secs(90));
        assert_eq!(delay(1), Duration::from_secs(60));
        assert_eq!(delay(3600), Duration::from_secs(120));
    }

    #[test]
    fn a_delivery_not_sent_waits_its_next_delay_within_bounds() {
        let config = DeliveryConfig::default();
        assert_eq!(not_sent_delay(&config, 0), Duration::from_secs(5));
        assert_eq!(
            not_sent_delay(&config, 1),
            Duration::from_secs(60),
            "5 min, capped"
        );
        assert_eq!(
            not_sent_delay(&config, 7),
            Duration::from_secs(60),
            "past the schedule"
        );
        let instant = DeliveryConfig {
            retry_schedule: vec![Duration::ZERO, Duration::ZERO],
            ..DeliveryConfig::default()
        };
        assert_eq!(not_sent_delay(&instant, 0), Duration::from_millis(100));
    }

    #[test]
    fn outcomes_follow_the_schedule() {
        let config = DeliveryConfig {
            retry_schedule: vec![Duration::ZERO, Duration::from_secs(5)],
            ..DeliveryConfig::default()
        };
        let at = Utc::now();
        let transient = Verdict::Transient { retry_after: None };
        assert_eq!(
            outcome(&config, 0, Verdict::Delivered, at),
            AttemptOutcome::Succeeded
        );
        assert_eq!(
            outcome(&config, 0, Verdict::Permanent, at),
            AttemptOutcome::Failed
        );
        assert_eq!(
            outcome(&config, 0, Verdict::Gone, at),
            AttemptOutcome::Failed
        );
        assert!(
            matches!(outcome(&config, 0, transient, at), AttemptOutcome::RetryAt(next) if next > at)
        );
        assert_eq!(
            outcome(&config, 1, transient, at),
            AttemptOutcome::Failed,
            "schedule exhausted"
        );
    }
}
