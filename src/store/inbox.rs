//! The inbox: dedupe keys and the coalesced pending queue, kept in memory and made durable as a
//! journal of one record per message: first in the inbox log (`wal`), which the committer
//! `fdatasync`s before any acknowledgement, then in sled's journal tree.
//!
//! Each delivery (one Outbound Message notification, or one signed event) has a dedupe key that
//! lives at least the configured TTL. A new delivery adds or updates one pending entry per record
//! `(org, object, id)`; many deliveries for one record collapse into one entry that keeps the
//! newest `SystemModstamp` seen.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{self, DedupeKind};
use super::wal::{self, Wal};
use super::{Store, StoreError};
use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

/// Which sender's id a delivery is deduplicated by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeSource {
    /// An Outbound Message `Notification/Id` (04l…).
    OutboundNotification,
    /// A Standard Webhooks `webhook-id`.
    WebhookId,
}

/// One deduplicated unit of what a sender delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's id for it.
    pub dedupe_id: String,
    /// Which kind of id that is.
    pub source: DedupeSource,
    /// The records it names.
    pub notifications: Vec<Notification>,
    /// Object types to re-read whole (a wildcard or overflow change event).
    pub resync: Vec<ObjectType>,
}

/// What one ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Deliveries stored for the first time.
    pub accepted: u64,
    /// Deliveries already seen.
    pub duplicates: u64,
    /// Pending entries created (records not already waiting).
    pub new_pending: u64,
}

/// A pending record's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The latest change type seen.
    pub change: ChangeType,
    /// The newest `SystemModstamp` seen, in milliseconds since the epoch.
    pub system_modstamp_ms: Option<i64>,
    /// How many notifications collapsed into this entry.
    pub notifications: u32,
    /// When the first of them arrived, in milliseconds since the epoch.
    pub first_seen_ms: i64,
}

impl PendingEntry {
    /// The newest `SystemModstamp` seen.
    pub fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    }
}

/// A pending record with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The org.
    pub org: OrgId,
    /// The object type.
    pub object: ObjectType,
    /// The record id.
    pub id: SalesforceId,
    /// What is known about it.
    pub entry: PendingEntry,
}

fn kind(source: DedupeSource) -> DedupeKind {
    match source {
        DedupeSource::OutboundNotification => DedupeKind::OutboundNotification,
        DedupeSource::WebhookId => DedupeKind::WebhookId,
    }
}

fn merge(old: Option<PendingEntry>, n: &Notification, now_ms: i64) -> PendingEntry {
    let stamp = n.system_modstamp.map(|t| t.timestamp_millis());
    match old {
        None => PendingEntry {
            change: n.change,
            system_modstamp_ms: stamp,
            notifications: 1,
            first_seen_ms: now_ms,
        },
        Some(mut e) => {
            e.notifications = e.notifications.saturating_add(1);
            // The newest stamp wins; a notification without a stamp keeps the known one.
            if stamp > e.system_modstamp_ms {
                e.system_modstamp_ms = stamp;
                e.change = n.change;
            } else if (stamp.is_none() || stamp == e.system_modstamp_ms)
                && (n.change == ChangeType::Delete || e.change != ChangeType::Delete)
            {
                e.change = n.change;
            }
            e
        }
    }
}

fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    }
}

/// What one message stored, as the journal keeps it: the dedupe keys of its new deliveries and
/// the records they name, in one record, so a message is stored whole or not at all. The journal
/// record (through the inbox log) is the inbox's only durable write on the acknowledgement path.
/// Encoded with postcard.
#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    /// The org (18 characters).
    org: String,
    /// When the message arrived, in milliseconds since the epoch.
    received_ms: i64,
    /// Dedupe keys of the deliveries stored (see `keys::dedupe`).
    dedupe: Vec<Vec<u8>>,
    /// The records named: object code, 18-character id, change, stamp.
    notes: Vec<(u8, String, ChangeType, Option<i64>)>,
}

impl JournalRecord {
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        postcard::from_bytes(bytes).map_err(|e| corrupt("inbox_journal", e))
    }
}

/// A [`JournalRecord`] being written, borrowing what it names (the same encoding).
#[derive(Serialize)]
struct JournalRecordRef<'a> {
    org: &'a str,
    received_ms: i64,
    dedupe: Vec<&'a [u8]>,
    notes: Vec<(u8, &'a str, ChangeType, Option<i64>)>,
}

impl JournalRecordRef<'_> {
    fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        postcard::to_io(self, buf)
            .map(|_| ())
            .map_err(|e| corrupt("inbox_journal", e))
    }
}

/// A pending record in memory, with the newest journal record that names it.
#[derive(Debug, Clone)]
pub(crate) struct PendingSlot {
    pub(crate) entry: PendingEntry,
    pub(crate) last_seq: u64,
}

/// The inbox's working state, rebuilt from the journal when the store opens.
#[derive(Debug, Default)]
pub(crate) struct InboxMemory {
    /// Dedupe key → when it arrived (ms).
    dedupe: HashMap<Vec<u8>, i64, foldhash::fast::RandomState>,
    /// Pending key (`keys::pending`) → entry; ordered, so one org's entries are a range.
    pub(crate) pending: BTreeMap<Vec<u8>, PendingSlot>,
}

fn applied_seq(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0)
}

/// What staging one message did (see [`Inbox::stage`]).
#[derive(Debug)]
pub(super) struct Staged {
    pub(super) outcome: IngestOutcome,
    /// It also wrote to a sled tree (a re-read request), which needs sled's flush as well.
    pub(super) needs_sled_flush: bool,
}

/// The inbox's trees and its working memory, shared by the store handle and the committer
/// thread, which makes staged records durable in the log and copies them into the journal tree
/// (see `durability`).
pub(super) struct Inbox {
    /// The stored messages' records (see [`JournalRecord`]) as log frames, several per value
    /// (see [`journal_batch`]).
    pub(super) journal: sled::Tree,
    /// Per pending key, the newest journal record already applied.
    pub(super) applied: sled::Tree,
    /// Object types waiting for a full re-read.
    pub(super) resync: sled::Tree,
    /// The dedupe set and pending queue, rebuilt from the journal at open.
    pub(super) memory: std::sync::Mutex<InboxMemory>,
    /// Log frames (see `wal`) staged for the committer's next sync, in sequence order.
    staging: std::sync::Mutex<Vec<u8>>,
    /// The next journal sequence number; handed out under the memory lock, so the order of the
    /// records is the order their messages changed the memory in.
    next_seq: AtomicU64,
}

impl Inbox {
    /// Opens the inbox trees, copies into the journal what the log holds from before (a crash
    /// or a kill), and replays the journal. Returns the log, for the committer.
    pub(super) fn open(db: &sled::Db, dir: &Path) -> Result<(Self, Wal), StoreError> {
        let journal = db.open_tree("inbox_journal")?;
        let applied = db.open_tree("inbox_applied")?;
        let (mut memory, journaled, mut last_seq) = rebuild(&journal, &applied)?;
        let (wal, recovered, old_segments) = Wal::open(&dir.join("inbox-log"))?;
        // Log frames past the journal's newest record were synced but not yet checkpointed
        // (checkpoints copy every synced frame, in sequence order, in one batch).
        let mut missing = Vec::new();
        for (key, payload) in &recovered {
            let seq = frame_seq(key)?;
            if seq > journaled {
                replay(&mut memory, &applied, seq, JournalRecord::decode(payload)?)?;
                wal::push_frame(&mut missing, key, payload);
                last_seq = last_seq.max(seq);
            }
        }
        if !missing.is_empty() {
            journal.apply_batch(journal_batch(&missing))?;
            tracing::info!(bytes = missing.len(), "inbox log replayed into the journal");
        }
        if !old_segments.is_empty() {
            db.flush()?;
            super::durability::fsync_data_file(dir)?;
            for path in old_segments {
                std::fs::remove_file(path)?;
            }
        }
        Ok((
            Self {
                resync: db.open_tree("inbox_resync")?,
                journal,
                applied,
                memory: std::sync::Mutex::new(memory),
                staging: std::sync::Mutex::default(),
                next_seq: AtomicU64::new(last_seq + 1),
            },
            wal,
        ))
    }

    pub(super) fn memory(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn staging(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.staging
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the staged frames for the committer's log sync.
    pub(super) fn take_staged(&self) -> Vec<u8> {
        let mut staging = self.staging();
        let capacity = staging.capacity();
        std::mem::replace(&mut *staging, Vec::with_capacity(capacity))
    }

    /// Stores one message on the calling thread: deliveries already seen are counted and
    /// skipped; the new ones become ONE journal record (their dedupe keys and the records they
    /// name) staged for the committer's next log sync, and the in-memory pending queue
    /// coalesces them by record, keeping the newest `SystemModstamp`. Nothing is durable, and
    /// nothing may be acknowledged, until a committer sync asked for after this call returns.
    ///
    /// Why a journal in memory and a log: sled 0.34 costs several microseconds per insert
    /// (each copies its leaf node) and its flush hands off to its own I/O threads, and each
    /// made the durable path cost several times the HTTP path. The dedupe set and the pending
    /// queue live in memory and are rebuilt from the journal when the store opens, minus what
    /// the inbox worker has marked applied (see [`crate::store::Tx::clear_pending`]).
    pub(super) fn stage(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Staged, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut keyed: Vec<Vec<u8>> = deliveries
            .iter()
            .map(|d| keys::dedupe(org, kind(d.source), &d.dedupe_id))
            .collect();
        // Re-read requests go straight to their tree, before the memory lock: a sled call must
        // never run under it, because record transactions hold sled's lock while they read the
        // pending queue. Writing one for a duplicate again changes nothing.
        let received = u64::try_from(now_ms).unwrap_or(0).to_be_bytes();
        let mut needs_sled_flush = false;
        for d in deliveries {
            for object in &d.resync {
                self.resync.insert(keys::resync(org, *object), &received)?;
                needs_sled_flush = true;
            }
        }
        let mut outcome = IngestOutcome::default();
        let mut mem = self.memory();
        let mut fresh: Vec<usize> = Vec::new();
        for (i, key) in keyed.iter().enumerate() {
            if mem.dedupe.contains_key(key) || fresh.iter().any(|&f| keyed[f] == *key) {
                outcome.duplicates += 1;
            } else {
                outcome.accepted += 1;
                fresh.push(i);
            }
        }
        if fresh.is_empty() {
            // Duplicates wait for a sync too: the first copy may still be on its way to disk, and
            // it was staged before its dedupe key became visible here, so that sync covers it.
            return Ok(Staged {
                outcome,
                needs_sled_flush,
            });
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let record = JournalRecordRef {
            org: org.as_str(),
            received_ms: now_ms,
            dedupe: fresh.iter().map(|&f| keyed[f].as_slice()).collect(),
            notes: fresh
                .iter()
                .flat_map(|&f| deliveries[f].notifications.iter())
                .map(|n| {
                    (
                        n.object.code(),
                        n.record_id.as_str(),
                        n.change,
                        n.system_modstamp.map(|t| t.timestamp_millis()),
                    )
                })
                .collect(),
        };
        // Staged under the memory lock, so a duplicate that finds this record's dedupe keys is
        // staged after it, and the sync it waits for covers this record.
        wal::push_frame_with(&mut self.staging(), &keys::journal(org, seq), |buf| {
            record.encode_into(buf)
        })?;
        drop(record);
        for &f in &fresh {
            mem.dedupe.insert(std::mem::take(&mut keyed[f]), now_ms);
            for n in &deliveries[f].notifications {
                match mem
                    .pending
                    .entry(keys::pending(org, n.object, &n.record_id))
                {
                    Entry::Vacant(slot) => {
                        outcome.new_pending += 1;
                        slot.insert(PendingSlot {
                            entry: merge(None, n, now_ms),
                            last_seq: seq,
                        });
                    }
                    Entry::Occupied(mut slot) => {
                        let slot = slot.get_mut();
                        slot.entry = merge(Some(slot.entry.clone()), n, now_ms);
                        slot.last_seq = seq;
                    }
                }
            }
        }
        Ok(Staged {
            outcome,
            needs_sled_flush,
        })
    }

    /// Copies synced log frames into the journal tree, in one batch (not durable there until
    /// sled's flush; the log holds them meanwhile).
    pub(super) fn copy_to_journal(&self, frames: &[u8]) -> Result<(), StoreError> {
        self.journal.apply_batch(journal_batch(frames))?;
        Ok(())
    }
}

/// Bytes of log frames per journal value: a few big values instead of one per message, because
/// each sled insert costs microseconds whatever its size.
const JOURNAL_VALUE_BYTES: usize = 64 << 10;

/// Journal values for a run of log frames: per org, the frames themselves in sequence order, in
/// values of about [`JOURNAL_VALUE_BYTES`], each keyed by its org and its last frame's sequence
/// number.
fn journal_batch(frames: &[u8]) -> sled::Batch {
    // Per org: the value being filled and the key of its last frame.
    let mut by_org: BTreeMap<&[u8], (Vec<u8>, &[u8])> = BTreeMap::new();
    let mut batch = sled::Batch::default();
    for (key, payload) in wal::frames(frames) {
        let (value, last) = by_org.entry(&key[..18]).or_default();
        wal::push_frame(value, key, payload);
        *last = key;
        if value.len() >= JOURNAL_VALUE_BYTES {
            batch.insert(key, std::mem::take(value));
        }
    }
    for (value, last) in by_org.into_values() {
        if !value.is_empty() {
            batch.insert(last, value);
        }
    }
    batch
}

/// The journal records in one journal value: `(seq, record)` for each of its log frames.
fn journal_value(value: &[u8]) -> Result<Vec<(u64, JournalRecord)>, StoreError> {
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
fn frame_seq(key: &[u8]) -> Result<u64, StoreError> {
    key.get(18..26)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt("inbox_journal", "bad key"))
}

/// Replays the journal: every dedupe key, and every record named after its last applied pull.
/// Also returns the highest sequence number in the journal and in use (journal or applied
/// marks).
fn rebuild(
    journal: &sled::Tree,
    applied: &sled::Tree,
) -> Result<(InboxMemory, u64, u64), StoreError> {
    let mut mem = InboxMemory::default();
    let mut in_use = 0;
    for kv in applied.iter() {
        let (_, v) = kv?;
        in_use = in_use.max(applied_seq(Some(v)));
    }
    let mut journaled = 0;
    for kv in journal.iter() {
        let (_, v) = kv?;
        for (seq, rec) in journal_value(&v)? {
            journaled = journaled.max(seq);
            replay(&mut mem, applied, seq, rec)?;
        }
    }
    Ok((mem, journaled, in_use.max(journaled)))
}

/// Adds one journal record to the memory, skipping records already applied.
fn replay(
    mem: &mut InboxMemory,
    applied: &sled::Tree,
    seq: u64,
    rec: JournalRecord,
) -> Result<(), StoreError> {
    for d in rec.dedupe {
        mem.dedupe.insert(d, rec.received_ms);
    }
    let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
    for (code, id, change, stamp) in rec.notes {
        let object =
            ObjectType::from_code(code).ok_or_else(|| corrupt("inbox_journal", "bad object"))?;
        let id = SalesforceId::parse(&id).map_err(|e| corrupt("inbox_journal", e))?;
        let pkey = keys::pending(&org, object, &id);
        if applied_seq(applied.get(&pkey)?) >= seq {
            continue;
        }
        let note = Notification {
            object,
            record_id: id,
            change,
            system_modstamp: stamp.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
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

impl Store {
    pub(super) fn inbox(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.inner.inbox.memory()
    }

    /// Stores one message's deliveries and returns once they are durable and checkpointed into
    /// the journal tree (see [`Inbox::stage`]), blocking the calling thread on the committer:
    /// for tests and tools. The webhooks use [`Store::ingest_durably`].
    pub fn ingest(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let staged = self.inner.inbox.stage(org, deliveries, now)?;
        self.inner.commit.sync_blocking(true)?;
        Ok(staged.outcome)
    }

    /// Stores one message's deliveries and waits until they are durable: the acknowledgement
    /// path of both webhooks. The message is staged on the calling thread; the committer's next
    /// log sync, shared with every message staged meanwhile, makes it durable.
    pub async fn ingest_durably(
        &self,
        org: &OrgId,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let staged = self.inner.inbox.stage(org, &deliveries, now)?;
        drop(deliveries);
        self.inner.commit.sync(staged.needs_sled_flush).await?;
        Ok(staged.outcome)
    }

    /// Every pending record of an org, in key order.
    pub fn pending_records(&self, org: &OrgId) -> Result<Vec<PendingRecord>, StoreError> {
        let prefix = org.as_str().as_bytes().to_vec();
        let mem = self.inbox();
        let mut out = Vec::new();
        for (k, slot) in mem.pending.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            let (org, object, id) =
                keys::parse_pending(k).ok_or_else(|| corrupt("inbox_pending", "bad key"))?;
            out.push(PendingRecord {
                org,
                object,
                id,
                entry: slot.entry.clone(),
            });
        }
        Ok(out)
    }

    /// One pending record, if it is waiting.
    pub fn pending_record(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> Result<Option<PendingEntry>, StoreError> {
        Ok(self
            .inbox()
            .pending
            .get(&keys::pending(org, object, id))
            .map(|s| s.entry.clone()))
    }

    /// Records pending in the inbox.
    pub fn pending_count(&self) -> u64 {
        self.inbox().pending.len() as u64
    }

    /// Whether a delivery id has been seen (and not yet expired).
    pub fn has_seen(
        &self,
        org: &OrgId,
        source: DedupeSource,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .inbox()
            .dedupe
            .contains_key(&keys::dedupe(org, kind(source), id)))
    }

    /// Object types of an org waiting for a full re-read.
    pub fn resync_requests(&self, org: &OrgId) -> Result<Vec<ObjectType>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.inbox.resync.scan_prefix(org.as_str().as_bytes()) {
            let (k, _) = kv?;
            if let Some(t) = k.get(18).copied().and_then(ObjectType::from_code) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Forgets dedupe keys older than `ttl` and removes the journal values they came in, once
    /// every record in a value is older than `ttl` and none of the records they name is still
    /// pending; returns how many dedupe keys were forgotten. Run hourly.
    pub fn expire_dedupe(&self, now: DateTime<Utc>, ttl: Duration) -> Result<u64, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.timestamp_millis().saturating_sub(ttl_ms);
        let mut removed = 0;
        for kv in self.inner.inbox.journal.iter() {
            let (k, v) = kv?;
            let records = journal_value(&v)?;
            if records.iter().any(|(_, rec)| rec.received_ms >= cutoff) {
                continue;
            }
            let mut mem = self.inbox();
            let mut still_pending = false;
            for (_, rec) in &records {
                let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
                still_pending |= rec.notes.iter().any(|(code, id, _, _)| {
                    match (ObjectType::from_code(*code), SalesforceId::parse(id)) {
                        (Some(object), Ok(id)) => {
                            mem.pending.contains_key(&keys::pending(&org, object, &id))
                        }
                        _ => false,
                    }
                });
            }
            if still_pending {
                continue;
            }
            for d in records.iter().flat_map(|(_, rec)| &rec.dedupe) {
                if mem.dedupe.get(d).is_some_and(|at| *at < cutoff) {
                    mem.dedupe.remove(d);
                    removed += 1;
                }
            }
            drop(mem);
            self.inner.inbox.journal.remove(&k)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    fn note(id: &str, stamp_s: Option<i64>) -> Notification {
        Notification {
            object: ObjectType::Contact,
            record_id: SalesforceId::parse(id).expect("id"),
            change: ChangeType::Update,
            system_modstamp: stamp_s.and_then(|s| Utc.timestamp_opt(s, 0).single()),
        }
    }

    fn delivery(dedupe: &str, notes: Vec<Notification>) -> Delivery {
        Delivery {
            dedupe_id: dedupe.into(),
            source: DedupeSource::OutboundNotification,
            notifications: notes,
            resync: vec![],
        }
    }

    #[test]
    fn many_notifications_for_one_record_collapse_keeping_the_newest_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let now = Utc::now();
        let a = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(200))],
        );
        let b = delivery(
            "04l1I000000fzt9QAA",
            vec![note("0031I0000081tbPQAQ", Some(100))],
        );
        let out = store.ingest(&org(), &[a.clone(), b], now).expect("ingest");
        assert_eq!(
            out,
            IngestOutcome {
                accepted: 2,
                duplicates: 0,
                new_pending: 1
            }
        );
        let again = store.ingest(&org(), &[a], now).expect("ingest");
        assert_eq!(
            again,
            IngestOutcome {
                accepted: 0,
                duplicates: 1,
                new_pending: 0
            }
        );
        let pending = store.pending_records(&org()).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].entry.system_modstamp_ms, Some(200_000));
        assert_eq!(pending[0].entry.notifications, 2);
        assert_eq!(store.pending_count(), 1);
    }

    #[test]
    fn records_synced_to_the_log_but_not_yet_in_the_journal_come_back_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = OrgId::parse("00D1I000003qqqE").expect("org");
        let a = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        let b = delivery(
            "04l1I000000fzt9QAA",
            vec![note("0031I0000081tb0", Some(100))],
        );
        let outcome = |accepted, duplicates, new_pending| IngestOutcome {
            accepted,
            duplicates,
            new_pending,
        };
        {
            // The store's parts by hand, stopped where a kill would stop them: after the log
            // sync, before any checkpoint.
            let db = sled::Config::new().path(dir.path()).open().expect("db");
            let (inbox, mut wal) = Inbox::open(&db, dir.path()).expect("inbox");
            let now = Utc::now();
            let staged = |o: &OrgId, d: Vec<Delivery>| inbox.stage(o, &d, now).expect("stage");
            assert_eq!(staged(&org(), vec![a.clone(), b]).outcome, outcome(2, 0, 2));
            // The same notification again, in another message.
            assert_eq!(staged(&org(), vec![a.clone()]).outcome, outcome(0, 1, 0));
            // The same id from another org is not a duplicate.
            assert_eq!(staged(&other, vec![a]).outcome, outcome(1, 0, 1));
            wal.append(inbox.take_staged());
            assert!(wal.sync().expect("sync").is_some());
            // Staged after the last sync: never acknowledged, so it may be lost.
            let late = delivery(
                "04l1I000000fzuAQAQ",
                vec![note("0031I0000081tbQ", Some(100))],
            );
            staged(&org(), vec![late]);
            assert_eq!(inbox.journal.len(), 0, "nothing checkpointed");
        }
        let log = dir.path().join("inbox-log");
        let left = wal::segments(&log).expect("segments");
        assert!(!left.is_empty());
        for _ in 0..2 {
            let store = Store::open(dir.path()).expect("reopen");
            let pending = store.pending_records(&org()).expect("pending");
            assert_eq!(pending.len(), 2, "{pending:?}");
            assert!(pending.iter().all(|p| p.entry.notifications == 1));
            assert_eq!(store.pending_records(&other).expect("pending").len(), 1);
            let src = DedupeSource::OutboundNotification;
            for (o, id) in [
                (org(), "04l1I000000fztEQAQ"),
                (org(), "04l1I000000fzt9QAA"),
                (other.clone(), "04l1I000000fztEQAQ"),
            ] {
                assert!(store.has_seen(&o, src, id).expect("seen"), "{o} {id}");
            }
            assert!(
                !store
                    .has_seen(&org(), src, "04l1I000000fzuAQAQ")
                    .expect("seen")
            );
            assert!(
                !store.inner.inbox.journal.is_empty(),
                "copied into the journal"
            );
            // Replayed, so deleted (the running store may have started a new one).
            assert!(left.iter().all(|(_, path)| !path.exists()));
        }
    }

    #[tokio::test]
    async fn a_message_refused_by_a_failed_sync_is_durable_once_its_retry_is_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let msg = || {
            vec![delivery(
                "04l1I000000fztEQAQ",
                vec![note("0031I0000081tbP", Some(100))],
            )]
        };
        {
            let store = Store::open(dir.path()).expect("open");
            store.inject_flush_failure(true);
            assert!(
                store
                    .ingest_durably(&org(), msg(), Utc::now())
                    .await
                    .is_err()
            );
            store.inject_flush_failure(false);
            // The retry is a duplicate in memory; its ack must wait for the first copy's record
            // to reach the disk.
            let retry = store
                .ingest_durably(&org(), msg(), Utc::now())
                .await
                .expect("retry");
            assert_eq!(retry.duplicates, 1);
            let logged: usize = wal::segments(&dir.path().join("inbox-log"))
                .expect("segments")
                .iter()
                .map(|(_, path)| wal::frames(&std::fs::read(path).expect("read")).count())
                .sum();
            assert_eq!(
                logged, 1,
                "the first copy's record is in the log at the ack"
            );
        }
        {
            let store = Store::open(dir.path()).expect("reopen");
            assert_eq!(store.pending_count(), 1, "the record reached the disk");
        }
    }

    #[tokio::test]
    async fn a_checkpoint_puts_the_logged_records_in_the_journal_and_deletes_old_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let big = |n: u64| {
            // Enough notifications that a few messages fill a log segment.
            let notes = (0..100)
                .map(|i| {
                    note(
                        SalesforceId::mint("003", "C", n * 1000 + i).as_str(),
                        Some(1),
                    )
                })
                .collect();
            delivery(SalesforceId::mint("04l", "C", n).as_str(), notes)
        };
        let mut n = 0;
        let log = dir.path().join("inbox-log");
        while wal::segments(&log).expect("segments").len() < 2 {
            n += 1;
            store
                .ingest_durably(&org(), vec![big(n)], Utc::now())
                .await
                .expect("ingest");
            assert!(n < 10_000, "the log never moved to a second segment");
        }
        store.make_durable().await.expect("checkpoint");
        assert!(store.checkpoints_completed() >= 1);
        assert_eq!(
            wal::segments(&log).expect("segments").len(),
            1,
            "older segments deleted"
        );
        let journaled: usize = store
            .inner
            .inbox
            .journal
            .iter()
            .map(|kv| journal_value(&kv.expect("kv").1).expect("value").len())
            .sum();
        assert_eq!(journaled, n as usize, "one journal record per message");
    }

    #[tokio::test]
    async fn concurrent_durable_ingests_are_all_flushed_and_come_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let before = store.flushes_completed();
            let mut tasks = Vec::new();
            for n in 0..64u64 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let d = delivery(
                        SalesforceId::mint("04l", "R", n).as_str(),
                        vec![note(SalesforceId::mint("003", "R", n).as_str(), Some(1))],
                    );
                    store.ingest_durably(&org(), vec![d], Utc::now()).await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.expect("join").expect("ingest").accepted, 1);
            }
            let flushes = store.flushes_completed() - before;
            assert!((1..=64).contains(&flushes), "{flushes} flushes");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.pending_count(), 64);
    }

    #[test]
    fn dedupe_keys_expire_after_the_ttl_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = Utc::now();
        let week = Duration::from_secs(7 * 24 * 3600);
        store
            .ingest(&org(), &[delivery("04l1I000000fztEQAQ", vec![])], t0)
            .expect("ingest");
        let just_before = t0 + chrono::Duration::from_std(week).expect("dur");
        assert_eq!(store.expire_dedupe(just_before, week).expect("expire"), 0);
        let src = DedupeSource::OutboundNotification;
        assert!(
            store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
        let after = just_before + chrono::Duration::milliseconds(1);
        assert_eq!(store.expire_dedupe(after, week).expect("expire"), 1);
        assert!(
            !store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
    }

    #[test]
    fn orgs_do_not_share_dedupe_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let other = OrgId::parse("00D1I000003qqqE").expect("org");
        let d = delivery("04l1I000000fztEQAQ", vec![note("0031I0000081tbP", None)]);
        store
            .ingest(&org(), std::slice::from_ref(&d), Utc::now())
            .expect("ingest");
        let out = store.ingest(&other, &[d], Utc::now()).expect("ingest");
        assert_eq!(out.accepted, 1);
        assert_eq!(store.pending_records(&other).expect("pending").len(), 1);
    }

    fn clear(store: &Store, id: &str) -> bool {
        let id = SalesforceId::parse(id).expect("id");
        store
            .transact::<_, ()>(|tx| Ok(tx.clear_pending(&org(), ObjectType::Contact, &id)?))
            .expect("clear")
    }

    #[test]
    fn the_queue_is_rebuilt_from_the_journal_without_what_was_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        {
            let store = Store::open(dir.path()).expect("open");
            let msg = [
                delivery(
                    "04l1I000000fztEQAQ",
                    vec![note("0031I0000081tbP", Some(100))],
                ),
                delivery(
                    "04l1I000000fzt9QAA",
                    vec![note("0031I0000081tb0", Some(100))],
                ),
            ];
            store.ingest(&org(), &msg, now).expect("ingest");
            assert!(clear(&store, "0031I0000081tbP"));
            assert_eq!(store.pending_count(), 1);
            // A later notification for the cleared record makes it pending again.
            let later = delivery(
                "04l1I000000fzuAQAQ",
                vec![note("0031I0000081tbP", Some(300))],
            );
            store.ingest(&org(), &[later], now).expect("ingest");
            assert_eq!(store.pending_count(), 2);
            assert!(clear(&store, "0031I0000081tbP"));
        }
        let store = Store::open(dir.path()).expect("reopen");
        let pending = store.pending_records(&org()).expect("pending");
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].id.as_str(), "0031I0000081tb0QAA");
        let src = DedupeSource::OutboundNotification;
        for id in [
            "04l1I000000fztEQAQ",
            "04l1I000000fzt9QAA",
            "04l1I000000fzuAQAQ",
        ] {
            assert!(store.has_seen(&org(), src, id).expect("seen"), "{id}");
        }
        let again = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        assert_eq!(
            store
                .ingest(&org(), &[again], now)
                .expect("ingest")
                .duplicates,
            1
        );
        assert_eq!(store.pending_count(), 1);
    }

    #[test]
    fn an_expired_journal_record_stays_while_its_record_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = Utc::now();
        let week = Duration::from_secs(7 * 24 * 3600);
        let msg = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        store.ingest(&org(), &[msg], t0).expect("ingest");
        let later = t0 + chrono::Duration::days(8);
        assert_eq!(store.expire_dedupe(later, week).expect("expire"), 0);
        assert_eq!(store.pending_count(), 1);
        assert!(clear(&store, "0031I0000081tbP"));
        assert_eq!(store.expire_dedupe(later, week).expect("expire"), 1);
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.pending_count(), 0);
        let src = DedupeSource::OutboundNotification;
        assert!(
            !store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
    }
}
