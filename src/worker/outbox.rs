//! The outbox worker: local changes to Salesforce, one org per worker.
//!
//! [`OutboxWorker::step`] takes the due entries of its org, reads each record's current state,
//! builds its write ([`crate::sync::push`]), groups the writes by object and operation and sends
//! them through sObject Collections (up to 200 a call, `allOrNone=false`). Each record's result is
//! written back in one store transaction: the Salesforce id on the local record, the entry
//! removed (or kept when the record changed while in flight), the written `SystemModstamp` under
//! `stamp:<id>` in meta so the inbox can skip the echo of sfsync's own write.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use rand::Rng as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::OutboxConfig;
use crate::domain::{OrgId, PushAs, SalesforceId, SalesforceKind, normalize};
use crate::salesforce::{
    Client, Condition, ConnectionState, ErrorClass, MAX_COLLECTION, Record, RecordExt as _,
    RecordResult, SalesforceError, Soql,
};
use crate::store::{
    LocalRef, OutboxEntry, OutboxState, Provenance, RecordKind, Store, StoreError, Tx, TxAbort,
    TxError,
};
use crate::sync::orgs::SalesforceOrgs;
use crate::sync::push::{self, Links, Payload, Plan};

/// Entries one step considers at most.
const STEP_ENTRIES: usize = 2_000;

/// How long `run` waits between steps that found nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Objects whose changes come back as notifications (their stamps are recorded).
const PULLED: &[&str] = &["Account", "Contact", "Lead", "Opportunity"];

/// The order object groups go out in: parents before children.
const ORDER: &[&str] = &["Account", "Contact", "Lead", "Opportunity", "Task", "Event"];

/// What went wrong in a step; Salesforce failures are not errors (they are recorded on entries).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E> From<TxError<E>> for OutboxError {
    fn from(e: TxError<E>) -> Self {
        match e {
            TxError::Store(s) => Self::Store(s),
            TxError::Abort(_) => Self::Store(StoreError::Flush("transaction aborted".into())),
        }
    }
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
    /// The org is paused (API budget, or the connection needs re-authorization).
    pub paused: bool,
}

impl StepReport {
    /// Whether the step changed anything: `false` means the outbox has nothing to do now.
    pub fn progressed(&self) -> bool {
        self.delivered + self.skipped + self.retrying + self.dead + self.repointed > 0
    }
}

/// What happened to one entry.
#[derive(Debug, Clone)]
enum Outcome {
    /// The record exists in Salesforce under `id` (created, found, or updated).
    Linked {
        id: SalesforceId,
        rule: &'static str,
        stamp_ms: Option<i64>,
    },
    /// Try again later; `count` says whether it counts as an attempt.
    Retry { message: String, count: bool },
    /// Refused for good.
    Dead { message: String },
    /// The Salesforce record merged or converted into `id` (an object of `sobject`).
    Repoint { id: SalesforceId, sobject: String },
    /// Nothing to send.
    Skip,
}

/// One entry ready to go out.
#[derive(Debug, Clone)]
struct Item {
    entry_id: u64,
    version: u64,
    maybe_sent: bool,
    target: LocalRef,
    payload: Payload,
}

/// The read of an entry: what to do with it.
#[derive(Debug)]
enum Prep {
    Send(Item),
    Skip(u64, u64),
    Wait,
}

/// Drains one org's outbox to Salesforce.
pub struct OutboxWorker {
    store: Store,
    client: Client,
    org: OrgId,
    config: OutboxConfig,
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

fn marker_kind(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Company => "company",
        RecordKind::Contact => "contact",
        RecordKind::CompanyProduct => "product",
        RecordKind::Activity => "activity",
    }
}

fn first_message(errors: &[crate::salesforce::ApiErrorItem]) -> String {
    errors.first().map_or_else(
        || "salesforce refused the record without a message".to_string(),
        |e| format!("{}: {}", e.error_code, e.message),
    )
}

/// The outcome every entry of a failed call gets, by the call's error class.
fn call_failure(err: &SalesforceError) -> Outcome {
    match err.class() {
        ErrorClass::Retryable
        | ErrorClass::Auth {
            needs_reauth: false,
        } => Outcome::Retry {
            message: err.to_string(),
            count: true,
        },
        // Waiting for the budget or for a person to authorize again is not the entry's failure.
        ErrorClass::Limit | ErrorClass::Auth { needs_reauth: true } => Outcome::Retry {
            message: err.to_string(),
            count: false,
        },
        ErrorClass::Permanent | ErrorClass::Gone => Outcome::Dead {
            message: err.to_string(),
        },
    }
}

fn stamp_ms(record: &Record) -> Option<i64> {
    let s = record.str_field("SystemModstamp")?;
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.timestamp_millis())
}

impl OutboxWorker {
    /// A worker for `client`'s org. `push_as` is the configured default for new contacts.
    pub fn new(store: Store, client: Client, config: OutboxConfig, push_as: PushAs) -> Self {
        let org = client.org_id().clone();
        Self {
            store,
            client,
            org,
            config,
            push_as,
            paused_until_ms: None,
        }
    }

    /// The org this worker drains.
    pub fn org_id(&self) -> &OrgId {
        &self.org
    }

    /// Runs steps until `token` is cancelled, waiting a little whenever there is nothing to do.
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            let idle = match self.step().await {
                Ok(report) => !report.progressed(),
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
    pub async fn step(&mut self) -> Result<StepReport, OutboxError> {
        self.step_at(Utc::now()).await
    }

    /// One step as if the time were `now` (tests move past back-off and pauses with it).
    pub async fn step_at(&mut self, now: DateTime<Utc>) -> Result<StepReport, OutboxError> {
        let span = tracing::info_span!("outbox.step", org = %self.org);
        self.step_inner(now).instrument(span).await
    }

    async fn step_inner(&mut self, now: DateTime<Utc>) -> Result<StepReport, OutboxError> {
        let mut report = StepReport::default();
        let now_ms = now.timestamp_millis();
        if !self.budget_allows(now_ms).await {
            report.paused = true;
            return Ok(report);
        }
        let due = self.store.due_outbox(&self.org, now_ms, STEP_ENTRIES)?;
        if due.is_empty() {
            return Ok(report);
        }
        let preps = self.prepare(&due, now)?;
        let mut skips = Vec::new();
        let mut groups: BTreeMap<(usize, bool), Vec<Item>> = BTreeMap::new();
        for prep in preps {
            match prep {
                Prep::Wait => report.waiting += 1,
                Prep::Skip(id, version) => skips.push((id, version)),
                Prep::Send(item) => {
                    let rank = ORDER
                        .iter()
                        .position(|o| *o == item.payload.sobject)
                        .unwrap_or(ORDER.len());
                    groups
                        .entry((rank, item.payload.existing.is_none()))
                        .or_default()
                        .push(item);
                }
            }
        }
        if !skips.is_empty() {
            let outcomes: Vec<_> = skips
                .iter()
                .map(|(id, version)| (*id, *version, None, Outcome::Skip))
                .collect();
            self.write_back(&outcomes, now, &mut report)?;
        }
        for ((_, create), items) in groups {
            for chunk in items.chunks(MAX_COLLECTION) {
                let outcomes = if create {
                    self.create_chunk(chunk, now).await?
                } else {
                    self.update_chunk(chunk).await
                };
                let limited = outcomes
                    .iter()
                    .any(|(_, o)| matches!(o, Outcome::Retry { count: false, .. }));
                let rows: Vec<_> = outcomes
                    .into_iter()
                    .map(|(item, o)| (item.entry_id, item.version, Some(item), o))
                    .collect();
                self.write_back(&rows, now, &mut report)?;
                self.store.make_durable().await?;
                if limited || self.client.state() == ConnectionState::NeedsReauth {
                    self.pause(now_ms);
                    report.paused = true;
                    return Ok(report);
                }
            }
        }
        self.store.make_durable().await?;
        Ok(report)
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

    /// Reads each due entry's record and its links, in one read transaction.
    fn prepare(&self, due: &[OutboxEntry], now: DateTime<Utc>) -> Result<Vec<Prep>, OutboxError> {
        let org = &self.org;
        let push_as = self.push_as;
        let today = now.date_naive();
        let preps = self
            .store
            .transact(|tx| -> Result<Vec<Prep>, TxAbort<Infallible>> {
                let mut out = Vec::with_capacity(due.len());
                for e in due {
                    out.push(prepare_one(tx, org, e, push_as, today)?);
                }
                Ok(out)
            })?;
        Ok(preps)
    }

    /// Creates one chunk of records of one object: look-up first where a record may already
    /// exist, then the rest marked `maybe_sent` (durably) and sent.
    async fn create_chunk(
        &self,
        chunk: &[Item],
        now: DateTime<Utc>,
    ) -> Result<Vec<(Item, Outcome)>, OutboxError> {
        let sobject = chunk[0].payload.sobject;
        let marker_field = self.config.marker_field.as_str();
        let people = matches!(sobject, "Contact" | "Lead");
        let mut outcomes: Vec<(Item, Option<Outcome>)> =
            chunk.iter().map(|i| (i.clone(), None)).collect();
        let check: Vec<usize> = (0..chunk.len())
            .filter(|&i| people || (chunk[i].maybe_sent && !self.config.upsert_on_marker))
            .collect();
        if !check.is_empty() {
            match self.find_existing(sobject, chunk, &check).await {
                Ok(found) => {
                    for (i, outcome) in found {
                        outcomes[i].1 = Some(outcome);
                    }
                }
                Err(e) => {
                    let o = call_failure(&e);
                    return Ok(chunk.iter().map(|i| (i.clone(), o.clone())).collect());
                }
            }
        }
        let send: Vec<usize> = (0..chunk.len())
            .filter(|&i| outcomes[i].1.is_none())
            .collect();
        if !send.is_empty() {
            self.mark_maybe_sent(send.iter().map(|&i| &chunk[i]), now)?;
            self.store.make_durable().await?;
            let records: Vec<Record> = send
                .iter()
                .map(|&i| {
                    let item = &chunk[i];
                    let mut r = item.payload.fields.clone();
                    r.insert(
                        marker_field.to_string(),
                        json!(push::marker(marker_kind(item.target.kind), item.target.id)),
                    );
                    r
                })
                .collect();
            let result = if self.config.upsert_on_marker {
                self.client
                    .upsert_collection(sobject, marker_field, &records, false)
                    .await
            } else {
                self.client
                    .create_collection(sobject, &records, false)
                    .await
            };
            match result {
                Ok(results) => {
                    let stamps = self.stamps(sobject, &results).await;
                    for (&i, r) in send.iter().zip(&results) {
                        outcomes[i].1 = Some(record_outcome(r, "push:create", &stamps, true));
                    }
                }
                Err(e) => {
                    let o = call_failure(&e);
                    for &i in &send {
                        outcomes[i].1 = Some(o.clone());
                    }
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|(item, o)| {
                let o = o.unwrap_or(Outcome::Retry {
                    message: "no result".into(),
                    count: true,
                });
                (item, o)
            })
            .collect())
    }

    /// Looks for records an earlier attempt created (by marker) and, for people, records both
    /// sides already have (same email, and for Contacts the same Account).
    async fn find_existing(
        &self,
        sobject: &str,
        chunk: &[Item],
        check: &[usize],
    ) -> Result<Vec<(usize, Outcome)>, SalesforceError> {
        let marker_field = self.config.marker_field.as_str();
        let markers: Vec<String> = check
            .iter()
            .map(|&i| push::marker(marker_kind(chunk[i].target.kind), chunk[i].target.id))
            .collect();
        let emails: Vec<String> = check
            .iter()
            .filter_map(|&i| chunk[i].payload.match_email.clone())
            .collect();
        let mut alternatives = vec![Condition::is_in(marker_field, &markers)];
        if !emails.is_empty() {
            alternatives.push(Condition::is_in("Email", &emails));
        }
        let mut fields = vec!["Id", "SystemModstamp", marker_field];
        match sobject {
            "Contact" => fields.extend(["Email", "AccountId"]),
            "Lead" => fields.push("Email"),
            _ => {}
        }
        let mut query = Soql::select(&fields, sobject).filter(Condition::any(alternatives));
        if sobject == "Lead" {
            query = query.filter(Condition::is("IsConverted", false));
        }
        let soql = query.order_by(&["Id"]).to_string();
        let rows: Vec<Record> = self.client.query(&soql).try_collect().await?;
        let mut by_marker: HashMap<&str, &Record> = HashMap::new();
        let mut by_email: HashMap<String, Vec<&Record>> = HashMap::new();
        for r in &rows {
            if let Some(m) = r.str_field(marker_field) {
                by_marker.entry(m).or_insert(r);
            }
            if let Some(e) = r.str_field("Email").and_then(normalize::email) {
                by_email.entry(e).or_default().push(r);
            }
        }
        let mut out = Vec::new();
        for (n, &i) in check.iter().enumerate() {
            let item = &chunk[i];
            let hit = by_marker
                .get(markers[n].as_str())
                .map(|r| (*r, "push:found-earlier-create"))
                .or_else(|| {
                    let email = item.payload.match_email.as_ref()?;
                    by_email.get(email)?.iter().find_map(|r| {
                        let same_account = sobject == "Lead"
                            || r.str_field("AccountId")
                                .and_then(|a| SalesforceId::parse(a).ok())
                                == item.payload.match_account;
                        same_account.then_some((*r, "push:link-existing"))
                    })
                });
            if let Some((r, rule)) = hit {
                if let Some(id) = r.sf_id() {
                    // Only sfsync's own write may be skipped by the inbox: a record found by
                    // email carries someone else's change, which must still be pulled.
                    let ours = rule == "push:found-earlier-create";
                    out.push((
                        i,
                        Outcome::Linked {
                            id,
                            rule,
                            stamp_ms: stamp_ms(r).filter(|_| ours),
                        },
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Marks entries as possibly sent before their create goes out.
    fn mark_maybe_sent<'a>(
        &self,
        items: impl Iterator<Item = &'a Item>,
        now: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        let ids: Vec<u64> = items.map(|i| i.entry_id).collect();
        let org = &self.org;
        self.store
            .transact(|tx| -> Result<(), TxAbort<Infallible>> {
                for id in &ids {
                    if let Some(mut e) = tx.outbox_entry(org, *id)? {
                        if !e.maybe_sent {
                            e.maybe_sent = true;
                            e.updated_at = now;
                            tx.put_outbox_entry(&e)?;
                        }
                    }
                }
                Ok(())
            })?;
        Ok(())
    }

    /// The `SystemModstamp` of written records of a pulled object, by id (one retrieve call).
    /// A failed read only costs the echo's pull later, so it is logged, not raised.
    async fn stamps(&self, sobject: &str, results: &[RecordResult]) -> HashMap<SalesforceId, i64> {
        if !PULLED.contains(&sobject) {
            return HashMap::new();
        }
        let ids: Vec<SalesforceId> = results
            .iter()
            .filter(|r| r.success)
            .filter_map(RecordResult::sf_id)
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match self
            .client
            .retrieve_collection(sobject, &ids, &["Id", "SystemModstamp"])
            .await
        {
            Ok(records) => ids
                .into_iter()
                .zip(records)
                .filter_map(|(id, r)| Some((id, stamp_ms(r.as_ref()?)?)))
                .collect(),
            Err(e) => {
                tracing::warn!(org = %self.org, sobject, error = %e, "reading written stamps failed");
                HashMap::new()
            }
        }
    }

    /// Updates one chunk of linked records of one object; records that merged or converted are
    /// re-pointed at their survivor.
    async fn update_chunk(&self, chunk: &[Item]) -> Vec<(Item, Outcome)> {
        let sobject = chunk[0].payload.sobject;
        let records: Vec<Record> = chunk
            .iter()
            .map(|item| {
                let mut r = item.payload.fields.clone();
                if let Some(id) = &item.payload.existing {
                    r.insert("Id".into(), json!(id));
                }
                r
            })
            .collect();
        let results = match self
            .client
            .update_collection(sobject, &records, false)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let o = call_failure(&e);
                return chunk.iter().map(|i| (i.clone(), o.clone())).collect();
            }
        };
        let stamps = self.stamps(sobject, &results).await;
        let mut out: Vec<(Item, Outcome)> = Vec::with_capacity(chunk.len());
        let mut gone = Vec::new();
        for (n, (item, r)) in chunk.iter().zip(&results).enumerate() {
            let moved = !r.success
                && (r.class() == Some(ErrorClass::Gone)
                    || r.errors
                        .first()
                        .is_some_and(|e| e.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"));
            if moved {
                gone.push(n);
            }
            let outcome = match &item.payload.existing {
                Some(id) if r.success => Outcome::Linked {
                    id: id.clone(),
                    rule: "push:update",
                    stamp_ms: stamps.get(id).copied(),
                },
                _ => record_outcome(r, "push:update", &stamps, false),
            };
            out.push((item.clone(), outcome));
        }
        if !gone.is_empty() {
            let ids: Vec<SalesforceId> = gone
                .iter()
                .filter_map(|&n| chunk[n].payload.existing.clone())
                .collect();
            match self.survivors(sobject, &ids).await {
                Ok(survivors) => {
                    for &n in &gone {
                        let Some(old) = &chunk[n].payload.existing else {
                            continue;
                        };
                        out[n].1 = match survivors.get(old) {
                            Some((id, obj)) => Outcome::Repoint {
                                id: id.clone(),
                                sobject: obj.clone(),
                            },
                            None => Outcome::Dead {
                                message: format!(
                                    "the {sobject} {old} was deleted in Salesforce and merged into no other record"
                                ),
                            },
                        };
                    }
                }
                Err(e) => {
                    let o = call_failure(&e);
                    for &n in &gone {
                        out[n].1 = o.clone();
                    }
                }
            }
        }
        out
    }

    /// Where merged records (`MasterRecordId`) and converted Leads (`ConvertedContactId`) went.
    async fn survivors(
        &self,
        sobject: &str,
        ids: &[SalesforceId],
    ) -> Result<HashMap<SalesforceId, (SalesforceId, String)>, SalesforceError> {
        let fields: &[&str] = match sobject {
            "Account" | "Contact" => &["Id", "MasterRecordId"],
            "Lead" => &["Id", "MasterRecordId", "IsConverted", "ConvertedContactId"],
            _ => return Ok(HashMap::new()),
        };
        let soql = Soql::select(fields, sobject)
            .where_in("Id", ids.iter().map(SalesforceId::as_str))
            .to_string();
        let rows: Vec<Record> = self.client.query_all(&soql).try_collect().await?;
        let mut out = HashMap::new();
        for r in rows {
            let Some(id) = r.sf_id() else { continue };
            let parse = |f: &str| r.str_field(f).and_then(|s| SalesforceId::parse(s).ok());
            if let Some(contact) =
                parse("ConvertedContactId").filter(|_| r.bool_field("IsConverted") == Some(true))
            {
                out.insert(id, (contact, "Contact".to_string()));
            } else if let Some(master) = parse("MasterRecordId") {
                out.insert(id, (master, sobject.to_string()));
            }
        }
        Ok(out)
    }

    /// Writes every outcome back in one transaction.
    fn write_back(
        &self,
        rows: &[(u64, u64, Option<Item>, Outcome)],
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), OutboxError> {
        let org = &self.org;
        let config = &self.config;
        let seed: u64 = rand::rng().random();
        let gave_up = self
            .store
            .transact(|tx| -> Result<usize, TxAbort<Infallible>> {
                let mut gave_up = 0;
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
                for (entry_id, version, item, outcome) in rows {
                    let Some(mut entry) = tx.outbox_entry(org, *entry_id)? else {
                        continue;
                    };
                    let finished = |tx: &Tx<'_>, mut entry: OutboxEntry| {
                        if entry.version == *version {
                            tx.remove_outbox_entry(&entry)
                        } else {
                            entry.maybe_sent = false;
                            entry.attempts = 0;
                            entry.last_error = None;
                            entry.next_attempt_ms = now.timestamp_millis();
                            entry.updated_at = now;
                            tx.put_outbox_entry(&entry)
                        }
                    };
                    match outcome {
                        Outcome::Linked { id, rule, stamp_ms } => {
                            if let Some(item) = item {
                                link(tx, org, item.target, id, item.payload.sobject)?;
                                tx.add_provenance(
                                    org,
                                    item.target,
                                    &Provenance {
                                        side: "local".into(),
                                        event: format!("outbox:{entry_id}"),
                                        rule: (*rule).into(),
                                        at: now.to_rfc3339(),
                                    },
                                )?;
                            }
                            if let Some(ms) = stamp_ms {
                                tx.set_written_stamp(org, id, *ms)?;
                                // What was written, so the intake can recognise the Outbound
                                // Message that reports this write (see `sync::push::is_echo`).
                                if let Some(item) = item {
                                    tx.set_written_fields(org, id, &item.payload.fields)?;
                                }
                            }
                            finished(tx, entry)?;
                        }
                        Outcome::Skip => finished(tx, entry)?,
                        Outcome::Retry { message, count } => {
                            if *count {
                                entry.attempts = entry.attempts.saturating_add(1);
                            }
                            if entry.attempts >= config.max_attempts {
                                entry.state = OutboxState::Dead;
                                entry.last_error = Some(format!(
                                    "gave up after {} attempts: {message}",
                                    entry.attempts
                                ));
                                entry.updated_at = now;
                                tx.put_outbox_entry(&entry)?;
                                gave_up += 1;
                                continue;
                            }
                            let delay = if *count {
                                backoff_ms(config, entry.attempts, &mut rng)
                            } else {
                                config.limit_pause_ms
                            };
                            entry.next_attempt_ms = now
                                .timestamp_millis()
                                .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
                            entry.last_error = Some(message.clone());
                            entry.updated_at = now;
                            tx.put_outbox_entry(&entry)?;
                        }
                        Outcome::Dead { message } => {
                            entry.state = OutboxState::Dead;
                            entry.last_error = Some(message.clone());
                            entry.updated_at = now;
                            tx.put_outbox_entry(&entry)?;
                        }
                        Outcome::Repoint { id, sobject } => {
                            if let Some(item) = item {
                                link(tx, org, item.target, id, sobject)?;
                                tx.add_provenance(
                                    org,
                                    item.target,
                                    &Provenance {
                                        side: "salesforce".into(),
                                        event: format!("outbox:{entry_id}"),
                                        rule: "push:repoint-survivor".into(),
                                        at: now.to_rfc3339(),
                                    },
                                )?;
                            }
                            entry.next_attempt_ms = now.timestamp_millis();
                            entry.updated_at = now;
                            tx.put_outbox_entry(&entry)?;
                        }
                    }
                }
                Ok(gave_up)
            })?;
        for (_, _, _, outcome) in rows {
            match outcome {
                Outcome::Linked { .. } => report.delivered += 1,
                Outcome::Skip => report.skipped += 1,
                Outcome::Retry { .. } => report.retrying += 1,
                Outcome::Dead { .. } => report.dead += 1,
                Outcome::Repoint { .. } => report.repointed += 1,
            }
        }
        report.dead += gave_up;
        report.retrying -= gave_up.min(report.retrying);
        Ok(())
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

/// Full jitter: a random delay up to `min(cap, base * 2^(attempt-1))` milliseconds.
fn backoff_ms(config: &OutboxConfig, attempt: u32, rng: &mut impl rand::Rng) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let ceiling = config
        .retry_base_ms
        .saturating_mul(1u64 << exp)
        .min(config.retry_cap_ms);
    rng.random_range(0..=ceiling)
}

/// The outcome of one record of a collections write.
fn record_outcome(
    r: &RecordResult,
    rule: &'static str,
    stamps: &HashMap<SalesforceId, i64>,
    creating: bool,
) -> Outcome {
    if r.success {
        return match r.sf_id() {
            Some(id) => Outcome::Linked {
                stamp_ms: stamps.get(&id).copied(),
                id,
                rule,
            },
            None => Outcome::Retry {
                message: "salesforce answered success without an id".into(),
                count: true,
            },
        };
    }
    // A create refused by a duplicate rule that names the record both sides have: link to it.
    if let Some(id) = r
        .errors
        .iter()
        .filter(|e| e.error_code == "DUPLICATES_DETECTED")
        .filter_map(|e| e.duplicate_result.as_ref())
        .flat_map(|d| d.matched_ids())
        .find_map(|s| SalesforceId::parse(&s).ok())
        .filter(|_| creating)
    {
        return Outcome::Linked {
            id,
            rule: "push:link-duplicate-rule",
            stamp_ms: None,
        };
    }
    let message = first_message(&r.errors);
    match r.class() {
        Some(ErrorClass::Retryable | ErrorClass::Auth { .. }) | None => Outcome::Retry {
            message,
            count: true,
        },
        Some(ErrorClass::Limit) => Outcome::Retry {
            message,
            count: false,
        },
        Some(ErrorClass::Permanent | ErrorClass::Gone) => Outcome::Dead { message },
    }
}

/// Sets the Salesforce id of a local record (and, for contacts, whether it is a Contact or Lead).
fn link(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    id: &SalesforceId,
    sobject: &str,
) -> crate::store::TxResult<()> {
    match target.kind {
        RecordKind::Company => {
            if let Some(mut c) = tx.company(org, target.id)? {
                c.salesforce_id = Some(id.clone());
                tx.put_company(&c)?;
            }
        }
        RecordKind::Contact => {
            if let Some(mut c) = tx.contact(org, target.id)? {
                c.salesforce_id = Some(id.clone());
                c.salesforce_kind = Some(if sobject == "Lead" {
                    SalesforceKind::Lead
                } else {
                    SalesforceKind::Contact
                });
                tx.put_contact(&c)?;
            }
        }
        RecordKind::CompanyProduct => {
            if let Some(mut p) = tx.company_product(org, target.id)? {
                p.salesforce_opportunity_id = Some(id.clone());
                tx.put_company_product(&p)?;
            }
        }
        RecordKind::Activity => {
            if let Some(mut a) = tx.activity(org, target.id)? {
                a.salesforce_id = Some(id.clone());
                tx.put_activity(&a)?;
            }
        }
    }
    Ok(())
}

/// Whether a record this one links to is about to be created (its create must go first).
fn creating(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    linked: bool,
) -> crate::store::TxResult<bool> {
    if linked {
        return Ok(false);
    }
    Ok(tx
        .outbox_entry_for(org, target)?
        .is_some_and(|e| e.state == OutboxState::Pending))
}

fn prepare_one(
    tx: &Tx<'_>,
    org: &OrgId,
    e: &OutboxEntry,
    push_as: PushAs,
    today: chrono::NaiveDate,
) -> crate::store::TxResult<Prep> {
    let company_ref = |id: u64| LocalRef {
        kind: RecordKind::Company,
        id,
    };
    let skip = Prep::Skip(e.id, e.version);
    let plan = match e.target.kind {
        RecordKind::Company => match tx.company(org, e.target.id)? {
            Some(c) => push::company(&c),
            None => return Ok(skip),
        },
        RecordKind::Contact => {
            let Some(c) = tx.contact(org, e.target.id)? else {
                return Ok(skip);
            };
            let company = match c.company_id {
                Some(id) => tx.company(org, id)?,
                None => None,
            };
            if let Some(co) = &company {
                if creating(tx, org, company_ref(co.id), co.salesforce_id.is_some())? {
                    return Ok(Prep::Wait);
                }
            }
            let links = Links {
                company: company.as_ref(),
                contact: None,
            };
            push::contact(&c, links, e.push_as.unwrap_or(push_as))
        }
        RecordKind::CompanyProduct => {
            let Some(p) = tx.company_product(org, e.target.id)? else {
                return Ok(skip);
            };
            let company = tx.company(org, p.company_id)?;
            if let Some(co) = &company {
                if creating(tx, org, company_ref(co.id), co.salesforce_id.is_some())? {
                    return Ok(Prep::Wait);
                }
            }
            let links = Links {
                company: company.as_ref(),
                contact: None,
            };
            push::company_product(&p, links, today)
        }
        RecordKind::Activity => {
            let Some(a) = tx.activity(org, e.target.id)? else {
                return Ok(skip);
            };
            let company = match a.company_id {
                Some(id) => tx.company(org, id)?,
                None => None,
            };
            let contact = match a.contact_id {
                Some(id) => tx.contact(org, id)?,
                None => None,
            };
            if let Some(co) = &company {
                if creating(tx, org, company_ref(co.id), co.salesforce_id.is_some())? {
                    return Ok(Prep::Wait);
                }
            }
            if let Some(c) = &contact {
                let r = LocalRef {
                    kind: RecordKind::Contact,
                    id: c.id,
                };
                if creating(tx, org, r, c.salesforce_id.is_some())? {
                    return Ok(Prep::Wait);
                }
            }
            let links = Links {
                company: company.as_ref(),
                contact: contact.as_ref(),
            };
            push::activity(&a, links)
        }
    };
    Ok(match plan {
        Plan::Send(payload) => Prep::Send(Item {
            entry_id: e.id,
            version: e.version,
            maybe_sent: e.maybe_sent,
            target: e.target,
            payload,
        }),
        Plan::Nothing(_) => skip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_stays_under_the_doubling_ceiling_and_the_cap() {
        let config = OutboxConfig {
            retry_base_ms: 100,
            retry_cap_ms: 1_000,
            ..OutboxConfig::default()
        };
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for attempt in 1..40 {
            let ceiling = (100u64 << (attempt - 1).min(32)).min(1_000);
            for _ in 0..50 {
                assert!(backoff_ms(&config, attempt, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn a_create_refused_by_a_duplicate_rule_links_to_the_match_and_an_update_does_not() {
        let body = r#"{"success":false,"errors":[{"statusCode":"DUPLICATES_DETECTED","message":"Use one of these records?","duplicateResut":{"allowSave":false,"duplicateRule":"Contact_Rule","matchResults":[{"matchRecords":[{"record":{"Id":"0031I0000081tbPQAQ"}}]}]}}]}"#;
        let r: RecordResult = serde_json::from_str(body).expect("result");
        let stamps = HashMap::new();
        match record_outcome(&r, "push:create", &stamps, true) {
            Outcome::Linked { id, .. } => assert_eq!(id.as_str(), "0031I0000081tbPQAQ"),
            other => panic!("not linked: {other:?}"),
        }
        match record_outcome(&r, "push:update", &stamps, false) {
            Outcome::Dead { message } => assert!(message.starts_with("DUPLICATES_DETECTED")),
            other => panic!("not dead: {other:?}"),
        }
    }
}
