//! Group commit: callers that need their writes on disk wait on one shared sync.
//!
//! The acknowledgement path (see `inbox` and `wal`): a webhook handler stages its message's
//! journal record in memory and asks the committer thread (`sfsync-commit`) to sync through it.
//! The committer takes every request waiting and every record staged, writes them to the inbox
//! log and `fdatasync`s it, and only then answers: nobody is answered before a sync that began
//! after their record was staged. Under load (the last round had more than one waiter) it first
//! lingers [`LINGER`] so that each sync covers more messages.
//!
//! Everything else sled holds is made durable by sled's `flush()` followed by `fsync`
//! (`File::sync_all`) of its data file: sled 0.34's `flush()` ends in `sync_file_range`, which
//! does not write file metadata and promises nothing after a crash, and its own `fsync` runs
//! only every 500 ms. That runs on a thread of its own, the checkpointer (`sfsync-checkpoint`),
//! because a sled flush waits for any running transaction and takes tens of milliseconds under
//! load, and no acknowledgement may wait for it. The committer hands it a checkpoint every
//! [`CHECKPOINT_EVERY`] or [`CHECKPOINT_BYTES`] of log, and whenever a caller waits for sled
//! ([`GroupCommit::wait`], or a message that also wrote a re-read request): the checkpointer
//! copies the synced log frames into sled's journal tree, flushes sled, `fsync`s, answers those
//! callers, and retires the log segments before the newest one it covered. Checkpoints run in
//! the order they were handed over, so a segment goes only when every frame in it is in sled.

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
use super::wal::{self, Wal};

/// How long the committer waits for more messages before a sync when the last one had several.
pub(super) const LINGER: Duration = Duration::from_micros(200);
/// How often the journal tree is made durable in sled and old log segments are retired.
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
    /// While true, the checkpointer waits before its next checkpoint (the seam that shows an
    /// acknowledgement never waits for one).
    #[cfg(test)]
    held: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl GroupCommit {
    pub(super) fn start(
        db: sled::Db,
        inbox: Arc<Inbox>,
        mut wal: Wal,
        dir: &Path,
    ) -> Result<Self, StoreError> {
        let file = data_file(dir)?;
        // Make the files' existence itself durable once.
        File::open(dir)?.sync_all()?;
        // The first segment is made here, before the service accepts connections: a flood of
        // them can take every file descriptor, and the first acknowledgement must not need one.
        if let Err(e) = wal.prepare() {
            // The first sync tries again, and answers with the error if it fails too.
            tracing::warn!(error = %e, "inbox log segment not created");
        }
        let (tx, rx) = mpsc::channel::<Request>();
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            spent_ns: Default::default(),
            checkpoints: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            #[cfg(test)]
            held: Default::default(),
        });
        let (jobs, queued) = mpsc::channel::<Job>();
        let mut checkpointer = Checkpointer {
            inbox: inbox.clone(),
            db,
            file,
            dir: dir.to_path_buf(),
            log_dir: wal.dir().to_path_buf(),
            shared: shared.clone(),
            failed: false,
            copied_through: 0,
            checkpointed: None,
        };
        let checkpointer = std::thread::Builder::new()
            .name("sfsync-checkpoint".into())
            .spawn(move || checkpointer.run(&queued))?;
        let mut committer = Committer {
            inbox,
            wal,
            shared: shared.clone(),
            pending: Pending {
                uncopied: Vec::new(),
                since: None,
                segment: None,
            },
            jobs: Some(jobs),
            checkpointer: Some(checkpointer),
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

    /// Holds every following checkpoint until released.
    #[cfg(test)]
    pub(super) fn hold_checkpoints(&self, hold: bool) {
        let (held, changed) = &self.shared.held;
        *held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hold;
        changed.notify_all();
    }
}

impl Shared {
    /// Waits while checkpoints are held (test builds only).
    fn wait_while_held(&self) {
        #[cfg(test)]
        {
            let (held, changed) = &self.held;
            let mut h = held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while *h {
                h = changed
                    .wait(h)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    fn spend(&self, part: usize, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent_ns[part].fetch_add(ns, Ordering::Relaxed);
    }
}

fn stopped() -> StoreError {
    StoreError::Flush("committer stopped".into())
}

/// What the next checkpoint has to cover, as the committer gathers it.
struct Pending {
    /// Synced log frames not yet handed to the checkpointer.
    uncopied: Vec<u8>,
    /// When the oldest of them was synced.
    since: Option<Instant>,
    /// The newest log segment synced to.
    segment: Option<u64>,
}

/// One checkpoint's work, handed from the committer to the checkpointer: the synced frames to
/// copy into the journal tree, the newest segment they reach, and the callers waiting for sled
/// to be durable.
struct Job {
    frames: Vec<u8>,
    segment: Option<u64>,
    waiters: Vec<Reply>,
}

/// The committer thread's state: it writes and syncs the inbox log and answers the log's
/// waiters; checkpoints go to the checkpointer thread, so that no acknowledgement waits for
/// sled (whose flush also waits for any running transaction).
struct Committer {
    inbox: Arc<Inbox>,
    wal: Wal,
    shared: Arc<Shared>,
    pending: Pending,
    jobs: Option<mpsc::Sender<Job>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

/// The checkpointer thread's state.
struct Checkpointer {
    inbox: Arc<Inbox>,
    db: sled::Db,
    file: File,
    dir: PathBuf,
    /// The inbox log's directory.
    log_dir: PathBuf,
    shared: Arc<Shared>,
    /// A checkpoint failed: the log keeps every segment until the next open replays them.
    failed: bool,
    /// The highest journal sequence number copied into the journal tree.
    copied_through: u64,
    /// The newest log segment whose frames are all in the journal tree, durable.
    checkpointed: Option<u64>,
}

fn answer(reply: Reply, result: &Result<(), String>) {
    let answer = result.clone().map_err(StoreError::Flush);
    match reply {
        Reply::Async(tx) => {
            let _ = tx.send(answer);
        }
        Reply::Blocking(tx) => {
            let _ = tx.send(answer);
        }
    }
}

impl Committer {
    fn run(&mut self, rx: &mpsc::Receiver<Request>) {
        let mut last_round = 0;
        loop {
            let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: no reason to linger before the next sync.
                    last_round = 0;
                    self.maybe_checkpoint(true, Vec::new());
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
            let result = if self.shared.fail.load(Ordering::Acquire) {
                // As if the disk refused: what is staged stays staged for the next round.
                Err("flush failure injected".to_string())
            } else {
                self.sync_log()
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, waiters = requests.len(), "store sync failed");
            } else {
                self.shared.completed.fetch_add(1, Ordering::AcqRel);
            }
            // The log's waiters are answered now; those that asked for sled too wait for the
            // checkpoint that starts after this sync.
            let mut sled_waiters = Vec::new();
            for request in requests {
                if request.sled && result.is_ok() {
                    sled_waiters.push(request.reply);
                } else {
                    answer(request.reply, &result);
                }
            }
            self.maybe_checkpoint(false, sled_waiters);
        }
        // Closing: make what is still staged durable and checkpoint all of it, so the next open
        // has no log to replay.
        if let Err(e) = self.sync_log() {
            tracing::error!(error = %e, "store sync at close failed");
        }
        self.hand_over(Vec::new());
        self.jobs.take();
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }

    /// Writes the staged records to the log and `fdatasync`s it; what was synced waits for the
    /// next checkpoint.
    fn sync_log(&mut self) -> Result<(), String> {
        self.wal.append(self.inbox.take_staged());
        let t = Instant::now();
        let synced = self.wal.sync().map_err(|e| format!("inbox log: {e}"))?;
        self.shared.spend(0, t);
        if let Some(synced) = synced {
            let p = &mut self.pending;
            p.since.get_or_insert_with(Instant::now);
            if p.uncopied.is_empty() {
                p.uncopied = synced.bytes;
            } else {
                p.uncopied.extend_from_slice(&synced.bytes);
            }
            p.segment = Some(synced.segment);
        }
        Ok(())
    }

    /// Hands a checkpoint to the checkpointer when one is due (or, with `idle`, whenever one is
    /// pending), or when someone waits for sled.
    fn maybe_checkpoint(&mut self, idle: bool, waiters: Vec<Reply>) {
        let p = &mut self.pending;
        let due = p.since.is_some_and(|since| {
            idle || p.uncopied.len() >= CHECKPOINT_BYTES || since.elapsed() >= CHECKPOINT_EVERY
        });
        if due || !waiters.is_empty() {
            self.hand_over(waiters);
        }
    }

    /// Hands the checkpointer everything synced since the last checkpoint, and `waiters` to
    /// answer once sled is durable.
    fn hand_over(&mut self, waiters: Vec<Reply>) {
        let p = &mut self.pending;
        p.since = None;
        let job = Job {
            frames: std::mem::take(&mut p.uncopied),
            segment: p.segment,
            waiters,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if let Some(Err(mpsc::SendError(job))) = sent {
            // The checkpointer is gone (it panicked): the frames stay in the log for the next
            // open, and nobody is told sled is durable.
            let gone = Err("checkpointer stopped".to_string());
            for reply in job.waiters {
                answer(reply, &gone);
            }
        }
    }
}

impl Checkpointer {
    /// Runs the checkpoints handed over, in order, several queued ones as one; at the end (the
    /// committer closed) retires every log segment if all of them succeeded.
    fn run(&mut self, jobs: &mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut job = first;
            for next in jobs.try_iter() {
                job.frames.extend_from_slice(&next.frames);
                job.segment = next.segment.or(job.segment);
                job.waiters.extend(next.waiters);
            }
            self.shared.wait_while_held();
            let result = self.checkpoint(&job.frames, job.segment);
            if let Err(e) = &result {
                tracing::error!(error = %e, "inbox checkpoint failed; the log keeps its segments");
            }
            for reply in job.waiters {
                answer(reply, &result);
            }
        }
        if let Some(segment) = self.checkpointed.filter(|_| !self.failed) {
            if let Err(e) = wal::retire_segments(&self.log_dir, segment, true) {
                tracing::warn!(error = %e, "inbox log segments not retired at close");
            }
        }
    }

    /// Copies the synced frames into the journal tree, flushes sled and `fsync`s its data file;
    /// then the log segments before `segment` hold nothing sled lacks, and go.
    fn checkpoint(&mut self, frames: &[u8], segment: Option<u64>) -> Result<(), String> {
        if !frames.is_empty() {
            let t = Instant::now();
            let copied = self.inbox.copy_to_journal(frames);
            self.shared.spend(1, t);
            match copied {
                Ok(seq) => self.copied_through = self.copied_through.max(seq),
                Err(e) => {
                    // The records are durable in the log; the next open copies them.
                    self.failed = true;
                    return Err(format!("inbox journal copy: {e}"));
                }
            }
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
            self.failed = true;
        }
        flushed?;
        // The journal is durable through what was copied: the dedupe thread may now cut those
        // records' keys into a run.
        self.inbox.dedupe.journaled_through(self.copied_through);
        if !frames.is_empty() {
            self.shared.checkpoints.fetch_add(1, Ordering::AcqRel);
        }
        if segment.is_some() {
            self.checkpointed = segment;
        }
        if let Some(segment) = segment.filter(|_| !self.failed) {
            if let Err(e) = wal::retire_segments(&self.log_dir, segment, false) {
                tracing::warn!(error = %e, dir = %self.dir.display(), "old inbox log segments not retired");
            }
        }
        Ok(())
    }
}
