//! The outbox worker: local changes to Salesforce, one org per worker.
//!
//! [`OutboxWorker::step`] takes the due entries of its org, reads each record's current state,
//! builds its write ([`crate::sync::push`]), groups the writes by object and operation and sends
//! them as sObject Collections writes of up to 200 records (`allOrNone=false`), several of them
//! in one Composite call, each followed in the same call by a query of the `SystemModstamp` it
//! wrote (`call`). Each call's results are written back in one store transaction, as typed
//! changes ([`OutboxChange`]): the Salesforce id on the local record, the entry removed (or kept
//! when the record changed while in flight), the written `SystemModstamp` kept so the inbox can
//! skip the echo of sfsync's own write.
//!
//! A step reads as: select the due entries, prepare each one's write (`prepare`), look up what
//! the org already holds of the creates (`lookup`, `send`), send the rest in calls (`call`),
//! write back what became of each (`settle`).
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

mod acting;
mod call;
mod lookup;
mod prepare;
mod send;
mod settle;
mod verdict;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::Backoff;
use crate::config::{ActivityTarget, OutboxConfig};
use crate::domain::{AppUser, OrgId, PushAs};
use crate::salesforce::{Client, ConnectionState, ErrorClass, MAX_COLLECTION};
use crate::store::{OutboxChange, Settled, Store, StoreError};
use crate::sync::orgs::SalesforceOrgs;
use crate::sync::pull::Rules;
use crate::sync::setup::Setup;
use crate::telemetry::ErrorSource;
use prepare::{Item, Prep, Shape};
use settle::WriteBack;
use verdict::Verdict;

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
    /// Entries held for a person: their create found several records in the org (a conflict).
    pub held: usize,
    /// Entries paused because the org's setup of their object is broken.
    pub paused: usize,
}

impl StepReport {
    /// Whether the step changed anything: `false` means the outbox has nothing to do now.
    pub fn progressed(&self) -> bool {
        self.delivered
            + self.skipped
            + self.retrying
            + self.dead
            + self.repointed
            + self.held
            + self.paused
            > 0
    }

    fn count(&mut self, what: &WriteBack, settled: Settled) {
        match (what, settled) {
            (_, Settled::GaveUp | Settled::Dead) => self.dead += 1,
            (_, Settled::Held) => self.held += 1,
            (_, Settled::Paused) => self.paused += 1,
            (WriteBack::Change(OutboxChange::Skipped), _) => self.skipped += 1,
            (WriteBack::Change(OutboxChange::Retry { .. }), _) => self.retrying += 1,
            (WriteBack::Change(OutboxChange::Relinked { .. }), _) => self.repointed += 1,
            _ => self.delivered += 1,
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
    rules: Arc<Rules>,
    activities: Arc<ActivityTarget>,
    setup: Option<Arc<Setup>>,
    /// The application users' own connections: a write made for one of them goes out with
    /// theirs while it works.
    users: Option<Arc<SalesforceOrgs>>,
    /// Objects whose entries were paused for their setup; resumed once a check passes.
    setup_paused: BTreeSet<String>,
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
            rules: Arc::default(),
            activities: Arc::default(),
            setup: None,
            users: None,
            setup_paused: BTreeSet::new(),
            paused_until_ms: None,
        }
    }

    /// Sends activities where `[activities]` says (default: Task and Event).
    pub fn with_activities(mut self, activities: Arc<ActivityTarget>) -> Self {
        self.activities = activities;
        self
    }

    /// Pauses pushes of an object whose setup the latest check of `setup` finds broken (they wait
    /// with the check's reason instead of failing one by one) and resumes them when a later check
    /// passes.
    pub fn with_setup(mut self, setup: Arc<Setup>) -> Self {
        self.setup = Some(setup);
        self
    }

    /// Writes what is made for an application user with that user's own connection in `users`
    /// (when they have one that works; else with the org's).
    pub fn with_user_connections(mut self, users: Arc<SalesforceOrgs>) -> Self {
        self.users = Some(users);
        self
    }

    /// Applies the `[sync]` rules (default: the standard stage table, `salesforce_wins`): the
    /// stage table maps stages to `StageName`, and the conflict policy applies when a create
    /// finds the record already in the org.
    pub fn with_rules(mut self, rules: Arc<Rules>) -> Self {
        self.rules = rules;
        self
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
            self.resume_fixed(now)?;
            let due = self.store.due_outbox(&self.org, now_ms, STEP_ENTRIES)?;
            if due.is_empty() {
                return Ok(Outcome::Idle);
            }
            let shape = Shape {
                push_as: self.push_as,
                stages: &self.rules.stages,
                activities: &self.activities,
                today: now.date_naive(),
            };
            let preps = prepare::prepare(&self.store, &self.org, &due, shape)?;
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

    /// Skips what needs nothing sent, then groups the rest by object and operation (parents
    /// first), looks up what each group of creates may find in the org, and sends the rest in
    /// batches of up to 200, several batches to a call, writing back each call's results
    /// before the next. A call that meets the API budget or a refused connection pauses the org.
    async fn send_all(
        &mut self,
        preps: Vec<Prep>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), OutboxError> {
        let mut skips = Vec::new();
        let mut groups: BTreeMap<(usize, bool, Option<AppUser>), Vec<Item>> = BTreeMap::new();
        for prep in preps {
            match prep {
                Prep::Wait => report.waiting += 1,
                Prep::Skip(id, version, target) => {
                    skips.push((
                        (id, version, target),
                        WriteBack::Change(OutboxChange::Skipped),
                    ));
                }
                Prep::Send(item) => {
                    let rank = ORDER
                        .iter()
                        .position(|o| *o == item.payload.sobject)
                        .unwrap_or(ORDER.len());
                    let create = item.payload.existing.is_none();
                    let owner = item.owner.clone();
                    groups.entry((rank, create, owner)).or_default().push(*item);
                }
            }
        }
        if !skips.is_empty() {
            self.write_back(&skips, None, now, report)?;
        }
        let mut batches = Vec::new();
        for ((_, create, _), items) in groups {
            let Some(batches_of_group) = self.prepare_group(items, create, now, report).await?
            else {
                return Ok(());
            };
            batches.extend(batches_of_group);
        }
        for call in call::pack(&batches) {
            let (verdicts, mark) = self.send_call(&call).await?;
            if self.conclude_sent(verdicts, mark, now, report).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The batches of one group (one object and operation): paused when the org's setup of
    /// the object is broken, creates looked up first. `None` when a verdict paused the org.
    async fn prepare_group(
        &mut self,
        items: Vec<Item>,
        create: bool,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<Option<Vec<call::Batch>>, OutboxError> {
        let Some(sobject) = items.first().map(|i| i.payload.sobject.to_string()) else {
            return Ok(Some(Vec::new()));
        };
        if let Some(v) = self.setup_pause(&sobject) {
            let verdicts = items.into_iter().map(|i| (i, v.clone())).collect();
            let stop = self.conclude(verdicts, now, report).await?;
            return Ok((!stop).then(Vec::new));
        }
        let items = if create {
            let (found, send) = self.look_first(items).await?;
            if self.conclude(found, now, report).await? {
                return Ok(None);
            }
            send
        } else {
            items
        };
        let mut batches = Vec::new();
        let mut refused = Vec::new();
        for chunk in items.chunks(MAX_COLLECTION) {
            match self.batch(chunk.to_vec(), create) {
                Ok(b) => batches.push(b),
                Err(verdicts) => refused.extend(verdicts),
            }
        }
        if self.conclude(refused, now, report).await? {
            return Ok(None);
        }
        Ok(Some(batches))
    }

    /// Counts, reports and writes back the verdicts of some entries, durably. Whether the org
    /// had to pause (the API budget, or a refused connection).
    async fn conclude(
        &mut self,
        verdicts: Vec<(Item, Verdict)>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<bool, OutboxError> {
        self.conclude_sent(verdicts, None, now, report).await
    }

    /// [`Self::conclude`] for the items of a sent call, ending its sending mark in the same
    /// transaction.
    async fn conclude_sent(
        &mut self,
        verdicts: Vec<(Item, Verdict)>,
        mark: Option<u64>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<bool, OutboxError> {
        if verdicts.is_empty() && mark.is_none() {
            return Ok(false);
        }
        let limited = verdicts
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Retry { count: false, .. }));
        self.report_retries(&verdicts);
        let changes: Vec<_> = verdicts
            .into_iter()
            .map(|(item, v)| {
                self.observe(&item, &v);
                let what = self.settlement(&item, v, now);
                ((item.entry_id, item.version, item.target), what)
            })
            .collect();
        self.write_back(&changes, mark, now, report)?;
        self.store.make_durable().await?;
        if limited || self.client.state() == ConnectionState::NeedsReauth {
            self.pause(now.timestamp_millis());
            return Ok(true);
        }
        Ok(false)
    }

    /// Counts a sent entry by object and result; a refusal for good is listed among the recent
    /// errors, a transient failure is not (it is retried, and counted).
    fn observe(&self, item: &Item, verdict: &Verdict) {
        let Some(telemetry) = self.client.telemetry() else {
            return;
        };
        let object = &*item.payload.sobject;
        let result = match verdict {
            Verdict::Linked { .. } | Verdict::FoundEarlier { .. } => "ok",
            Verdict::Retry { .. } => "retry",
            Verdict::Dead { .. } => "dead",
            Verdict::Repoint { .. } => "repointed",
            Verdict::Adopt { .. } => "matched",
            Verdict::Ambiguous { .. } => "held",
            Verdict::Paused { .. } => "paused",
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

    /// The pause of every item of `sobject` when the latest setup check lists problems for it.
    fn setup_pause(&mut self, sobject: &str) -> Option<Verdict> {
        let report = self.setup.as_ref()?.report(&self.org)?;
        let problems = report.problems_of(sobject);
        if problems.is_empty() {
            return None;
        }
        self.setup_paused.insert(sobject.to_string());
        Some(Verdict::Paused {
            object: sobject.to_string(),
            reason: format!(
                "paused: the org's setup of {sobject} is incomplete: {}",
                problems.join("; ")
            ),
        })
    }

    /// Makes the entries paused on an object due again once the latest setup check finds
    /// nothing missing for it.
    fn resume_fixed(&mut self, now: DateTime<Utc>) -> Result<(), OutboxError> {
        let Some(setup) = self.setup.clone() else {
            return Ok(());
        };
        let report = setup.report(&self.org);
        let fixed: Vec<String> = self
            .setup_paused
            .iter()
            .filter(|o| report.as_ref().is_none_or(|r| r.problems_of(o).is_empty()))
            .cloned()
            .collect();
        for object in fixed {
            let n = self.store.resume_paused(&self.org, &object, now)?;
            tracing::info!(org = %self.org, object = %object, entries = n, "setup fixed: pushes resume");
            self.setup_paused.remove(&object);
        }
        Ok(())
    }

    /// The field that carries the exactly-once marker on `sobject`: the custom activity
    /// object's own, else `[outbox] marker_field`.
    pub(super) fn marker_field(&self, sobject: &str) -> &str {
        match self.activities.as_ref() {
            ActivityTarget::Custom(c) if c.object == sobject => c.marker.as_str(),
            _ => self.config.marker_field.as_str(),
        }
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

/// What every outbox worker of the service is built with.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Delivery: retries, API budget, the marker field.
    pub outbox: OutboxConfig,
    /// What a new contact becomes by default.
    pub push_as: PushAs,
    /// The `[sync]` rules: the stage table, and the conflict policy for records found in the org.
    pub rules: Arc<Rules>,
    /// The setup check whose latest report pauses pushes of a broken object.
    pub setup: Arc<Setup>,
    /// Where activities go.
    pub activities: Arc<ActivityTarget>,
}

/// Starts one [`OutboxWorker`] per connected org on `tracker`, now and for every org that
/// connects later, until `token` is cancelled.
pub fn spawn_workers(
    tracker: &TaskTracker,
    store: Store,
    orgs: Arc<SalesforceOrgs>,
    settings: WorkerSettings,
    token: CancellationToken,
) {
    let inner = tracker.clone();
    tracker.spawn(async move {
        let mut started: HashSet<OrgId> = HashSet::new();
        loop {
            for client in orgs.all() {
                if started.insert(client.org_id().clone()) {
                    tracing::info!(org = %client.org_id(), "outbox worker started");
                    let s = settings.clone();
                    let worker = OutboxWorker::new(store.clone(), client, s.outbox, s.push_as)
                        .with_rules(s.rules)
                        .with_activities(s.activities)
                        .with_setup(s.setup)
                        .with_user_connections(orgs.clone());
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
