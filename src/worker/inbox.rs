//! The inbox worker: pending notifications in, batched pulls out, records applied.
//!
//! One [`InboxWorker::step`] takes the due pending records of every connected org, drops the
//! ones whose stored `SystemModstamp` already covers the notification (no call), groups the rest
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt as _;
use futures::TryStreamExt as _;
use rand::Rng as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
use crate::salesforce::{
    Client, ConnectionState, ErrorClass, MAX_COLLECTION, Record, RecordExt, Soql,
};
use crate::store::{PendingRecord, Store, StoreError};
use crate::sync::orgs::PullContext;
use crate::sync::pull::{self, Applied, Origin, Target};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// Most records taken per org in one step.
    pub max_per_step: usize,
    /// Retrieve calls in flight at once per org.
    pub concurrency: usize,
    /// First retry delay of a failed pull (full jitter up to it, doubling per attempt).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
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
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
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
    /// Records quarantined as conflicts.
    pub quarantined: u64,
    /// Records gone from Salesforce (deleted or merged).
    pub gone: u64,
    /// Records left pending after a failed call (backing off).
    pub failed: u64,
    /// Salesforce API calls made.
    pub api_calls: u64,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// Some work was done.
    Worked(StepReport),
    /// Work is waiting but every org that has some is paused.
    Paused,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    attempts: u32,
    until: Instant,
}

type Key = (OrgId, ObjectType, SalesforceId);

/// The inbox worker. Drive it with [`InboxWorker::step`] (tests) or [`InboxWorker::run`].
pub struct InboxWorker {
    store: Store,
    ctx: PullContext,
    settings: InboxSettings,
    backoff: HashMap<Key, Backoff>,
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

struct Fetched {
    object: ObjectType,
    entries: Vec<PendingRecord>,
    started: chrono::DateTime<chrono::Utc>,
    result: Result<Vec<Option<Record>>, crate::salesforce::SalesforceError>,
}

impl InboxWorker {
    /// A worker over `store` for the orgs of `ctx`.
    pub fn new(store: Store, ctx: PullContext, settings: InboxSettings) -> Self {
        Self {
            store,
            ctx,
            settings,
            backoff: HashMap::new(),
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
                Ok(Outcome::Worked(_)) => Duration::ZERO,
                Ok(Outcome::Idle | Outcome::Paused) => self.settings.idle_wait,
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
            let org = client.org_id().clone();
            if self.is_paused(&org) {
                paused = true;
                continue;
            }
            if client.state() == ConnectionState::NeedsReauth {
                paused = true;
                continue;
            }
            if let Some(usage) = client.api_usage() {
                if usage.limit > 0
                    && usage.used as f64 >= usage.limit as f64 * self.settings.limit_share
                {
                    tracing::warn!(org = %org, used = usage.used, limit = usage.limit, "api budget share reached; pulls pause");
                    self.pause(&org);
                    paused = true;
                    continue;
                }
            }
            let span = tracing::info_span!("inbox.step", org = %org);
            if let Some(report) = self.step_org(&client).instrument(span).await? {
                worked = true;
                add(&mut total, &report);
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

    fn pause(&mut self, org: &OrgId) {
        self.paused
            .insert(org.clone(), Instant::now() + self.settings.limit_pause);
    }

    fn back_off(&mut self, entries: &[PendingRecord]) {
        let now = Instant::now();
        for e in entries {
            let key = (e.org.clone(), e.object, e.id.clone());
            let attempts = self.backoff.get(&key).map_or(0, |b| b.attempts) + 1;
            let ceiling = self
                .settings
                .retry_base
                .saturating_mul(1u32 << attempts.min(20))
                .min(self.settings.retry_cap);
            let jitter = rand::rng().random_range(0..=ceiling.as_millis().max(1) as u64);
            self.backoff.insert(
                key,
                Backoff {
                    attempts,
                    until: now + Duration::from_millis(jitter),
                },
            );
        }
    }

    async fn step_org(&mut self, client: &Client) -> Result<Option<StepReport>, StoreError> {
        let org = client.org_id().clone();
        let now = Instant::now();
        let calls_before = client.api_calls();
        let mut report = StepReport::default();
        let mut due = Vec::new();
        for rec in self.store.pending_records(&org)? {
            let key = (org.clone(), rec.object, rec.id.clone());
            if self.backoff.get(&key).is_some_and(|b| b.until > now) {
                continue;
            }
            due.push(rec);
            if due.len() >= self.settings.max_per_step {
                break;
            }
        }
        if due.is_empty() {
            return Ok(None);
        }
        // Entries whose change is already applied need no call.
        let mut to_pull: BTreeMap<ObjectType, Vec<PendingRecord>> = BTreeMap::new();
        let mut gone: BTreeMap<ObjectType, Vec<PendingRecord>> = BTreeMap::new();
        for rec in due {
            if rec.entry.change == ChangeType::Delete {
                gone.entry(rec.object).or_default().push(rec);
                continue;
            }
            if let (Some(stamp), Some(seen)) = (
                rec.entry.system_modstamp_ms,
                pull::seen(&self.store, &org, &rec.id)?,
            ) {
                if seen.covers(stamp) {
                    if pull::skip_covered(&self.store, &org, rec.object, &rec.id, &rec.entry, seen)?
                    {
                        report.skipped += 1;
                    }
                    continue;
                }
            }
            to_pull.entry(rec.object).or_default().push(rec);
        }
        // Wait for company unless a batch is full or someone has waited long enough.
        let waiting: usize = to_pull.values().map(Vec::len).sum();
        let oldest = to_pull
            .values()
            .flatten()
            .map(|r| r.entry.first_seen_ms)
            .min();
        let gather_ms = i64::try_from(self.settings.gather.as_millis()).unwrap_or(i64::MAX);
        let now_ms = chrono::Utc::now().timestamp_millis();
        if gone.is_empty()
            && waiting < MAX_COLLECTION
            && oldest.is_some_and(|o| now_ms - o < gather_ms)
        {
            return Ok((report.skipped > 0).then_some(report));
        }
        // Retrieve, 200 ids a call, a few calls at a time.
        let mut jobs = Vec::new();
        for (object, entries) in to_pull {
            for chunk in entries.chunks(MAX_COLLECTION) {
                jobs.push((object, chunk.to_vec()));
            }
        }
        let fetched: Vec<Fetched> = futures::stream::iter(jobs)
            .map(|(object, entries)| {
                let client = client.clone();
                async move {
                    let ids: Vec<SalesforceId> = entries.iter().map(|e| e.id.clone()).collect();
                    let started = chrono::Utc::now();
                    let result = client
                        .retrieve_collection(object.api_name(), &ids, pull::fields_for(object))
                        .await;
                    Fetched {
                        object,
                        entries,
                        started,
                        result,
                    }
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut pulled: BTreeMap<
            ObjectType,
            Vec<(PendingRecord, Record, chrono::DateTime<chrono::Utc>)>,
        > = BTreeMap::new();
        for f in fetched {
            match f.result {
                Ok(records) => {
                    for (entry, record) in f.entries.into_iter().zip(records) {
                        match record {
                            Some(r) => {
                                report.pulled += 1;
                                pulled
                                    .entry(f.object)
                                    .or_default()
                                    .push((entry, r, f.started));
                            }
                            None => gone.entry(f.object).or_default().push(entry),
                        }
                    }
                }
                Err(e) => {
                    report.failed += f.entries.len() as u64;
                    self.failed(&org, &e, &f.entries);
                }
            }
        }
        // Accounts the pulled records point at but that are not local yet.
        let mut wanted = BTreeSet::new();
        let have: BTreeSet<SalesforceId> = pulled
            .get(&ObjectType::Account)
            .map(|v| v.iter().map(|(e, _, _)| e.id.clone()).collect())
            .unwrap_or_default();
        for (object, items) in &pulled {
            let fields: &[&str] = match object {
                ObjectType::Contact | ObjectType::Opportunity => &["AccountId"],
                ObjectType::Lead => &["ConvertedAccountId"],
                ObjectType::Account => &[],
            };
            for (_, r, _) in items {
                for f in fields {
                    if let Some(a) = r.str_field(f).and_then(|s| SalesforceId::parse(s).ok()) {
                        if !have.contains(&a)
                            && self.store.local_by_salesforce_id(&org, &a)?.is_none()
                        {
                            wanted.insert(a);
                        }
                    }
                }
            }
        }
        let rules = self.ctx.rules.clone();
        if !wanted.is_empty() {
            let wanted: Vec<SalesforceId> = wanted.into_iter().collect();
            for chunk in wanted.chunks(MAX_COLLECTION) {
                let started = chrono::Utc::now();
                match client
                    .retrieve_collection("Account", chunk, pull::fields_for(ObjectType::Account))
                    .await
                {
                    Ok(records) => {
                        for r in records.into_iter().flatten() {
                            report.pulled += 1;
                            let origin = Origin {
                                event: "dependency".into(),
                                now: started,
                            };
                            let applied = pull::commit_record(
                                &self.store,
                                &org,
                                &rules,
                                ObjectType::Account,
                                &r,
                                &origin,
                                Target::Ladder,
                                None,
                            )?;
                            count(&mut report, &applied);
                        }
                    }
                    Err(e) => {
                        // Links resolve later; the records themselves still apply.
                        tracing::warn!(org = %org, error = %e, "dependency accounts not pulled");
                        if e.class() == ErrorClass::Limit {
                            self.pause(&org);
                        }
                    }
                }
            }
        }
        // Apply, accounts first.
        for object in ORDER {
            for (entry, record, started) in pulled.remove(&object).unwrap_or_default() {
                let origin = Origin {
                    event: "notification".into(),
                    now: started,
                };
                let applied = pull::commit_record(
                    &self.store,
                    &org,
                    &rules,
                    object,
                    &record,
                    &origin,
                    Target::Ladder,
                    Some(&entry.entry),
                )?;
                self.backoff
                    .remove(&(org.clone(), object, entry.id.clone()));
                count(&mut report, &applied);
            }
        }
        // Gone: merged (MasterRecordId) or deleted.
        for (object, entries) in gone {
            for chunk in entries.chunks(MAX_COLLECTION) {
                match masters(client, object, chunk).await {
                    Ok(masters) => {
                        for e in chunk {
                            let origin = Origin::new("notification");
                            let master = masters.get(&e.id).cloned().flatten();
                            let applied = pull::commit_gone(
                                &self.store,
                                &org,
                                object,
                                &e.id,
                                master.as_ref(),
                                &origin,
                                Some(&e.entry),
                            )?;
                            report.gone += 1;
                            self.backoff.remove(&(org.clone(), object, e.id.clone()));
                            count(&mut report, &applied);
                        }
                    }
                    Err(err) => {
                        report.failed += chunk.len() as u64;
                        self.failed(&org, &err, chunk);
                    }
                }
            }
        }
        report.api_calls = client.api_calls().saturating_sub(calls_before);
        tracing::debug!(org = %org, ?report, "inbox step");
        Ok(Some(report))
    }

    fn failed(
        &mut self,
        org: &OrgId,
        e: &crate::salesforce::SalesforceError,
        entries: &[PendingRecord],
    ) {
        let class = e.class();
        tracing::warn!(org = %org, error = %e, ?class, records = entries.len(), "pull failed; entries stay pending");
        match class {
            ErrorClass::Limit | ErrorClass::Auth { needs_reauth: true } => self.pause(org),
            _ => {}
        }
        self.back_off(entries);
    }
}

fn count(report: &mut StepReport, applied: &Applied) {
    match applied {
        Applied::Created { .. }
        | Applied::Updated { .. }
        | Applied::Relinked { .. }
        | Applied::Unlinked { .. } => report.applied += 1,
        Applied::Unchanged { .. } | Applied::Ignored { .. } => report.unchanged += 1,
        Applied::Quarantined { .. } => report.quarantined += 1,
    }
}

fn add(total: &mut StepReport, r: &StepReport) {
    total.pulled += r.pulled;
    total.applied += r.applied;
    total.unchanged += r.unchanged;
    total.skipped += r.skipped;
    total.quarantined += r.quarantined;
    total.gone += r.gone;
    total.failed += r.failed;
    total.api_calls += r.api_calls;
}

/// `MasterRecordId` of records gone from Salesforce, by one `queryAll`: `Some(master)` for a
/// merge loser, `None` for a plain delete (or a record the recycle bin no longer holds).
async fn masters(
    client: &Client,
    object: ObjectType,
    entries: &[PendingRecord],
) -> Result<HashMap<SalesforceId, Option<SalesforceId>>, crate::salesforce::SalesforceError> {
    let mut out: HashMap<SalesforceId, Option<SalesforceId>> =
        entries.iter().map(|e| (e.id.clone(), None)).collect();
    if !pull::can_merge(object) {
        return Ok(out);
    }
    let soql = Soql::select(&["Id", "IsDeleted", "MasterRecordId"], object.api_name())
        .where_in("Id", entries.iter().map(|e| e.id.as_str()))
        .to_string();
    let rows: Vec<Record> = client.query_all(&soql).try_collect().await?;
    for row in rows {
        if let Some(id) = row.sf_id() {
            let master = row
                .str_field("MasterRecordId")
                .and_then(|s| SalesforceId::parse(s).ok());
            out.insert(id, master);
        }
    }
    Ok(out)
}
