//! Compacting the inbox journal, so that it holds the recent messages only, not the whole
//! dedupe window.
//!
//! A journal value is needed at open for two things: the dedupe keys of its records (until a
//! dedupe run covers them) and the pending entries of the records they name. Once the runs cover
//! every record of a value, the compactor writes the current pending entry of each record the
//! value names into the `inbox_pending` tree (entry and the newest journal record folded into
//! it), removes that tree's entry for each record no longer pending, and then removes the value.
//! At open, the journal replay starts from those entries and skips the journal records they
//! already fold in (see `journal::rebuild`).
//!
//! Order makes it crash-safe: the snapshot entries are written before the values go, and a
//! record is no longer pending in memory only after its pull's transaction committed (with its
//! applied mark); sled makes a prefix of its writes durable, so whatever survives a crash, a
//! pending record's entry is in the journal, in the snapshot, or both (folded once).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::StoreError;
use super::journal::{corrupt, frame_seq, journal_value};
use super::keys;
use super::pending::{InboxMemory, PendingEntry};
use crate::domain::{ObjectType, OrgId, SalesforceId};

/// Cuts of dedupe runs between compactions (each cut covers at least 16 Ki ids).
const CUTS_PER_COMPACTION: u32 = 8;

/// A pending record's snapshot: its entry and the newest journal record folded into it.
pub(super) type Snapshot = (PendingEntry, u64);

/// The journal compactor, run by the dedupe thread after it cuts runs.
pub(super) struct Compactor {
    pub(super) journal: sled::Tree,
    pub(super) snapshots: sled::Tree,
    pub(super) memory: Arc<Mutex<InboxMemory>>,
    cuts: u32,
}

impl Compactor {
    pub(super) fn new(
        journal: sled::Tree,
        snapshots: sled::Tree,
        memory: Arc<Mutex<InboxMemory>>,
    ) -> Self {
        Self {
            journal,
            snapshots,
            memory,
            cuts: 0,
        }
    }

    /// Called after a cut made the runs cover the journal through `covered`: compacts every
    /// [`CUTS_PER_COMPACTION`] cuts, or now with `force`.
    pub(super) fn after_cut(&mut self, covered: u64, force: bool) -> Result<usize, StoreError> {
        self.cuts += 1;
        if !force && self.cuts < CUTS_PER_COMPACTION {
            return Ok(0);
        }
        self.cuts = 0;
        self.compact(covered)
    }

    /// Removes the journal values whose records are all covered (see the module docs); returns
    /// how many it removed.
    pub(super) fn compact(&self, covered: u64) -> Result<usize, StoreError> {
        let mut gone = Vec::new();
        let mut named = BTreeSet::new();
        for kv in self.journal.iter() {
            let (k, v) = kv?;
            // A value's key carries its last (highest) sequence number.
            if frame_seq(&k)? > covered {
                continue;
            }
            for (_, rec) in journal_value(&v)? {
                let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
                for (code, id, ..) in &rec.notes {
                    if let (Some(object), Ok(id)) =
                        (ObjectType::from_code(*code), SalesforceId::parse(id))
                    {
                        named.insert(keys::pending(&org, object, &id));
                    }
                }
            }
            gone.push(k);
        }
        if gone.is_empty() {
            return Ok(0);
        }
        // Copied under the memory lock, written after it: no sled call may run under it.
        let slots: Vec<(Vec<u8>, Option<Snapshot>)> = {
            let mem = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            named
                .into_iter()
                .map(|key| {
                    let slot = mem.pending.get(&key);
                    let snap = slot.map(|s| (s.entry.clone(), s.last_seq));
                    (key, snap)
                })
                .collect()
        };
        let mut writes = Vec::with_capacity(slots.len());
        for (key, snap) in slots {
            match snap {
                Some(snap) => writes.push((key, Some(encode(&snap)?))),
                // Most records named are applied and never had a snapshot: asked with a read,
                // so only real removals join the batches that hold sled's write lock.
                None if self.snapshots.contains_key(&key)? => writes.push((key, None)),
                None => {}
            }
        }
        for batch in in_chunks(writes) {
            self.snapshots.apply_batch(batch)?;
        }
        let count = gone.len();
        for batch in in_chunks(gone.into_iter().map(|k| (k.to_vec(), None))) {
            self.journal.apply_batch(batch)?;
        }
        Ok(count)
    }
}

/// Most keys one compaction batch writes. Every sled batch and transaction holds sled's one
/// global write lock while it runs, so a compaction written as one batch of tens of thousands of
/// keys stopped the pull's transactions (and the checkpoints) for a third of a second; written
/// in batches of this many, they take turns. Each snapshot entry stands alone and the journal
/// values go only after every snapshot batch is written, so a crash between two batches leaves
/// a state the open rebuilds from (a record's entry in the journal, the snapshot, or both).
const COMPACTION_BATCH: usize = 1_024;

/// The writes (`None` removes the key), in order, as sled batches of at most
/// [`COMPACTION_BATCH`] keys.
fn in_chunks(writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Vec<sled::Batch> {
    let mut batches = Vec::new();
    let mut batch = sled::Batch::default();
    let mut len = 0;
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
        len += 1;
        if len == COMPACTION_BATCH {
            batches.push(std::mem::take(&mut batch));
            len = 0;
        }
    }
    if len > 0 {
        batches.push(batch);
    }
    batches
}

fn encode(snap: &Snapshot) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(snap).map_err(|e| corrupt("inbox_pending", e))
}

/// Decodes a snapshot entry of the `inbox_pending` tree.
pub(super) fn decode(bytes: &[u8]) -> Result<Snapshot, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| corrupt("inbox_pending", e))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
    use crate::store::{DedupeSource, Delivery, PendingRecord, Store};

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    fn record(n: u64) -> SalesforceId {
        SalesforceId::mint("003", "C", n)
    }

    /// Message `m`: one notification for each of records `0..records`, stamped `m` seconds.
    fn message(store: &Store, m: u64, records: u64) {
        let at = Utc
            .timestamp_opt(1_700_000_000 + m as i64, 0)
            .single()
            .expect("t");
        let deliveries: Vec<Delivery> = (0..records)
            .map(|r| Delivery {
                dedupe_id: SalesforceId::mint("04l", "C", m * 1000 + r).to_string(),
                source: DedupeSource::OutboundNotification,
                notifications: vec![Notification {
                    object: ObjectType::Contact,
                    record_id: record(r),
                    change: ChangeType::Update,
                    system_modstamp: Some(at),
                    modified_by: None,
                }],
                resync: vec![],
                digest: None,
            })
            .collect();
        store.ingest(&org(), &deliveries, at).expect("ingest");
    }

    fn pending(store: &Store) -> Vec<PendingRecord> {
        store.pending_records(&org()).expect("pending")
    }

    fn clear(store: &Store, r: u64) {
        store
            .atomically(|tx| tx.clear_pending(&org(), ObjectType::Contact, &record(r)))
            .expect("clear");
    }

    #[test]
    fn a_compacted_journal_still_rebuilds_the_pending_queue_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = {
            let store = Store::open(dir.path()).expect("open");
            for m in 0..5 {
                message(&store, m, 20);
            }
            // Records 0..5 are pulled; 5..20 stay pending with five notifications each.
            for r in 0..5 {
                clear(&store, r);
            }
            store.settle_dedupe().expect("settle");
            assert_eq!(
                store.inner.inbox.journal.len(),
                0,
                "every journal value compacted"
            );
            let before = pending(&store);
            assert_eq!(before.len(), 15);
            assert!(before.iter().all(|p| p.entry.notifications == 5));
            before
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(pending(&store), before, "from the snapshots");
        // Newer messages fold on top, once each, also across another compaction and reopen.
        message(&store, 5, 20);
        clear(&store, 5);
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let after = pending(&store);
        assert_eq!(
            after.len(),
            19,
            "records 0..5 come back with one notification"
        );
        let of = |r: u64| {
            after
                .iter()
                .find(|p| p.id == record(r))
                .map(|p| p.entry.notifications)
        };
        assert_eq!((of(0), of(5), of(6)), (Some(1), None, Some(6)));
        store.settle_dedupe().expect("settle");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(pending(&store), after);
        assert!(
            (0..6).all(|m| store
                .has_seen(
                    &org(),
                    DedupeSource::OutboundNotification,
                    SalesforceId::mint("04l", "C", m * 1000 + 7).as_str()
                )
                .expect("seen")),
            "the ids live in the runs"
        );
    }

    #[test]
    fn a_snapshot_newer_than_the_journal_left_is_not_folded_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let inbox = &store.inner.inbox;
            let durable = |store: &Store| {
                tokio::runtime::Runtime::new()
                    .expect("runtime")
                    .block_on(store.make_durable())
                    .expect("durable");
            };
            message(&store, 0, 3);
            durable(&store);
            let first = inbox.journal.last().expect("read").expect("a value").0;
            message(&store, 1, 3);
            durable(&store);
            assert_eq!(inbox.journal.len(), 2, "one value per checkpoint");
            // Runs cover the first message only: its value goes, and the snapshots hold both
            // messages, while the second's value stays in the journal.
            let compactor = super::Compactor::new(
                inbox.journal.clone(),
                store.inner.db.open_tree("inbox_pending").expect("tree"),
                inbox.memory.clone(),
            );
            let covered = super::frame_seq(&first).expect("seq");
            assert_eq!(compactor.compact(covered).expect("compact"), 1);
            assert_eq!(inbox.journal.len(), 1);
        }
        let store = Store::open(dir.path()).expect("reopen");
        let left = pending(&store);
        assert_eq!(left.len(), 3);
        assert!(left.iter().all(|p| p.entry.notifications == 2), "{left:?}");
    }

    /// Ids only: deliveries that name no record (nothing pending, nothing applied).
    fn ids_only(store: &Store, ids: std::ops::Range<u64>) {
        let deliveries: Vec<Delivery> = ids
            .map(|n| Delivery {
                dedupe_id: SalesforceId::mint("04l", "I", n).to_string(),
                source: DedupeSource::OutboundNotification,
                notifications: vec![],
                resync: vec![],
                digest: None,
            })
            .collect();
        store
            .ingest(&org(), &deliveries, Utc::now())
            .expect("ingest");
    }

    fn seen(store: &Store, n: u64) -> bool {
        store
            .has_seen(
                &org(),
                DedupeSource::OutboundNotification,
                SalesforceId::mint("04l", "I", n).as_str(),
            )
            .expect("seen")
    }

    #[test]
    fn new_sequence_numbers_stay_above_what_was_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for m in 0..3 {
                ids_only(&store, m * 10..m * 10 + 10);
            }
            store.settle_dedupe().expect("settle");
            assert_eq!(store.inner.inbox.journal.len(), 0);
        }
        // No journal, nothing pending or applied: the next message still gets a number past
        // what the runs cover, so its ids come back from the journal after a reopen.
        {
            let store = Store::open(dir.path()).expect("reopen");
            ids_only(&store, 100..110);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert!((0..30).all(|n| seen(&store, n)));
        assert!((100..110).all(|n| seen(&store, n)), "not taken for covered");
    }

    #[test]
    fn a_compaction_writes_in_batches_of_bounded_size_that_together_make_every_write() {
        let key = |n: usize| format!("k{n:05}").into_bytes();
        let writes = (0..2_500).map(|n| (key(n), (n % 2 == 0).then(|| vec![1u8])));
        let batches = super::in_chunks(writes);
        assert_eq!(batches.len(), 3, "1,024 + 1,024 + 452");
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        for n in (1..2_500).step_by(2) {
            tree.insert(key(n), &[0u8])
                .expect("seed the keys the writes remove");
        }
        for batch in batches {
            tree.apply_batch(batch).expect("batch");
        }
        let kept: Vec<Vec<u8>> = tree
            .iter()
            .keys()
            .map(|k| k.expect("key").to_vec())
            .collect();
        assert_eq!(kept, (0..2_500).step_by(2).map(key).collect::<Vec<_>>());
        assert!(super::in_chunks(std::iter::empty()).is_empty());
    }
}
