//! Calls: a step's collections writes, each of up to 200 records of one object ([`Batch`]),
//! go out several to a Composite call, with the read-back of what they wrote.
//!
//! A batch of a pulled object carries a query of the written records' `SystemModstamp` right
//! after its write in the same call (creates by their markers, updates by id), so the inbox
//! recognises the echo of exactly that write; when the query does not fit a request, or fails,
//! the stamps are read with a separate retrieve. Batches are packed first-fit into calls of at
//! most five collections or query subrequests, all written with one connection. A call may
//! carry a later object's batch before an earlier one's: no entry of a step depends on a record
//! the same step creates (it waits for the next step), so the order of objects within a step is
//! not needed for correctness.

use std::collections::HashMap;

use serde_json::json;

use super::prepare::{Item, marker_kind};
use super::send::PULLED;
use super::verdict::{Verdict, call_failure};
use super::{OutboxError, OutboxWorker};
use crate::domain::{AppUser, SalesforceId};
use crate::salesforce::{
    MAX_COLLECTIONS_OR_QUERIES, Record, RecordExt as _, RecordResult, SalesforceError, Soql,
    SubResult, Subrequest,
};
use crate::sync::pull::stamp_ms;
use crate::sync::push;

/// One collections write of up to 200 items of one object and one operation.
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    pub(super) create: bool,
    write: Subrequest,
    /// The query of the written records' stamps that goes out right after the write.
    stamps: Option<Subrequest>,
}

impl Batch {
    fn subrequests(&self) -> usize {
        1 + usize::from(self.stamps.is_some())
    }

    fn owner(&self) -> Option<&AppUser> {
        self.items.first().and_then(|i| i.owner.as_ref())
    }

    fn sobject(&self) -> &str {
        self.items.first().map_or("", |i| &i.payload.sobject)
    }
}

/// The batches grouped into calls, first fit: a batch joins the first call with the same
/// owner that has room for its subrequests.
pub(super) fn pack(batches: &[Batch]) -> Vec<Vec<&Batch>> {
    let mut calls: Vec<(Vec<&Batch>, usize)> = Vec::new();
    for b in batches {
        let need = b.subrequests();
        let room = calls.iter_mut().find(|(call, used)| {
            call[0].owner() == b.owner() && used + need <= MAX_COLLECTIONS_OR_QUERIES
        });
        match room {
            Some((call, used)) => {
                call.push(b);
                *used += need;
            }
            None => calls.push((vec![b], need)),
        }
    }
    calls.into_iter().map(|(call, _)| call).collect()
}

/// The stamps of the written records, by id, from a read-back query's rows.
fn stamps_of(rows: &[Record]) -> HashMap<SalesforceId, i64> {
    rows.iter()
        .filter_map(|r| Some((r.sf_id()?, stamp_ms(r)?)))
        .collect()
}

impl OutboxWorker {
    /// A batch of `items` (one object, one operation), or the verdict of each when its write
    /// cannot be built.
    pub(super) fn batch(
        &self,
        items: Vec<Item>,
        create: bool,
    ) -> Result<Batch, Vec<(Item, Verdict)>> {
        let built = if create {
            self.create_request(&items)
        } else {
            update_request(&items)
        };
        match built {
            Ok(write) => {
                let stamps = self.stamps_request(&items, create);
                Ok(Batch {
                    items,
                    create,
                    write,
                    stamps,
                })
            }
            Err(e) => {
                let v = call_failure(&e);
                Err(items.into_iter().map(|i| (i, v.clone())).collect())
            }
        }
    }

    /// The write of new records, each carrying its marker (an upsert by the marker when it is
    /// an External ID).
    fn create_request(&self, items: &[Item]) -> Result<Subrequest, SalesforceError> {
        let sobject = items.first().map_or("", |i| &*i.payload.sobject);
        let marker_field = self.marker_field(sobject);
        let records: Vec<Record> = items
            .iter()
            .map(|item| {
                let mut r = item.payload.fields.clone();
                let marker = push::marker(marker_kind(item.target.kind), item.target.id);
                r.insert(marker_field.to_string(), json!(marker));
                r
            })
            .collect();
        if self.config.upsert_on_marker {
            Subrequest::upsert_collection(sobject, marker_field, &records)
        } else {
            Subrequest::create_collection(sobject, &records)
        }
    }

    /// The query of the `SystemModstamp` of what a batch of a pulled object writes: creates by
    /// their markers, updates by id; `None` when the object is not pulled or the query would
    /// not fit a request.
    fn stamps_request(&self, items: &[Item], create: bool) -> Option<Subrequest> {
        let sobject = &*items.first()?.payload.sobject;
        if !PULLED.contains(&sobject) {
            return None;
        }
        let query = Soql::select(&["Id", "SystemModstamp"], sobject);
        let query = if create {
            let markers = items
                .iter()
                .map(|i| push::marker(marker_kind(i.target.kind), i.target.id));
            query.where_in(self.marker_field(sobject), markers)
        } else {
            let ids = items.iter().filter_map(|i| i.payload.existing.as_ref());
            query.where_in("Id", ids.map(SalesforceId::as_str))
        };
        query
            .fits_a_request()
            .then(|| Subrequest::query(&query.to_string()))
    }

    /// Sends the batches of one call, creates marked `maybe_sent` (durably) first, with their
    /// owner's connection; the verdict of every item, and the sending mark of the creates, for
    /// the write-back to end.
    pub(super) async fn send_call(
        &self,
        call: &[&Batch],
    ) -> Result<(Vec<(Item, Verdict)>, Option<u64>), OutboxError> {
        let creating: Vec<u64> = call
            .iter()
            .filter(|b| b.create)
            .flat_map(|b| b.items.iter().map(|i| i.entry_id))
            .collect();
        let mark = if creating.is_empty() {
            None
        } else {
            let mark = self.store.mark_outbox_maybe_sent(&self.org, &creating)?;
            self.store.make_durable().await?;
            Some(mark)
        };
        let subs: Vec<Subrequest> = call
            .iter()
            .flat_map(|b| std::iter::once(b.write.clone()).chain(b.stamps.clone()))
            .collect();
        let subs = &subs;
        let owner = call.first().and_then(|b| b.owner());
        let answered = self
            .write_as(owner, |client| async move { client.composite(subs).await })
            .await;
        let mut results = match answered {
            Ok(results) => results.into_iter(),
            Err(e) => {
                let v = call_failure(&e);
                let items = call.iter().flat_map(|b| b.items.iter().cloned());
                return Ok((items.map(|i| (i, v.clone())).collect(), mark));
            }
        };
        let mut out = Vec::new();
        for b in call {
            let written = results.next();
            let stamps = b.stamps.as_ref().and_then(|_| results.next());
            out.extend(self.batch_outcome(b, written, stamps).await);
        }
        Ok((out, mark))
    }

    /// The verdict of each item of a sent batch, from its write's answer and its stamps'.
    async fn batch_outcome(
        &self,
        b: &Batch,
        written: Option<SubResult>,
        stamps: Option<SubResult>,
    ) -> Vec<(Item, Verdict)> {
        let results = written
            .ok_or(SalesforceError::Unexpected {
                what: "composite result count",
                status: 200,
            })
            .and_then(|w| w.record_results(b.items.len()));
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                let v = call_failure(&e);
                return b.items.iter().map(|i| (i.clone(), v.clone())).collect();
            }
        };
        let stamps = self.written_stamps(b.sobject(), &results, stamps).await;
        if b.create {
            Self::create_outcome(&b.items, &results, &stamps)
        } else {
            self.update_outcome(&b.items, &results, &stamps).await
        }
    }

    /// The written records' stamps: from the query that went out with the write, else (it did
    /// not, or it failed) read with a separate retrieve.
    async fn written_stamps(
        &self,
        sobject: &str,
        results: &[RecordResult],
        folded: Option<SubResult>,
    ) -> HashMap<SalesforceId, i64> {
        match folded.map(SubResult::query_page) {
            Some(Ok(page)) if page.done => return stamps_of(&page.records),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(org = %self.org, sobject, error = %e, "the stamps query sent with a write failed");
            }
            None => {}
        }
        self.stamps(sobject, results).await
    }
}

/// The write of changes to linked records, each carrying its `Id`.
fn update_request(items: &[Item]) -> Result<Subrequest, SalesforceError> {
    let sobject = items.first().map_or("", |i| &*i.payload.sobject);
    let records: Vec<Record> = items
        .iter()
        .map(|item| {
            let mut r = item.payload.fields.clone();
            if let Some(id) = &item.payload.existing {
                r.insert("Id".into(), json!(id));
            }
            r
        })
        .collect();
    Subrequest::update_collection(sobject, &records)
}
