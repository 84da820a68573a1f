//! The dedupe memory: every delivery id of the retention window, on disk, with a compact filter
//! in memory, so that memory does not grow with the window.
//!
//! An id is first remembered in the recent map (in memory) when its message is staged. Once its
//! journal record is durable (a checkpoint), the dedupe thread (`sfsync-dedupe`) cuts the recent
//! ids into a run: a sorted, immutable set on disk with a Bloom filter in memory (see `runs`),
//! written in one sled batch with the journal sequence number it covers. Runs of one level are
//! merged in fours, up to [`MAX_LEVEL`], while the merged run spans at most a quarter of the
//! retention; expiry drops whole runs whose newest id is older than the retention, carrying
//! along (in a new run, in the same batch) the ids of records still pending.
//!
//! A lookup reads the recent map, then the filter of every run, and the disk only for a run whose
//! filter says "maybe": a filter's false positive costs one read, never a wrong answer. At open
//! the runs' filters are read back, and the journal records past the covered sequence number
//! (those not yet cut) refill the recent map.
//!
//! Locks: the state lock is held across the disk reads of a lookup, so it must never be taken
//! inside a record transaction (which holds sled's write lock); it is taken before the inbox's
//! memory lock, never after.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use super::StoreError;
use super::corrupt;
use super::keys;
use super::runs::{self, KeyHash, Run, RunWriter, Seen};

/// Recent ids that make a run worth cutting.
pub(super) const CUT: usize = 16 * 1024;
/// Runs of one level merged into one of the next.
const FANOUT: usize = 4;
/// The highest level a merge makes (runs of about `CUT * FANOUT^MAX_LEVEL` ids).
const MAX_LEVEL: u8 = 3;
/// The retention assumed until the first expiry names it.
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// An id remembered in memory, with the journal record that stored it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Recent {
    pub(super) seen: Seen,
    pub(super) seq: u64,
}

/// The ids the journal replay found past the covered sequence number.
pub(super) type Recovered = Vec<(Vec<u8>, Recent)>;

/// What lookups read: the recent ids and the runs (oldest first).
pub(super) struct State {
    recent: HashMap<Vec<u8>, Recent, foldhash::fast::RandomState>,
    runs: Vec<Arc<Run>>,
}

/// The dedupe memory (see the module docs).
pub(super) struct Dedupe {
    tree: sled::Tree,
    hash: KeyHash,
    state: Mutex<State>,
    /// Serializes the changes to the set of runs: cuts, merges, expiry.
    maintenance: Mutex<Maintenance>,
    /// The journal sequence number through which records are durable (set after checkpoints).
    journaled: AtomicU64,
    /// A quarter of the retention: the longest time a merged run may span.
    max_span_ms: AtomicI64,
}

struct Maintenance {
    next_run: u64,
    covered: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Dedupe {
    /// Opens the dedupe tree: its runs (finishing what a crash interrupted) and the sequence
    /// number they cover; the caller replays the journal past it and hands the ids to
    /// [`Dedupe::start`].
    pub(super) fn open(db: &sled::Db) -> Result<(Self, u64), StoreError> {
        let tree = db.open_tree("inbox_dedupe")?;
        let seed = match tree.get(keys::dedupe_seed())? {
            Some(s) => <[u8; 16]>::try_from(s.as_ref()).map_err(|e| corrupt("inbox_dedupe", e))?,
            None => {
                let seed: [u8; 16] = rand::random();
                tree.insert(keys::dedupe_seed(), &seed)?;
                tree.flush()?;
                seed
            }
        };
        let covered = tree
            .get(keys::dedupe_covered())?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let runs = runs::load(&tree)?;
        let next_run = runs.last().map_or(1, |r| r.id + 1);
        let dedupe = Self {
            tree,
            hash: KeyHash::new(&seed),
            state: Mutex::new(State {
                recent: HashMap::default(),
                runs: runs.into_iter().map(Arc::new).collect(),
            }),
            maintenance: Mutex::new(Maintenance { next_run, covered }),
            journaled: AtomicU64::new(0),
            max_span_ms: AtomicI64::new(ms(DEFAULT_TTL) / 4),
        };
        Ok((dedupe, covered))
    }

    /// Takes the ids the journal replay found (all durable through `journaled`) and starts the
    /// dedupe thread.
    pub(super) fn start(
        self,
        recovered: Recovered,
        journaled: u64,
    ) -> Result<DedupeHandle, StoreError> {
        {
            let mut st = lock(&self.state);
            st.recent.extend(recovered);
        }
        self.journaled.store(journaled, Ordering::Release);
        let shared = Arc::new(self);
        let (tx, rx) = mpsc::channel::<()>();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sfsync-dedupe".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    if let Err(e) = worker.maintain(false) {
                        tracing::error!(error = %e, "dedupe runs not written; the recent ids stay in memory");
                    }
                }
            })?;
        Ok(DedupeHandle {
            shared,
            wake: Some(tx),
            thread: Some(thread),
        })
    }

    /// The state lock (see the module docs for its rules).
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// What is remembered of `key`, if anything: the recent map, then each run whose filter may
    /// hold it, on disk.
    pub(super) fn find(&self, st: &State, key: &[u8]) -> Result<Option<Seen>, StoreError> {
        if let Some(r) = st.recent.get(key) {
            return Ok(Some(r.seen));
        }
        let hash = self.hash.of(key);
        for run in st.runs.iter().rev() {
            if run.may_hold(hash) {
                if let Some(seen) = run.find(&self.tree, key)? {
                    return Ok(Some(seen));
                }
            }
        }
        Ok(None)
    }

    /// Remembers a new id, stored by journal record `seq`.
    pub(super) fn remember(st: &mut State, key: Vec<u8>, seen: Seen, seq: u64) {
        st.recent.insert(key, Recent { seen, seq });
    }

    /// Cuts the durable recent ids into a run (if there are [`CUT`] of them, or any when
    /// `force`), then merges what is due.
    pub(super) fn maintain(&self, force: bool) -> Result<(), StoreError> {
        let mut m = lock(&self.maintenance);
        self.cut(&mut m, force)?;
        while self.merge_due(&mut m)? {}
        Ok(())
    }

    fn cut(&self, m: &mut Maintenance, force: bool) -> Result<(), StoreError> {
        let through = self.journaled.load(Ordering::Acquire);
        let mut entries: Vec<(Vec<u8>, Seen)> = {
            let st = self.state();
            st.recent
                .iter()
                .filter(|(_, r)| r.seq <= through)
                .map(|(k, r)| (k.clone(), r.seen))
                .collect()
        };
        if entries.is_empty() || (!force && entries.len() < CUT) {
            return Ok(());
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let id = m.next_run;
        let mut writer = RunWriter::new(id, 0, entries.len() as u64);
        for (key, seen) in &entries {
            writer.push(key, *seen, self.hash.of(key));
        }
        let (mut batch, run) = writer.finish()?;
        let covered = m.covered.max(through);
        batch.insert(keys::dedupe_covered(), &covered.to_be_bytes());
        self.tree.apply_batch(batch)?;
        m.next_run += 1;
        m.covered = covered;
        let mut st = self.state();
        st.runs.push(Arc::new(run));
        for (key, _) in entries {
            st.recent.remove(&key);
        }
        Ok(())
    }

    /// Merges the newest [`FANOUT`] runs if they share a level below [`MAX_LEVEL`] and span
    /// little enough; returns whether it did.
    fn merge_due(&self, m: &mut Maintenance) -> Result<bool, StoreError> {
        let runs = self.state().runs.clone();
        let Some(tail) = runs.len().checked_sub(FANOUT).map(|at| &runs[at..]) else {
            return Ok(false);
        };
        let level = tail[0].level;
        let min = tail.iter().map(|r| r.min_ms).min().unwrap_or(0);
        let max = tail.iter().map(|r| r.max_ms).max().unwrap_or(0);
        if level >= MAX_LEVEL
            || tail.iter().any(|r| r.level != level)
            || max.saturating_sub(min) > self.max_span_ms.load(Ordering::Relaxed)
        {
            return Ok(false);
        }
        self.merge(m, tail, level + 1)?;
        Ok(true)
    }

    /// Writes the union of `inputs` as one run of `level` (newest entry of a key wins), then
    /// swaps it in for them and deletes their chunks.
    fn merge(&self, m: &mut Maintenance, inputs: &[Arc<Run>], level: u8) -> Result<(), StoreError> {
        let id = m.next_run;
        m.next_run += 1;
        self.tree.insert(keys::dedupe_writing(id), &[])?;
        let capacity = inputs.iter().map(|r| r.count).sum();
        let mut writer = RunWriter::new(id, level, capacity);
        let mut sources: Vec<_> = inputs
            .iter()
            .map(|r| r.entries(&self.tree).peekable())
            .collect();
        loop {
            // The smallest key at the head of any source; equal keys are taken together.
            let mut next: Option<(Vec<u8>, Seen)> = None;
            for source in &mut sources {
                if let Some(Err(_)) = source.peek() {
                    if let Some(Err(e)) = source.next() {
                        return Err(e);
                    }
                }
                let Some(Ok((key, seen))) = source.peek() else {
                    continue;
                };
                let better = match &next {
                    None => true,
                    Some((k, s)) => key < k || (key == k && seen.received_ms > s.received_ms),
                };
                if better {
                    next = Some((key.clone(), *seen));
                }
            }
            let Some((key, seen)) = next else { break };
            for source in &mut sources {
                if matches!(source.peek(), Some(Ok((k, _))) if *k == key) {
                    source.next();
                }
            }
            writer.push(&key, seen, self.hash.of(&key));
            if let Some(batch) = writer.full_batch() {
                self.tree.apply_batch(batch)?;
            }
        }
        let (mut batch, run) = writer.finish()?;
        batch.remove(keys::dedupe_writing(id));
        for r in inputs {
            batch.remove(keys::dedupe_run(r.id));
            batch.insert(keys::dedupe_dropping(r.id), &[]);
        }
        self.tree.apply_batch(batch)?;
        self.replace(inputs, run);
        self.delete(inputs)
    }

    /// Puts `run` in place of `gone` in the state, at the place of the first of them.
    fn replace(&self, gone: &[Arc<Run>], run: Run) {
        let mut st = self.state();
        let at = st
            .runs
            .iter()
            .position(|r| gone.iter().any(|g| g.id == r.id))
            .unwrap_or(st.runs.len());
        st.runs.retain(|r| gone.iter().all(|g| g.id != r.id));
        let at = at.min(st.runs.len());
        st.runs.insert(at, Arc::new(run));
    }

    /// Deletes the chunks of runs no longer listed, then their `dropping` markers.
    fn delete(&self, gone: &[Arc<Run>]) -> Result<(), StoreError> {
        for r in gone {
            runs::delete_chunks(&self.tree, r.id)?;
            self.tree.remove(keys::dedupe_dropping(r.id))?;
        }
        Ok(())
    }

    /// Forgets the ids that arrived before `cutoff_ms`, but not `survivors` (ids whose records
    /// are still pending): recent ids one by one, runs whole once their newest id is older; the
    /// survivors among a dropped run's ids are written to a new run (dated `now_ms`) in the same
    /// batch. Returns how many ids were forgotten.
    pub(super) fn expire(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
        ttl: Duration,
        survivors: &HashSet<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        self.max_span_ms.store(ms(ttl) / 4, Ordering::Relaxed);
        let mut m = lock(&self.maintenance);
        let mut forgotten = 0;
        let dropped: Vec<Arc<Run>> = {
            let mut st = self.state();
            let before = st.recent.len();
            st.recent
                .retain(|k, r| r.seen.received_ms >= cutoff_ms || survivors.contains(k));
            forgotten += (before - st.recent.len()) as u64;
            st.runs
                .iter()
                .filter(|r| r.max_ms < cutoff_ms)
                .cloned()
                .collect()
        };
        if dropped.is_empty() {
            return Ok(forgotten);
        }
        let mut carried: Vec<(&Vec<u8>, Seen)> = Vec::new();
        for key in survivors {
            let hash = self.hash.of(key);
            for run in dropped.iter().filter(|r| r.may_hold(hash)) {
                if let Some(seen) = run.find(&self.tree, key)? {
                    carried.push((key, seen));
                    break;
                }
            }
        }
        carried.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut batch = sled::Batch::default();
        let mut carry = None;
        if !carried.is_empty() {
            let id = m.next_run;
            m.next_run += 1;
            let mut writer = RunWriter::new(id, 0, carried.len() as u64);
            for (key, seen) in &carried {
                writer.push(key, *seen, self.hash.of(key));
            }
            writer.set_time(now_ms);
            let (b, run) = writer.finish()?;
            batch = b;
            carry = Some(run);
        }
        for r in &dropped {
            batch.remove(keys::dedupe_run(r.id));
            batch.insert(keys::dedupe_dropping(r.id), &[]);
            forgotten += r.count;
        }
        self.tree.apply_batch(batch)?;
        forgotten = forgotten.saturating_sub(carried.len() as u64);
        {
            // One lock for both, so no lookup sees the survivors in neither place.
            let mut st = self.state();
            st.runs.retain(|r| dropped.iter().all(|d| d.id != r.id));
            st.runs.extend(carry.map(Arc::new));
        }
        self.delete(&dropped)?;
        Ok(forgotten)
    }

    /// How many runs there are, and how many ids wait in the recent map.
    pub(super) fn sizes(&self) -> (usize, usize) {
        let st = self.state();
        (st.runs.len(), st.recent.len())
    }

    #[cfg(test)]
    pub(super) fn fill_filters_for_test(&self) {
        let mut st = self.state();
        for run in &mut st.runs {
            if let Some(r) = Arc::get_mut(run) {
                r.fill_filter_for_test();
            }
        }
    }
}

/// The dedupe memory with its thread; dropping it stops the thread.
pub(super) struct DedupeHandle {
    shared: Arc<Dedupe>,
    wake: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for DedupeHandle {
    type Target = Dedupe;

    fn deref(&self) -> &Dedupe {
        &self.shared
    }
}

impl DedupeHandle {
    /// Records that the journal is durable through `seq` (after a checkpoint) and wakes the
    /// dedupe thread.
    pub(super) fn journaled_through(&self, seq: u64) {
        self.shared.journaled.fetch_max(seq, Ordering::AcqRel);
        if let Some(tx) = &self.wake {
            let _ = tx.send(());
        }
    }
}

impl Drop for DedupeHandle {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone as _, Utc};

    use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
    use crate::store::{DedupeSource, Delivery, Store};

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    fn id(n: u64) -> String {
        SalesforceId::mint("04l", "T", n).to_string()
    }

    fn delivery(n: u64, record: Option<u64>) -> Delivery {
        Delivery {
            dedupe_id: id(n),
            source: DedupeSource::OutboundNotification,
            notifications: record
                .map(|r| Notification {
                    object: ObjectType::Contact,
                    record_id: SalesforceId::mint("003", "T", r),
                    change: ChangeType::Update,
                    system_modstamp: None,
                    modified_by: None,
                })
                .into_iter()
                .collect(),
            resync: vec![],
            digest: None,
        }
    }

    fn seen(store: &Store, n: u64) -> bool {
        store
            .has_seen(&org(), DedupeSource::OutboundNotification, &id(n))
            .expect("has_seen")
    }

    fn ingest(store: &Store, ids: std::ops::Range<u64>, at: chrono::DateTime<Utc>) -> u64 {
        let msg: Vec<_> = ids.map(|n| delivery(n, None)).collect();
        store.ingest(&org(), &msg, at).expect("ingest").accepted
    }

    #[test]
    fn a_filter_false_positive_is_resolved_by_the_run_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(ingest(&store, 0..100, Utc::now()), 100);
        assert_eq!(
            store.settle_dedupe().expect("settle"),
            (1, 0),
            "one run, none in memory"
        );
        // Real filters: ids never sent are not seen (a false positive is read on disk).
        assert!((1_000..3_000).all(|n| !seen(&store, n)));
        // Filters that answer "maybe" to everything: every answer now comes from the disk.
        store.inner.inbox.dedupe.fill_filters_for_test();
        assert!((0..100).all(|n| seen(&store, n)));
        assert!((100..1_000).all(|n| !seen(&store, n)));
        assert_eq!(
            ingest(&store, 50..150, Utc::now()),
            50,
            "only the new half is new"
        );
    }

    #[test]
    fn a_duplicate_is_recognised_after_a_reopen_from_a_run_or_from_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            ingest(&store, 0..10, Utc::now());
            store.settle_dedupe().expect("settle");
            // Durable in the journal, not yet cut into a run.
            ingest(&store, 10..20, Utc::now());
        }
        for _ in 0..2 {
            let store = Store::open(dir.path()).expect("reopen");
            assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 10));
            assert!((0..20).all(|n| seen(&store, n)));
            assert!(!seen(&store, 20));
            let again = store
                .ingest(&org(), &[delivery(3, None), delivery(13, None)], Utc::now())
                .expect("ingest");
            assert_eq!((again.accepted, again.duplicates), (0, 2));
        }
    }

    #[test]
    fn runs_merge_in_fours_and_every_id_stays_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for batch in 0..4u64 {
                ingest(&store, batch * 50..batch * 50 + 50, Utc::now());
                let (runs, recent) = store.settle_dedupe().expect("settle");
                assert_eq!(recent, 0);
                assert_eq!(runs, if batch < 3 { batch as usize + 1 } else { 1 });
            }
            assert!((0..200).all(|n| seen(&store, n)));
            let tree = &store.inner.inbox.dedupe.tree;
            let mut chunk_runs: Vec<u64> = tree
                .scan_prefix(b"R")
                .keys()
                .map(|k| super::keys::dedupe_run_id(&k.expect("key")).expect("run"))
                .collect();
            chunk_runs.dedup();
            assert_eq!(chunk_runs.len(), 1, "the merged runs' chunks are deleted");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 0));
        assert!((0..200).all(|n| seen(&store, n)));
    }

    #[test]
    fn expiry_drops_old_runs_but_carries_the_ids_of_pending_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = Utc.timestamp_opt(1_700_000_000, 0).single().expect("t0");
        let ttl = Duration::from_secs(7 * 24 * 3600);
        let after = |t: chrono::DateTime<Utc>| {
            t + chrono::Duration::from_std(ttl).expect("ttl") + chrono::Duration::milliseconds(1)
        };
        {
            let store = Store::open(dir.path()).expect("open");
            // Id 1's message names a record that stays pending; ids 2..10 name none.
            store
                .ingest(&org(), &[delivery(1, Some(1))], t0)
                .expect("ingest");
            ingest(&store, 2..10, t0);
            store.settle_dedupe().expect("settle");
            assert_eq!(
                store
                    .expire_dedupe(t0 + chrono::Duration::days(7), ttl)
                    .expect("expire"),
                0
            );
            assert_eq!(store.expire_dedupe(after(t0), ttl).expect("expire"), 8);
            assert!(seen(&store, 1) && !seen(&store, 2));
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert!(seen(&store, 1), "carried into a run of its own");
        assert!(!seen(&store, 2));
        let record = SalesforceId::mint("003", "T", 1);
        store
            .atomically(|tx| tx.clear_pending(&org(), ObjectType::Contact, &record))
            .expect("clear");
        // The carried run is dated at the first expiry, and lives a full ttl from there.
        assert_eq!(store.expire_dedupe(after(t0), ttl).expect("expire"), 0);
        assert_eq!(
            store.expire_dedupe(after(after(t0)), ttl).expect("expire"),
            1
        );
        assert!(!seen(&store, 1));
    }

    #[test]
    fn a_merge_or_a_drop_cut_short_by_a_crash_is_finished_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            ingest(&store, 0..10, Utc::now());
            store.settle_dedupe().expect("settle");
            let tree = &store.inner.inbox.dedupe.tree;
            // A merge that wrote a chunk of run 90 and stopped; a drop of run 91 whose meta is
            // gone but not its chunks.
            tree.insert(super::keys::dedupe_writing(90), &[])
                .expect("marker");
            tree.insert(super::keys::dedupe_chunk(90, b"x"), &[])
                .expect("chunk");
            tree.insert(super::keys::dedupe_dropping(91), &[])
                .expect("marker");
            tree.insert(super::keys::dedupe_chunk(91, b"y"), &[])
                .expect("chunk");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let tree = &store.inner.inbox.dedupe.tree;
        for key in [b"P".as_slice(), b"D"] {
            assert_eq!(tree.scan_prefix(key).count(), 0, "markers finished");
        }
        assert!(
            tree.scan_prefix(super::keys::dedupe_chunks(90))
                .next()
                .is_none()
        );
        assert!(
            tree.scan_prefix(super::keys::dedupe_chunks(91))
                .next()
                .is_none()
        );
        assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 0));
        assert!((0..10).all(|n| seen(&store, n)));
    }

    #[test]
    fn a_replayed_signed_id_with_another_body_is_a_duplicate_counted_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signed = |digest: u64| Delivery {
            dedupe_id: "msg_replayed_1".into(),
            source: DedupeSource::WebhookId,
            notifications: vec![],
            resync: vec![],
            digest: Some(digest),
        };
        let first = Delivery::digest_of(b"{\"a\":1}");
        let other = Delivery::digest_of(b"{\"a\":2}");
        assert_ne!(first, other);
        let check = |store: &Store, digest: u64, replayed: u64| {
            let out = store
                .ingest(&org(), &[signed(digest)], Utc::now())
                .expect("ingest");
            assert_eq!(
                (out.accepted, out.duplicates, out.replayed_different),
                (0, 1, replayed)
            );
        };
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(
                store
                    .ingest(&org(), &[signed(first)], Utc::now())
                    .expect("ingest")
                    .accepted,
                1
            );
            check(&store, first, 0);
            check(&store, other, 1);
        }
        {
            // From the journal after a reopen, then from a run.
            let store = Store::open(dir.path()).expect("reopen");
            check(&store, other, 1);
            store.settle_dedupe().expect("settle");
            check(&store, first, 0);
            check(&store, other, 1);
        }
    }
}
