//! The inbox: dedupe keys and the coalesced pending queue, kept in memory and made durable as a
//! journal of one record per commit round and org.
//!
//! Each delivery (one Outbound Message notification, or one signed event) has a dedupe key that
//! lives at least the configured TTL. A new delivery adds or updates one pending entry per record
//! `(org, object, id)`; many deliveries for one record collapse into one entry that keeps the
//! newest `SystemModstamp` seen.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{self, DedupeKind};
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

/// What one commit round stored for one org, as the journal keeps it: the dedupe keys of the
/// new deliveries of every message in the round and the records they name. Each message's entries
/// are all in one record, so a message is stored whole or not at all. The journal is the inbox's
/// only durable write on the acknowledgement path. Encoded with postcard.
#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    /// The org (18 characters).
    org: String,
    /// When the newest message in it arrived, in milliseconds since the epoch.
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
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_allocvec(self).map_err(|e| corrupt("inbox_journal", e))
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

/// One message's deliveries, waiting to be stored.
#[derive(Debug)]
pub(super) struct IngestRequest {
    pub(super) org: OrgId,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) now: DateTime<Utc>,
}

/// The inbox's trees and its working memory, shared by the store handle and the committer
/// thread, which stores the messages of each commit round together (see `durability`).
pub(super) struct Inbox {
    db: sled::Db,
    /// One record per commit round and org (see [`JournalRecord`]).
    pub(super) journal: sled::Tree,
    /// Per pending key, the newest journal record already applied.
    pub(super) applied: sled::Tree,
    /// Object types waiting for a full re-read.
    pub(super) resync: sled::Tree,
    /// The dedupe set and pending queue, rebuilt from the journal at open.
    pub(super) memory: std::sync::Mutex<InboxMemory>,
}

/// A delivery found new in the first pass of a round: which request, which delivery, its key.
struct Fresh {
    request: usize,
    delivery: usize,
    key: Vec<u8>,
}

impl Inbox {
    /// Opens the inbox trees and replays the journal.
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let journal = db.open_tree("inbox_journal")?;
        let applied = db.open_tree("inbox_applied")?;
        let memory = rebuild(&journal, &applied)?;
        Ok(Self {
            db: db.clone(),
            resync: db.open_tree("inbox_resync")?,
            journal,
            applied,
            memory: std::sync::Mutex::new(memory),
        })
    }

    pub(super) fn memory(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a round of messages: deliveries already seen are counted and skipped; the new ones
    /// go to disk as ONE journal record per org (their dedupe keys and the records they name),
    /// and the in-memory pending queue coalesces them by record, keeping the newest
    /// `SystemModstamp`. Not durable until the round's flush. Returns one outcome per request,
    /// or the error that refused the whole round (then nothing of it is in memory).
    ///
    /// Why a journal: sled 0.34 costs several microseconds per insert (each copies its leaf
    /// node), and one insert per notification for the dedupe key and one for the pending entry
    /// made the store write cost as much as the whole HTTP path. The journal is one insert per
    /// round; the dedupe set and the pending queue live in memory and are rebuilt from the
    /// journal when the store opens, minus what the inbox worker has marked applied (see
    /// [`crate::store::Tx::clear_pending`]).
    pub(super) fn ingest_round(
        &self,
        requests: &[IngestRequest],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut out = vec![IngestOutcome::default(); requests.len()];
        // First pass, reading only: never hold the memory lock across a sled call, because
        // record transactions hold sled's process-wide lock while they read the pending queue.
        let mut fresh: Vec<Fresh> = Vec::new();
        {
            let mem = self.memory();
            let mut in_round: HashMap<(&OrgId, DedupeKind, &str), (), foldhash::fast::RandomState> =
                HashMap::default();
            for (ri, req) in requests.iter().enumerate() {
                for (di, d) in req.deliveries.iter().enumerate() {
                    let key = keys::dedupe(&req.org, kind(d.source), &d.dedupe_id);
                    let seen = (&req.org, kind(d.source), d.dedupe_id.as_str());
                    if mem.dedupe.contains_key(&key) || in_round.insert(seen, ()).is_some() {
                        out[ri].duplicates += 1;
                        continue;
                    }
                    out[ri].accepted += 1;
                    fresh.push(Fresh {
                        request: ri,
                        delivery: di,
                        key,
                    });
                }
            }
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        // One journal record per org, encoded before anything is written.
        let mut records: BTreeMap<&OrgId, JournalRecordRef<'_>> = BTreeMap::new();
        for f in &fresh {
            let req = &requests[f.request];
            let now_ms = req.now.timestamp_millis();
            let rec = records.entry(&req.org).or_insert_with(|| JournalRecordRef {
                org: req.org.as_str(),
                received_ms: now_ms,
                dedupe: Vec::new(),
                notes: Vec::new(),
            });
            rec.received_ms = rec.received_ms.max(now_ms);
            rec.dedupe.push(&f.key);
            rec.notes
                .extend(req.deliveries[f.delivery].notifications.iter().map(|n| {
                    (
                        n.object.code(),
                        n.record_id.as_str(),
                        n.change,
                        n.system_modstamp.map(|t| t.timestamp_millis()),
                    )
                }));
        }
        let encoded = records
            .into_iter()
            .map(|(org, rec)| Ok((org, rec.encode()?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for f in &fresh {
            let req = &requests[f.request];
            let received = u64::try_from(req.now.timestamp_millis())
                .unwrap_or(0)
                .to_be_bytes();
            for object in &req.deliveries[f.delivery].resync {
                self.resync
                    .insert(keys::resync(&req.org, *object), &received)?;
            }
        }
        let mut seqs: HashMap<&OrgId, u64, foldhash::fast::RandomState> = HashMap::default();
        for (org, bytes) in encoded {
            let seq = self.db.generate_id()? + 1;
            self.journal.insert(keys::journal(org, seq), bytes)?;
            seqs.insert(org, seq);
        }
        // Second pass: the round is in the journal; now the memory. A concurrent `ingest` of the
        // same delivery may have got here first: both are in the journal, and merging it twice
        // only counts one more notification.
        let mut mem = self.memory();
        for f in fresh {
            let req = &requests[f.request];
            let now_ms = req.now.timestamp_millis();
            let Some(&seq) = seqs.get(&req.org) else {
                continue;
            };
            let counted = &mut out[f.request];
            if mem.dedupe.insert(f.key, now_ms).is_some() {
                // Only a concurrent caller outside the committer can have added it meanwhile.
                counted.accepted -= 1;
                counted.duplicates += 1;
            }
            for n in &req.deliveries[f.delivery].notifications {
                match mem
                    .pending
                    .entry(keys::pending(&req.org, n.object, &n.record_id))
                {
                    Entry::Vacant(slot) => {
                        counted.new_pending += 1;
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
        Ok(out)
    }
}

/// Replays the journal: every dedupe key, and every record named after its last applied pull.
fn rebuild(journal: &sled::Tree, applied: &sled::Tree) -> Result<InboxMemory, StoreError> {
    let mut mem = InboxMemory::default();
    for kv in journal.iter() {
        let (k, v) = kv?;
        let seq = k
            .get(18..26)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("inbox_journal", "bad key"))?;
        let rec = JournalRecord::decode(&v)?;
        for d in rec.dedupe {
            mem.dedupe.insert(d, rec.received_ms);
        }
        let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
        for (code, id, change, stamp) in rec.notes {
            let object = ObjectType::from_code(code)
                .ok_or_else(|| corrupt("inbox_journal", "bad object"))?;
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
    }
    Ok(mem)
}

impl Store {
    pub(super) fn inbox(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.inner.inbox.memory()
    }

    /// Stores one message's deliveries on the calling thread (see [`Inbox::ingest_round`]).
    /// Not durable until [`Store::make_durable`] returns; the webhooks use
    /// [`Store::ingest_durably`], which does both in the committer's round.
    pub fn ingest(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let request = IngestRequest {
            org: org.clone(),
            deliveries: deliveries.to_vec(),
            now,
        };
        let mut out = self
            .inner
            .inbox
            .ingest_round(std::slice::from_ref(&request))?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Stores one message's deliveries in the committer's next round and waits until that round
    /// is on disk: the acknowledgement path of both webhooks.
    pub async fn ingest_durably(
        &self,
        org: &OrgId,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        self.inner
            .commit
            .ingest(IngestRequest {
                org: org.clone(),
                deliveries,
                now,
            })
            .await
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

    /// Forgets dedupe keys older than `ttl` and removes the journal records they came in, once
    /// none of the records those name is still pending; returns how many dedupe keys were
    /// forgotten. Run hourly.
    pub fn expire_dedupe(&self, now: DateTime<Utc>, ttl: Duration) -> Result<u64, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.timestamp_millis().saturating_sub(ttl_ms);
        let mut removed = 0;
        for kv in self.inner.inbox.journal.iter() {
            let (k, v) = kv?;
            let rec = JournalRecord::decode(&v)?;
            if rec.received_ms >= cutoff {
                continue;
            }
            let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
            let mut mem = self.inbox();
            let still_pending = rec.notes.iter().any(|(code, id, _, _)| {
                match (ObjectType::from_code(*code), SalesforceId::parse(id)) {
                    (Some(object), Ok(id)) => {
                        mem.pending.contains_key(&keys::pending(&org, object, &id))
                    }
                    _ => false,
                }
            });
            if still_pending {
                continue;
            }
            for d in &rec.dedupe {
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

    fn request(org: &OrgId, deliveries: Vec<Delivery>) -> IngestRequest {
        IngestRequest {
            org: org.clone(),
            deliveries,
            now: Utc::now(),
        }
    }

    #[test]
    fn a_round_writes_one_journal_record_per_org_and_finds_duplicates_across_its_messages() {
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
        {
            let store = Store::open(dir.path()).expect("open");
            let round = [
                request(&org(), vec![a.clone(), b]),
                // The same notification again, in another message of the same round.
                request(&org(), vec![a.clone()]),
                // The same id from another org is not a duplicate.
                request(&other, vec![a]),
            ];
            let out = store.inner.inbox.ingest_round(&round).expect("round");
            let outcome = |accepted, duplicates, new_pending| IngestOutcome {
                accepted,
                duplicates,
                new_pending,
            };
            assert_eq!(
                out,
                vec![outcome(2, 0, 2), outcome(0, 1, 0), outcome(1, 0, 1)]
            );
            assert_eq!(store.inner.inbox.journal.len(), 2, "one record per org");
            assert_eq!(store.pending_count(), 3);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.pending_records(&org()).expect("pending").len(), 2);
        assert_eq!(store.pending_records(&other).expect("pending").len(), 1);
        let src = DedupeSource::OutboundNotification;
        for (o, id) in [
            (org(), "04l1I000000fztEQAQ"),
            (org(), "04l1I000000fzt9QAA"),
            (other, "04l1I000000fztEQAQ"),
        ] {
            assert!(store.has_seen(&o, src, id).expect("seen"), "{o} {id}");
        }
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
