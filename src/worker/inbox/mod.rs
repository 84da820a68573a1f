//! The inbox worker: pending notifications in, batched pulls out, records applied.
//!
//! One [`InboxWorker::step`] takes the due pending records of every connected org, drops the
//! ones whose stored `SystemModstamp` already covers the notification and the ones that only
//! report sfsync's own write ([`pull::is_own_write`]) without a call, groups the rest
//! by object and reads them with sObject Collections retrieve, 200 ids a call, a few calls at a
//! time. Records that come back empty are gone: one `queryAll` per 200 of them tells merges
//! (`MasterRecordId`) from deletes. Accounts that pulled Contacts, Leads or Opportunities point
//! at but that are not local yet are pulled first, so links resolve. Each record is then applied
//! in its own store transaction that also clears its pending entry, unless a newer notification
//! arrived during the pull.
//!
//! Failures leave entries pending: a failed batch backs off per record (capped exponential,
//! full jitter); `REQUEST_LIMIT_EXCEEDED`, a budget past `limit_share`, or a connection that
//! needs re-authorization pause the org. The session refresh on 401 is the client's.

mod calls;
mod waiting;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use waiting::Waiting;

use super::Backoff;
use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
use crate::salesforce::{
    Client, ConnectionState, ErrorClass, MAX_COLLECTION, Record, RecordExt as _, SalesforceError,
};
use crate::store::{PendingRecord, Store, StoreError};
use crate::sync::orgs::PullContext;
use crate::sync::pull::{self, Applied, Origin, Target};
use crate::telemetry::ErrorSource;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// Most records taken per org in one step.
    pub max_per_step: usize,
    /// Retrieve calls in flight at once per org.
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
    /// pulled once a full batch (200) is waiting or the oldest has waited this long.
    pub gather: Duration,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            max_per_step: 4_000,
            concurrency: 4,
            backoff: Backoff::default(),
            limit_pause: Duration::from_secs(300),
            limit_share: 0.9,
            idle_wait: Duration::from_millis(25),
            gather: Duration::from_millis(250),
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
        }
    }

    fn add(&mut self, r: &StepReport) {
        self.pulled += r.pulled;
        self.applied += r.applied;
        self.unchanged += r.unchanged;
        self.skipped += r.skipped;
        self.echoes += r.echoes;
        self.quarantined += r.quarantined;
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

/// A pulled record with its pending entry and when it was read.
type Pulled = BTreeMap<ObjectType, Vec<(PendingRecord, Record, chrono::DateTime<chrono::Utc>)>>;

impl InboxWorker {
    /// A worker over `store` for the orgs of `ctx`.
    pub fn new(store: Store, ctx: PullContext, settings: InboxSettings) -> Self {
        Self {
            store,
            ctx,
            settings,
            waiting: Waiting::default(),
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
            Some(usage)
                if usage.limit > 0
                    && usage.used as f64 >= usage.limit as f64 * self.settings.limit_share =>
            {
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

    /// One org's step: select what is due, retrieve it, pull the parents it needs, apply it,
    /// and handle what is gone.
    async fn step_org(&mut self, client: &Client) -> Result<Option<StepReport>, StoreError> {
        let calls_before = client.api_calls();
        let mut report = StepReport::default();
        let Some(mut due) = self.select(client, &mut report)? else {
            return Ok((report.skipped + report.echoes > 0).then_some(report));
        };
        let pulled = self
            .retrieve(
                client,
                std::mem::take(&mut due.pull),
                &mut due.gone,
                &mut report,
            )
            .await;
        self.pull_parents(client, &pulled, &mut report).await?;
        self.apply(client.org_id(), pulled, &mut report)?;
        self.handle_gone(client, due.gone, &mut report).await?;
        report.api_calls = client.api_calls().saturating_sub(calls_before);
        tracing::debug!(org = %client.org_id(), ?report, "inbox step");
        Ok(Some(report))
    }

    /// The org's pending records that are due, without those already applied or only reporting
    /// sfsync's own write (cleared here, without a call). `None` when nothing is due, or when
    /// what is due may still wait for company: no batch is full, nothing is gone and nobody has
    /// waited [`InboxSettings::gather`].
    fn select(
        &mut self,
        client: &Client,
        report: &mut StepReport,
    ) -> Result<Option<Due>, StoreError> {
        let org = client.org_id();
        let own_user = client.user_id();
        let now = Instant::now();
        let mut due = Due::default();
        let mut taken = 0;
        for rec in self.store.pending_records(org)? {
            if taken >= self.settings.max_per_step {
                break;
            }
            if self.waiting.holds(&key(&rec), now) {
                continue;
            }
            taken += 1;
            if rec.entry.change == ChangeType::Delete {
                due.gone.entry(rec.object).or_default().push(rec);
            } else if let Some(cleared) = self.already_applied(&rec)? {
                report.skipped += u64::from(cleared);
            } else if self.own_write(&rec, own_user.as_ref())? {
                report.echoes += 1;
            } else {
                due.pull.entry(rec.object).or_default().push(rec);
            }
        }
        let waiting: usize = due.pull.values().map(Vec::len).sum();
        let oldest = due
            .pull
            .values()
            .flatten()
            .map(|r| r.entry.first_seen_ms)
            .min();
        let gather_ms = i64::try_from(self.settings.gather.as_millis()).unwrap_or(i64::MAX);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let gathering = waiting < MAX_COLLECTION && oldest.is_some_and(|o| now_ms - o < gather_ms);
        Ok((!due.gone.is_empty() || (waiting > 0 && !gathering)).then_some(due))
    }

    /// Whether a pending record's change is already applied locally (its stamp is covered by
    /// the last pull): `Some(cleared)` when it is, its entry cleared unless something newer
    /// arrived.
    fn already_applied(&self, rec: &PendingRecord) -> Result<Option<bool>, StoreError> {
        let (Some(stamp), Some(seen)) = (
            rec.entry.system_modstamp_ms,
            self.store.seen(&rec.org, &rec.id)?,
        ) else {
            return Ok(None);
        };
        if !seen.covers(stamp) {
            return Ok(None);
        }
        let cleared =
            pull::skip_covered(&self.store, &rec.org, rec.object, &rec.id, &rec.entry, seen)?;
        Ok(Some(cleared))
    }

    /// Whether a pending record only reports sfsync's own last write (see
    /// [`pull::is_own_write`]); if so its entry is cleared, unless something newer arrived.
    fn own_write(
        &self,
        rec: &PendingRecord,
        own_user: Option<&SalesforceId>,
    ) -> Result<bool, StoreError> {
        let written = self.store.written_stamp(&rec.org, &rec.id)?;
        if !pull::is_own_write(&rec.entry, written, own_user) {
            return Ok(false);
        }
        let cleared = pull::skip_own_write(&self.store, &rec.org, rec.object, &rec.id, &rec.entry)?;
        if cleared {
            self.ctx.echoes.fetch_add(1, Ordering::Relaxed);
            self.ctx.orgs.telemetry().metrics.inbox_echoes(1);
            tracing::debug!(org = %rec.org, record = %rec.id, "notification reports sfsync's own write; nothing to pull");
        }
        Ok(cleared)
    }

    /// Applies each pulled record in its own transaction that also clears its pending entry,
    /// Accounts first.
    fn apply(
        &mut self,
        org: &OrgId,
        mut pulled: Pulled,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        for object in ORDER {
            for (entry, record, started) in pulled.remove(&object).unwrap_or_default() {
                let origin = Origin {
                    event: "notification".into(),
                    now: started,
                };
                let applied = pull::commit_record(
                    &self.store,
                    org,
                    &self.ctx.rules,
                    object,
                    &record,
                    &origin,
                    Target::Ladder,
                    Some(&entry.entry),
                )?;
                self.waiting.done(&key(&entry));
                report.count(&applied);
                self.observe(object, &applied, record.str_field("SystemModstamp"));
            }
        }
        Ok(())
    }

    /// Counts an applied record, and how long after its `SystemModstamp` it was written.
    pub(super) fn observe(&self, object: ObjectType, applied: &Applied, stamp: Option<&str>) {
        let metrics = &self.ctx.orgs.telemetry().metrics;
        metrics.pull_applied(object.api_name(), applied.label());
        if let Some(stamp) = stamp.and_then(pull::parse_datetime) {
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
