//! Group commit: callers that need their writes on disk wait on one shared flush.
//!
//! sled 0.34's `flush()` ends in `sync_file_range`, which does not write file metadata and
//! promises nothing after a crash (reliability.md 0.1); sled's own `fsync` runs only every
//! 500 ms. So each round here is `flush()` followed by `fsync` (`File::sync_all`) of the data file.
//!
//! Two threads share the work:
//! - the writer (`sfsync-inbox`) takes every request waiting and stores the messages among them
//!   as one round (`Inbox::ingest_round`: one journal insert per org), then hands the round's
//!   answers to the syncer and starts on the next round at once. One writer keeps sled's hot
//!   leaf and the inbox memory on one thread instead of contending for them.
//! - the syncer (`sfsync-commit`) runs `flush()` + `fsync` for every round handed over since its
//!   last one, then answers their waiters: nobody is answered before a flush that began after
//!   their write, and the next round is written while this one is on its way to disk.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::inbox::{Inbox, IngestRequest};
use super::{IngestOutcome, StoreError};

/// What the committer is asked for.
enum Request {
    /// Wait for the next flush.
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Store a message in the next round, then answer after its flush.
    Ingest(
        IngestRequest,
        oneshot::Sender<Result<IngestOutcome, StoreError>>,
    ),
}

/// The writer's and the syncer's handle.
pub(super) struct GroupCommit {
    tx: Option<mpsc::Sender<Request>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for GroupCommit {
    /// Stops both threads and waits for them (the writer stops first and the syncer follows when
    /// the writer's channel closes), so the store's files are released when the last handle goes
    /// and a reopen in the same process finds them unlocked.
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Shared {
    completed: AtomicU64,
    /// Time spent in each part of the rounds, in nanoseconds: inbox writes, sled flush, fsync.
    spent_ns: [AtomicU64; 3],
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
    pub(super) fn start(db: sled::Db, inbox: Arc<Inbox>, dir: &Path) -> Result<Self, StoreError> {
        let file = data_file(dir)?;
        let dir_handle = File::open(dir)?;
        // Make the files' existence itself durable once.
        dir_handle.sync_all()?;
        let (tx, rx) = mpsc::channel::<Request>();
        let (written_tx, written_rx) = mpsc::channel::<Written>();
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            spent_ns: Default::default(),
            fail: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("sfsync-inbox".into())
            .spawn(move || write_rounds(&inbox, &rx, &written_tx, &writer_shared))?;
        let syncer_shared = shared.clone();
        let syncer = std::thread::Builder::new()
            .name("sfsync-commit".into())
            .spawn(move || sync_rounds(&db, &file, &written_rx, &syncer_shared))?;
        Ok(Self {
            tx: Some(tx),
            threads: vec![writer, syncer],
            shared,
        })
    }

    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Flush(tx))?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Stores a message in the next round and waits for that round's flush.
    pub(super) async fn ingest(&self, request: IngestRequest) -> Result<IngestOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Ingest(request, tx))?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .and_then(|s| s.send(request).ok())
            .ok_or_else(stopped)
    }

    pub(super) fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    /// Time the rounds have spent so far writing the inbox, in sled's flush and in `fsync`.
    pub(super) fn time_spent(&self) -> [std::time::Duration; 3] {
        self.shared
            .spent_ns
            .each_ref()
            .map(|ns| std::time::Duration::from_nanos(ns.load(Ordering::Relaxed)))
    }

    pub(super) fn inject_failure(&self, fail: bool) {
        self.shared.fail.store(fail, Ordering::Release);
    }

    pub(super) fn inject_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::Release);
    }
}

impl Shared {
    fn spend(&self, part: usize, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent_ns[part].fetch_add(ns, Ordering::Relaxed);
    }
}

fn stopped() -> StoreError {
    StoreError::Flush("committer stopped".into())
}

/// What the writer hands the syncer: the answers of one round, sent once a flush that began after
/// the round's writes has reached the disk.
struct Written {
    flushes: Vec<oneshot::Sender<Result<(), StoreError>>>,
    replies: Vec<(
        oneshot::Sender<Result<IngestOutcome, StoreError>>,
        IngestOutcome,
    )>,
}

/// The writer: stores every message waiting, in one round, then hands the round's answers to the
/// syncer and goes on with the next round while that one is on its way to disk.
fn write_rounds(
    inbox: &Inbox,
    rx: &mpsc::Receiver<Request>,
    synced: &mpsc::Sender<Written>,
    shared: &Shared,
) {
    while let Ok(first) = rx.recv() {
        let mut flushes = Vec::new();
        let mut ingests = Vec::new();
        let mut replies = Vec::new();
        for request in std::iter::once(first).chain(rx.try_iter()) {
            match request {
                Request::Flush(tx) => flushes.push(tx),
                Request::Ingest(req, tx) => {
                    ingests.push(req);
                    replies.push(tx);
                }
            }
        }
        let t = Instant::now();
        let stored = if ingests.is_empty() {
            Ok(Vec::new())
        } else {
            inbox.ingest_round(&ingests)
        };
        shared.spend(0, t);
        drop(ingests);
        let replies = match stored {
            Ok(outcomes) => replies.into_iter().zip(outcomes).collect(),
            Err(e) => {
                let e = e.to_string();
                tracing::error!(error = %e, messages = replies.len(), "store write failed; the round's messages are refused");
                for tx in replies {
                    let _ = tx.send(Err(StoreError::Write(e.clone())));
                }
                Vec::new()
            }
        };
        if synced.send(Written { flushes, replies }).is_err() {
            return;
        }
    }
}

/// The syncer: one flush and `fsync` for every round written since its last one.
fn sync_rounds(db: &sled::Db, file: &File, rx: &mpsc::Receiver<Written>, shared: &Shared) {
    while let Ok(first) = rx.recv() {
        let rounds: Vec<Written> = std::iter::once(first).chain(rx.try_iter()).collect();
        let delay = shared.delay_ms.load(Ordering::Acquire);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let result = if shared.fail.load(Ordering::Acquire) {
            Err("flush failure injected".to_string())
        } else {
            let t = Instant::now();
            let flushed = db.flush();
            shared.spend(1, t);
            let t = Instant::now();
            let synced = flushed
                .map_err(|e| e.to_string())
                .and_then(|_| file.sync_all().map_err(|e| e.to_string()));
            shared.spend(2, t);
            synced
        };
        let waiters: usize = rounds
            .iter()
            .map(|r| r.flushes.len() + r.replies.len())
            .sum();
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters, "store flush failed");
        } else {
            shared.completed.fetch_add(1, Ordering::AcqRel);
        }
        for round in rounds {
            for tx in round.flushes {
                let _ = tx.send(result.clone().map_err(StoreError::Flush));
            }
            for (tx, outcome) in round.replies {
                let _ = tx.send(result.clone().map(|()| outcome).map_err(StoreError::Flush));
            }
        }
    }
}
