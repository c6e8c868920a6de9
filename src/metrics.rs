//! What `GET /metrics` serves: the service's counters and histograms in the Prometheus
//! text format (OpenMetrics), kept with `prometheus-client`. Counters move as things
//! happen (attempts, finished deliveries, emits); the backlog and the slots in use are
//! read when scraped.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::CodeClass;

/// Database errors met by this process (a failed query, a pool timeout), whichever
/// service in it met them: counted where a database error becomes a `StoreError`.
static STORAGE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts one database error.
pub fn storage_error() {
    STORAGE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    succeeded,
    failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    webhook_id: String,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    /// `2xx`, `3xx`, `4xx`, `5xx` or `network`.
    class: String,
}

/// One service's metrics.
pub struct Metrics {
    registry: Registry,
    deliveries_finished: Family<FinishedLabels, Counter>,
    attempts: Family<ClassLabels, Counter>,
    attempt_duration: Histogram,
    emits: Counter,
    emit_duration: Histogram,
    due_backlog: Gauge,
    search_backlog: Gauge,
    oldest_due_age: Gauge<f64, AtomicU64>,
    slots_in_use: Gauge,
    slots: Gauge,
    storage_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What is read at scrape time.
pub struct Snapshot {
    /// Deliveries due now and not held by an attempt.
    pub due_backlog: u64,
    /// Events waiting to be indexed for payload search.
    pub search_backlog: u64,
    /// How long the oldest of them has been due, in seconds (0 with none).
    pub oldest_due_age_seconds: f64,
    /// Attempt slots held by attempts under way, and how many there are.
    pub slots_in_use: u64,
    pub slots: u64,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookpanel");
        let deliveries_finished = Family::<FinishedLabels, Counter>::default();
        registry.register(
            "deliveries_finished",
            "Deliveries that ended (succeeded, or failed for good), by webhook and outcome",
            deliveries_finished.clone(),
        );
        let attempts = Family::<ClassLabels, Counter>::default();
        registry.register(
            "attempts",
            "Attempts made, by the class of the answer (network: no HTTP answer)",
            attempts.clone(),
        );
        // 1 ms to about 33 s.
        let attempt_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "attempt_duration_seconds",
            "How long attempts took, from the request to the end of the answer",
            attempt_duration.clone(),
        );
        let emits = Counter::default();
        registry.register(
            "events_emitted",
            "Events accepted by POST /events",
            emits.clone(),
        );
        // 0.1 ms to about 3 s.
        let emit_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "emit_duration_seconds",
            "How long POST /events took to store an event and its deliveries",
            emit_duration.clone(),
        );
        let due_backlog = Gauge::default();
        registry.register(
            "due_backlog",
            "Deliveries due now that no attempt holds yet",
            due_backlog.clone(),
        );
        let search_backlog = Gauge::default();
        registry.register(
            "search_backlog",
            "Events waiting to be indexed for payload search",
            search_backlog.clone(),
        );
        let oldest_due_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oldest_due_age_seconds",
            "How long the longest-waiting due delivery has been due",
            oldest_due_age.clone(),
        );
        let slots_in_use = Gauge::default();
        registry.register(
            "attempt_slots_in_use",
            "Attempt slots held by attempts under way in this process",
            slots_in_use.clone(),
        );
        let slots = Gauge::default();
        registry.register(
            "attempt_slots",
            "Attempt slots this process has (--delivery-concurrency)",
            slots.clone(),
        );
        let storage_errors = Counter::default();
        registry.register(
            "storage_errors",
            "Database errors met (failed queries, pool timeouts)",
            storage_errors.clone(),
        );
        Self {
            registry,
            deliveries_finished,
            attempts,
            attempt_duration,
            emits,
            emit_duration,
            due_backlog,
            search_backlog,
            oldest_due_age,
            slots_in_use,
            slots,
            storage_errors,
        }
    }

    /// An attempt that got `status_code` (none: no HTTP answer) after `seconds`.
    pub fn attempt(&self, status_code: Option<u16>, seconds: f64) {
        let class = CodeClass::of_answer(status_code, true)
            .map_or("other", CodeClass::as_str)
            .to_owned();
        self.attempts.get_or_create(&ClassLabels { class }).inc();
        self.attempt_duration.observe(seconds);
    }

    /// A delivery of `webhook_id` that ended with `outcome`.
    pub fn finished(&self, webhook_id: &str, outcome: Outcome) {
        self.deliveries_finished
            .get_or_create(&FinishedLabels {
                webhook_id: webhook_id.to_owned(),
                outcome,
            })
            .inc();
    }

    /// An event accepted after `seconds`.
    pub fn emitted(&self, seconds: f64) {
        self.emits.inc();
        self.emit_duration.observe(seconds);
    }

    /// The text a scrape gets, with `snapshot`'s values.
    pub fn encode(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        self.due_backlog
            .set(i64::try_from(snapshot.due_backlog).unwrap_or(i64::MAX));
        self.search_backlog
            .set(i64::try_from(snapshot.search_backlog).unwrap_or(i64::MAX));
        self.oldest_due_age.set(snapshot.oldest_due_age_seconds);
        self.slots_in_use
            .set(i64::try_from(snapshot.slots_in_use).unwrap_or(i64::MAX));
        self.slots
            .set(i64::try_from(snapshot.slots).unwrap_or(i64::MAX));
        let errors = STORAGE_ERRORS.load(Ordering::Relaxed);
        let counted = self.storage_errors.get();
        if errors > counted {
            self.storage_errors.inc_by(errors - counted);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
