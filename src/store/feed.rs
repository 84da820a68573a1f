//! The change log's read side: pages of entries after a sequence number, the marks that say how
//! far readers may read, a wake-up when a change commits, and compaction past the retention.
//!
//! Two marks: `committed`, the last number of a transaction that has returned, and `durable`,
//! the last number known to be on disk. Readers read only up to `durable` ([`Store::durable_changes`]
//! makes every committed change durable first): a change a reader saw never vanishes in a crash,
//! so the number it was given is never given again. Since numbers grow in commit order and a
//! transaction's entries are all in the tree before it returns, every number up to `durable` is
//! in the tree: a reader moving its cursor through `durable` skips nothing.
//!
//! Compaction removes the oldest entries in one atomic batch that also moves the compaction
//! mark; a read checks the mark after reading, so a reader whose next entry was compacted
//! meanwhile is told `Gone`, never handed a page with a hole.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::changes::{ChangeEntry, decode_pack, last_seq};
use super::keys;
use super::{Store, StoreError};
use crate::domain::TypeFilter;

/// How far readers may read, and the wake-up of those waiting.
pub(super) struct Marks {
    committed: watch::Sender<u64>,
    durable: AtomicU64,
}

impl Marks {
    /// The marks of a log whose last entry is `last` (all of it on disk).
    pub(super) fn new(last: u64) -> Self {
        Self {
            committed: watch::Sender::new(last),
            durable: AtomicU64::new(last),
        }
    }

    /// A transaction that logged up to `seq` has committed.
    pub(super) fn committed(&self, seq: u64) {
        self.committed.send_if_modified(|c| {
            let moved = seq > *c;
            *c = (*c).max(seq);
            moved
        });
    }

    /// The last committed number, read before a sync.
    pub(super) fn before_sync(&self) -> u64 {
        *self.committed.borrow()
    }

    /// A sync that began after `seq` committed has completed.
    pub(super) fn synced(&self, seq: u64) {
        self.durable.fetch_max(seq, Ordering::AcqRel);
    }
}

/// One page of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    /// The entries, in sequence order (only those the filter wants).
    pub entries: Vec<ChangeEntry>,
    /// Where the next read starts: the last number examined (or the `after` asked for).
    pub next: u64,
}

/// What a read of the change log found.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangesRead {
    /// Entries after the number asked for.
    Page(ChangesPage),
    /// The entries right after the number asked for were compacted away; `earliest` is the
    /// first still kept.
    Gone {
        /// The first number still in the log.
        earliest: u64,
    },
}

/// How many entries a read may examine per entry asked for, when a filter matches few.
const FILTER_BUDGET: usize = 20;

impl Store {
    /// The last sequence number of a transaction that has committed (maybe not durable yet).
    pub fn committed_changes(&self) -> u64 {
        self.inner.marks.before_sync()
    }

    /// Makes every committed change durable (one shared sync, when anything is new) and returns
    /// the last durable sequence number: how far readers may read.
    pub async fn durable_changes(&self) -> Result<u64, StoreError> {
        let marks = &self.inner.marks;
        if marks.before_sync() > marks.durable.load(Ordering::Acquire) {
            self.make_durable().await?;
        }
        Ok(marks.durable.load(Ordering::Acquire))
    }

    /// A receiver woken whenever a transaction that logged changes commits; its value is the
    /// last committed sequence number.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.marks.committed.subscribe()
    }

    /// The last number compaction removed (0: none yet).
    pub fn compacted_through(&self) -> Result<u64, StoreError> {
        let raw = self.inner.changes.get(keys::change_compacted())?;
        Ok(last_seq(raw.as_deref()))
    }

    /// Up to `limit` entries after `after` and at most `upto`, those `filter` wants; `Gone` when
    /// entries right after `after` were compacted away.
    pub fn read_changes(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
        filter: &TypeFilter,
    ) -> Result<ChangesRead, StoreError> {
        let limit = limit.max(1);
        let budget = limit.saturating_mul(FILTER_BUDGET);
        let mut page = ChangesPage {
            entries: Vec::new(),
            next: after,
        };
        if after < upto {
            let mut examined = 0;
            'packs: for pack in self.packs_from(after + 1, upto)? {
                for entry in pack? {
                    if entry.seq <= after {
                        continue;
                    }
                    if entry.seq > upto {
                        break 'packs;
                    }
                    examined += 1;
                    page.next = entry.seq;
                    if filter.wants(entry.kind) {
                        page.entries.push(entry);
                    }
                    if page.entries.len() >= limit || examined >= budget {
                        break 'packs;
                    }
                }
            }
        }
        let compacted = self.compacted_through()?;
        if compacted > after {
            return Ok(ChangesRead::Gone {
                earliest: compacted + 1,
            });
        }
        Ok(ChangesRead::Page(page))
    }

    /// One entry, when it is still kept.
    pub fn change(&self, seq: u64) -> Result<Option<ChangeEntry>, StoreError> {
        match self.packs_from(seq, seq)?.next() {
            Some(pack) => Ok(pack?.into_iter().find(|e| e.seq == seq)),
            None => Ok(None),
        }
    }

    /// The stored transactions' entries that may hold numbers `first..=upto`, in order: the one
    /// holding `first` (the last that starts at or before it), then every later one that starts
    /// by `upto`. The first may start before `first`.
    fn packs_from(
        &self,
        first: u64,
        upto: u64,
    ) -> Result<impl Iterator<Item = Result<Vec<ChangeEntry>, StoreError>> + '_, StoreError> {
        let tree = &self.inner.changes;
        let start = match tree
            .range(keys::change(0)..=keys::change(first))
            .next_back()
            .transpose()
        {
            Ok(Some((k, _))) => k.to_vec(),
            Ok(None) => keys::change(first),
            Err(e) => return Err(e.into()),
        };
        Ok(tree
            .range(start..=keys::change(upto))
            .map(|kv| decode_pack(&kv?.1)))
    }

    /// Removes the entries committed before `cutoff`, oldest first, a transaction's entries at a
    /// time, at most `batch` transactions per atomic batch; returns how many entries were
    /// removed. Entries are in commit order, so it stops at the first transaction recent enough.
    pub fn compact_changes(
        &self,
        cutoff: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let tree = &self.inner.changes;
        let batch = batch.max(1);
        let mut removed = 0;
        loop {
            let mut doomed = sled::Batch::default();
            let mut last = None;
            let mut packs = 0;
            for kv in tree
                .range(keys::change(0)..=keys::change(u64::MAX))
                .take(batch)
            {
                let (k, v) = kv?;
                let entries = decode_pack(&v)?;
                if entries.iter().any(|e| e.timestamp >= cutoff) {
                    break;
                }
                doomed.remove(k);
                last = entries.last().map(|e| e.seq).or(last);
                removed += entries.len();
                packs += 1;
            }
            let Some(last) = last else {
                return Ok(removed);
            };
            doomed.insert(keys::change_compacted(), &last.to_be_bytes());
            tree.apply_batch(doomed)?;
            if packs < batch {
                return Ok(removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::domain::{ChangeWhat, Company, OrgId};
    use crate::store::{LocalRef, RecordKind, Subject, TxAbort};

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    fn company(id: u64, name: &str) -> Company {
        let bare = serde_json::json!({"id": id, "org_id": org(), "name": name,
            "updated_at": Utc::now()});
        serde_json::from_value(bare).expect("a company")
    }

    fn write(store: &Store, id: u64, name: &str, what: Option<ChangeWhat>) {
        store
            .atomically(|tx| {
                tx.put_company(&company(id, name))?;
                if let Some(what) = what {
                    let me = LocalRef::new(RecordKind::Company, id);
                    tx.record_change(&org(), what, Subject::Record(me))?;
                }
                Ok(())
            })
            .expect("write");
    }

    fn all(store: &Store) -> Vec<ChangeEntry> {
        match store
            .read_changes(0, store.committed_changes(), 1000, &TypeFilter::all())
            .expect("read")
        {
            ChangesRead::Page(p) => p.entries,
            ChangesRead::Gone { earliest } => panic!("gone up to {earliest}"),
        }
    }

    #[test]
    fn a_logged_change_commits_with_its_transaction_under_the_next_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");

        write(&store, 1, "Acme", Some(ChangeWhat::Created));
        let aborted = store.transact(|tx| -> Result<(), TxAbort<&str>> {
            tx.put_company(&company(2, "Never"))?;
            let me = LocalRef::new(RecordKind::Company, 2);
            tx.record_change(&org(), ChangeWhat::Created, Subject::Record(me))?;
            Err(TxAbort::User("no"))
        });
        assert!(aborted.is_err());
        write(&store, 1, "Acme Energy", Some(ChangeWhat::Updated));

        let entries = all(&store);
        let seen: Vec<(u64, String, String)> = entries
            .iter()
            .map(|e| (e.seq, e.kind.to_string(), e.data["name"].to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, "company.created".into(), "\"Acme\"".into()),
                (2, "company.updated".into(), "\"Acme Energy\"".into()),
            ]
        );
        assert_eq!(entries[0].org_id, org());
        assert_eq!(entries[0].subject_id(), 1);
        assert_eq!(store.committed_changes(), 2);
    }

    #[test]
    fn a_record_written_without_a_logged_change_is_logged_once_as_updated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        store
            .atomically(|tx| {
                tx.put_company(&company(1, "First"))?;
                tx.put_company(&company(1, "Second"))?;
                tx.put_company(&company(2, "Other"))?;
                let me = LocalRef::new(RecordKind::Company, 2);
                tx.record_change(&org(), ChangeWhat::Pushed, Subject::Record(me))?;
                tx.record_change(&org(), ChangeWhat::Updated, Subject::Record(me))?;
                Ok(())
            })
            .expect("write");
        store
            .transact(|tx| -> Result<(), TxAbort<Infallible>> {
                tx.company(&org(), 1)?;
                Ok(())
            })
            .expect("read only");

        let seen: Vec<(String, String)> = all(&store)
            .iter()
            .map(|e| (e.kind.to_string(), e.data["name"].to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("company.pushed".into(), "\"Other\"".into()),
                ("company.updated".into(), "\"Second\"".into()),
            ],
            "one entry per record, the first explicit kind, the data as the transaction ends"
        );
    }

    #[test]
    fn concurrent_writers_never_show_a_reader_a_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..150 {
                        write(&store, w * 1000 + i, "x", Some(ChangeWhat::Updated));
                    }
                })
            })
            .collect();
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut cursor = 0;
                while cursor < 600 {
                    let upto = store.committed_changes();
                    let read = store.read_changes(cursor, upto, 50, &TypeFilter::all());
                    let Ok(ChangesRead::Page(page)) = read else {
                        panic!("read failed: {read:?}");
                    };
                    for e in page.entries {
                        assert_eq!(e.seq, cursor + 1, "a reader saw {} after {cursor}", e.seq);
                        cursor = e.seq;
                    }
                }
                cursor
            })
        };
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(reader.join().expect("reader"), 600);
    }

    #[tokio::test]
    async fn readers_may_read_a_change_only_once_it_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut woken = store.watch_changes();
        write(&store, 1, "Acme", Some(ChangeWhat::Created));

        assert!(woken.has_changed().expect("watch"));
        assert_eq!(*woken.borrow_and_update(), 1);
        assert_eq!(store.inner.marks.durable.load(Ordering::Acquire), 0);
        assert_eq!(store.durable_changes().await.expect("durable"), 1);
        drop(store);
        let reopened = Store::open(dir.path()).expect("reopen");
        assert_eq!(reopened.durable_changes().await.expect("durable"), 1);
        write(&reopened, 2, "Next", Some(ChangeWhat::Created));
        assert_eq!(
            reopened.committed_changes(),
            2,
            "numbers go on after a restart"
        );
    }

    #[test]
    fn compaction_removes_old_entries_and_a_reader_behind_it_is_told_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        for i in 1..=5 {
            write(&store, i, "old", Some(ChangeWhat::Created));
        }
        let cutoff = Utc::now() + chrono::Duration::milliseconds(1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        write(&store, 6, "new", Some(ChangeWhat::Created));

        assert_eq!(store.compact_changes(cutoff, 2).expect("compact"), 5);
        assert_eq!(store.compacted_through().expect("mark"), 5);
        let filter = TypeFilter::all();
        assert_eq!(
            store.read_changes(3, 6, 10, &filter).expect("read"),
            ChangesRead::Gone { earliest: 6 }
        );
        let ChangesRead::Page(page) = store.read_changes(5, 6, 10, &filter).expect("read") else {
            panic!("the first kept entry is readable");
        };
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].seq, 6);
        assert_eq!(store.compact_changes(cutoff, 2).expect("again"), 0);
    }

    #[test]
    fn a_transaction_stores_its_entries_under_one_key_and_reads_start_anywhere_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        write(&store, 1, "alone", Some(ChangeWhat::Created));
        store
            .atomically(|tx| {
                for id in 2..=6 {
                    tx.put_company(&company(id, "batch"))?;
                    let me = LocalRef::new(RecordKind::Company, id);
                    tx.record_change(&org(), ChangeWhat::Created, Subject::Record(me))?;
                }
                Ok(())
            })
            .expect("write");
        write(&store, 7, "after", Some(ChangeWhat::Created));
        let entry_keys = store
            .inner
            .changes
            .range(keys::change(0)..=keys::change(u64::MAX))
            .count();
        assert_eq!(entry_keys, 3, "one key per transaction");

        let filter = TypeFilter::all();
        let seqs = |after, upto, limit| match store
            .read_changes(after, upto, limit, &filter)
            .expect("read")
        {
            ChangesRead::Page(p) => (p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), p.next),
            ChangesRead::Gone { earliest } => panic!("gone up to {earliest}"),
        };
        assert_eq!(
            seqs(3, 7, 2),
            (vec![4, 5], 5),
            "from the middle, a page ends mid-way"
        );
        assert_eq!(seqs(5, 7, 10), (vec![6, 7], 7));
        assert_eq!(seqs(0, 4, 10), (vec![1, 2, 3, 4], 4), "never past upto");
        assert_eq!(
            store.change(5).expect("one").map(|e| e.subject_id()),
            Some(5)
        );
        assert_eq!(store.change(8).expect("none"), None);

        let cutoff = Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(store.compact_changes(cutoff, 1).expect("compact"), 7);
        assert_eq!(store.compacted_through().expect("mark"), 7);
    }

    #[test]
    fn entries_stored_alone_or_as_a_plain_array_by_earlier_versions_are_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let entry = |seq: u64, name: &str| ChangeEntry {
            seq,
            org_id: org(),
            kind: "company.created".parse().expect("type"),
            timestamp: Utc::now(),
            data: serde_json::json!({"id": seq, "name": name}),
        };
        let (alone, plain) = (
            entry(1, "Alone"),
            vec![entry(2, "Plain"), entry(3, "Array")],
        );
        let changes = &store.inner.changes;
        changes
            .insert(keys::change(1), serde_json::to_vec(&alone).expect("json"))
            .expect("insert");
        changes
            .insert(keys::change(2), serde_json::to_vec(&plain).expect("json"))
            .expect("insert");
        changes
            .insert(keys::change_counter(), &3u64.to_be_bytes())
            .expect("counter");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        write(&store, 4, "New", Some(ChangeWhat::Created));

        let names: Vec<(u64, String)> = all(&store)
            .iter()
            .map(|e| (e.seq, e.data["name"].to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                (1, "\"Alone\"".into()),
                (2, "\"Plain\"".into()),
                (3, "\"Array\"".into()),
                (4, "\"New\"".into())
            ]
        );
        assert_eq!(store.change(1).expect("read"), Some(alone));
        assert_eq!(store.change(3).expect("read"), Some(plain[1].clone()));
        let newest = store.inner.changes.get(keys::change(4)).expect("get");
        assert_eq!(
            newest.as_deref().and_then(|v| v.first()),
            Some(&0x01),
            "this version stores its entries compressed"
        );
    }
}
