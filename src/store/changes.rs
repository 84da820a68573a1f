//! The change log's write side: every transaction that changes a local record, a conflict or an
//! outbox entry says so with [`Tx::record_change`], and the entries it logged are written at the
//! end of that same transaction, each under the next sequence number, all of them in ONE value
//! (a JSON array, LZ4-compressed, see [`encode_pack`]) under the key of the first. One key per transaction, not per entry: every sled
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

use super::StoreError;
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
        self.book.borrow_mut().logged.push(Logged {
            org: org.clone(),
            what,
            subject,
            snapshot: None,
        });
        Ok(())
    }

    /// Before a record is removed: the changes logged about it keep its view as it is now, for
    /// the record is gone when the transaction ends and their entries are rendered. A record
    /// that stays is rendered once, at the end, never here.
    pub(super) fn keep_view_before_removal(&self, org: &OrgId, r: LocalRef) -> TxResult<()> {
        let about = |l: &Logged| l.org == *org && l.subject == Subject::Record(r);
        if !self.book.borrow().logged.iter().any(about) {
            return Ok(());
        }
        let view = self.record_view(org, r)?;
        for l in self.book.borrow_mut().logged.iter_mut() {
            if about(l) && l.snapshot.is_none() {
                l.snapshot.clone_from(&view);
            }
        }
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
        let bytes = encode_pack(&pack).map_err(|e| corrupt("changes", e))?;
        self.changes.insert(keys::change(last + 1), bytes)?;
        self.changes
            .insert(keys::change_counter(), &seq.to_be_bytes())?;
        Ok(Some(seq))
    }
}

/// First byte of a stored pack that is compressed: what follows is an LZ4 block, its size
/// prepended, of the JSON array. A JSON value never starts with this byte.
const LZ4_PACK: u8 = 0x01;

/// The most a compressed pack may say its JSON takes; a larger claim is a corrupt value, never
/// an allocation that size.
const MAX_PACK_JSON: usize = 256 << 20;

/// A transaction's entries as stored: the JSON array, LZ4-compressed. Entries of one
/// transaction repeat their field names, org id and timestamp, so the value sled keeps (and
/// copies and rewrites with every leaf it sits in) shrinks several times over, for a
/// compression that costs well under a microsecond an entry.
pub(super) fn encode_pack(pack: &[ChangeEntry]) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(pack)?;
    let compressed = lz4_flex::block::compress_prepend_size(&json);
    let mut out = Vec::with_capacity(1 + compressed.len());
    out.push(LZ4_PACK);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// The entries one stored value holds: a compressed pack (see [`encode_pack`]), a
/// transaction's entries as a plain JSON array, or a single entry as an object (the last two
/// as earlier versions stored them).
pub(super) fn decode_pack(raw: &[u8]) -> Result<Vec<ChangeEntry>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: "changes",
        reason,
    };
    let json: std::borrow::Cow<'_, [u8]> = match raw.split_first() {
        Some((&LZ4_PACK, body)) => super::lz4_decompress("changes", body, MAX_PACK_JSON)?.into(),
        _ => raw.into(),
    };
    let json_err = |e: serde_json::Error| corrupt(e.to_string());
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(&json).map_err(json_err),
        _ => serde_json::from_slice::<ChangeEntry>(&json)
            .map(|e| vec![e])
            .map_err(json_err),
    }
}

/// A stored sequence number (8 bytes, big-endian); 0 when there is none.
pub(super) fn last_seq(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u64) -> Vec<ChangeEntry> {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let timestamp = Utc::now();
        (1..=n)
            .map(|seq| ChangeEntry {
                seq,
                org_id: org.clone(),
                kind: "contact.updated".parse().expect("type"),
                timestamp,
                data: serde_json::json!({
                    "id": seq,
                    "salesforce_id": format!("003Dn00000{seq:05}AAA"),
                    "first_name": format!("First{seq}"),
                    "last_name": format!("Last{}", seq * 7919 % 1000),
                    "email": format!("person{seq}@example{}.com", seq % 13),
                    "company_id": seq / 3,
                    "updated_at": timestamp,
                }),
            })
            .collect()
    }

    #[test]
    fn a_pack_is_stored_compressed_and_reads_back_as_it_was() {
        let entries = pack(200);
        let stored = encode_pack(&entries).expect("encode");
        let json = serde_json::to_vec(&entries).expect("json").len();
        assert_eq!(stored[0], LZ4_PACK);
        assert!(
            stored.len() * 3 < json,
            "{} bytes stored for {json} bytes of JSON",
            stored.len()
        );
        assert_eq!(decode_pack(&stored).expect("decode"), entries);
    }

    #[test]
    fn a_damaged_compressed_pack_is_reported_as_corrupt() {
        let stored = encode_pack(&pack(20)).expect("encode");
        let truncated = &stored[..stored.len() / 2];
        let mut huge_claim = vec![LZ4_PACK];
        huge_claim.extend_from_slice(&u32::MAX.to_le_bytes());
        huge_claim.extend_from_slice(&stored[5..]);
        let mut flipped = stored.clone();
        for b in flipped.iter_mut().skip(5).step_by(7) {
            *b ^= 0x5a;
        }
        for (what, raw) in [
            ("truncated", truncated),
            ("claims 4 GiB", &huge_claim[..]),
            ("bytes flipped", &flipped[..]),
            ("tag alone", &[LZ4_PACK][..]),
        ] {
            match decode_pack(raw) {
                Err(StoreError::Corrupt { tree, .. }) => assert_eq!(tree, "changes", "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
