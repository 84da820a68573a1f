//! Test builds only: a tap on the store's file writes and syncs, for the crash-state test
//! (`crash_states`).
//!
//! The inbox log reports each segment it creates (zero-filled, synced, directory synced) or
//! makes of a spare (renamed, directory synced), each write, each `fdatasync` and each segment
//! it retires (renamed to a spare or unlinked); the durability points (sled's flush followed by the
//! `fsync` of its data file) report sled's files as they stand right after that `fsync`, and the
//! page-cache advice that follows it reports the range it dropped. sled
//! does its own file I/O, so its writes between those points are not seen one by one. Only a
//! store whose directory a test registered is recorded; every other store pays one lookup.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// sled's files (every file of the store directory outside the inbox log): relative path and
/// contents.
pub(super) type Files = Vec<(PathBuf, Vec<u8>)>;

/// One thing that happened to the store's files, or that the test saw acknowledged.
#[derive(Debug)]
pub(super) enum Event {
    /// A segment exists, zero-filled to `size`, its data and its directory entry synced.
    Created { segment: u64, size: u64 },
    /// Bytes handed to the kernel at `offset` of a segment, not yet synced.
    Wrote {
        segment: u64,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// `fdatasync` of a segment returned: everything written to it is durable.
    Synced { segment: u64 },
    /// The spare that was segment `from` became segment `segment`, its old bytes in place, its
    /// new name and the directory synced.
    Reused { from: u64, segment: u64 },
    /// A segment was retired: renamed to a spare or unlinked. The directory was not synced, so
    /// a power loss may undo it.
    Retired { segment: u64 },
    /// sled's files right after sled's flush and the `fsync` of its data file.
    Sled(Arc<Files>),
    /// The kernel accepted the advice to drop `len` bytes of sled's data file from `from` out
    /// of the page cache.
    Evicted { from: u64, len: u64 },
    /// Notifications the test saw acknowledged (by number).
    Acked(Vec<u64>),
    /// Records whose pending entry the test saw cleared and made durable (by number).
    Applied(Vec<u64>),
    /// Outbox entries the test saw committed and made durable (by id).
    Committed(Vec<u64>),
}

type Log = Arc<Mutex<Vec<Event>>>;

static TAPS: Mutex<Vec<(PathBuf, Log)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A registration: every file event under `root` is recorded until it is dropped.
pub(super) struct Tap {
    root: PathBuf,
    log: Log,
}

impl Tap {
    pub(super) fn register(root: &Path) -> Self {
        let log = Log::default();
        lock(&TAPS).push((root.to_path_buf(), log.clone()));
        Self {
            root: root.to_path_buf(),
            log,
        }
    }

    /// Records what the test saw (an acknowledgement, a commit).
    pub(super) fn push(&self, event: Event) {
        lock(&self.log).push(event);
    }

    /// Everything recorded so far.
    pub(super) fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.log))
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        lock(&TAPS).retain(|(root, _)| *root != self.root);
    }
}

/// Records `event()` if `path` is under a registered root (built only then).
fn record(path: &Path, event: impl FnOnce() -> Event) {
    let taps = lock(&TAPS);
    if let Some((_, log)) = taps.iter().find(|(root, _)| path.starts_with(root)) {
        lock(log).push(event());
    }
}

pub(super) fn created(dir: &Path, segment: u64, size: u64) {
    record(dir, || Event::Created { segment, size });
}

pub(super) fn wrote(dir: &Path, segment: u64, offset: u64, bytes: &[u8]) {
    record(dir, || Event::Wrote {
        segment,
        offset,
        bytes: bytes.to_vec(),
    });
}

pub(super) fn synced(dir: &Path, segment: u64) {
    record(dir, || Event::Synced { segment });
}

pub(super) fn reused(dir: &Path, from: u64, segment: u64) {
    record(dir, || Event::Reused { from, segment });
}

pub(super) fn retired(dir: &Path, segment: u64) {
    record(dir, || Event::Retired { segment });
}

/// sled's files in `dir` were just made durable.
pub(super) fn sled_durable(dir: &Path) {
    record(dir, || {
        let mut files = Files::new();
        read_sled_files(dir, Path::new(""), &mut files);
        Event::Sled(Arc::new(files))
    });
}

/// `len` bytes of sled's data file in `dir`, from `from`, were dropped from the page cache.
pub(super) fn evicted(dir: &Path, from: u64, len: u64) {
    record(dir, || Event::Evicted { from, len });
}

/// Every file under `dir` except the inbox log; a file that vanishes while being read (sled
/// removing an old snapshot) is left out, as a power loss could leave it.
fn read_sled_files(dir: &Path, rel: &Path, out: &mut Files) {
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = rel.join(entry.file_name());
        if name == Path::new("inbox-log") {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => read_sled_files(dir, &name, out),
            Ok(t) if t.is_file() => {
                if let Ok(bytes) = std::fs::read(dir.join(&name)) {
                    out.push((name, bytes));
                }
            }
            _ => {}
        }
    }
}
