//! The outbox worker: local changes to Salesforce, one org per worker.
//!
//! [`OutboxWorker::step`] takes the due entries of its org, reads each record's current state,
//! builds its write ([`crate::sync::push`]), groups the writes by object and operation and sends
//! them through sObject Collections (up to 200 a call, `allOrNone=false`). Each record's result is
//! written back in one store transaction, as typed changes ([`OutboxChange`]): the Salesforce id
//! on the local record, the entry removed (or kept when the record changed while in flight), the
//! written `SystemModstamp` kept so the inbox can skip the echo of sfsync's own write.
//!
//! A step reads as: select the due entries, prepare each one's write (`prepare`), send them in
//! chunks (`send`), write back what became of each.
//!
//! Exactly once in effect: every create carries a marker (`sfsync:{kind}:{id}`) in the configured
//! field. Before a create is sent, its entry is marked `maybe_sent` and made durable; a create
//! that may have reached Salesforce is looked up by its marker before it is sent again (or sent
//! as an upsert by the marker when that field is an External ID). People are also matched by
//! email (and Account for Contacts) before any create: both sides having them means a link, not
//! a second record.
//!
//! Failures: transient ones are retried with capped exponential back-off and full jitter;
//! `REQUEST_LIMIT_EXCEEDED`, or the configured share of the API budget used, pauses the org;
//! permanent ones become dead letters with Salesforce's message; updates aimed at a merged or
//! converted record are re-pointed to the survivor and sent again.

mod prepare;
mod send;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::Backoff;
use crate::config::OutboxConfig;
use crate::domain::{OrgId, PushAs};
use crate::salesforce::{Client, ConnectionState, ErrorClass, MAX_COLLECTION};
use crate::store::{Link, OutboxChange, Provenance, Settled, Store, StoreError};
use crate::sync::orgs::SalesforceOrgs;
use crate::telemetry::ErrorSource;
use prepare::{Item, Prep};
use send::Verdict;

/// Entries one step considers at most.
const STEP_ENTRIES: usize = 2_000;

/// How long `run` waits between steps that found nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// The order object groups go out in: parents before children.
const ORDER: &[&str] = &["Account", "Contact", "Lead", "Opportunity", "Task", "Event"];

/// What went wrong in a step; Salesforce failures are not errors (they are recorded on entries).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Entries delivered: created, linked to an existing record, or updated.
    pub delivered: usize,
    /// Entries that need nothing sent (e.g. a product that is not an opportunity).
    pub skipped: usize,
    /// Entries that failed transiently and wait for their retry.
    pub retrying: usize,
    /// Entries that became dead letters.
    pub dead: usize,
    /// Entries re-pointed at a merged or converted record's survivor.
    pub repointed: usize,
    /// Entries waiting for a record they depend on to be created first.
    pub waiting: usize,
}

impl StepReport {
    /// Whether the step changed anything: `false` means the outbox has nothing to do now.
    pub fn progressed(&self) -> bool {
        self.delivered + self.skipped + self.retrying + self.dead + self.repointed > 0
    }

    fn count(&mut self, change: &OutboxChange, settled: Settled) {
        match (change, settled) {
            (_, Settled::GaveUp) | (OutboxChange::Dead { .. }, _) => self.dead += 1,
            (OutboxChange::Delivered { .. }, _) => self.delivered += 1,
            (OutboxChange::Skipped, _) => self.skipped += 1,
            (OutboxChange::Retry { .. }, _) => self.retrying += 1,
            (OutboxChange::Relinked { .. }, _) => self.repointed += 1,
        }
    }
}

/// The result of one step.
pub type Outcome = super::Outcome<StepReport>;

/// Drains one org's outbox to Salesforce.
pub struct OutboxWorker {
    store: Store,
    client: Client,
    org: OrgId,
    config: OutboxConfig,
    backoff: Backoff,
    push_as: PushAs,
    paused_until_ms: Option<i64>,
}

impl std::fmt::Debug for OutboxWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxWorker")
            .field("org", &self.org)
            .field("paused_until_ms", &self.paused_until_ms)
            .finish_non_exhaustive()
    }
}

impl OutboxWorker {
    /// A worker for `client`'s org. `push_as` is the configured default for new contacts.
    pub fn new(store: Store, client: Client, config: OutboxConfig, push_as: PushAs) -> Self {
        let org = client.org_id().clone();
        Self {
            store,
            client,
            org,
            backoff: Backoff::from_config(&config),
            config,
            push_as,
            paused_until_ms: None,
        }
    }

    /// The org this worker drains.
    pub fn org_id(&self) -> &OrgId {
        &self.org
    }

    /// Whether the org is paused (its API budget, or a connection that needs re-authorization):
    /// the first step after a pause ends reads the budget again before anything is sent.
    pub fn is_paused(&self) -> bool {
        self.paused_until_ms.is_some() || self.client.state() == ConnectionState::NeedsReauth
    }

    /// Runs steps until `token` is cancelled, waiting a little whenever there is nothing to do.
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            let idle = match self.step().await {
                Ok(outcome) => !outcome.worked(),
                Err(e) => {
                    tracing::error!(org = %self.org, error = %e, "outbox step failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
            } else if token.is_cancelled() {
                break;
            }
        }
    }

    /// One step at the current time.
    pub async fn step(&mut self) -> Result<Outcome, OutboxError> {
        self.step_at(Utc::now()).await
    }

    /// One step as if the time were `now` (tests move past back-off and pauses with it): select
    /// the due entries, prepare their writes, send them chunk by chunk and write back what
    /// became of each.
    pub async fn step_at(&mut self, now: DateTime<Utc>) -> Result<Outcome, OutboxError> {
        let span = tracing::info_span!("outbox.step", org = %self.org);
        async {
            let now_ms = now.timestamp_millis();
            if !self.budget_allows(now_ms).await {
                return Ok(Outcome::Paused);
            }
            let due = self.store.due_outbox(&self.org, now_ms, STEP_ENTRIES)?;
            if due.is_empty() {
                return Ok(Outcome::Idle);
            }
            let preps = prepare::prepare(&self.store, &self.org, &due, self.push_as, now)?;
            let mut report = StepReport::default();
            self.send_all(preps, now, &mut report).await?;
            self.store.make_durable().await?;
            Ok(if report.progressed() {
                Outcome::Worked(report)
            } else {
                Outcome::Idle
            })
        }
        .instrument(span)
        .await
    }

    /// Skips what needs nothing sent, then sends the rest grouped by object and operation,
    /// parents first, up to 200 a call, writing back each chunk's results before the next. A
    /// chunk that meets the API budget or a refused connection pauses the org.
    async fn send_all(
        &mut self,
        preps: Vec<Prep>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), OutboxError> {
        let mut skips = Vec::new();
        let mut groups: BTreeMap<(usize, bool), Vec<Item>> = BTreeMap::new();
        for prep in preps {
            match prep {
                Prep::Wait => report.waiting += 1,
                Prep::Skip(id, version) => skips.push((id, version, OutboxChange::Skipped)),
                Prep::Send(item) => {
                    let rank = ORDER
                        .iter()
                        .position(|o| *o == item.payload.sobject)
                        .unwrap_or(ORDER.len());
                    let create = item.payload.existing.is_none();
                    groups.entry((rank, create)).or_default().push(item);
                }
            }
        }
        if !skips.is_empty() {
            self.write_back(&skips, now, report)?;
        }
        for ((_, create), items) in groups {
            for chunk in items.chunks(MAX_COLLECTION) {
                let verdicts = if create {
                    self.create_chunk(chunk, now).await?
                } else {
                    self.update_chunk(chunk).await
                };
                let limited = verdicts
                    .iter()
                    .any(|(_, v)| matches!(v, Verdict::Retry { count: false, .. }));
                self.report_retries(&verdicts);
                let changes: Vec<_> = verdicts
                    .into_iter()
                    .map(|(item, v)| {
                        self.observe(&item, &v);
                        (item.entry_id, item.version, self.change(&item, v, now))
                    })
                    .collect();
                self.write_back(&changes, now, report)?;
                self.store.make_durable().await?;
                if limited || self.client.state() == ConnectionState::NeedsReauth {
                    self.pause(now.timestamp_millis());
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Counts a sent entry by object and result; a refusal for good is listed among the recent
    /// errors, a transient failure is not (it is retried, and counted).
    fn observe(&self, item: &Item, verdict: &Verdict) {
        let Some(telemetry) = self.client.telemetry() else {
            return;
        };
        let object = item.payload.sobject;
        let result = match verdict {
            Verdict::Linked { .. } => "ok",
            Verdict::Retry { .. } => "retry",
            Verdict::Dead { .. } => "dead",
            Verdict::Repoint { .. } => "repointed",
        };
        telemetry.metrics.pushed(object, result, 1);
        if let Verdict::Dead { message } = verdict {
            let entry = item.entry_id;
            let why = format_args!("{object} of outbox entry {entry} refused: {message}");
            telemetry.errors.record(&self.org, ErrorSource::Push, why);
        }
    }

    /// Lists a chunk's transient failures among the recent errors, once per chunk.
    fn report_retries(&self, verdicts: &[(Item, Verdict)]) {
        let mut retries = verdicts.iter().filter_map(|(_, v)| match v {
            Verdict::Retry { message, .. } => Some(message),
            _ => None,
        });
        let (Some(telemetry), Some(first)) = (self.client.telemetry(), retries.next()) else {
            return;
        };
        let n = 1 + retries.count();
        let why = format_args!("{n} outbox entries failed and will be retried: {first}");
        telemetry.errors.record(&self.org, ErrorSource::Push, why);
    }

    /// The store change a verdict on a sent item makes.
    fn change(&self, item: &Item, verdict: Verdict, now: DateTime<Utc>) -> OutboxChange {
        let provenance = |side: &str, rule: &str| Provenance {
            side: side.into(),
            event: format!("outbox:{}", item.entry_id),
            rule: rule.into(),
            at: now.to_rfc3339(),
        };
        match verdict {
            Verdict::Linked { id, rule, stamp_ms } => OutboxChange::Delivered {
                link: Link {
                    id,
                    provenance: provenance("local", rule),
                    written_stamp_ms: stamp_ms,
                },
            },
            Verdict::Retry { message, count } => {
                let delay = if count {
                    let attempt = item.attempts.saturating_add(1);
                    self.backoff.delay(attempt, &mut rand::rng())
                } else {
                    Duration::from_millis(self.config.limit_pause_ms)
                };
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                OutboxChange::Retry {
                    at_ms: now.timestamp_millis().saturating_add(delay_ms),
                    error: message,
                    counts: count,
                    max_attempts: self.config.max_attempts,
                }
            }
            Verdict::Dead { message } => OutboxChange::Dead { error: message },
            Verdict::Repoint { id } => OutboxChange::Relinked {
                link: Link {
                    id,
                    provenance: provenance("salesforce", "push:repoint-survivor"),
                    written_stamp_ms: None,
                },
            },
        }
    }

    /// Writes what became of each entry back, in one transaction, and counts it.
    fn write_back(
        &self,
        changes: &[(u64, u64, OutboxChange)],
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), OutboxError> {
        let settled = self.store.settle_outbox(&self.org, changes, now)?;
        for ((_, _, change), s) in changes.iter().zip(settled) {
            report.count(change, s);
        }
        Ok(())
    }

    fn pause(&mut self, now_ms: i64) {
        let until = now_ms.saturating_add(i64::try_from(self.config.limit_pause_ms).unwrap_or(0));
        tracing::warn!(org = %self.org, until_ms = until, "outbox paused");
        self.paused_until_ms = Some(until);
    }

    /// Whether calls may go out: not paused, connected, and under the configured share of the
    /// API budget. When a pause ends, the budget is read again (one call) before work resumes.
    async fn budget_allows(&mut self, now_ms: i64) -> bool {
        if self.client.state() == ConnectionState::NeedsReauth {
            return false;
        }
        if let Some(until) = self.paused_until_ms {
            if now_ms < until {
                return false;
            }
            match self.client.fetch_limits().await {
                Ok(usage) if usage.fraction_used() < self.config.limit_share => {
                    tracing::info!(org = %self.org, used = usage.used, limit = usage.limit, "outbox resumed");
                    self.paused_until_ms = None;
                }
                Ok(_) => {
                    self.pause(now_ms);
                    return false;
                }
                Err(e) if e.class() == ErrorClass::Limit => {
                    self.pause(now_ms);
                    return false;
                }
                Err(e) => {
                    tracing::warn!(org = %self.org, error = %e, "reading the api budget failed");
                    return false;
                }
            }
        }
        match self.client.api_usage() {
            Some(u) if u.fraction_used() >= self.config.limit_share => {
                self.pause(now_ms);
                false
            }
            _ => true,
        }
    }
}

/// Starts one [`OutboxWorker`] per connected org on `tracker`, now and for every org that
/// connects later, until `token` is cancelled.
pub fn spawn_workers(
    tracker: &TaskTracker,
    store: Store,
    orgs: Arc<SalesforceOrgs>,
    outbox: OutboxConfig,
    push_as: PushAs,
    token: CancellationToken,
) {
    let inner = tracker.clone();
    tracker.spawn(async move {
        let mut started: HashSet<OrgId> = HashSet::new();
        loop {
            for client in orgs.all() {
                if started.insert(client.org_id().clone()) {
                    tracing::info!(org = %client.org_id(), "outbox worker started");
                    let worker = OutboxWorker::new(store.clone(), client, outbox.clone(), push_as);
                    inner.spawn(worker.run(token.clone()));
                }
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(IDLE_WAIT) => {}
            }
        }
    });
}
