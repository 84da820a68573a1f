//! The dedupe memory: every delivery id of the retention window, on disk, with a compact filter
//! in memory, so that memory does not grow with the window.
//!
//! An id is first remembered in the recent map (in memory) when its message is staged. Once its
//! journal record is durable (a checkpoint), the dedupe thread (`sfsync-dedupe`) cuts the recent
//! ids into a run: a sorted, immutable file with a Bloom filter and a sparse index in memory (see
//! `runs`), which records the journal sequence number it covers. Runs of one level are merged in
//! fours, up to [`MAX_LEVEL`], while the merged run spans at most a quarter of the retention;
//! expiry drops whole runs whose newest id is older than the retention.
//!
//! A lookup reads the recent map, then the filter of every run, and the disk only for a run whose
//! filter says "maybe": a filter's false positive costs one read, never a wrong answer. At open
//! the runs' filters are read back, and the journal records past the covered sequence number
//! (those not yet cut) refill the recent map.
//!
//! Locks: the state lock is held across the disk reads of a lookup, so it must never be taken
//! inside a record transaction (which holds sled's write lock); it is taken before the inbox's
//! memory lock, never after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use super::StoreError;
use super::compact::Compactor;
use super::corrupt;
use super::keys;
use super::runs::{self, KeyHash, Run, RunWriter, Seen};
use super::runs_legacy;

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
    /// The filters' seed and the covered sequence number.
    tree: sled::Tree,
    /// The run files.
    dir: PathBuf,
    hash: KeyHash,
    state: Mutex<State>,
    /// Serializes the changes to the set of runs: cuts, merges, expiry.
    maintenance: Mutex<Maintenance>,
    /// The journal sequence number through which records are durable (set after checkpoints).
    journaled: AtomicU64,
    /// A quarter of the retention: the longest time a merged run may span.
    max_span_ms: AtomicI64,
    /// Compacts the inbox journal once runs cover it (set by [`Dedupe::start`]).
    compactor: Mutex<Option<Compactor>>,
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
    pub(super) fn open(db: &sled::Db, dir: &Path) -> Result<(Self, u64), StoreError> {
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
        let hash = KeyHash::new(&seed);
        std::fs::create_dir_all(dir)?;
        runs_legacy::migrate(&tree, dir, &hash)?;
        let runs = runs::load(dir)?;
        let covered = tree
            .get(keys::dedupe_covered())?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
            .max(runs.iter().map(|r| r.covered).max().unwrap_or(0));
        let next_run = runs.iter().map(|r| r.id + 1).max().unwrap_or(1);
        let dedupe = Self {
            tree,
            dir: dir.to_path_buf(),
            hash,
            state: Mutex::new(State {
                recent: HashMap::default(),
                runs: runs.into_iter().map(Arc::new).collect(),
            }),
            maintenance: Mutex::new(Maintenance { next_run, covered }),
            journaled: AtomicU64::new(0),
            max_span_ms: AtomicI64::new(ms(DEFAULT_TTL) / 4),
            compactor: Mutex::new(None),
        };
        Ok((dedupe, covered))
    }

    /// Takes the ids the journal replay found (all durable through `journaled`) and starts the
    /// dedupe thread.
    pub(super) fn start(
        self,
        recovered: Recovered,
        journaled: u64,
        compactor: Compactor,
    ) -> Result<DedupeHandle, StoreError> {
        *lock(&self.compactor) = Some(compactor);
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
                if let Some(seen) = run.find(key)? {
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
    /// `force`), merges what is due, then lets the compactor shrink the journal the runs cover.
    pub(super) fn maintain(&self, force: bool) -> Result<(), StoreError> {
        let mut m = lock(&self.maintenance);
        let cut = self.cut(&mut m, force)?;
        while self.merge_due(&mut m)? {}
        if cut || force {
            if let Some(c) = lock(&self.compactor).as_mut() {
                c.after_cut(m.covered, force)?;
            }
        }
        Ok(())
    }

    /// Cuts a run of the durable recent ids; returns whether it did.
    fn cut(&self, m: &mut Maintenance, force: bool) -> Result<bool, StoreError> {
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
            return Ok(false);
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let id = m.next_run;
        m.next_run += 1;
        let covered = m.covered.max(through);
        let mut writer = RunWriter::new(&self.dir, id, 0, entries.len() as u64)?;
        for (key, seen) in &entries {
            writer.push(key, *seen, self.hash.of(key))?;
        }
        writer.set_covered(covered);
        let run = writer.finish()?;
        self.tree
            .insert(keys::dedupe_covered(), &covered.to_be_bytes())?;
        m.covered = covered;
        let mut st = self.state();
        st.runs.push(Arc::new(run));
        for (key, _) in entries {
            st.recent.remove(&key);
        }
        // A burst leaves the map's table at its peak size: give it back.
        let keep = st.recent.len().max(CUT) * 2;
        if st.recent.capacity() > keep * 2 {
            st.recent.shrink_to(keep);
        }
        Ok(true)
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
    /// swaps it in for them and deletes their files.
    fn merge(&self, m: &mut Maintenance, inputs: &[Arc<Run>], level: u8) -> Result<(), StoreError> {
        let id = m.next_run;
        m.next_run += 1;
        let capacity = inputs.iter().map(|r| r.count).sum();
        let mut writer = RunWriter::new(&self.dir, id, level, capacity)?;
        let rank = inputs.iter().map(|r| r.rank).min().unwrap_or(id);
        writer.replacing(rank, inputs.iter().map(|r| r.id).collect());
        writer.set_covered(inputs.iter().map(|r| r.covered).max().unwrap_or(0));
        let mut sources: Vec<_> = inputs.iter().map(|r| r.entries().peekable()).collect();
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
            writer.push(&key, seen, self.hash.of(&key))?;
        }
        let run = writer.finish()?;
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

    /// Deletes the files of runs no longer listed, and makes that durable: a run a crash left
    /// behind would otherwise come back at open (harmless, ids found twice, but never merged).
    fn delete(&self, gone: &[Arc<Run>]) -> Result<(), StoreError> {
        for r in gone {
            r.remove_file()?;
        }
        runs::sync_dir(&self.dir)
    }

    /// Forgets the ids that arrived before `cutoff_ms`: recent ids one by one, runs whole once
    /// their newest id is older (so an id is remembered for the retention and at most a quarter
    /// longer). A record still pending keeps its pending entry; a redelivery of a forgotten id
    /// folds into it again. Returns how many ids were forgotten.
    pub(super) fn expire(&self, cutoff_ms: i64, ttl: Duration) -> Result<u64, StoreError> {
        self.max_span_ms.store(ms(ttl) / 4, Ordering::Relaxed);
        let _m = lock(&self.maintenance);
        let mut forgotten = 0;
        let dropped: Vec<Arc<Run>> = {
            let mut st = self.state();
            let before = st.recent.len();
            st.recent.retain(|_, r| r.seen.received_ms >= cutoff_ms);
            forgotten += (before - st.recent.len()) as u64;
            let (dropped, kept) = std::mem::take(&mut st.runs)
                .into_iter()
                .partition(|r| r.max_ms < cutoff_ms);
            st.runs = kept;
            dropped
        };
        forgotten += dropped.iter().map(|r| r.count).sum::<u64>();
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
mod tests;
