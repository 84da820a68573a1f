//! The inbox worker's Salesforce calls and what it applies from them: retrieving due records in
//! batches of up to 2,000, several calls in flight, each batch applied (with the parent Accounts
//! it needs) while the others are still on their way; and telling merges from deletes among
//! records gone.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use tokio::task::JoinHandle;

use super::{InboxWorker, ORDER, StepReport, key};
use crate::domain::{ObjectType, OrgId, SalesforceId};
use crate::salesforce::{
    Client, ErrorClass, MAX_COLLECTION, MAX_RETRIEVE, Record, RecordExt, SalesforceError, Soql,
};
use crate::store::{PendingRecord, StoreError};
use crate::sync::pull::{self, Applied, GoneRecord, Origin, Target};

/// How many times one step tries to take the org's next due records while its last batches
/// apply. Bounded, so one busy org's step ends and the other orgs get their turn.
const REFILLS: usize = 3;

/// One retrieve call: up to [`MAX_RETRIEVE`] records of one object.
struct Batch {
    object: ObjectType,
    entries: Vec<PendingRecord>,
}

/// One retrieve call's result.
struct Fetched {
    batch: Batch,
    started: DateTime<Utc>,
    result: Result<Vec<Option<Record>>, SalesforceError>,
}

/// Records to apply in one transaction: Accounts they need first, then the batch itself.
struct ToApply {
    org: OrgId,
    object: ObjectType,
    parents: Vec<Record>,
    pulled: Vec<(PendingRecord, Record)>,
    started: DateTime<Utc>,
}

/// The batches of one step, in the order they are applied (Accounts first, see [`ORDER`]).
fn batches(mut pull: BTreeMap<ObjectType, Vec<PendingRecord>>) -> Vec<Batch> {
    let mut out = Vec::new();
    for object in ORDER {
        let entries = pull.remove(&object).unwrap_or_default();
        for chunk in entries.chunks(MAX_RETRIEVE) {
            out.push(Batch {
                object,
                entries: chunk.to_vec(),
            });
        }
    }
    out
}

impl InboxWorker {
    /// Reads the records, up to [`MAX_RETRIEVE`] a call and up to
    /// [`super::InboxSettings::concurrency`] calls in flight (never more calls than the budget
    /// share has left), and applies each batch in order as it arrives while the later calls go
    /// on. Once every batch has its call, the step takes the org's next due records (up to
    /// [`REFILLS`] times), so their calls are on their way while the last batches apply instead
    /// of after them. Records that come back empty join `gone`; a failed call leaves its
    /// records pending, backing off.
    pub(super) async fn pull_and_apply(
        &mut self,
        client: &Client,
        pull: BTreeMap<ObjectType, Vec<PendingRecord>>,
        gone: &mut BTreeMap<ObjectType, Vec<PendingRecord>>,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let width = self.settings.concurrency.max(1);
        let mut queued = self.affordable(client, batches(pull), 0);
        let mut flying: VecDeque<JoinHandle<Fetched>> = VecDeque::new();
        let mut refills = 0;
        loop {
            while flying.len() < width {
                let Some(batch) = queued.pop_front() else {
                    break;
                };
                flying.push_back(tokio::spawn(fetch(client.clone(), batch)));
            }
            if queued.is_empty() && flying.len() < width && refills < REFILLS {
                // Every try counts, found or not: a select reads the whole pending queue.
                refills += 1;
                if let Some(more) = self.select(client, report)? {
                    for (object, entries) in more.gone {
                        gone.entry(object).or_default().extend(entries);
                    }
                    queued = self.affordable(client, batches(more.pull), flying.len());
                    if !queued.is_empty() {
                        continue;
                    }
                }
            }
            let Some(call) = flying.pop_front() else {
                break;
            };
            let Ok(f) = call.await else {
                // The call's task ended without an answer: its records stay pending.
                tracing::error!(org = %client.org_id(), "a retrieve task failed");
                continue;
            };
            let records = match f.result {
                Ok(records) => records,
                Err(e) => {
                    report.failed += f.batch.entries.len() as u64;
                    self.failed(client.org_id(), &e, &f.batch.entries);
                    continue;
                }
            };
            let mut pulled = Vec::with_capacity(records.len());
            for (entry, record) in f.batch.entries.into_iter().zip(records) {
                match record {
                    Some(r) => pulled.push((entry, r)),
                    None => gone.entry(f.batch.object).or_default().push(entry),
                }
            }
            report.pulled += pulled.len() as u64;
            self.apply_batch(client, f.batch.object, pulled, f.started, report)
                .await?;
        }
        Ok(())
    }

    /// The batches the org's budget share still allows, `in_flight` calls being on their way.
    fn affordable(
        &self,
        client: &Client,
        mut batches: Vec<Batch>,
        in_flight: usize,
    ) -> VecDeque<Batch> {
        if let Some(left) = self.budget_left(client) {
            let left = usize::try_from(left).unwrap_or(usize::MAX);
            batches.truncate(left.saturating_sub(in_flight));
        }
        batches.into()
    }

    /// Applies one retrieved batch: first the Accounts its records point at that are not local
    /// yet (pulled now, so links resolve), then the batch, each in one transaction on a blocking
    /// thread, so the calls still in flight and the webhooks go on meanwhile.
    async fn apply_batch(
        &mut self,
        client: &Client,
        object: ObjectType,
        pulled: Vec<(PendingRecord, Record)>,
        started: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let parents = self.pull_parents(client, &pulled, report).await?;
        let keys: Vec<_> = pulled.iter().map(|(e, _)| key(e)).collect();
        // What each applied record is counted as: its object and its SystemModstamp (the
        // parents come first, as the batch applies them).
        let stamp = |r: &Record| r.str_field("SystemModstamp").map(str::to_string);
        let observed: Vec<(ObjectType, Option<String>)> = parents
            .iter()
            .map(|r| (ObjectType::Account, stamp(r)))
            .chain(pulled.iter().map(|(_, r)| (object, stamp(r))))
            .collect();
        let batch = ToApply {
            org: client.org_id().clone(),
            object,
            parents,
            pulled,
            started,
        };
        let (store, rules) = (self.store.clone(), self.ctx.rules.clone());
        let applied = tokio::task::spawn_blocking(move || batch.commit(&store, &rules))
            .await
            .map_err(|e| StoreError::Write(format!("applying a batch: {e}")))??;
        for (a, (object, stamp)) in applied.iter().zip(&observed) {
            report.count(a);
            self.observe(*object, a, stamp.as_deref());
        }
        for k in &keys {
            self.waiting.done(k);
        }
        Ok(())
    }

    /// The Accounts that a batch's records point at but that are neither in it nor local,
    /// retrieved (up to [`MAX_RETRIEVE`] a call) so their links resolve. A failure only leaves
    /// those links for later.
    async fn pull_parents(
        &mut self,
        client: &Client,
        pulled: &[(PendingRecord, Record)],
        report: &mut StepReport,
    ) -> Result<Vec<Record>, StoreError> {
        let org = client.org_id();
        let wanted = self.missing_parents(org, pulled)?;
        let mut parents = Vec::new();
        for chunk in wanted.chunks(MAX_RETRIEVE) {
            let fields = pull::fields_for(ObjectType::Account);
            match client.retrieve_collection("Account", chunk, fields).await {
                Ok(records) => parents.extend(records.into_iter().flatten()),
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "dependency accounts not pulled");
                    if e.class() == ErrorClass::Limit {
                        self.pause(org);
                    }
                }
            }
        }
        report.pulled += parents.len() as u64;
        Ok(parents)
    }

    /// Accounts named by pulled Contacts and Opportunities (`AccountId`) and converted Leads
    /// (`ConvertedAccountId`) that are not local (Accounts pulled in the step are applied
    /// before the batches that point at them).
    fn missing_parents(
        &self,
        org: &OrgId,
        pulled: &[(PendingRecord, Record)],
    ) -> Result<Vec<SalesforceId>, StoreError> {
        let mut wanted = BTreeSet::new();
        for (entry, r) in pulled {
            let field = match entry.object {
                ObjectType::Contact | ObjectType::Opportunity => "AccountId",
                ObjectType::Lead => "ConvertedAccountId",
                ObjectType::Account => continue,
            };
            let Some(a) = r.str_field(field).and_then(|s| SalesforceId::parse(s).ok()) else {
                continue;
            };
            if !wanted.contains(&a) && self.store.local_by_salesforce_id(org, &a)?.is_none() {
                wanted.insert(a);
            }
        }
        Ok(wanted.into_iter().collect())
    }

    /// Records gone from Salesforce: one `queryAll` per 200 tells merges (`MasterRecordId`)
    /// from deletes, and each 200 is applied in one transaction.
    pub(super) async fn handle_gone(
        &mut self,
        client: &Client,
        gone: BTreeMap<ObjectType, Vec<PendingRecord>>,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let org = client.org_id();
        for (object, entries) in gone {
            for chunk in entries.chunks(MAX_COLLECTION) {
                let masters = match masters(client, object, chunk).await {
                    Ok(m) => m,
                    Err(err) => {
                        report.failed += chunk.len() as u64;
                        self.failed(org, &err, chunk);
                        continue;
                    }
                };
                let records = chunk
                    .iter()
                    .map(|e| {
                        let master = masters.get(&e.id).and_then(Option::as_ref);
                        GoneRecord::read(&self.store, org, &e.id, master, Some(&e.entry))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let origin = Origin::new("notification");
                let applied =
                    pull::commit_gone_records(&self.store, org, object, &records, &origin)?;
                for (e, a) in chunk.iter().zip(&applied) {
                    report.gone += 1;
                    self.waiting.done(&key(e));
                    report.count(a);
                    self.observe(object, a, None);
                }
            }
        }
        Ok(())
    }
}

impl ToApply {
    /// The parents in one transaction, then the batch (clearing its pending entries) in
    /// transactions of [`pull::APPLY_CHUNK`].
    fn commit(
        &self,
        store: &crate::store::Store,
        rules: &pull::Rules,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut applied = Vec::new();
        if !self.parents.is_empty() {
            let origin = Origin {
                event: "dependency".into(),
                now: self.started,
            };
            let parents: Vec<pull::PulledRecord<'_>> =
                self.parents.iter().map(|r| (r, None)).collect();
            let (org, account) = (&self.org, ObjectType::Account);
            applied = pull::commit_records(
                store,
                org,
                rules,
                account,
                &parents,
                &origin,
                Target::Ladder,
            )?;
        }
        let origin = Origin {
            event: "notification".into(),
            now: self.started,
        };
        let records: Vec<pull::PulledRecord<'_>> = self
            .pulled
            .iter()
            .map(|(e, r)| (r, Some(&e.entry)))
            .collect();
        let org = &self.org;
        for chunk in records.chunks(pull::APPLY_CHUNK) {
            applied.extend(pull::commit_records(
                store,
                org,
                rules,
                self.object,
                chunk,
                &origin,
                Target::Ladder,
            )?);
        }
        Ok(applied)
    }
}

/// One retrieve call for a batch.
async fn fetch(client: Client, batch: Batch) -> Fetched {
    let ids: Vec<SalesforceId> = batch.entries.iter().map(|e| e.id.clone()).collect();
    let started = Utc::now();
    let object = batch.object;
    let result = client
        .retrieve_collection(object.api_name(), &ids, pull::fields_for(object))
        .await;
    Fetched {
        batch,
        started,
        result,
    }
}

/// `MasterRecordId` of records gone from Salesforce, by one `queryAll`: `Some(master)` for a
/// merge loser, `None` for a plain delete (or a record the recycle bin no longer holds).
async fn masters(
    client: &Client,
    object: ObjectType,
    entries: &[PendingRecord],
) -> Result<HashMap<SalesforceId, Option<SalesforceId>>, SalesforceError> {
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
