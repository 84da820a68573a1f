//! The inbox journal: one record per stored message (its new dedupe keys and the records they
//! name), postcard-encoded in a log frame. Records are written to the inbox log (`wal`) before any
//! acknowledgement and copied into sled's journal tree at checkpoints, several frames per value.
//! When the store opens, the journal is replayed into the inbox's memory, minus what the inbox
//! worker marked applied.

use std::collections::{BTreeMap, HashMap};

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::compact;
use super::dedupe::{Recent, Recovered};
use super::keys;
use super::pending::{InboxMemory, PendingSlot, merge};
use super::runs::Seen;
use super::wal;
use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

pub(super) use super::corrupt;

/// One record a message named: object code, 18-character id, change, `SystemModstamp` (ms),
/// last modifier's id.
pub(super) type Note<S> = (u8, S, ChangeType, Option<i64>, Option<S>);

/// What one message stored, as the journal keeps it: the dedupe keys of its new deliveries and
/// the records they name, in one record, so a message is stored whole or not at all. The journal
/// record (through the inbox log) is the inbox's only durable write on the acknowledgement path.
/// Encoded with postcard.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JournalRecord {
    /// The org (18 characters).
    pub(super) org: String,
    /// When the message arrived, in milliseconds since the epoch.
    pub(super) received_ms: i64,
    /// Dedupe keys of the deliveries stored (see `keys::dedupe`).
    pub(super) dedupe: Vec<Vec<u8>>,
    /// The records named: object code, 18-character id, change, stamp, last modifier.
    pub(super) notes: Vec<Note<String>>,
    /// The body digest of each dedupe key (see [`crate::store::Delivery::digest`]), in their
    /// order, encoded after the record and only when one has a digest (so records written before
    /// digests were kept still decode).
    #[serde(skip)]
    pub(super) digests: Vec<Option<u64>>,
}

impl JournalRecord {
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (mut rec, rest): (Self, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| corrupt("inbox_journal", e))?;
        if !rest.is_empty() {
            rec.digests = postcard::from_bytes(rest).map_err(|e| corrupt("inbox_journal", e))?;
        }
        Ok(rec)
    }
}

/// A [`JournalRecord`] being written, borrowing what it names (the same encoding).
#[derive(Serialize)]
pub(super) struct JournalRecordRef<'a> {
    pub(super) org: &'a str,
    pub(super) received_ms: i64,
    pub(super) dedupe: Vec<&'a [u8]>,
    pub(super) notes: Vec<Note<&'a str>>,
    #[serde(skip)]
    pub(super) digests: Vec<Option<u64>>,
}

impl JournalRecordRef<'_> {
    pub(super) fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        postcard::to_io(self, &mut *buf).map_err(|e| corrupt("inbox_journal", e))?;
        if self.digests.iter().any(Option::is_some) {
            postcard::to_io(&self.digests, buf).map_err(|e| corrupt("inbox_journal", e))?;
        }
        Ok(())
    }
}

pub(super) fn applied_seq(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0)
}

/// Where the inbox's applied marks are kept (see `Tx::clear_pending`): a linked record's in its
/// Salesforce id link in the index tree, any other's under its pending key in the applied tree.
/// A record's mark is the higher of the two (a store written before links held marks has them in
/// the applied tree only).
pub(super) struct Marks<'a> {
    pub(super) applied: &'a sled::Tree,
    pub(super) index: &'a sled::Tree,
    pub(super) org_keys: &'a super::org_keys::OrgKeys,
}

impl Marks<'_> {
    /// The newest journal record applied for a pending key (0: none).
    fn seq(&self, pkey: &[u8]) -> Result<u64, StoreError> {
        let own = applied_seq(self.applied.get(pkey)?);
        let org = keys::parse_pending(pkey).and_then(|(org, _, _)| self.org_keys.get(&org));
        let linked = match org.and_then(|org| keys::link_of_pending(pkey, org)) {
            Some(link) => self
                .index
                .get(link)?
                .and_then(|v| super::records::link_applied(&v)),
            None => None,
        };
        Ok(own.max(linked.unwrap_or(0)))
    }
}

/// Bytes of log frames per journal value: a few big values instead of one per message, because
/// each sled insert costs microseconds whatever its size.
const JOURNAL_VALUE_BYTES: usize = 64 << 10;

/// Journal values for a run of log frames: per org, the frames themselves in sequence order, in
/// values of about [`JOURNAL_VALUE_BYTES`], each keyed by its org and its last frame's sequence
/// number. Also returns the highest sequence number among the frames.
pub(super) fn journal_batch(frames: &[u8]) -> (sled::Batch, u64) {
    // Per org: the value being filled and the key of its last frame.
    let mut by_org: BTreeMap<&[u8], (Vec<u8>, &[u8])> = BTreeMap::new();
    let mut batch = sled::Batch::default();
    let mut newest = 0;
    for (key, payload) in wal::frames(frames) {
        newest = newest.max(keys::journal_seq(key).unwrap_or(0));
        let (value, last) = by_org.entry(&key[..18]).or_default();
        wal::push_frame(value, key, payload);
        *last = key;
        if value.len() >= JOURNAL_VALUE_BYTES {
            batch.insert(key, compress_value(value));
            value.clear();
        }
    }
    for (value, last) in by_org.into_values() {
        if !value.is_empty() {
            batch.insert(last, compress_value(&value));
        }
    }
    (batch, newest)
}

/// How a compressed journal value starts: a frame header saying "length 0", which never starts
/// a value of frames (a frame is never empty), then this tag; an LZ4 block of the frames, its
/// size prepended, follows.
const LZ4_VALUE: [u8; 5] = [0, 0, 0, 0, 1];

/// The most a compressed journal value may say its frames take; a larger claim is a corrupt
/// value, never an allocation that size.
const MAX_VALUE_FRAMES: usize = 64 << 20;

/// A journal value as stored: its frames, LZ4-compressed. The records of one org repeat its id,
/// the ids' prefixes and the received times, and sled copies each value with the leaf it sits
/// in and rewrites that leaf whole, so smaller values are fewer bytes written and copied.
fn compress_value(frames: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LZ4_VALUE.len() + 4 + frames.len() / 2);
    out.extend_from_slice(&LZ4_VALUE);
    out.extend_from_slice(&lz4_flex::block::compress_prepend_size(frames));
    out
}

/// The journal records in one journal value: `(seq, record)` for each of its log frames. The
/// value is compressed (see [`compress_value`]) or, as earlier versions stored it, the frames
/// themselves.
pub(super) fn journal_value(value: &[u8]) -> Result<Vec<(u64, JournalRecord)>, StoreError> {
    let frames;
    let value = match value.strip_prefix(&LZ4_VALUE[..]) {
        Some(body) => {
            frames = super::lz4_decompress("inbox_journal", body, MAX_VALUE_FRAMES)?;
            &frames[..]
        }
        None => value,
    };
    let mut out = Vec::new();
    let mut used = 0;
    for (key, payload) in wal::frames(value) {
        out.push((frame_seq(key)?, JournalRecord::decode(payload)?));
        used += wal::frame_len(payload);
    }
    if used != value.len() {
        return Err(corrupt("inbox_journal", "damaged frame"));
    }
    Ok(out)
}

/// The sequence number in a journal key (`org ‖ seq`).
pub(super) fn frame_seq(key: &[u8]) -> Result<u64, StoreError> {
    keys::journal_seq(key).ok_or_else(|| corrupt("inbox_journal", "bad key"))
}

/// What replaying the journal rebuilds: the pending queue, and the dedupe keys of the records
/// past `covered` (those not yet in a dedupe run).
pub(super) struct Replay {
    pub(super) mem: InboxMemory,
    pub(super) recovered: Recovered,
    pub(super) covered: u64,
    /// Per pending key with a snapshot (see `compact`): the newest journal record it folds in;
    /// the journal records up to it are not folded again.
    floors: HashMap<Vec<u8>, u64>,
}

/// Replays the journal: the pending snapshots the compactor wrote (see `compact`), then every
/// record named after its last applied pull and its snapshot, and the dedupe keys past
/// `covered`. Also returns the highest sequence number in the journal and in use (journal,
/// snapshots, applied marks, or covered by the dedupe runs).
pub(super) fn rebuild(
    journal: &sled::Tree,
    snapshots: &sled::Tree,
    marks: &Marks<'_>,
    covered: u64,
) -> Result<(Replay, u64, u64), StoreError> {
    let mut mem = Replay {
        mem: InboxMemory::default(),
        recovered: Recovered::new(),
        covered,
        floors: HashMap::new(),
    };
    // Every mark in the applied tree, its highest among them, counts as in use; a mark kept in a
    // link is at most that highest one.
    let mut in_use = covered;
    for kv in marks.applied.iter() {
        let (_, v) = kv?;
        in_use = in_use.max(applied_seq(Some(v)));
    }
    for kv in snapshots.iter() {
        let (key, v) = kv?;
        let (entry, last_seq) = compact::decode(&v)?;
        in_use = in_use.max(last_seq);
        // A snapshot its record's pull has since covered is stale.
        if marks.seq(&key)? < last_seq {
            mem.floors.insert(key.to_vec(), last_seq);
            mem.mem
                .pending
                .insert(key.to_vec(), PendingSlot { entry, last_seq });
        }
    }
    let mut journaled = 0;
    for kv in journal.iter() {
        let (_, v) = kv?;
        for (seq, rec) in journal_value(&v)? {
            journaled = journaled.max(seq);
            replay(&mut mem, marks, seq, rec)?;
        }
    }
    Ok((mem, journaled, in_use.max(journaled)))
}

/// Adds one journal record to the memory: its dedupe keys unless a dedupe run covers it, the
/// records it names unless already applied.
pub(super) fn replay(
    replay: &mut Replay,
    marks: &Marks<'_>,
    seq: u64,
    rec: JournalRecord,
) -> Result<(), StoreError> {
    if seq > replay.covered {
        for (i, key) in rec.dedupe.into_iter().enumerate() {
            let seen = Seen {
                received_ms: rec.received_ms,
                digest: rec.digests.get(i).copied().flatten(),
            };
            replay.recovered.push((key, Recent { seen, seq }));
        }
    }
    let mem = &mut replay.mem;
    let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
    for (code, id, change, stamp, modified_by) in rec.notes {
        let object =
            ObjectType::from_code(code).ok_or_else(|| corrupt("inbox_journal", "bad object"))?;
        let id = SalesforceId::parse(&id).map_err(|e| corrupt("inbox_journal", e))?;
        let pkey = keys::pending(&org, object, &id);
        if marks.seq(&pkey)? >= seq || replay.floors.get(&pkey).is_some_and(|&floor| floor >= seq) {
            continue;
        }
        let note = Notification {
            object,
            record_id: id,
            change,
            system_modstamp: stamp.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            modified_by: match modified_by {
                Some(u) => Some(SalesforceId::parse(&u).map_err(|e| corrupt("inbox_journal", e))?),
                None => None,
            },
        };
        let old = mem.pending.remove(&pkey).map(|s| s.entry);
        let entry = merge(old, &note, rec.received_ms);
        mem.pending.insert(
            pkey,
            PendingSlot {
                entry,
                last_seq: seq,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::org_keys::OrgKeys;

    /// The Account the journal record numbered `seq` names.
    fn account(seq: u64) -> SalesforceId {
        SalesforceId::parse(&format!("0017F00000{seq:05}")).expect("id")
    }

    /// Log frames of `n` journal records of one org, as the inbox log holds them.
    fn frames(n: u64) -> Vec<u8> {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let mut buf = Vec::new();
        for seq in 1..=n {
            let dedupe = format!("04l7F000000{seq:07}");
            let id = account(seq).as_str().to_owned();
            let rec = JournalRecordRef {
                org: org.as_str(),
                received_ms: 1_764_000_000_000 + seq as i64,
                dedupe: vec![dedupe.as_bytes()],
                notes: vec![(
                    ObjectType::Account.code(),
                    id.as_str(),
                    ChangeType::Update,
                    Some(1_764_000_000_000),
                    None,
                )],
                digests: vec![],
            };
            wal::push_frame_with(&mut buf, &keys::journal(&org, seq), |b| rec.encode_into(b))
                .expect("encode");
        }
        buf
    }

    fn decoded(value: &[u8]) -> Vec<(u64, String, i64)> {
        journal_value(value)
            .expect("decode")
            .into_iter()
            .map(|(seq, r)| (seq, r.notes[0].1.clone(), r.received_ms))
            .collect()
    }

    #[test]
    fn journal_values_are_stored_compressed_and_plain_ones_still_read() {
        let raw = frames(500);
        let (batch, newest) = journal_batch(&raw);
        assert_eq!(newest, 500);
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .expect("sled")
            .open_tree("j")
            .expect("tree");
        tree.apply_batch(batch).expect("apply");
        let stored: Vec<sled::IVec> = tree.iter().values().map(|v| v.expect("value")).collect();
        let stored_bytes: usize = stored.iter().map(|v| v.len()).sum();
        assert!(stored.iter().all(|v| v.starts_with(&LZ4_VALUE)));
        assert!(
            stored_bytes * 2 < raw.len(),
            "{stored_bytes} bytes stored for {} bytes of frames",
            raw.len()
        );
        let all: Vec<_> = stored.iter().flat_map(|v| decoded(v)).collect();
        assert_eq!(
            all,
            decoded(&raw),
            "the plain frames, as earlier versions stored them"
        );
        assert_eq!(all.len(), 500);
    }

    #[test]
    fn replay_skips_what_a_link_or_the_applied_tree_marks_applied_and_counts_the_highest_mark() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let org_keys = OrgKeys::open(&db, dir.path(), &[]).expect("org keys");
        let tree = |name: &str| db.open_tree(name).expect("tree");
        let (journal, snapshots, applied, index) = (tree("j"), tree("s"), tree("a"), tree("i"));
        journal
            .apply_batch(journal_batch(&frames(3)).0)
            .expect("journal");
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let pkey = |seq: u64| keys::pending(&org, ObjectType::Account, &account(seq));
        // Record 1 marked the way earlier versions did, record 2 in its link, and a highest
        // mark past every journal record.
        applied.insert(pkey(1), &1u64.to_be_bytes()).expect("mark");
        let short = org_keys.get_or_give(&org).expect("org key");
        let link = keys::link_of_pending(&pkey(2), short).expect("link key");
        index
            .insert(link, &br#"{"kind":"company","id":7,"applied":2}"#[..])
            .expect("link");
        applied
            .insert(keys::applied_high(), &9u64.to_be_bytes())
            .expect("high");
        let marks = Marks {
            applied: &applied,
            index: &index,
            org_keys: &org_keys,
        };

        let (replay, journaled, in_use) =
            rebuild(&journal, &snapshots, &marks, 0).expect("rebuild");

        let pending: Vec<&Vec<u8>> = replay.mem.pending.keys().collect();
        assert_eq!(pending, [&pkey(3)]);
        assert_eq!((journaled, in_use), (3, 9));
    }

    #[test]
    fn a_damaged_compressed_journal_value_is_reported_as_corrupt() {
        let good = compress_value(&frames(20));
        let mut huge_claim = LZ4_VALUE.to_vec();
        huge_claim.extend_from_slice(&u32::MAX.to_le_bytes());
        huge_claim.extend_from_slice(&good[LZ4_VALUE.len() + 4..]);
        let mut flipped = good.clone();
        for b in flipped.iter_mut().skip(LZ4_VALUE.len() + 4).step_by(5) {
            *b ^= 0x5a;
        }
        for (what, raw) in [
            ("truncated", &good[..good.len() / 2]),
            ("claims 4 GiB", &huge_claim[..]),
            ("bytes flipped", &flipped[..]),
            ("tag alone", &LZ4_VALUE[..]),
        ] {
            match journal_value(raw) {
                Err(StoreError::Corrupt { tree, .. }) => {
                    assert_eq!(tree, "inbox_journal", "{what}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
