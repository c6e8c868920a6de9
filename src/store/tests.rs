//! The store's own tests, on SQLite; the end-to-end tests (`tests/it`) run every route
//! on both backends.

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use super::*;
use crate::api::{AuditAction, WebhookKind};

fn event(id: &str, event_type: &str) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        event_type: event_type.to_owned(),
        data: "{}".to_owned(),
    }
}

/// A store on a fresh SQLite file, which lives as long as the directory returned.
async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::connect(&url).await.expect("store");
    (dir, store)
}

/// An audit entry of `action` by a key named `test`.
fn by_test(action: AuditAction) -> Audit {
    Audit::new("test", action, None)
}

async fn webhook(store: &Store, name: &str, events: &[&str]) -> String {
    let id = new_id("wh");
    store
        .insert_webhook(
            NewWebhook {
                id: id.clone(),
                name: name.to_owned(),
                url: "https://example.com/hook".to_owned(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                kind: WebhookKind::Generic,
                description: None,
                owner: None,
                rate_limit: None,
                secret_hint: "abcd".to_owned(),
                sealed_secret: crate::crypto::Sealed {
                    blob: vec![0; 8],
                    key_id: "test".to_owned(),
                },
            },
            &by_test(AuditAction::WebhookCreate),
        )
        .await
        .expect("webhook stored");
    id
}

#[tokio::test]
async fn a_batch_creates_each_new_event_once_and_reports_earlier_fan_outs() {
    let (_dir, store) = temp_store().await;
    let orders = webhook(&store, "orders", &["order.created"]).await;
    let everything = webhook(&store, "everything", &["*"]).await;
    webhook(&store, "products", &["product.created"]).await;
    let paused = webhook(&store, "paused", &["order.created", "*"]).await;
    assert!(
        store
            .deactivate_webhook(&paused, "paused by a test")
            .await
            .expect("deactivated")
    );

    let earlier = store
        .emit_event(event("evt_0", "order.created"))
        .await
        .expect("emitted");
    assert_eq!((earlier.deliveries, earlier.created), (2, true));

    let batch = [
        event("evt_1", "order.created"),
        event("evt_1", "order.created"),
        event("evt_0", "order.created"),
        event("evt_2", "customer.created"),
    ];
    let refs: Vec<&NewEvent> = batch.iter().collect();
    let turn = store.emit_turn().await.expect("write turn");
    let (written, _turn) = store.write_emits(turn, &refs, None).await;
    let (outcomes, handed) = written.expect("batch written");
    assert!(handed.is_empty(), "no dispatcher, nothing handed over");
    let summary: Vec<(&str, u64, bool)> = outcomes
        .iter()
        .map(|e| (e.event_id.as_str(), e.deliveries, e.created))
        .collect();
    assert_eq!(
        summary,
        [
            ("evt_1", 2, true),
            ("evt_1", 2, false),
            ("evt_0", 2, false),
            ("evt_2", 1, true),
        ]
    );

    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, webhook_id FROM deliveries ORDER BY event_id, webhook_id")
            .fetch_all(store.sqlite_pool())
            .await
            .expect("rows");
    let mut expected = vec![
        ("evt_0".to_owned(), orders.clone()),
        ("evt_0".to_owned(), everything.clone()),
        ("evt_1".to_owned(), orders),
        ("evt_1".to_owned(), everything.clone()),
        ("evt_2".to_owned(), everything),
    ];
    expected.sort();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_claim_returns_each_due_job_once_with_its_event_and_webhook() {
    let (_dir, store) = temp_store().await;
    let orders = webhook(&store, "orders", &["order.created"]).await;
    for n in 0..3 {
        let mut new = event(&format!("evt_{n}"), "order.created");
        new.data = format!(r#"{{"n": {n}}}"#);
        store.emit_event(new).await.expect("emitted");
    }
    let now = Utc::now();
    let lease_until = now + TimeDelta::seconds(60);

    let first = store
        .claim_due(
            now,
            lease_until,
            2,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    let second = store
        .claim_due(
            now,
            lease_until,
            10,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    let third = store
        .claim_due(
            now,
            lease_until,
            10,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;

    assert_eq!((first.len(), second.len(), third.len()), (2, 1, 0));
    let mut claimed: Vec<(String, String, String, String)> = first
        .iter()
        .chain(&second)
        .map(|job| {
            assert_eq!(job.url, "https://example.com/hook");
            assert_eq!(
                (job.kind, job.webhook_deleted, job.retry_step),
                (WebhookKind::Generic, false, 0)
            );
            (
                job.event_id.clone(),
                job.event_type.clone(),
                job.webhook_id.clone(),
                job.data.clone(),
            )
        })
        .collect();
    claimed.sort();
    let expected: Vec<(String, String, String, String)> = (0..3)
        .map(|n| {
            (
                format!("evt_{n}"),
                "order.created".to_owned(),
                orders.clone(),
                format!(r#"{{"n": {n}}}"#),
            )
        })
        .collect();
    assert_eq!(claimed, expected);
    // Once the lease has run out, the same deliveries can be claimed again.
    let later = lease_until + TimeDelta::seconds(1);
    let again = store
        .claim_due(
            later,
            later + TimeDelta::seconds(60),
            10,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    assert_eq!(again.len(), 3);
}

/// A handoff with `slots` attempt slots, registered with `store`.
fn handoff(store: &Store, slots: usize) -> (Handoff, tokio::sync::mpsc::Receiver<HandedJob>) {
    let (jobs, handed) = tokio::sync::mpsc::channel(slots);
    let handoff = Handoff::new(slots, usize::MAX, jobs, Duration::from_secs(60));
    store.hand_new_deliveries_to(handoff.clone());
    (handoff, handed)
}

#[tokio::test]
async fn new_deliveries_that_find_a_free_slot_are_handed_over_claimed() {
    let (_dir, store) = temp_store().await;
    let orders = webhook(&store, "orders", &["order.created"]).await;
    let (_handoff, mut handed) = handoff(&store, 2);
    let mut emitted = Vec::new();
    for n in 0..3 {
        let mut new = event(&format!("evt_{n}"), "order.created");
        new.data = format!(r#"{{"n": {n}}}"#);
        emitted.push(store.emit_event(new).await.expect("emitted").unclaimed);
    }
    assert_eq!(emitted, [0, 0, 1], "two slots: the third waits for a claim");

    let mut jobs = Vec::new();
    while let Ok(job) = handed.try_recv() {
        jobs.push(job);
    }
    let summary: Vec<(&str, &str, &str, &str, WebhookKind, u32)> = jobs
        .iter()
        .map(|h| {
            (
                h.job.event_id.as_str(),
                h.job.data.as_str(),
                h.job.webhook_id.as_str(),
                h.job.url.as_str(),
                h.job.kind,
                h.job.retry_step,
            )
        })
        .collect();
    let hook = "https://example.com/hook";
    assert_eq!(
        summary,
        [
            (
                "evt_0",
                r#"{"n": 0}"#,
                orders.as_str(),
                hook,
                WebhookKind::Generic,
                0
            ),
            (
                "evt_1",
                r#"{"n": 1}"#,
                orders.as_str(),
                hook,
                WebhookKind::Generic,
                0
            ),
        ]
    );
    // The handed deliveries are claimed already: a claim finds only the third.
    let now = Utc::now();
    let claimed = store
        .claim_due(
            now,
            now + TimeDelta::seconds(60),
            10,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    let claimed: Vec<&str> = claimed.iter().map(|job| job.event_id.as_str()).collect();
    assert_eq!(claimed, ["evt_2"]);
    // A restart releases them like any claim.
    assert_eq!(store.release_claims_at_start().await.expect("released"), 3);
}

#[tokio::test]
async fn a_closed_or_full_handoff_leaves_new_deliveries_for_a_claim() {
    let (_dir, store) = temp_store().await;
    webhook(&store, "orders", &["order.created"]).await;
    webhook(&store, "everything", &["*"]).await;
    let (handoff, mut handed) = handoff(&store, 1);

    handoff.set_open(false);
    let closed = store
        .emit_event(event("evt_closed", "order.created"))
        .await
        .expect("emitted");
    assert_eq!((closed.deliveries, closed.unclaimed), (2, 2));
    assert!(handed.try_recv().is_err(), "nothing handed while closed");

    handoff.set_open(true);
    let open = store
        .emit_event(event("evt_open", "order.created"))
        .await
        .expect("emitted");
    assert_eq!(
        (open.deliveries, open.unclaimed),
        (2, 1),
        "one slot, two webhooks"
    );
    let job = handed.try_recv().expect("one handed over");
    let full = store
        .emit_event(event("evt_full", "order.created"))
        .await
        .expect("emitted");
    assert_eq!(full.unclaimed, 2, "the only slot is taken");
    // A slot given back (the attempt is over) serves the next emit.
    drop(job);
    let again = store
        .emit_event(event("evt_again", "order.created"))
        .await
        .expect("emitted");
    assert_eq!(again.unclaimed, 1);

    // Once no dispatcher takes them, emits write every delivery unclaimed.
    store.stop_handing_over();
    drop(handed.try_recv().expect("handed over"));
    let after = store
        .emit_event(event("evt_after", "order.created"))
        .await
        .expect("emitted");
    assert_eq!(after.unclaimed, 2);
    let now = Utc::now();
    let claimable = store
        .claim_due(
            now,
            now + TimeDelta::seconds(60),
            100,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    assert_eq!(claimable.len(), 2 + 1 + 2 + 1 + 2);
}

#[tokio::test]
async fn a_webhook_whose_kind_is_unreadable_does_not_fail_the_emit() {
    let (_dir, store) = temp_store().await;
    let damaged = webhook(&store, "damaged", &["order.created"]).await;
    webhook(&store, "orders", &["order.created"]).await;
    sqlx::query("UPDATE webhooks SET kind = 'carrier-pigeon' WHERE id = ?")
        .bind(&damaged)
        .execute(store.sqlite_pool())
        .await
        .expect("damaged");
    let (_handoff, mut handed) = handoff(&store, 10);
    let emitted = store
        .emit_event(event("evt_0", "order.created"))
        .await
        .expect("the emit is stored");
    assert_eq!((emitted.deliveries, emitted.unclaimed), (2, 1));
    let job = handed.try_recv().expect("the readable one is handed over");
    assert_ne!(job.job.webhook_id, damaged);
    assert!(handed.try_recv().is_err());
}

#[tokio::test]
async fn signing_secrets_read_from_memory_follow_every_rotation_and_deletion() {
    let (_dir, store) = temp_store().await;
    let id = webhook(&store, "orders", &["order.created"]).await;
    let sealed = |secrets: Vec<crate::store::SealedSecret>| -> Vec<Vec<u8>> {
        secrets.into_iter().map(|secret| secret.sealed).collect()
    };
    let rotate = |sealed: u8, previous_expires_at| crate::store::SecretRotation {
        sealed_secret: crate::crypto::Sealed {
            blob: vec![sealed; 8],
            key_id: "test".to_owned(),
        },
        secret_hint: "wxyz".to_owned(),
        previous_expires_at,
    };
    let read = || async { store.signing_secrets(&id, Utc::now()).await.expect("read") };
    assert_eq!(sealed(read().await), [vec![0; 8]]);
    assert_eq!(sealed(read().await), [vec![0; 8]], "the same, from memory");

    // No grace: the old secret stops at once.
    store
        .rotate_secret(
            &id,
            rotate(1, Utc::now() - TimeDelta::seconds(1)),
            &by_test(AuditAction::WebhookRotateSecret),
        )
        .await
        .expect("rotated");
    assert_eq!(sealed(read().await), [vec![1; 8]]);
    // With grace: both, the new one first, until the old one expires.
    let expires = Utc::now() + TimeDelta::hours(1);
    store
        .rotate_secret(
            &id,
            rotate(2, expires),
            &by_test(AuditAction::WebhookRotateSecret),
        )
        .await
        .expect("rotated");
    assert_eq!(sealed(read().await), [vec![2; 8], vec![1; 8]]);
    let after = store
        .signing_secrets(&id, expires + TimeDelta::seconds(1))
        .await
        .expect("read");
    assert_eq!(sealed(after), [vec![2; 8]], "expired in memory too");

    store
        .delete_webhook(&id, &by_test(AuditAction::WebhookDelete))
        .await
        .expect("deleted");
    assert!(read().await.is_empty(), "a deleted webhook signs nothing");
}

#[tokio::test]
async fn an_emit_whose_caller_goes_away_neither_fails_nor_loses_the_others() {
    let (_dir, store) = temp_store().await;
    webhook(&store, "orders", &["order.created"]).await;
    // Hold the turn so that both emits queue up behind it.
    let held = store.emit_turn().await.expect("turn");
    let emit_in_task = |id: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { store.emit_event(event(id, "order.created")).await })
    };
    let leaving = emit_in_task("evt_leaving");
    let staying = emit_in_task("evt_staying");
    let queued = |store: &Store| store.queued_emits();
    for _ in 0..1_000 {
        if queued(&store) == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(queued(&store), 2);
    drop(held);
    // The first in line takes the turn and the queue; its caller goes away while the
    // transaction is under way (a client that disconnects drops its request).
    for _ in 0..1_000 {
        if queued(&store) == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    leaving.abort();

    let emitted = staying
        .await
        .expect("task")
        .expect("the other emit succeeds");
    assert_eq!((emitted.deliveries, emitted.created), (1, true));
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(store.sqlite_pool())
        .await
        .expect("events");
    assert_eq!(stored, ["evt_leaving", "evt_staying"]);
}

#[tokio::test]
async fn after_a_burst_an_idle_store_gives_the_log_space_back() {
    let (dir, store) = temp_store().await;
    webhook(&store, "orders", &["order.created"]).await;
    let log = dir.path().join("store.db-wal");
    let bursts = (0..400).map(|n| {
        let store = store.clone();
        async move {
            let mut new = event(&format!("evt_{n}"), "order.created");
            new.data = format!(r#"{{"padding": "{}"}}"#, "x".repeat(2_000));
            store.emit_event(new).await.expect("emitted");
        }
    });
    futures_util::future::join_all(bursts).await;
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    assert!(
        size() > 1_000_000,
        "the burst grew the log: {} bytes",
        size()
    );
    // Bounded: the truncation is due about a second after the last write.
    let mut waited = 0;
    while size() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(size(), 0, "the log was truncated once writes stopped");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.sqlite_pool())
        .await
        .expect("count");
    assert_eq!(stored, 400);
}

/// Attempts recorded before the dispatcher redacted signatures kept their values: they are
/// served redacted, and migration 0004 scrubs them from the file.
#[tokio::test]
async fn signature_values_of_older_attempts_are_served_redacted_and_scrubbed() {
    let (_dir, store) = temp_store().await;
    let hook = webhook(&store, "orders", &["order.created"]).await;
    let delivery_id = store
        .emit_to_one(
            &hook,
            event("evt_old", "order.created"),
            &by_test(AuditAction::WebhookTest),
        )
        .await
        .expect("emitted");
    let replayable = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let record = AttemptRecord {
        started_at: Utc::now(),
        duration_ms: 3,
        status_code: Some(200),
        error: None,
        request_headers: vec![
            ("webhook-signature".to_owned(), replayable.to_owned()),
            ("x-webhook-signature".to_owned(), "sha256=00ff".to_owned()),
            ("webhook-id".to_owned(), "evt_old".to_owned()),
        ],
        response_headers: Vec::new(),
        response_body: None,
    };
    store
        .record_attempts(&[AttemptToRecord {
            delivery_id: &delivery_id,
            webhook_id: &hook,
            record: &record,
            outcome: AttemptOutcome::Succeeded,
        }])
        .await
        .expect("recorded");
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT request_headers FROM delivery_attempts")
            .fetch_one(store.sqlite_pool())
            .await
            .expect("row")
    };
    assert!(stored().await.contains(replayable), "the old row as it was");

    let (_, _, attempts) = store.delivery_detail(&delivery_id).await.expect("detail");
    let served = &attempts[0].request_headers;
    assert_eq!(served["webhook-signature"], crate::signing::REDACTED);
    assert_eq!(served["x-webhook-signature"], crate::signing::REDACTED);
    assert_eq!(served["webhook-id"], "evt_old");

    sqlx::raw_sql(include_str!(
        "../../migrations/sqlite/0004_redact_signatures.sql"
    ))
    .execute(store.sqlite_pool())
    .await
    .expect("migration 0004");
    let scrubbed: serde_json::Value = serde_json::from_str(&stored().await).expect("json");
    assert_eq!(
        scrubbed,
        serde_json::json!({
            "webhook-signature": "[redacted]",
            "x-webhook-signature": "[redacted]",
            "webhook-id": "evt_old",
        })
    );
}

/// `n` failed deliveries of `webhook_id`, written straight into the file: a history such
/// as an outage leaves, made in one statement.
async fn failed_history(store: &Store, webhook_id: &str, n: i64) {
    let now = model::millis(Utc::now());
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO events (id, event_type, data, created_at) \
         SELECT printf('evt_%08d', i), 'order.created', '{}', ?2 FROM n",
    )
    .bind(n)
    .bind(now)
    .execute(store.sqlite_pool())
    .await
    .expect("events");
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, status_code, \
           attempts, retry_step, created_at, last_attempt_at) \
         SELECT 'dlv_' || substr(id, 5), id, ?1, event_type, 'failed', 500, 3, 3, ?2, ?2 \
         FROM events",
    )
    .bind(webhook_id)
    .bind(now)
    .execute(store.sqlite_pool())
    .await
    .expect("deliveries");
}

async fn count_with_status(store: &Store, status: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = ?")
        .bind(status)
        .fetch_one(store.sqlite_pool())
        .await
        .expect("count")
}

#[tokio::test]
async fn a_bulk_resend_by_filter_goes_through_every_chunk_and_skips_what_it_must() {
    let (_dir, store) = temp_store().await;
    let hook = webhook(&store, "orders", &["order.created"]).await;
    failed_history(&store, &hook, 2_500).await;
    // Two are held by an attempt under way.
    let lease = model::millis(Utc::now() + TimeDelta::minutes(5));
    sqlx::query(
        "UPDATE deliveries SET lease_until = ? WHERE id IN ('dlv_00000007', 'dlv_00002100')",
    )
    .bind(lease)
    .execute(store.sqlite_pool())
    .await
    .expect("leased");

    let filter = crate::api::DeliveryFilter {
        status: Some(crate::api::DeliveryStatus::Failed),
        webhook_id: Some(hook.clone()),
        ..Default::default()
    };
    let resent = store.resend_matching(&filter, false).await.expect("resent");
    assert_eq!(resent.queued, 2_498);
    assert_eq!(resent.skipped_total, 2);
    let mut skipped: Vec<_> = resent
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason))
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        [
            ("dlv_00000007", crate::api::SkipReason::InFlight),
            ("dlv_00002100", crate::api::SkipReason::InFlight),
        ]
    );
    assert_eq!(count_with_status(&store, "retrying").await, 2_498);
    assert_eq!(count_with_status(&store, "failed").await, 2);
    let due: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE next_attempt_at IS NOT NULL AND retry_step = 0 \
           AND lease_until IS NULL",
    )
    .fetch_one(store.sqlite_pool())
    .await
    .expect("due");
    assert_eq!(due, 2_498, "each is due now with a fresh retry cycle");

    // Nothing failed is left to match but the two in flight.
    let again = store.resend_matching(&filter, false).await.expect("resent");
    assert_eq!((again.queued, again.skipped_total), (0, 2));
}

#[tokio::test]
async fn a_claim_waits_a_while_for_a_bulk_resend_and_then_claims_all_the_same() {
    let (_dir, store) = temp_store().await;
    webhook(&store, "orders", &["order.created"]).await;
    store
        .emit_event(event("evt_0", "order.created"))
        .await
        .expect("emitted");
    let Backend::Sqlite(db) = &store.backend else {
        panic!("temp_store is on SQLite");
    };
    let resend_running = db.hold_claims_back().await;

    let asked = std::time::Instant::now();
    let jobs = store
        .claim_due(
            Utc::now(),
            Utc::now() + TimeDelta::seconds(60),
            10,
            &ClaimLimits::unlimited(),
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;
    // A timer's lower bound, not a speed: the claim gave way for its whole allowance.
    assert!(asked.elapsed() >= sqlite::CLAIMS_GIVE_WAY_FOR);
    assert_eq!(
        jobs.len(),
        1,
        "a bulk resend does not starve the dispatcher"
    );
    drop(resend_running);
}

#[tokio::test]
async fn a_bulk_resend_by_ids_skips_inactive_deleted_and_unknown_ones() {
    let (_dir, store) = temp_store().await;
    let active = webhook(&store, "active", &["order.created"]).await;
    let paused = webhook(&store, "paused", &["order.created"]).await;
    let gone = webhook(&store, "gone", &["order.created"]).await;
    let mut ids = Vec::new();
    for (n, hook) in [&active, &active, &paused, &gone].into_iter().enumerate() {
        ids.push(
            store
                .emit_to_one(
                    hook,
                    event(&format!("evt_{n}"), "order.created"),
                    &by_test(AuditAction::WebhookTest),
                )
                .await
                .expect("emitted"),
        );
    }
    store
        .update_webhook(
            &paused,
            WebhookChanges {
                is_active: Some(false),
                ..Default::default()
            },
            &by_test(AuditAction::WebhookDeactivate),
        )
        .await
        .expect("paused");
    store
        .delete_webhook(&gone, &by_test(AuditAction::WebhookDelete))
        .await
        .expect("deleted");

    let mut asked = ids.clone();
    asked.push(ids[0].clone());
    asked.push("dlv_00000000000000000000000000".to_owned());
    asked.push("dlv_\0".to_owned());
    let resent = store.resend_ids(&asked, false).await.expect("resent");
    assert_eq!(resent.queued, 2, "an id given twice counts once");
    let mut reasons: Vec<_> = resent
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason))
        .collect();
    reasons.sort_unstable();
    use crate::api::SkipReason::*;
    let mut expected = [
        ("dlv_\0", NotFound),
        ("dlv_00000000000000000000000000", NotFound),
        (ids[2].as_str(), WebhookInactive),
        (ids[3].as_str(), WebhookGone),
    ];
    expected.sort_unstable();
    assert_eq!(reasons, expected);
    assert_eq!(resent.skipped_total, 4);
}

#[test]
fn ordered_ids_keep_their_order_within_a_millisecond() {
    let ids: Vec<String> = (0..2_000)
        .map(|_| super::model::new_ordered_id("aud"))
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "every id is greater than the one before"
    );
}

/// A claim reads a window of the earliest due deliveries only. When the deliveries of a
/// full webhook fill it, it still finds the others' behind them, and so does the
/// dispatcher's look for the next due time.
#[tokio::test]
async fn a_claim_finds_due_deliveries_behind_a_full_webhooks_backlog() {
    let (_dir, store) = temp_store().await;
    let hanging = webhook(&store, "hanging", &["order.cancelled"]).await;
    let healthy = webhook(&store, "healthy", &["order.created"]).await;
    store
        .emit_event(event("evt_healthy", "order.created"))
        .await
        .expect("emitted");
    // Behind a backlog of 5 000 (more than the look for the next due time reads at once),
    // each due a millisecond after the one before; the healthy webhook's delivery last. A
    // shared millisecond would put them all at the window's end.
    let now = Utc::now();
    let start = now.timestamp_millis() - 60_000;
    sqlx::query(
        "WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999) \
         INSERT INTO events (id, event_type, data, created_at) \
         SELECT printf('evt_hanging_%05d', i), 'order.cancelled', '{}', ?1 FROM n",
    )
    .bind(start)
    .execute(store.sqlite_pool())
    .await
    .expect("backlog's events");
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, created_at, \
           next_attempt_at) \
         SELECT 'dlv_' || id, id, ?1, event_type, 'pending', created_at, \
           created_at + CAST(substr(id, 13) AS INTEGER) \
         FROM events WHERE id LIKE 'evt_hanging_%'",
    )
    .bind(&hanging)
    .execute(store.sqlite_pool())
    .await
    .expect("hanging backlog");
    sqlx::query("UPDATE deliveries SET next_attempt_at = ?1 WHERE webhook_id = ?2")
        .bind(start + 10_000)
        .bind(&healthy)
        .execute(store.sqlite_pool())
        .await
        .expect("healthy due");
    // With one slot and a share of two, the claim's window is six deliveries.
    let limits = ClaimLimits {
        full: vec![hanging.clone()],
        room: Vec::new(),
        per_webhook: 2,
    };

    let next = store
        .next_due_at(now, &limits.full, ClaimScope::All)
        .await
        .expect("next due");
    let claimed = store
        .claim_due(
            now,
            now + TimeDelta::seconds(60),
            1,
            &limits,
            ClaimScope::All,
        )
        .await
        .expect("claim")
        .jobs;

    assert_eq!(
        next.unpaced.map(|at| at.timestamp_millis()),
        Some(start + 10_000)
    );
    let claimed: Vec<(&str, &str)> = claimed
        .iter()
        .map(|job| (job.event_id.as_str(), job.webhook_id.as_str()))
        .collect();
    assert_eq!(claimed, [("evt_healthy", healthy.as_str())]);
}

#[test]
fn limits_after_a_claim_leave_each_webhook_its_room_less_what_was_taken() {
    let limits = ClaimLimits {
        full: vec!["wh_full".to_owned()],
        room: vec![("wh_some".to_owned(), 3), ("wh_untouched".to_owned(), 1)],
        per_webhook: 4,
    };

    let left = limits.after_taking(["wh_some", "wh_fresh", "wh_some", "wh_some"]);

    assert_eq!(left.room_for("wh_full"), 0);
    assert_eq!(left.room_for("wh_some"), 0);
    assert_eq!(left.room_for("wh_fresh"), 3);
    assert_eq!(left.room_for("wh_untouched"), 1);
    assert_eq!(left.room_for("wh_other"), 4);
}
