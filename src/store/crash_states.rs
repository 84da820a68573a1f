//! A power loss at every write: the files a crash could leave, rebuilt from what the tap
//! (`tap`) recorded while a workload ran, each reopened as a store that must hold everything
//! acknowledged or committed before that crash.
//!
//! SIGKILL keeps the page cache, so only a model of what reaches the disk tests the fsync
//! discipline. The rules of the model:
//! - the inbox log: a segment exists once created (zero-filled, synced, its directory synced) or
//!   made of a spare (renamed, its directory synced: it holds the spare's old bytes, which the
//!   new writes overlay); bytes written to it are durable once its `fdatasync` returned. At a
//!   crash, the unsynced bytes (a chunk of frames) may have landed not at all, cut after the
//!   chunk's length, cut after any whole frame, cut inside any frame (after its length, after
//!   its header, halfway), whole, whole but for the first frame (a later sector landed before an
//!   earlier one), whole with the chunk's length garbled, or whole with a garbled tail; a
//!   compressed chunk, whose frames have no place of their own, may be cut at each quarter of
//!   its body or before its last byte, or have landed but for the first half of its body; a
//!   segment being created may be an empty file; retiring a segment (a rename to a spare or an
//!   unlink) is undone unless the directory was synced after it (the next segment creation or
//!   reuse syncs it).
//! - sled: its files are those copied right after the last durability point (sled's flush and
//!   the `fsync` of its data file) before the crash, or none before the first one. sled's own
//!   writes between those points are not seen, so the model does not try the partial states they
//!   could leave (nor sled's files as of the crash, which the SIGKILL test covers); it tries the
//!   state a committed entry depends on: sled as of its `fsync`, with the log as of the crash.
//!
//! Crash points are every recorded event: each log write, sync, creation, reuse and retirement,
//! and each sled durability point. A state whose next event only records an acknowledgement is
//! skipped: the same files are checked right after, against more.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::Utc;

use super::tap::{Event, Files, Tap};
use super::{DedupeSource, Delivery, LocalRef, RecordKind, Store, wal};
use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

/// One segment file of a crash state: `bytes` from offset 0 over `base` (a reused spare's old
/// bytes), zeroes after, `size` long.
#[derive(Clone)]
struct SegmentFile {
    segment: u64,
    size: u64,
    base: Arc<Vec<u8>>,
    bytes: Vec<u8>,
}

/// The files one power loss could leave, and how much of what the test saw must be in them
/// (prefixes of [`Seen`]'s lists).
struct CrashState {
    what: String,
    sled: Option<Arc<Files>>,
    segments: Vec<SegmentFile>,
    acked: usize,
    applied: usize,
    committed: usize,
    /// Some acknowledged notification was, at the crash, durable only in the log.
    log_ahead: bool,
}

/// What the test saw acknowledged, applied and committed, in order.
#[derive(Default)]
struct Seen {
    acked: Vec<u64>,
    applied: Vec<u64>,
    committed: Vec<u64>,
}

/// A log segment as the disk holds it: the old bytes of the spare it was made of, the durable
/// bytes over them, the bytes written after those and not yet synced, and whether it was retired
/// since the directory was last synced.
#[derive(Clone, Default)]
struct Seg {
    size: u64,
    base: Arc<Vec<u8>>,
    durable: Vec<u8>,
    pending: Vec<u8>,
    unlinked: bool,
}

impl Seg {
    /// The file's durable bytes from offset 0.
    fn content(&self) -> Vec<u8> {
        let mut out = self.base.to_vec();
        if out.len() < self.durable.len() {
            out.resize(self.durable.len(), 0);
        }
        out[..self.durable.len()].copy_from_slice(&self.durable);
        out
    }
}

/// The disk as the recorded events left it.
#[derive(Default)]
struct Disk {
    segs: BTreeMap<u64, Seg>,
    /// Retired segments whose retirement is durable, by number: a spare's size and bytes.
    retired: BTreeMap<u64, (u64, Arc<Vec<u8>>)>,
    sled: Option<Arc<Files>>,
    /// Notifications acknowledged since sled's last durability point.
    acked_since_sled: usize,
}

impl Event {
    /// Records what the test saw, changing no file.
    fn is_obligation(&self) -> bool {
        matches!(
            self,
            Event::Acked(_) | Event::Applied(_) | Event::Committed(_)
        )
    }
}

impl Disk {
    /// The directory was synced: every retirement is durable.
    fn dir_synced(&mut self) {
        let gone: Vec<u64> = self
            .segs
            .iter()
            .filter(|(_, s)| s.unlinked)
            .map(|(n, _)| *n)
            .collect();
        for n in gone {
            if let Some(seg) = self.segs.remove(&n) {
                self.retired.insert(n, (seg.size, Arc::new(seg.content())));
            }
        }
    }

    /// Applies one event; returns the segment it created, if it did.
    fn apply(&mut self, event: &Event, seen: &mut Seen) -> Option<u64> {
        match event {
            Event::Created { segment, size } => {
                self.dir_synced();
                let seg = Seg {
                    size: *size,
                    ..Seg::default()
                };
                self.segs.insert(*segment, seg);
                return Some(*segment);
            }
            Event::Reused { from, segment } => {
                self.dir_synced();
                let (size, base) = self
                    .retired
                    .remove(from)
                    .expect("a spare is a retired segment");
                let seg = Seg {
                    size,
                    base,
                    ..Seg::default()
                };
                self.segs.insert(*segment, seg);
            }
            Event::Wrote {
                segment,
                offset,
                bytes,
            } => {
                let seg = self.segs.entry(*segment).or_default();
                let end = (seg.durable.len() + seg.pending.len()) as u64;
                assert_eq!(*offset, end, "the model assumes the log appends");
                seg.pending.extend_from_slice(bytes);
            }
            Event::Synced { segment } => {
                if let Some(seg) = self.segs.get_mut(segment) {
                    let pending = std::mem::take(&mut seg.pending);
                    seg.durable.extend_from_slice(&pending);
                }
            }
            Event::Retired { segment } => {
                if let Some(seg) = self.segs.get_mut(segment) {
                    seg.unlinked = true;
                }
            }
            Event::Sled(files) => {
                self.sled = Some(files.clone());
                self.acked_since_sled = 0;
            }
            Event::Acked(n) => {
                seen.acked.extend(n);
                self.acked_since_sled += n.len();
            }
            Event::Applied(n) => seen.applied.extend(n),
            Event::Committed(ids) => seen.committed.extend(ids),
            // Left out of the events (see `crash_states`).
            Event::Evicted { .. } => {}
        }
        None
    }

    /// The durable segment files (with the unlinked ones too when `undo`).
    fn segment_files(&self, undo: bool) -> Vec<SegmentFile> {
        self.segs
            .iter()
            .filter(|(_, s)| undo || !s.unlinked)
            .map(|(n, s)| SegmentFile {
                segment: *n,
                size: s.size,
                base: s.base.clone(),
                bytes: s.durable.clone(),
            })
            .collect()
    }

    /// Every state a power loss right now could leave.
    fn states(&self, at: usize, created: Option<u64>, seen: &Seen, out: &mut Vec<CrashState>) {
        let mut push = |what: String, segments: Vec<SegmentFile>| {
            out.push(CrashState {
                what: format!("after event {at}: {what}"),
                sled: self.sled.clone(),
                segments,
                acked: seen.acked.len(),
                applied: seen.applied.len(),
                committed: seen.committed.len(),
                log_ahead: self.acked_since_sled > 0,
            });
        };
        let torn: Vec<_> = self
            .segs
            .iter()
            .filter(|(_, s)| !s.pending.is_empty() && !s.unlinked)
            .collect();
        if torn.is_empty() {
            push("everything synced".into(), self.segment_files(false));
        }
        for (n, seg) in torn {
            for (what, piece) in pieces(&seg.pending) {
                let mut files = self.segment_files(false);
                for f in files.iter_mut().filter(|f| f.segment == *n) {
                    f.bytes.extend_from_slice(&piece);
                }
                push(format!("segment {n}, unsynced write {what}"), files);
            }
        }
        if self.segs.values().any(|s| s.unlinked) {
            push("retirements undone".into(), self.segment_files(true));
        }
        if let Some(n) = created {
            let mut files = self.segment_files(false);
            for f in files.iter_mut().filter(|f| f.segment == n) {
                f.size = 0;
            }
            push(format!("segment {n} created, not yet filled"), files);
        }
    }
}

/// What of an unsynced write may have reached the disk (see the module's rules).
fn pieces(pending: &[u8]) -> Vec<(String, Vec<u8>)> {
    // Where the write may be cut, and which of its bytes may be missing while later ones landed:
    // in a plain chunk, in and after each frame, and the first frame when more follows; in a
    // compressed one, whose frames have no place of their own, through its body and the first
    // half of it.
    let header = wal::frame_len(&[]);
    let mut cuts: Vec<(String, usize)> = vec![("torn after its length".into(), 4)];
    let mut hole = None;
    let (mut at, mut frame, mut chunk) = (0, 0, 0);
    while at < pending.len() {
        let word = u32::from_le_bytes(pending[at..at + 4].try_into().expect("a chunk length"));
        let body = at + wal::CHUNK_HEADER;
        let end = body + (word & !wal::COMPRESSED) as usize;
        if word & wal::COMPRESSED != 0 {
            for quarter in 1..4 {
                let cut = body + (end - body) * quarter / 4;
                cuts.push((format!("compressed chunk {chunk} cut at {quarter}/4"), cut));
            }
            cuts.push((
                format!("compressed chunk {chunk} cut before its last byte"),
                end - 1,
            ));
            cuts.push((format!("cut after compressed chunk {chunk}"), end));
            hole.get_or_insert((
                format!("landed but the first half of compressed chunk {chunk}"),
                body,
                body + (end - body) / 2,
            ));
        } else {
            let mut start = body;
            for (_, payload) in wal::frames(&pending[body..end]) {
                let stop = start + wal::frame_len(payload);
                cuts.push((format!("frame {frame} torn after its length"), start + 4));
                cuts.push((
                    format!("frame {frame} torn after its header"),
                    start + header,
                ));
                cuts.push((
                    format!("frame {frame} torn after half of it"),
                    start + (stop - start) / 2,
                ));
                cuts.push((format!("cut after frame {frame}"), stop));
                if frame == 0 && stop < pending.len() {
                    hole = Some(("landed but its first frame".into(), start, stop));
                }
                start = stop;
                frame += 1;
            }
            assert_eq!(start, end, "a chunk is whole frames");
        }
        at = end;
        chunk += 1;
    }
    assert_eq!(at, pending.len(), "an unsynced write is whole chunks");
    let mut out = vec![("lost".to_string(), Vec::new())];
    out.extend(
        cuts.into_iter()
            .map(|(what, cut)| (what, pending[..cut].to_vec())),
    );
    if let Some((what, start, end)) = hole {
        let mut holed = pending.to_vec();
        holed[start..end].fill(0);
        out.push((what, holed));
    }
    let mut huge = pending.to_vec();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    out.push(("landed with its length garbled".into(), huge));
    let mut garbled = pending.to_vec();
    let tail = garbled.len().saturating_sub(16);
    garbled[tail..].iter_mut().for_each(|b| *b ^= 0xa5);
    out.push(("landed with a garbled tail".into(), garbled));
    out
}

/// Every crash state of a recorded run, and what the run saw.
fn crash_states(events: &[Event]) -> (Vec<CrashState>, Seen) {
    let mut disk = Disk::default();
    let mut seen = Seen::default();
    let mut states = Vec::new();
    // Page-cache advice changes nothing on disk, and would stand between a durability point and
    // what the test saw made durable by it.
    let events: Vec<&Event> = events
        .iter()
        .filter(|e| !matches!(e, Event::Evicted { .. }))
        .collect();
    for (i, event) in events.iter().copied().enumerate() {
        let created = disk.apply(event, &mut seen);
        if events.get(i + 1).is_some_and(|e| e.is_obligation()) {
            continue;
        }
        disk.states(i, created, &seen, &mut states);
    }
    (states, seen)
}

fn org() -> OrgId {
    OrgId::parse("00D7F00000107XsUAI").unwrap_or_else(|_| unreachable!("a valid org id"))
}

/// Notification `n` (`04l…`) names record `n` (`003…`).
fn notification_id(n: u64) -> SalesforceId {
    SalesforceId::mint("04l", "K", n)
}

fn record_id(n: u64) -> SalesforceId {
    SalesforceId::mint("003", "K", n)
}

fn delivery(n: u64) -> Delivery {
    Delivery {
        dedupe_id: notification_id(n).as_str().to_string(),
        source: DedupeSource::OutboundNotification,
        notifications: vec![Notification {
            object: ObjectType::Contact,
            record_id: record_id(n),
            change: ChangeType::Update,
            system_modstamp: None,
            modified_by: None,
        }],
        resync: vec![],
        digest: None,
    }
}

/// Writes the files of `state` into `dir`, as the disk would hold them after the power loss.
fn materialize(state: &CrashState, dir: &Path) -> std::io::Result<()> {
    for (name, bytes) in state.sled.iter().flat_map(|files| files.iter()) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    let log = dir.join("inbox-log");
    std::fs::create_dir_all(&log)?;
    for seg in &state.segments {
        let file = std::fs::File::create(log.join(format!("{:020}.wal", seg.segment)))?;
        file.set_len(seg.size.max(seg.bytes.len() as u64))?;
        if seg.size > 0 {
            file.write_all_at(&seg.base, 0)?;
        }
        file.write_all_at(&seg.bytes, 0)?;
    }
    Ok(())
}

/// Reopens the store from one crash state and checks it: it opens; every notification
/// acknowledged before the crash is remembered and pending, unless its record was applied; an
/// applied record stays applied; every committed outbox entry is there; every pending record is
/// one the workload sent (nothing is read out of a torn tail); and it takes a new message.
fn check(state: &CrashState, seen: &Seen, sent: u64, dir: &Path) -> Result<(), String> {
    materialize(state, dir).map_err(|e| format!("writing the state: {e}"))?;
    let store = Store::open(dir).map_err(|e| format!("reopen failed: {e}"))?;
    let org = org();
    let source = DedupeSource::OutboundNotification;
    let applied: BTreeSet<u64> = seen.applied[..state.applied].iter().copied().collect();
    let pending = |n: u64| store.pending_record(&org, ObjectType::Contact, &record_id(n));
    let read = |e: super::StoreError| format!("read failed: {e}");
    for &n in &seen.acked[..state.acked] {
        if !store
            .has_seen(&org, source, notification_id(n).as_str())
            .map_err(read)?
        {
            return Err(format!("acknowledged notification {n} forgotten"));
        }
        if pending(n).map_err(read)?.is_none() && !applied.contains(&n) {
            return Err(format!(
                "acknowledged notification {n} neither pending nor applied"
            ));
        }
    }
    for &n in &applied {
        if pending(n).map_err(read)?.is_some() {
            return Err(format!("applied record {n} pending again"));
        }
    }
    for &id in &seen.committed[..state.committed] {
        if store.outbox_entry(&org, id).map_err(read)?.is_none() {
            return Err(format!("committed outbox entry {id} lost"));
        }
    }
    let known: BTreeSet<SalesforceId> = (0..sent).map(record_id).collect();
    for p in store.pending_records(&org).map_err(read)? {
        if !known.contains(&p.id) {
            return Err(format!("pending record {} was never sent", p.id));
        }
    }
    store
        .ingest(&org, &[delivery(sent)], Utc::now())
        .map_err(|e| format!("a new message after the reopen failed: {e}"))?;
    Ok(())
}

/// Checks every state on `threads` threads, each state in its own directory under `root`;
/// returns the failures, each with the state it happened in. A panic is a failure.
fn check_all(
    states: &[CrashState],
    seen: &Seen,
    sent: u64,
    root: &Path,
    threads: usize,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(state) = states.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let dir = tempfile::tempdir_in(root).expect("state dir");
                    let run = || check(state, seen, sent, dir.path());
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                        .unwrap_or_else(|_| Err("panicked".into()));
                    if let Err(e) = outcome {
                        let mut failures = failures.lock().expect("lock");
                        failures.push(format!("{}: {e}", state.what));
                    }
                }
            });
        }
    });
    failures.into_inner().expect("lock")
}

/// Rounds of the workload, and how often the store is closed and reopened (each open starts a
/// new log segment, of a spare from the second open on; each close checkpoints and retires the
/// old ones).
const ROUNDS: u64 = 24;
const REOPEN_EVERY: u64 = 8;

/// The workload: per round, on odd rounds first one record acknowledged in the round before
/// applied with an outbox entry in one transaction, made durable; on every fourth an outbox entry
/// left to sled's own flushing; then three messages of one to three notifications stored at once
/// through the webhooks' acknowledgement path (so one log write may carry several), which the
/// next close or checkpoint finds still only in the log. The tap hears what was acknowledged and
/// committed only after the call returned. Returns how many notifications were sent.
async fn workload(dir: &Path, tap: &Tap) -> u64 {
    let org = org();
    let mut store = Store::open(dir).expect("open");
    let mut next = 0;
    for round in 0..ROUNDS {
        if round > 0 && round % REOPEN_EVERY == 0 {
            drop(store);
            store = Store::open(dir).expect("reopen");
        }
        let now = Utc::now();
        if round % 2 == 1 {
            let n = next - 1;
            let target = LocalRef::new(RecordKind::Contact, n);
            let id = store
                .atomically(|tx| {
                    tx.clear_pending(&org, ObjectType::Contact, &record_id(n))?;
                    tx.enqueue_push(&org, target, None, None, now)
                })
                .expect("apply");
            store.make_durable().await.expect("durable");
            tap.push(Event::Applied(vec![n]));
            tap.push(Event::Committed(vec![id]));
        }
        if round % 4 == 2 {
            let target = LocalRef::new(RecordKind::Company, round);
            store
                .atomically(|tx| tx.enqueue_push(&org, target, None, None, now))
                .expect("enqueue");
        }
        let messages: Vec<Vec<u64>> = (0..3)
            .map(|m| {
                let count = 1 + (round + m) % 3;
                next += count;
                (next - count..next).collect()
            })
            .collect();
        let stored = messages.iter().map(|ns| {
            let deliveries = ns.iter().map(|&n| delivery(n)).collect();
            store.ingest_durably(&org, deliveries, now)
        });
        for outcome in futures::future::join_all(stored).await {
            outcome.expect("ingest");
        }
        tap.push(Event::Acked(messages.concat()));
    }
    drop(store);
    next
}

/// Where the states are written: a memory file system when there is one, since every reopen
/// creates and syncs a log segment.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("scratch dir")
    } else {
        tempfile::tempdir().expect("scratch dir")
    }
}

#[test]
fn every_acknowledged_notification_and_committed_entry_survives_a_power_loss_at_every_write() {
    let scratch = scratch();
    let dir = scratch.path().join("recorded");
    let tap = Tap::register(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sent = runtime.block_on(workload(&dir, &tap));
    let events = tap.take();
    drop(tap);
    let (states, seen) = crash_states(&events);

    let started = Instant::now();
    let failures = check_all(&states, &seen, sent, scratch.path(), 2);
    let torn = states
        .iter()
        .filter(|s| s.what.contains("unsynced"))
        .count();
    let log_ahead = states.iter().filter(|s| s.log_ahead).count();
    // States with a segment made of a spare, whose old chunks follow the new ones.
    let reused = states
        .iter()
        .filter(|s| s.segments.iter().any(|f| f.base.len() > f.bytes.len()))
        .count();
    let compressed = states
        .iter()
        .filter(|s| s.what.contains("compressed chunk"))
        .count();
    println!(
        "crash states tried: {} ({torn} with a torn or lost unsynced write, {compressed} of them \
         inside a compressed chunk, {log_ahead} with acks only in the log, {reused} with a reused \
         segment) from {} events; {} acknowledged, {} committed; checked in {:.1} s",
        states.len(),
        events.len(),
        seen.acked.len(),
        seen.committed.len(),
        started.elapsed().as_secs_f64()
    );
    // The model must have produced the states that matter, or the test proves nothing.
    let undone = states
        .iter()
        .filter(|s| s.what.contains("retirements undone"));
    assert!(
        torn > 100 && compressed > 20 && log_ahead > 20 && reused > 20 && undone.count() > 0,
        "too few crash states of each kind"
    );
    assert!(!seen.committed.is_empty() && !seen.applied.is_empty());
    assert!(
        failures.is_empty(),
        "{} of {} crash states failed, e.g.:\n{}",
        failures.len(),
        states.len(),
        failures[..failures.len().min(8)].join("\n")
    );
}
