//! Bulk resend: many deliveries queued again, chunk by chunk, so that no transaction
//! holds the writer for long and emits and the dispatcher's writes go on between chunks.

use std::collections::HashSet;

use chrono::Utc;

use super::model::millis;
use super::query::{Candidates, ResendCandidate};
use super::sqlite::ClaimsHeldBack;
use super::{Backend, Result, Store, lookup, matches_nothing};
use crate::api::{BulkResent, DeliveryFilter, DeliveryQuery, SkipReason};

/// Deliveries read and written per transaction: a few milliseconds of the writer's time
/// each on SQLite, so emits wait little between chunks.
const CHUNK: usize = 500;

impl Store {
    /// Queues each of `ids` again now with a fresh retry cycle, like [`Store::resend`],
    /// skipping those an attempt holds, those whose webhook is inactive or deleted, and
    /// ids that name no delivery. An id given twice counts once. A `dry_run` changes
    /// nothing and answers what a resend would do now.
    pub async fn resend_ids(&self, ids: &[String], dry_run: bool) -> Result<BulkResent> {
        let mut seen = HashSet::with_capacity(ids.len());
        let mut tally = BulkResent::default();
        let mut findable = Vec::with_capacity(ids.len());
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            match lookup(id) {
                Ok(id) => findable.push(id.to_owned()),
                Err(_) => tally.skip(id, SkipReason::NotFound),
            }
        }
        let _claims_wait = if dry_run {
            None
        } else {
            self.hold_claims_back().await
        };
        let mut chunks = findable.chunks(CHUNK);
        let mut next = chunks.next();
        let mut writing: Option<Vec<ResendCandidate>> = None;
        // The next chunk is read while the one before it is written.
        while next.is_some() || writing.is_some() {
            let read = async {
                match next {
                    Some(chunk) => {
                        on_backend!(self, db => db.resend_candidates(Candidates::Ids(chunk)).await)
                    }
                    None => Ok(Vec::new()),
                }
            };
            let (candidates, ()) = tokio::try_join!(read, async {
                match writing.take() {
                    Some(candidates) => self.requeue(candidates, dry_run, &mut tally).await,
                    None => Ok(()),
                }
            })?;
            if let Some(chunk) = next {
                let found: HashSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
                for id in chunk.iter().filter(|id| !found.contains(id.as_str())) {
                    tally.skip(id, SkipReason::NotFound);
                }
                writing = Some(candidates);
            }
            next = chunks.next();
        }
        Ok(tally)
    }

    /// Queues again every delivery `GET /deliveries` lists for `filter`, newest first, a
    /// chunk at a time, skipping as [`Store::resend_ids`] does.
    pub async fn resend_matching(
        &self,
        filter: &DeliveryFilter,
        dry_run: bool,
    ) -> Result<BulkResent> {
        let mut query = filter.query();
        if matches_nothing(&query) {
            return Ok(BulkResent::default());
        }
        if dry_run {
            return self.resend_matching_dry(query).await;
        }
        let limit = i64::try_from(CHUNK).unwrap_or(i64::MAX);
        let mut tally = BulkResent::default();
        let _claims_wait = self.hold_claims_back().await;
        // Each page moves the cursor past the deliveries it held, so the pages end.
        loop {
            let now = millis(Utc::now());
            let page = on_backend!(self, db => db.requeue_page(&query, limit, now).await)?;
            for (_, webhook_id) in &page.queued {
                tally.queued += 1;
                *tally
                    .queued_by_webhook
                    .entry(webhook_id.clone())
                    .or_default() += 1;
            }
            for candidate in &page.passed_over {
                // In the page's own transaction, a delivery of an active webhook that
                // was not queued is one an attempt holds.
                let reason = skip_reason(candidate, now).unwrap_or(SkipReason::InFlight);
                tally.skip(&candidate.id, reason);
            }
            if page.read < CHUNK {
                return Ok(tally);
            }
            query.cursor = page.oldest;
        }
    }

    /// On SQLite, the dispatcher's claims wait a while for the bulk resend that holds
    /// this (see `sqlite::Database::hold_claims_back`), so that its chunks are not each
    /// queued behind them for the one writer. PostgreSQL's writers do not take turns.
    async fn hold_claims_back(&self) -> Option<ClaimsHeldBack> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.hold_claims_back().await),
            Backend::Postgres(_) => None,
        }
    }

    /// What [`Store::resend_matching`] would do now, changing nothing.
    async fn resend_matching_dry(&self, mut query: DeliveryQuery) -> Result<BulkResent> {
        let limit = i64::try_from(CHUNK).unwrap_or(i64::MAX);
        let mut tally = BulkResent::default();
        loop {
            let which = Candidates::Matching {
                query: &query,
                limit,
            };
            let candidates = on_backend!(self, db => db.resend_candidates(which).await)?;
            let read = candidates.len();
            query.cursor = candidates.last().map(|candidate| candidate.id.clone());
            self.requeue(candidates, true, &mut tally).await?;
            if read < CHUNK {
                return Ok(tally);
            }
        }
    }

    /// Queues the candidates that may be queued, in one transaction (none for a dry
    /// run), and tallies the rest.
    async fn requeue(
        &self,
        candidates: Vec<ResendCandidate>,
        dry_run: bool,
        tally: &mut BulkResent,
    ) -> Result<()> {
        let now = millis(Utc::now());
        let mut eligible = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            match skip_reason(&candidate, now) {
                Some(reason) => tally.skip(&candidate.id, reason),
                None => eligible.push((candidate.id, candidate.webhook_id)),
            }
        }
        let ids: Vec<String> = eligible.iter().map(|(id, _)| id.clone()).collect();
        let queued: HashSet<String> = if dry_run {
            ids.into_iter().collect()
        } else {
            on_backend!(self, db => db.requeue(&ids, now).await)?
                .into_iter()
                .collect()
        };
        for (id, webhook_id) in eligible {
            if queued.contains(&id) {
                tally.queued += 1;
                *tally.queued_by_webhook.entry(webhook_id).or_default() += 1;
            } else {
                // Claimed, deactivated or deleted between the read and the write, which
                // checked again. A claim is by far the likeliest.
                tally.skip(&id, SkipReason::InFlight);
            }
        }
        Ok(())
    }
}

/// Why `candidate` may not be queued again at `now`, if it may not.
fn skip_reason(candidate: &ResendCandidate, now: i64) -> Option<SkipReason> {
    match candidate.webhook_state.as_str() {
        _ if candidate.lease_until.is_some_and(|until| until > now) => Some(SkipReason::InFlight),
        "active" => None,
        "inactive" => Some(SkipReason::WebhookInactive),
        _ => Some(SkipReason::WebhookGone),
    }
}
