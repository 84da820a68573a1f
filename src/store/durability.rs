//! Group commit: callers that need their writes on disk wait on one shared flush.
//!
//! sled 0.34's `flush()` ends in `sync_file_range`, which does not write file metadata and
//! promises nothing after a crash (reliability.md 0.1); sled's own `fsync` runs only every
//! 500 ms. So each round here is `flush()` followed by `fsync` (`File::sync_all`) of the data file.
//! One committer thread runs rounds back to back; every waiter that arrived before a round began
//! is answered by that round.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The committer thread's handle.
pub(super) struct GroupCommit {
    tx: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for GroupCommit {
    /// Stops the committer and waits for it, so the store's files are released when the last
    /// handle goes (a reopen in the same process then finds them unlocked).
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    completed: AtomicU64,
    fail: AtomicBool,
    delay_ms: AtomicU64,
}

/// The file sled keeps its log and pages in.
fn data_file(dir: &Path) -> std::io::Result<File> {
    File::open(dir.join("db"))
}

/// `fsync` of sled's data file and of its directory.
pub(super) fn fsync_data_file(dir: &Path) -> std::io::Result<()> {
    data_file(dir)?.sync_all()?;
    File::open(dir)?.sync_all()
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let file = data_file(dir)?;
        let dir_handle = File::open(dir)?;
        // Make the files' existence itself durable once.
        dir_handle.sync_all()?;
        let (tx, rx) = mpsc::channel::<Waiter>();
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sfsync-commit".into())
            .spawn(move || run(&db, &file, &rx, &thread_shared))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            shared,
        })
    }

    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .and_then(|s| s.send(tx).ok())
            .ok_or_else(|| StoreError::Flush("committer stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Flush(e)),
            Err(_) => Err(StoreError::Flush("committer stopped".into())),
        }
    }

    pub(super) fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    pub(super) fn inject_failure(&self, fail: bool) {
        self.shared.fail.store(fail, Ordering::Release);
    }

    pub(super) fn inject_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::Release);
    }
}

fn run(db: &sled::Db, file: &File, rx: &mpsc::Receiver<Waiter>, shared: &Shared) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let delay = shared.delay_ms.load(Ordering::Acquire);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let result = if shared.fail.load(Ordering::Acquire) {
            Err("flush failure injected".to_string())
        } else {
            db.flush()
                .map_err(|e| e.to_string())
                .and_then(|_| file.sync_all().map_err(|e| e.to_string()))
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = batch.len(), "store flush failed");
        } else {
            shared.completed.fetch_add(1, Ordering::AcqRel);
        }
        for w in batch {
            let _ = w.send(result.clone());
        }
    }
}
