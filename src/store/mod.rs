//! The embedded store: the only module that names sled (0.34).
//!
//! Typed trees, every key prefixed by org (see [`keys`]), multi-tree transactions for anything
//! that must move together, and real durability, with concurrent callers sharing each sync
//! (group commit, see `durability`): the inbox's records are made durable by its own log
//! (`wal`: write + `fdatasync`) and then copied into sled; everything else by sled's `flush`,
//! which ends in `sync_file_range` and is not an fsync, followed by an `fsync` of the data file.
//!
//! Every record transaction also writes the change log (`changes`: each local change under the
//! next sequence number, in the transaction of the change; `feed`: reading it only up to what is
//! durable, and compacting it) and the app webhooks keep their cursors and dead letters beside it
//! (`deliveries`).

mod change_book;
mod changes;
mod compact;
#[cfg(test)]
mod crash_states;
mod dedupe;
mod deliveries;
mod disk;
mod durability;
mod feed;
mod inbox;
mod journal;
mod keys;
mod meta;
mod org_keys;
mod outbox;
mod packed;
mod pages;
mod pending;
mod provenance;
mod queue;
mod record_value;
mod records;
mod refs;
mod runs;
mod runs_legacy;
mod sending;
mod settle;
#[cfg(test)]
mod tap;
mod tx;
mod user_tokens;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use change_book::Subject;
pub use changes::{ChangeEntry, kind_of};
pub use deliveries::AppDeadLetter;
pub use feed::{ChangesPage, ChangesRead};
pub use inbox::{DedupeSource, Delivery, IngestOutcome};
pub use meta::{SAME_SECOND_MARGIN_MS, Seen, SweepCursor};
pub use outbox::{OutboxCounts, OutboxEntry, OutboxEntryView, OutboxState};
pub use pages::{Page, PageRequest, RecordFilter, SCAN_BUDGET, StoredRecord};
pub use pending::{PendingEntry, PendingRecord};
pub use refs::{LocalRef, Provenance, RecordKind};
pub use settle::{Link, OutboxChange, Settled};
pub use tx::{Tx, TxAbort, TxError, TxResult};

use durability::GroupCommit;

/// sled's page cache, counted in the pages' bytes on disk. Most of what the store holds is
/// written once and seldom read again (the inbox journal, the dedupe runs), and sled's default
/// (1 GiB) would keep it in memory as it grows; the dedupe filters and the records read on the
/// pull side are what memory is for. A page in memory takes about twice its bytes on disk, and
/// sled keeps a table entry for every page of the store besides, so the cache is kept small: on
/// a store of a million records, 4 MiB held the service about 20 MiB lower after a round of reads
/// and pulls than 16 MiB did, with the same pull latency (an evicted page is read back from the
/// file, mostly from the OS's page cache).
const SLED_CACHE_BYTES: u64 = 4 << 20;

/// What went wrong in the store. Callers answer 503: the cause is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A filesystem call failed.
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value could not be decoded.
    #[error("store: corrupt value in {tree}: {reason}")]
    Corrupt {
        /// The tree holding it.
        tree: &'static str,
        /// What failed to decode.
        reason: String,
    },
    /// A commit round's write failed (the cause is logged); none of its messages is stored.
    #[error("store: write failed: {0}")]
    Write(String),
    /// The durability flush failed or was refused; nothing may be acknowledged.
    #[error("store: flush failed: {0}")]
    Flush(String),
}

/// A stored value of `tree` that does not decode, and why.
fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    }
}

/// Decompresses a stored LZ4 block whose size is prepended. A size past `max`, a truncated or a
/// damaged block is a corrupt value of `tree`: the claimed size is never allocated first.
fn lz4_decompress(tree: &'static str, body: &[u8], max: usize) -> Result<Vec<u8>, StoreError> {
    let (size, _) =
        lz4_flex::block::uncompressed_size(body).map_err(|e| corrupt(tree, format!("LZ4: {e}")))?;
    if size > max {
        return Err(corrupt(
            tree,
            format!("a compressed value claims {size} bytes, more than {max}"),
        ));
    }
    lz4_flex::block::decompress_size_prepended(body).map_err(|e| corrupt(tree, format!("LZ4: {e}")))
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    /// The inbox's journal and working memory (see `inbox`), shared with the committer.
    inbox: Arc<inbox::Inbox>,
    tokens: sled::Tree,
    records: sled::Tree,
    index: sled::Tree,
    provenance: sled::Tree,
    conflicts: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    /// The change log (see `changes` and `feed`).
    changes: sled::Tree,
    /// The app webhooks' cursors and dead letters (see `deliveries`).
    deliveries: sled::Tree,
    /// How far change-log readers may read.
    marks: feed::Marks,
    /// Each org's short key in the record trees.
    org_keys: org_keys::OrgKeys,
    /// The outbox's live sending marks.
    sending: Arc<sending::SendingMarks>,
    commit: GroupCommit,
}

/// How long an open waits for the previous holder of the store's file lock to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled at `path`. sled releases its file lock when its last background thread lets go
/// of the files, a moment after the last handle is dropped; an open right after a close in the
/// same process (a restart, a test) waits for that, up to [`LOCK_WAIT`]. A lock still held after
/// that is another process on the same directory, and the error says so.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path)?;
        let db = open_db(path)?;
        let records = db.open_tree("records")?;
        let index = db.open_tree("records_index")?;
        let provenance = db.open_tree("provenance")?;
        let outbox = db.open_tree("outbox")?;
        let org_keys = org_keys::OrgKeys::open(
            &db,
            path,
            &[
                ("records", &records),
                ("records_index", &index),
                ("provenance", &provenance),
                ("outbox", &outbox),
            ],
        )?;
        let (inbox, wal) = inbox::Inbox::open(&db, path, &org_keys)?;
        let inbox = Arc::new(inbox);
        let commit = GroupCommit::start(db.clone(), inbox.clone(), wal, path)?;
        let changes = db.open_tree("changes")?;
        let last = changes::last_seq(changes.get(keys::change_counter())?.as_deref());
        let store = Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tokens: db.open_tree("oauth_tokens")?,
                records,
                index,
                provenance,
                conflicts: db.open_tree("conflicts")?,
                outbox,
                org_keys,
                meta: db.open_tree("meta")?,
                changes,
                deliveries: db.open_tree("deliveries")?,
                marks: feed::Marks::new(last),
                sending: Arc::default(),
                inbox,
                commit,
                db,
            }),
        };
        let ended = store.end_left_sending_marks()?;
        if ended > 0 {
            tracing::info!(
                marks = ended,
                "outbox creates a stop left in flight marked maybe sent"
            );
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Waits until every write committed before this call is on disk: one sync of the inbox
    /// log, one sled flush and one `fsync` of the data file, shared with every caller waiting at
    /// the same time.
    pub async fn make_durable(&self) -> Result<(), StoreError> {
        let logged = self.inner.marks.before_sync();
        self.inner.commit.wait().await?;
        self.inner.marks.synced(logged);
        Ok(())
    }

    /// How many group commits (syncs shared by every caller waiting) have completed since open.
    pub fn flushes_completed(&self) -> u64 {
        self.inner.commit.completed()
    }

    /// How many inbox checkpoints (the journal tree made durable in sled, old log segments
    /// deleted) have completed since open.
    pub fn checkpoints_completed(&self) -> u64 {
        self.inner.commit.checkpoints()
    }

    /// Time spent so far by the committer writing and `fdatasync`ing the inbox log, and by the
    /// checkpointer copying records into the journal tree and in sled's flush + `fsync`.
    pub fn commit_time_spent(&self) -> [std::time::Duration; 3] {
        self.inner.commit.time_spent()
    }

    /// Makes every following flush fail (or succeed again): the seam the ack-after-durable test
    /// uses to prove that nothing is acknowledged without a flush.
    pub fn inject_flush_failure(&self, fail: bool) {
        self.inner.commit.inject_failure(fail);
    }

    /// Makes every following flush take `delay` longer: the seam that shows acknowledgements
    /// wait for the flush and that concurrent callers share one.
    pub fn inject_flush_delay(&self, delay: std::time::Duration) {
        self.inner.commit.inject_delay(delay);
    }

    /// A sealed (encrypted) OAuth refresh token for an org, as stored.
    pub fn load_sealed_token(
        &self,
        org: &crate::domain::OrgId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.tokens.get(keys::token(org))?.map(|v| v.to_vec()))
    }

    /// Stores a sealed refresh token for an org and makes it durable before returning: a rotated
    /// refresh token that is lost locks the org out.
    pub fn save_sealed_token(
        &self,
        org: &crate::domain::OrgId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.inner.tokens.insert(keys::token(org), sealed)?;
        self.flush_tokens()
    }

    /// sled's flush and an `fsync` of its data file, before a connection's secrets are used.
    fn flush_tokens(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        disk::fsync_data_file(&self.inner.path)?;
        Ok(())
    }
}
