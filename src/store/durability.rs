//! Group commit: callers that need their writes on disk wait on one shared sync.
//!
//! The acknowledgement path (see `inbox` and `wal`): a webhook handler stages its message's
//! journal record in memory and asks the committer thread (`sfsync-commit`) to sync through it.
//! The committer takes every request waiting and every record staged, writes them to the inbox
//! log and `fdatasync`s it, and only then answers: nobody is answered before a sync that began
//! after their record was staged. The records reach sled's journal tree at the next checkpoint. Under load (the
//! last round had more than one waiter) it first lingers [`LINGER`] so that each sync covers
//! more messages.
//!
//! Everything else sled holds is made durable by sled's `flush()` followed by `fsync`
//! (`File::sync_all`) of its data file: sled 0.34's `flush()` ends in `sync_file_range`, which
//! does not write file metadata and promises nothing after a crash, and its
//! own `fsync` runs only every 500 ms. [`GroupCommit::wait`] asks for that (and a log sync), and
//! so does a message that also wrote a re-read request. The committer also runs it as the
//! checkpoint, every [`CHECKPOINT_EVERY`] or [`CHECKPOINT_BYTES`] of log: then the journal tree
//! is durable in sled and the log segments before the current one are deleted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;
use super::disk::{self, data_file};
use super::inbox::Inbox;
use super::wal::Wal;

/// How long the committer waits for more messages before a sync when the last one had several.
pub(super) const LINGER: Duration = Duration::from_micros(200);
/// How often the journal tree is made durable in sled and old log segments are deleted.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How much log makes a checkpoint due sooner.
pub(super) const CHECKPOINT_BYTES: usize = 1 << 20;

/// Where an answer goes.
enum Reply {
    Async(oneshot::Sender<Result<(), StoreError>>),
    Blocking(mpsc::SyncSender<Result<(), StoreError>>),
}

/// A request to the committer: sync the log through what is staged (and sled too if `sled`),
/// then answer.
struct Request {
    sled: bool,
    reply: Reply,
}

/// The committer's handle.
pub(super) struct GroupCommit {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for GroupCommit {
    /// Stops the committer, which syncs what is staged and checkpoints everything first, and
    /// waits for it, so the store's files are released when the last handle goes and a reopen
    /// in the same process finds them unlocked.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Shared {
    completed: AtomicU64,
    /// Time spent, in nanoseconds: log write and `fdatasync`, copying into the journal tree,
    /// sled flush and `fsync` (checkpoints and full flushes).
    spent_ns: [AtomicU64; 3],
    checkpoints: AtomicU64,
    fail: AtomicBool,
    delay_ms: AtomicU64,
}

impl GroupCommit {
    pub(super) fn start(
        db: sled::Db,
        inbox: Arc<Inbox>,
        wal: Wal,
        dir: &Path,
    ) -> Result<Self, StoreError> {
        let file = data_file(dir)?;
        // Make the files' existence itself durable once.
        File::open(dir)?.sync_all()?;
        let (tx, rx) = mpsc::channel::<Request>();
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            spent_ns: Default::default(),
            checkpoints: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
        });
        let mut committer = Committer {
            inbox,
            db,
            file,
            dir: dir.to_path_buf(),
            wal,
            shared: shared.clone(),
            checkpoint: Checkpoint {
                uncopied: Vec::new(),
                since: None,
                segment: None,
                failed: false,
                copied_through: 0,
            },
        };
        let thread = std::thread::Builder::new()
            .name("sfsync-commit".into())
            .spawn(move || committer.run(&rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            shared,
        })
    }

    /// Waits until everything written before the call is durable: the inbox log and sled.
    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        self.sync(true).await
    }

    /// Waits until everything staged before the call is synced to the log (the committer takes
    /// the staged records only after it has the request), and sled is flushed too when `sled`.
    pub(super) async fn sync(&self, sled: bool) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request {
            sled,
            reply: Reply::Async(tx),
        })?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// [`GroupCommit::sync`], blocking the calling thread.
    pub(super) fn sync_blocking(&self, sled: bool) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request {
            sled,
            reply: Reply::Blocking(tx),
        })?;
        rx.recv().unwrap_or_else(|_| Err(stopped()))
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

    pub(super) fn checkpoints(&self) -> u64 {
        self.shared.checkpoints.load(Ordering::Acquire)
    }

    /// Time spent so far: log write and `fdatasync`, journal copies, sled flush and `fsync`.
    pub(super) fn time_spent(&self) -> [Duration; 3] {
        self.shared
            .spent_ns
            .each_ref()
            .map(|ns| Duration::from_nanos(ns.load(Ordering::Relaxed)))
    }

    pub(super) fn inject_failure(&self, fail: bool) {
        self.shared.fail.store(fail, Ordering::Release);
    }

    pub(super) fn inject_delay(&self, delay: Duration) {
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

/// What the next checkpoint has to cover.
struct Checkpoint {
    /// Synced log frames not yet copied into the journal tree.
    uncopied: Vec<u8>,
    /// When the oldest of them was synced.
    since: Option<Instant>,
    /// The newest log segment synced to.
    segment: Option<u64>,
    /// A checkpoint failed: the log keeps every segment until the next open replays them.
    failed: bool,
    /// The highest journal sequence number copied into the journal tree.
    copied_through: u64,
}

/// The committer thread's state.
struct Committer {
    inbox: Arc<Inbox>,
    db: sled::Db,
    file: File,
    dir: PathBuf,
    wal: Wal,
    shared: Arc<Shared>,
    checkpoint: Checkpoint,
}

impl Committer {
    fn run(&mut self, rx: &mpsc::Receiver<Request>) {
        if let Err(e) = self.wal.prepare() {
            // The first sync tries again, and answers with the error if it fails too.
            tracing::warn!(error = %e, "inbox log segment not created");
        }
        let mut last_round = 0;
        loop {
            let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: no reason to linger before the next sync.
                    last_round = 0;
                    self.maybe_checkpoint(true);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if last_round > 1 {
                std::thread::sleep(LINGER);
            }
            let requests: Vec<Request> = std::iter::once(first).chain(rx.try_iter()).collect();
            last_round = requests.len();
            let delay = self.shared.delay_ms.load(Ordering::Acquire);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            let sled = requests.iter().any(|r| r.sled);
            let result = if self.shared.fail.load(Ordering::Acquire) {
                // As if the disk refused: what is staged stays staged for the next round.
                Err("flush failure injected".to_string())
            } else {
                self.commit(sled)
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, waiters = requests.len(), "store sync failed");
            } else {
                self.shared.completed.fetch_add(1, Ordering::AcqRel);
            }
            for request in requests {
                let answer = result.clone().map_err(StoreError::Flush);
                match request.reply {
                    Reply::Async(tx) => {
                        let _ = tx.send(answer);
                    }
                    Reply::Blocking(tx) => {
                        let _ = tx.send(answer);
                    }
                }
            }
            self.maybe_checkpoint(false);
        }
        // Closing: make what is still staged durable and checkpoint all of it, so the next open
        // has no log to replay.
        if let Err(e) = self.commit(true) {
            tracing::error!(error = %e, "store sync at close failed");
        }
        self.maybe_checkpoint(true);
        if let Some(segment) = self.checkpoint.segment.filter(|_| !self.checkpoint.failed) {
            if let Err(e) = self.wal.delete_through(segment, true) {
                tracing::warn!(error = %e, "inbox log segments not deleted at close");
            }
        }
    }

    /// One round: the staged records to the log (write + `fdatasync`); then, if asked, a
    /// checkpoint, which makes sled durable too.
    fn commit(&mut self, sled: bool) -> Result<(), String> {
        self.wal.append(self.inbox.take_staged());
        let t = Instant::now();
        let synced = self.wal.sync().map_err(|e| format!("inbox log: {e}"))?;
        self.shared.spend(0, t);
        if let Some(synced) = synced {
            let c = &mut self.checkpoint;
            c.since.get_or_insert_with(Instant::now);
            if c.uncopied.is_empty() {
                c.uncopied = synced.bytes;
            } else {
                c.uncopied.extend_from_slice(&synced.bytes);
            }
            c.segment = Some(synced.segment);
        }
        if sled { self.checkpoint() } else { Ok(()) }
    }

    /// Runs a checkpoint when one is due (or, with `idle`, whenever one is pending).
    fn maybe_checkpoint(&mut self, idle: bool) {
        let Some(since) = self.checkpoint.since else {
            return;
        };
        let due = idle
            || self.checkpoint.uncopied.len() >= CHECKPOINT_BYTES
            || since.elapsed() >= CHECKPOINT_EVERY;
        if due {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "inbox checkpoint failed; the log keeps its segments");
            }
        }
    }

    /// Copies the synced frames into the journal tree, flushes sled and `fsync`s its data file;
    /// then the log segments before the current one hold nothing sled lacks, and go.
    fn checkpoint(&mut self) -> Result<(), String> {
        let c = &mut self.checkpoint;
        if !c.uncopied.is_empty() {
            let t = Instant::now();
            let copied = self.inbox.copy_to_journal(&c.uncopied);
            self.shared.spend(1, t);
            match copied {
                Ok(seq) => c.copied_through = c.copied_through.max(seq),
                Err(e) => {
                    // The records are durable in the log; the next open copies them.
                    c.failed = true;
                    return Err(format!("inbox journal copy: {e}"));
                }
            }
            c.uncopied.clear();
        }
        let t = Instant::now();
        let flushed = self
            .db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| disk::fsync(&self.file, &self.dir).map_err(|e| e.to_string()));
        self.shared.spend(2, t);
        if flushed.is_err() {
            // After a failed fsync the kernel may have dropped the unwritten pages, so a later
            // successful flush proves nothing about them: keep the log for the next open.
            self.checkpoint.failed = true;
        }
        flushed?;
        // The journal is durable through what was copied: the dedupe thread may now cut those
        // records' keys into a run.
        self.inbox
            .dedupe
            .journaled_through(self.checkpoint.copied_through);
        if self.checkpoint.since.take().is_some() {
            self.shared.checkpoints.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(segment) = self.checkpoint.segment.filter(|_| !self.checkpoint.failed) {
            if let Err(e) = self.wal.delete_through(segment, false) {
                tracing::warn!(error = %e, dir = %self.dir.display(), "old inbox log segments not deleted");
            }
        }
        Ok(())
    }
}
