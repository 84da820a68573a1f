//! The change log's write side: every transaction that changes a local record, a conflict or an
//! outbox entry says so with [`Tx::record_change`], and the entries it logged are written at the
//! end of that same transaction, each under the next sequence number, all of them in ONE value
//! (a JSON array) under the key of the first. One key per transaction, not per entry: every sled
//! key costs memory for as long as it lives and a share of a leaf split when it is inserted, and
//! a pull applies hundreds of records in one transaction.
//!
//! Sequence numbers: the tree keeps the last number given (`keys::change_counter`). Every
//! transaction that logs reads and writes that one key, so sled serialises those transactions
//! (sled 0.34 also runs every transaction under one lock), and numbers grow in commit order: a
//! transaction that commits later never holds a smaller number. Readers are never shown a number
//! before it is committed and durable (see `feed`), so a reader that has seen `N` has seen every
//! number below it: no gaps.
//!
//! Data: an entry's `data` is its subject as the local API shows it. For a record it is rendered
//! when the transaction ends, from the record as the transaction leaves it (a record removed in
//! the transaction keeps the view it had when the change was logged). One entry per subject per
//! transaction: the first `what` logged for it wins. A record written in a transaction that
//! logged nothing for it is logged as `updated` (or `removed` when it is gone), so no change to a
//! local record ever escapes the log.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::change_book::{Logged, Subject};
use super::keys;
use super::refs::{LocalRef, RecordKind};
use super::tx::{Tx, TxResult, corrupt};
use crate::domain::view::{ActivityView, CompanyView, ContactView, ProductView};
use crate::domain::{ChangeKind, ChangeWhat, EntryType, OrgId};

/// One entry of the change log, as the feed and the app's webhooks carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeEntry {
    /// Its sequence number: per service, growing in commit order.
    pub seq: u64,
    /// The org the change belongs to.
    #[schema(value_type = String)]
    pub org_id: OrgId,
    /// `<kind>.<what>`, e.g. `contact.updated`, `conflict.opened`, `outbox.dead_letter`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "contact.updated")]
    pub kind: EntryType,
    /// When it was committed (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The subject as `GET /api/v1/{kind}/{id}` shows it.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl ChangeEntry {
    /// The subject's id (`data.id`): a record's, a conflict's or an outbox entry's.
    pub fn subject_id(&self) -> u64 {
        self.data.get("id").and_then(Value::as_u64).unwrap_or(0)
    }
}

/// The change kind of a record kind.
pub fn kind_of(kind: RecordKind) -> ChangeKind {
    match kind {
        RecordKind::Company => ChangeKind::Company,
        RecordKind::Contact => ChangeKind::Contact,
        RecordKind::CompanyProduct => ChangeKind::CompanyProduct,
        RecordKind::Activity => ChangeKind::Activity,
    }
}

/// A record's view as JSON, when there is a record.
fn view<T, V: From<T> + Serialize>(record: Option<T>) -> TxResult<Option<Value>> {
    record
        .map(|r| serde_json::to_value(V::from(r)).map_err(|e| corrupt("changes", e)))
        .transpose()
}

impl Tx<'_> {
    /// Logs a change in this transaction: the entry is written, with the next sequence number,
    /// when the transaction ends, and commits with everything else it wrote.
    pub fn record_change(&self, org: &OrgId, what: ChangeWhat, subject: Subject) -> TxResult<()> {
        let snapshot = match &subject {
            Subject::Record(r) => self.record_view(org, *r)?,
            Subject::Shown { .. } => None,
        };
        self.book.borrow_mut().logged.push(Logged {
            org: org.clone(),
            what,
            subject,
            snapshot,
        });
        Ok(())
    }

    /// Notes that a record was written (or removed) in this transaction.
    pub(super) fn touch(&self, org: &OrgId, target: LocalRef) {
        self.book.borrow_mut().touched.push((org.clone(), target));
    }

    /// A record as its API view shows it, when it exists.
    fn record_view(&self, org: &OrgId, r: LocalRef) -> TxResult<Option<Value>> {
        match r.kind {
            RecordKind::Company => view::<_, CompanyView>(self.company(org, r.id)?),
            RecordKind::Contact => view::<_, ContactView>(self.contact(org, r.id)?),
            RecordKind::CompanyProduct => view::<_, ProductView>(self.company_product(org, r.id)?),
            RecordKind::Activity => view::<_, ActivityView>(self.activity(org, r.id)?),
        }
    }

    /// The entries this transaction logged, one per subject, with their data as it ends.
    fn settle_book(&self) -> TxResult<Vec<(OrgId, EntryType, Value)>> {
        let book = std::mem::take(&mut *self.book.borrow_mut());
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for l in book.logged {
            let (kind, id, data) = match l.subject {
                Subject::Record(r) => (kind_of(r.kind), r.id, self.record_view(&l.org, r)?),
                Subject::Shown { kind, id, data } => (kind, id, Some(data)),
            };
            if !seen.insert((l.org.clone(), kind, id)) {
                continue;
            }
            if let Some(data) = data.or(l.snapshot) {
                out.push((l.org, EntryType::new(kind, l.what), data));
            }
        }
        for (org, r) in book.touched {
            if !seen.insert((org.clone(), kind_of(r.kind), r.id)) {
                continue;
            }
            let (what, data) = match self.record_view(&org, r)? {
                Some(data) => (ChangeWhat::Updated, data),
                None => (
                    ChangeWhat::Removed,
                    serde_json::json!({"id": r.id, "org_id": org}),
                ),
            };
            out.push((org, EntryType::new(kind_of(r.kind), what), data));
        }
        Ok(out)
    }

    /// Writes the entries this transaction logged under the next sequence numbers, in one value
    /// keyed by the first; returns the last number given, when it logged any.
    pub(super) fn write_changes(&self) -> TxResult<Option<u64>> {
        let entries = self.settle_book()?;
        if entries.is_empty() {
            return Ok(None);
        }
        let last = last_seq(self.changes.get(keys::change_counter())?.as_deref());
        let timestamp = Utc::now();
        let pack: Vec<ChangeEntry> = (last + 1..)
            .zip(entries)
            .map(|(seq, (org_id, kind, data))| ChangeEntry {
                seq,
                org_id,
                kind,
                timestamp,
                data,
            })
            .collect();
        let seq = pack.last().map_or(last, |e| e.seq);
        let bytes = serde_json::to_vec(&pack).map_err(|e| corrupt("changes", e))?;
        self.changes.insert(keys::change(last + 1), bytes)?;
        self.changes
            .insert(keys::change_counter(), &seq.to_be_bytes())?;
        Ok(Some(seq))
    }
}

/// A stored sequence number (8 bytes, big-endian); 0 when there is none.
pub(super) fn last_seq(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_be_bytes)
}
