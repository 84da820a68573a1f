//! The inbox worker: pending notifications in, batched pulls out, records applied.
//!
//! One [`InboxWorker::step`] takes the due pending records of every connected org (`select`),
//! clears without a call the ones whose stored `SystemModstamp` already covers the notification
//! and the ones that only report sfsync's own write ([`pull::is_own_write`]), groups the rest
//! by object and reads them with sObject Collections retrieve, up to 2,000 ids a call, several
//! calls in flight at once (`calls`): at most [`InboxSettings::concurrency`], and never more
//! calls in a step than the org's budget share has left. Once every batch of the step has its
//! call, the step takes the org's next due records (a few times at most, never a record it
//! already holds), so their calls are on their way while the last batches apply. Each batch is
//! applied as soon as it arrives, in one store transaction that also clears its records'
//! pending entries (unless a newer notification arrived during the pull), while the other calls
//! are in flight; batches are applied in object order, Accounts first. Accounts that a batch's
//! Contacts, Leads or Opportunities point at but that are not local yet are pulled first, so
//! links resolve.
//! Records that come back empty are gone: one `queryAll` per 200 of them tells merges
//! (`MasterRecordId`) from deletes.
//!
//! Failures leave entries pending: a failed batch backs off per record (capped exponential,
//! full jitter); `REQUEST_LIMIT_EXCEEDED`, a budget past `limit_share`, or a connection that
//! needs re-authorization pause the org. The session refresh on 401 is the client's.

mod calls;
mod select;
mod waiting;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use waiting::Waiting;

use super::Backoff;
use crate::domain::{ObjectType, OrgId, SalesforceId};
use crate::salesforce::{Client, ConnectionState, ErrorClass, SalesforceError};
use crate::store::{PendingRecord, Store, StoreError};
use crate::sync::orgs::PullContext;
use crate::sync::pull::Applied;
use crate::telemetry::ErrorSource;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// Most records taken per org in one step.
    pub max_per_step: usize,
    /// Retrieve calls in flight at once per org (Salesforce allows 25 long-running requests
    /// per org).
    pub concurrency: usize,
    /// When a record whose pull failed is tried again.
    pub backoff: Backoff,
    /// How long an org pauses after `REQUEST_LIMIT_EXCEEDED` or past its budget share.
    pub limit_pause: Duration,
    /// Share of the org's daily API limit pulls may use (0 to 1).
    pub limit_share: f64,
    /// How long `run` waits when there is nothing due.
    pub idle_wait: Duration,
    /// How long a notification may wait for others to share its retrieve call: records are
    /// pulled once a full batch (2,000) is waiting or the oldest has waited this long.
    pub gather: Duration,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            max_per_step: 16_000,
            concurrency: 4,
            backoff: Backoff::default(),
            limit_pause: Duration::from_secs(300),
            limit_share: 0.9,
            idle_wait: Duration::from_millis(25),
            gather: Duration::from_millis(100),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Records read from Salesforce (dependencies included).
    pub pulled: u64,
    /// Records whose local copy was created, updated, re-linked or unlinked.
    pub applied: u64,
    /// Records already up to date locally.
    pub unchanged: u64,
    /// Pending entries cleared without a pull (their stamp was already applied).
    pub skipped: u64,
    /// Pending entries cleared without a pull because they only reported sfsync's own write.
    pub echoes: u64,
    /// Records quarantined as conflicts.
    pub quarantined: u64,
    /// Records read before sfsync's own later write to them took effect: not applied, left
    /// pending to be read again in the next step.
    pub stale: u64,
    /// Records gone from Salesforce (deleted or merged).
    pub gone: u64,
    /// Records left pending after a failed call (backing off).
    pub failed: u64,
    /// Salesforce API calls made.
    pub api_calls: u64,
}

impl StepReport {
    fn count(&mut self, applied: &Applied) {
        match applied {
            Applied::Created { .. }
            | Applied::Updated { .. }
            | Applied::Relinked { .. }
            | Applied::Unlinked { .. } => self.applied += 1,
            Applied::Unchanged { .. } | Applied::Ignored { .. } => self.unchanged += 1,
            Applied::Quarantined { .. } => self.quarantined += 1,
            Applied::Stale => self.stale += 1,
        }
    }

    fn add(&mut self, r: &StepReport) {
        self.pulled += r.pulled;
        self.applied += r.applied;
        self.unchanged += r.unchanged;
        self.skipped += r.skipped;
        self.echoes += r.echoes;
        self.quarantined += r.quarantined;
        self.stale += r.stale;
        self.gone += r.gone;
        self.failed += r.failed;
        self.api_calls += r.api_calls;
    }
}

/// The result of one step.
pub type Outcome = super::Outcome<StepReport>;

/// A pending record's identity.
type Key = (OrgId, ObjectType, SalesforceId);

fn key(rec: &PendingRecord) -> Key {
    (rec.org.clone(), rec.object, rec.id.clone())
}

/// The inbox worker. Drive it with [`InboxWorker::step`] (tests) or [`InboxWorker::run`].
pub struct InboxWorker {
    store: Store,
    ctx: PullContext,
    settings: InboxSettings,
    waiting: Waiting,
    /// Records the running step has taken (retrieving, applying or gone): a refill of the
    /// step does not take them again.
    taken: HashSet<Key>,
    paused: HashMap<OrgId, Instant>,
}

/// Object order of application: Accounts first so that links resolve, then Leads before
/// Contacts so a conversion re-links the Lead's local contact before the Contact is matched.
const ORDER: [ObjectType; 4] = [
    ObjectType::Account,
    ObjectType::Lead,
    ObjectType::Contact,
    ObjectType::Opportunity,
];

/// The due records of one org: to pull, and gone (deleted, or came back empty).
#[derive(Debug, Default)]
struct Due {
    pull: BTreeMap<ObjectType, Vec<PendingRecord>>,
    gone: BTreeMap<ObjectType, Vec<PendingRecord>>,
}

impl InboxWorker {
    /// A worker over `store` for the orgs of `ctx`.
    pub fn new(store: Store, ctx: PullContext, settings: InboxSettings) -> Self {
        Self {
            store,
            ctx,
            settings,
            waiting: Waiting::default(),
            taken: HashSet::new(),
            paused: HashMap::new(),
        }
    }

    /// Whether an org is paused now.
    pub fn is_paused(&self, org: &OrgId) -> bool {
        self.paused.get(org).is_some_and(|u| *u > Instant::now())
    }

    /// Runs steps until `token` is cancelled.
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            if token.is_cancelled() {
                break;
            }
            let wait = match self.step().await {
                Ok(outcome) if outcome.worked() => Duration::ZERO,
                Ok(_) => self.settings.idle_wait,
                Err(e) => {
                    tracing::error!(error = %e, "inbox step failed");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One unit of work over every connected org.
    pub async fn step(&mut self) -> Result<Outcome, StoreError> {
        let mut total = StepReport::default();
        let mut worked = false;
        let mut paused = false;
        for client in self.ctx.orgs.all() {
            if !self.may_call(&client) {
                paused = true;
                continue;
            }
            let span = tracing::info_span!("inbox.step", org = %client.org_id());
            if let Some(report) = self.step_org(&client).instrument(span).await? {
                worked = true;
                total.add(&report);
            }
        }
        Ok(if worked {
            Outcome::Worked(total)
        } else if paused {
            Outcome::Paused
        } else {
            Outcome::Idle
        })
    }

    /// Whether an org may make calls: not paused, connected, under its budget share.
    fn may_call(&mut self, client: &Client) -> bool {
        let org = client.org_id();
        if self.is_paused(org) || client.state() == ConnectionState::NeedsReauth {
            return false;
        }
        match client.api_usage() {
            Some(usage) if self.budget_left(client) == Some(0) => {
                tracing::warn!(org = %org, used = usage.used, limit = usage.limit, "api budget share reached; pulls pause");
                self.pause(org);
                false
            }
            _ => true,
        }
    }

    fn pause(&mut self, org: &OrgId) {
        self.paused
            .insert(org.clone(), Instant::now() + self.settings.limit_pause);
    }

    /// One org's step: select what is due, retrieve it and apply each batch as it arrives
    /// (with the parents it needs), and handle what is gone.
    async fn step_org(&mut self, client: &Client) -> Result<Option<StepReport>, StoreError> {
        let calls_before = client.api_calls();
        let mut report = StepReport::default();
        self.taken.clear();
        let Some(mut due) = self.select(client, &mut report)? else {
            return Ok((report.skipped + report.echoes > 0).then_some(report));
        };
        let pull = std::mem::take(&mut due.pull);
        self.pull_and_apply(client, pull, &mut due.gone, &mut report)
            .await?;
        self.handle_gone(client, due.gone, &mut report).await?;
        report.api_calls = client.api_calls().saturating_sub(calls_before);
        tracing::debug!(org = %client.org_id(), ?report, "inbox step");
        Ok(Some(report))
    }

    /// How many calls the org's budget share has left (calls go out while fewer than
    /// `limit × limit_share` are used), if its usage is known.
    fn budget_left(&self, client: &Client) -> Option<u64> {
        let usage = client.api_usage().filter(|u| u.limit > 0)?;
        let allowed = (usage.limit as f64 * self.settings.limit_share).ceil() as u64;
        Some(allowed.saturating_sub(usage.used))
    }

    /// Counts an applied record, and how long after its `SystemModstamp` it was written (a
    /// record held back as stale was not written).
    pub(super) fn observe(&self, object: ObjectType, applied: &Applied, stamp: Option<&str>) {
        let metrics = &self.ctx.orgs.telemetry().metrics;
        metrics.pull_applied(object.api_name(), applied.label());
        if *applied == Applied::Stale {
            return;
        }
        if let Some(stamp) = stamp.and_then(crate::sync::pull::parse_datetime) {
            metrics.pull_freshness(chrono::Utc::now() - stamp);
        }
    }

    fn failed(&mut self, org: &OrgId, e: &SalesforceError, entries: &[PendingRecord]) {
        let class = e.class();
        tracing::warn!(org = %org, error = %e, ?class, records = entries.len(), "pull failed; entries stay pending");
        let telemetry = self.ctx.orgs.telemetry();
        telemetry.errors.record(
            org,
            ErrorSource::Pull,
            format_args!("{} records not pulled: {e}", entries.len()),
        );
        entries.iter().for_each(|r| {
            telemetry
                .metrics
                .pull_applied(r.object.api_name(), "failed")
        });
        if matches!(
            class,
            ErrorClass::Limit | ErrorClass::Auth { needs_reauth: true }
        ) {
            self.pause(org);
        }
        self.waiting.failed(&self.settings.backoff, entries);
    }
}
