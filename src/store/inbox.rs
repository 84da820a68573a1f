//! The inbox: dedupe keys (see `dedupe`) and the coalesced pending queue (in memory), made
//! durable as a journal of one record per message (see `journal`): first in the inbox log (`wal`), which the
//! committer `fdatasync`s before any acknowledgement, then in sled's journal tree.
//!
//! Each delivery (one Outbound Message notification, or one signed event) has a dedupe key that
//! lives at least the configured TTL. A new delivery adds or updates one pending entry per record
//! `(org, object, id)` (see `pending`).

use std::collections::btree_map::Entry;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::StoreError;
use super::compact::Compactor;
use super::dedupe::{Dedupe, DedupeHandle, State as DedupeState};
use super::disk;
use super::journal::{self, JournalRecord, JournalRecordRef};
use super::keys::{self, DedupeKind};
use super::pending::{InboxMemory, PendingEntry, PendingSlot, merge};
use super::runs::Seen;
use super::tx::{Tx, TxResult};
use super::wal::{self, Wal};
use crate::domain::{Notification, ObjectType, OrgId, SalesforceId};

/// Which sender's id a delivery is deduplicated by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeSource {
    /// An Outbound Message `Notification/Id` (04l…).
    OutboundNotification,
    /// A Standard Webhooks `webhook-id`.
    WebhookId,
}

/// One deduplicated unit of what a sender delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's id for it.
    pub dedupe_id: String,
    /// Which kind of id that is.
    pub source: DedupeSource,
    /// The records it names.
    pub notifications: Vec<Notification>,
    /// Object types to re-read whole (a wildcard or overflow change event).
    pub resync: Vec<ObjectType>,
    /// A short digest of the signed body that carried it ([`Delivery::digest_of`]), for
    /// Standard Webhooks events: a later delivery of the same id with another body is counted
    /// (see [`IngestOutcome::replayed_different`]). `None` for Outbound Messages.
    pub digest: Option<u64>,
}

impl Delivery {
    /// The digest kept of a body: the first 8 bytes of its SHA-256.
    pub fn digest_of(body: &[u8]) -> u64 {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(body);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        u64::from_be_bytes(first)
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Deliveries stored for the first time.
    pub accepted: u64,
    /// Deliveries already seen.
    pub duplicates: u64,
    /// Pending entries created (records not already waiting).
    pub new_pending: u64,
    /// Duplicates whose body digest differs from the one stored with their id (a replayed id
    /// with another body); they count among `duplicates` too.
    pub replayed_different: u64,
}

pub(super) fn kind(source: DedupeSource) -> DedupeKind {
    match source {
        DedupeSource::OutboundNotification => DedupeKind::OutboundNotification,
        DedupeSource::WebhookId => DedupeKind::WebhookId,
    }
}

/// What staging one message did (see [`Inbox::stage`]).
#[derive(Debug)]
pub(super) struct Staged {
    pub(super) outcome: IngestOutcome,
    /// It also wrote to a sled tree (a re-read request), which needs sled's flush as well.
    pub(super) needs_sled_flush: bool,
}

/// The inbox's trees and its working memory, shared by the store handle and the committer
/// thread, which makes staged records durable in the log and copies them into the journal tree
/// (see `durability`).
pub(super) struct Inbox {
    /// The stored messages' records (see [`JournalRecord`]) as log frames, several per value
    /// (see `journal::journal_batch`).
    pub(super) journal: sled::Tree,
    /// Per pending key, the newest journal record already applied.
    pub(super) applied: sled::Tree,
    /// Object types waiting for a full re-read.
    pub(super) resync: sled::Tree,
    /// The pending queue, rebuilt from the journal at open (shared with the compactor).
    pub(super) memory: Arc<Mutex<InboxMemory>>,
    /// The remembered delivery ids (see `dedupe`); its lock comes before `memory`'s.
    pub(super) dedupe: DedupeHandle,
    /// Log frames (see `wal`) staged for the committer's next sync, in sequence order.
    staging: std::sync::Mutex<Vec<u8>>,
    /// The next journal sequence number; handed out under the memory lock, so the order of the
    /// records is the order their messages changed the memory in.
    next_seq: AtomicU64,
}

impl Inbox {
    /// Opens the inbox trees, copies into the journal what the log holds from before (a crash
    /// or a kill), and replays the journal. Returns the log, for the committer.
    pub(super) fn open(
        db: &sled::Db,
        dir: &Path,
        org_keys: &super::org_keys::OrgKeys,
    ) -> Result<(Self, Wal), StoreError> {
        let journal = db.open_tree("inbox_journal")?;
        let applied = db.open_tree("inbox_applied")?;
        let snapshots = db.open_tree("inbox_pending")?;
        let index = db.open_tree("records_index")?;
        let marks = journal::Marks {
            applied: &applied,
            index: &index,
            org_keys,
        };
        let (dedupe, covered) = Dedupe::open(db, &dir.join("dedupe-runs"))?;
        let (mut replay, journaled, mut last_seq) =
            journal::rebuild(&journal, &snapshots, &marks, covered)?;
        // The journal records the runs cover were copied into the journal before they were
        // cut, and the compactor may have removed them since.
        let journaled = journaled.max(covered);
        let (wal, recovered, old_segments) = Wal::open(&dir.join("inbox-log"))?;
        // Log frames past the journal's newest record were synced but not yet checkpointed
        // (checkpoints copy every synced frame, in sequence order, in one batch).
        let mut missing = Vec::new();
        for (key, payload) in &recovered {
            let seq = journal::frame_seq(key)?;
            if seq > journaled {
                journal::replay(&mut replay, &marks, seq, JournalRecord::decode(payload)?)?;
                wal::push_frame(&mut missing, key, payload);
                last_seq = last_seq.max(seq);
            }
        }
        if !missing.is_empty() {
            journal.apply_batch(journal::journal_batch(&missing).0)?;
            tracing::info!(bytes = missing.len(), "inbox log replayed into the journal");
        }
        if !old_segments.is_empty() {
            db.flush()?;
            disk::fsync_data_file(dir)?;
            // Every segment is from before this open: sled now holds their frames.
            wal::retire_segments(wal.dir(), u64::MAX, true)?;
        }
        let memory = Arc::new(Mutex::new(replay.mem));
        let compactor = Compactor::new(journal.clone(), snapshots, memory.clone());
        let dedupe = dedupe.start(replay.recovered, last_seq, compactor)?;
        Ok((
            Self {
                resync: db.open_tree("inbox_resync")?,
                journal,
                applied,
                memory,
                dedupe,
                staging: std::sync::Mutex::default(),
                next_seq: AtomicU64::new(last_seq + 1),
            },
            wal,
        ))
    }

    pub(super) fn memory(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn staging(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.staging
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the staged frames for the committer's log sync.
    pub(super) fn take_staged(&self) -> Vec<u8> {
        let mut staging = self.staging();
        let capacity = staging.capacity();
        std::mem::replace(&mut *staging, Vec::with_capacity(capacity))
    }

    /// Stores one message on the calling thread: deliveries already seen are counted and
    /// skipped; the new ones become ONE journal record (their dedupe keys and the records they
    /// name) staged for the committer's next log sync, and the in-memory pending queue
    /// coalesces them by record, keeping the newest `SystemModstamp`. Nothing is durable, and
    /// nothing may be acknowledged, until a committer sync asked for after this call returns.
    ///
    /// Why a journal in memory and a log: sled 0.34 costs several microseconds per insert
    /// (each copies its leaf node) and its flush hands off to its own I/O threads, and each
    /// made the durable path cost several times the HTTP path. The pending queue lives in
    /// memory and is rebuilt from the journal when the store opens, minus what the inbox worker
    /// has marked applied (see [`crate::store::Tx::clear_pending`]); the dedupe keys go to the
    /// dedupe memory (see `dedupe`), which moves them to disk once their record is durable.
    pub(super) fn stage(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Staged, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut keyed: Vec<Vec<u8>> = deliveries
            .iter()
            .map(|d| keys::dedupe(org, kind(d.source), &d.dedupe_id))
            .collect();
        // Re-read requests go straight to their tree, before the memory lock: a sled call must
        // never run under it, because record transactions hold sled's lock while they read the
        // pending queue. Writing one for a duplicate again changes nothing.
        let received = u64::try_from(now_ms).unwrap_or(0).to_be_bytes();
        let mut needs_sled_flush = false;
        for d in deliveries {
            for object in &d.resync {
                self.resync.insert(keys::resync(org, *object), &received)?;
                needs_sled_flush = true;
            }
        }
        // The dedupe lock is held from the lookup until the new keys are remembered, so a
        // duplicate that finds them is staged after their record.
        let mut seen = self.dedupe.state();
        let (fresh, mut outcome) = fresh(&self.dedupe, &seen, &keyed, deliveries)?;
        if fresh.is_empty() {
            // Duplicates wait for a sync too: the first copy may still be on its way to disk, and
            // it was staged before its dedupe key became visible here, so that sync covers it.
            return Ok(Staged {
                outcome,
                needs_sled_flush,
            });
        }
        let mut mem = self.memory();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let record = journal_record(org, now_ms, &keyed, deliveries, &fresh);
        // Staged under the dedupe lock, so a duplicate that finds this record's dedupe keys is
        // staged after it, and the sync it waits for covers this record.
        wal::push_frame_with(&mut self.staging(), &keys::journal(org, seq), |buf| {
            record.encode_into(buf)
        })?;
        drop(record);
        for &f in &fresh {
            let notes = &deliveries[f].notifications;
            outcome.new_pending += remember(&mut mem, org, notes, seq, now_ms);
        }
        drop(mem);
        for &f in &fresh {
            let (received_ms, digest) = (now_ms, deliveries[f].digest);
            let key = std::mem::take(&mut keyed[f]);
            Dedupe::remember(
                &mut seen,
                key,
                Seen {
                    received_ms,
                    digest,
                },
                seq,
            );
        }
        Ok(Staged {
            outcome,
            needs_sled_flush,
        })
    }

    /// Copies synced log frames into the journal tree, in one batch (not durable there until
    /// sled's flush; the log holds them meanwhile); returns the highest sequence number copied.
    pub(super) fn copy_to_journal(&self, frames: &[u8]) -> Result<u64, StoreError> {
        let (batch, newest) = journal::journal_batch(frames);
        self.journal.apply_batch(batch)?;
        Ok(newest)
    }
}

/// The journal record of a message's new deliveries (`fresh`, indexes into `keyed`).
fn journal_record<'a>(
    org: &'a OrgId,
    now_ms: i64,
    keyed: &'a [Vec<u8>],
    deliveries: &'a [Delivery],
    fresh: &[usize],
) -> JournalRecordRef<'a> {
    JournalRecordRef {
        org: org.as_str(),
        received_ms: now_ms,
        dedupe: fresh.iter().map(|&f| keyed[f].as_slice()).collect(),
        notes: fresh
            .iter()
            .flat_map(|&f| deliveries[f].notifications.iter())
            .map(|n| {
                (
                    n.object.code(),
                    n.record_id.as_str(),
                    n.change,
                    n.system_modstamp.map(|t| t.timestamp_millis()),
                    n.modified_by.as_ref().map(SalesforceId::as_str),
                )
            })
            .collect(),
        digests: fresh.iter().map(|&f| deliveries[f].digest).collect(),
    }
}

/// Which of a message's dedupe keys are new (indexes into `keyed`), and the counts: a key
/// remembered, or twice in the message, is a duplicate; one whose stored body digest differs
/// from its delivery's is also counted as replayed with another body.
fn fresh(
    dedupe: &Dedupe,
    seen: &DedupeState,
    keyed: &[Vec<u8>],
    deliveries: &[Delivery],
) -> Result<(Vec<usize>, IngestOutcome), StoreError> {
    let mut outcome = IngestOutcome::default();
    let mut fresh: Vec<usize> = Vec::new();
    for (i, key) in keyed.iter().enumerate() {
        let earlier = match fresh.iter().find(|&&f| keyed[f] == *key) {
            Some(&f) => Some(deliveries[f].digest),
            None => dedupe.find(seen, key)?.map(|s| s.digest),
        };
        match earlier {
            Some(digest) => {
                outcome.duplicates += 1;
                if let (Some(old), Some(new)) = (digest, deliveries[i].digest) {
                    outcome.replayed_different += u64::from(old != new);
                }
            }
            None => {
                outcome.accepted += 1;
                fresh.push(i);
            }
        }
    }
    Ok((fresh, outcome))
}

/// Folds notifications into the pending queue, naming journal record `seq`; returns how many
/// records were not pending before.
fn remember(
    mem: &mut InboxMemory,
    org: &OrgId,
    notes: &[Notification],
    seq: u64,
    now_ms: i64,
) -> u64 {
    let mut new = 0;
    for n in notes {
        match mem
            .pending
            .entry(keys::pending(org, n.object, &n.record_id))
        {
            Entry::Vacant(slot) => {
                new += 1;
                slot.insert(PendingSlot {
                    entry: merge(None, n, now_ms),
                    last_seq: seq,
                });
            }
            Entry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                slot.entry = merge(Some(slot.entry.clone()), n, now_ms);
                slot.last_seq = seq;
            }
        }
    }
    new
}

impl Tx<'_> {
    /// Clears a record's pending inbox entry (after it has been applied).
    pub fn clear_pending(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> TxResult<bool> {
        let key = keys::pending(org, object, id);
        let seq = self
            .inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .get(&key)
            .map(|slot| slot.last_seq);
        let Some(seq) = seq else {
            return Ok(false);
        };
        // Durable with the transaction: replaying the journal skips what this covers. The
        // in-memory entry goes once the transaction commits, and only if no newer journal record
        // named the record meanwhile. A linked record keeps its mark in its Salesforce id link,
        // which its pull has just written anyway; only a record linked to no local record costs
        // a key of its own. The highest mark is kept too, so that no sequence number at or
        // below it is handed out again after a restart.
        if self.update_link(org, id, |l| l.applied = l.applied.max(Some(seq)))? {
            if self.applied.get(&key)?.is_some() {
                self.applied.remove(key.clone())?;
            }
        } else {
            self.applied.insert(key.clone(), &seq.to_be_bytes())?;
        }
        let high = keys::applied_high();
        if journal::applied_seq(self.applied.get(&high)?) < seq {
            self.applied.insert(high, &seq.to_be_bytes())?;
        }
        self.cleared.borrow_mut().push((key, seq));
        Ok(true)
    }

    /// A record's pending inbox entry as it is now, read inside the transaction: the inbox worker
    /// re-checks it before clearing, so a notification that arrived during the pull is kept.
    pub fn pending_entry(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> TxResult<Option<PendingEntry>> {
        Ok(self
            .inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .get(&keys::pending(org, object, id))
            .map(|slot| slot.entry.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeType, Company};
    use crate::store::Store;
    use crate::store::queue::tests::{delivery, org};

    #[test]
    fn a_linked_record_keeps_its_applied_mark_in_its_link_and_stays_applied_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let account = SalesforceId::parse("0011I000001abcD").expect("id");
        let unlinked = SalesforceId::parse("0011I000001abcE").expect("id");
        let note = |id: &SalesforceId| Notification {
            object: ObjectType::Account,
            record_id: id.clone(),
            change: ChangeType::Update,
            system_modstamp: None,
            modified_by: None,
        };
        let applied_key = |id| keys::pending(&org(), ObjectType::Account, id);
        {
            let store = Store::open(dir.path()).expect("open");
            let msg = delivery("04l1I000000fztEQAQ", vec![note(&account), note(&unlinked)]);
            store.ingest(&org(), &[msg], Utc::now()).expect("ingest");
            let mut company = Company::named(7, org(), "Acme".into(), Utc::now());
            company.salesforce_id = Some(account.clone());
            let cleared = store
                .transact::<_, ()>(|tx| {
                    tx.put_company(&company)?;
                    Ok([
                        tx.clear_pending(&org(), ObjectType::Account, &account)?,
                        tx.clear_pending(&org(), ObjectType::Account, &unlinked)?,
                    ])
                })
                .expect("clear");
            assert_eq!(cleared, [true, true]);
            let tree = &store.inner.inbox.applied;
            assert!(
                tree.get(applied_key(&account)).expect("get").is_none(),
                "the linked record costs no key of its own"
            );
            assert!(tree.get(applied_key(&unlinked)).expect("get").is_some());
            assert!(tree.get(keys::applied_high()).expect("get").is_some());
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            store.pending_count(),
            0,
            "{:?}",
            store.pending_records(&org())
        );
        // A new notification after the restart is a new change, not one already applied.
        let later = delivery("04l1I000000fzuAQAQ", vec![note(&account)]);
        store.ingest(&org(), &[later], Utc::now()).expect("ingest");
        assert_eq!(store.pending_count(), 1);
    }
}
