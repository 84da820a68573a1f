//! The inbox worker's Salesforce calls: retrieving due records (batched, a few calls at a time),
//! the parent Accounts they need, and telling merges from deletes among records gone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt as _;
use futures::TryStreamExt as _;

use super::{InboxWorker, Pulled, StepReport, key};
use crate::domain::{ObjectType, OrgId, SalesforceId};
use crate::salesforce::{
    Client, ErrorClass, MAX_COLLECTION, Record, RecordExt, SalesforceError, Soql,
};
use crate::store::{PendingRecord, StoreError};
use crate::sync::pull::{self, Origin, Target};

/// One retrieve call's result.
struct Fetched {
    object: ObjectType,
    entries: Vec<PendingRecord>,
    started: chrono::DateTime<chrono::Utc>,
    result: Result<Vec<Option<Record>>, SalesforceError>,
}

impl InboxWorker {
    /// Reads the records, 200 ids a call, a few calls at a time. Records that come back empty
    /// join `gone`; a failed call leaves its records pending, backing off.
    pub(super) async fn retrieve(
        &mut self,
        client: &Client,
        pull: BTreeMap<ObjectType, Vec<PendingRecord>>,
        gone: &mut BTreeMap<ObjectType, Vec<PendingRecord>>,
        report: &mut StepReport,
    ) -> Pulled {
        let jobs: Vec<(ObjectType, Vec<PendingRecord>)> = pull
            .into_iter()
            .flat_map(|(object, entries)| {
                let chunks: Vec<Vec<PendingRecord>> =
                    entries.chunks(MAX_COLLECTION).map(<[_]>::to_vec).collect();
                chunks.into_iter().map(move |c| (object, c))
            })
            .collect();
        let fetched: Vec<Fetched> = futures::stream::iter(jobs)
            .map(|(object, entries)| fetch(client.clone(), object, entries))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut pulled = Pulled::new();
        for f in fetched {
            match f.result {
                Ok(records) => {
                    for (entry, record) in f.entries.into_iter().zip(records) {
                        match record {
                            Some(r) => {
                                report.pulled += 1;
                                let list = pulled.entry(f.object).or_default();
                                list.push((entry, r, f.started));
                            }
                            None => gone.entry(f.object).or_default().push(entry),
                        }
                    }
                }
                Err(e) => {
                    report.failed += f.entries.len() as u64;
                    self.failed(client.org_id(), &e, &f.entries);
                }
            }
        }
        pulled
    }

    /// Pulls and applies the Accounts that pulled records point at but that are not local yet,
    /// so their links resolve. A failure only leaves those links for later.
    pub(super) async fn pull_parents(
        &mut self,
        client: &Client,
        pulled: &Pulled,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let org = client.org_id();
        let wanted = self.missing_parents(org, pulled)?;
        for chunk in wanted.chunks(MAX_COLLECTION) {
            let started = chrono::Utc::now();
            let fields = pull::fields_for(ObjectType::Account);
            match client.retrieve_collection("Account", chunk, fields).await {
                Ok(records) => {
                    let origin = Origin {
                        event: "dependency".into(),
                        now: started,
                    };
                    for r in records.into_iter().flatten() {
                        report.pulled += 1;
                        let applied = pull::commit_record(
                            &self.store,
                            org,
                            &self.ctx.rules,
                            ObjectType::Account,
                            &r,
                            &origin,
                            Target::Ladder,
                            None,
                        )?;
                        report.count(&applied);
                    }
                }
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "dependency accounts not pulled");
                    if e.class() == ErrorClass::Limit {
                        self.pause(org);
                    }
                }
            }
        }
        Ok(())
    }

    /// Accounts named by pulled Contacts and Opportunities (`AccountId`) and converted Leads
    /// (`ConvertedAccountId`) that are neither pulled in this step nor local.
    fn missing_parents(
        &self,
        org: &OrgId,
        pulled: &Pulled,
    ) -> Result<Vec<SalesforceId>, StoreError> {
        let have: BTreeSet<&SalesforceId> = pulled
            .get(&ObjectType::Account)
            .map(|v| v.iter().map(|(e, _, _)| &e.id).collect())
            .unwrap_or_default();
        let mut wanted = BTreeSet::new();
        for (object, items) in pulled {
            let field = match object {
                ObjectType::Contact | ObjectType::Opportunity => "AccountId",
                ObjectType::Lead => "ConvertedAccountId",
                ObjectType::Account => continue,
            };
            for (_, r, _) in items {
                let Some(a) = r.str_field(field).and_then(|s| SalesforceId::parse(s).ok()) else {
                    continue;
                };
                if !have.contains(&a) && self.store.local_by_salesforce_id(org, &a)?.is_none() {
                    wanted.insert(a);
                }
            }
        }
        Ok(wanted.into_iter().collect())
    }

    /// Records gone from Salesforce: one `queryAll` per 200 tells merges (`MasterRecordId`)
    /// from deletes, and each is applied.
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
                for e in chunk {
                    let origin = Origin::new("notification");
                    let master = masters.get(&e.id).cloned().flatten();
                    let applied = pull::commit_gone(
                        &self.store,
                        org,
                        object,
                        &e.id,
                        master.as_ref(),
                        &origin,
                        Some(&e.entry),
                    )?;
                    report.gone += 1;
                    self.waiting.done(&key(e));
                    report.count(&applied);
                    self.observe(object, &applied, None);
                }
            }
        }
        Ok(())
    }
}

/// One retrieve call for up to 200 records of one object.
async fn fetch(client: Client, object: ObjectType, entries: Vec<PendingRecord>) -> Fetched {
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
