//! The inbox as the rest of the service sees it: messages stored (durably, for the webhooks),
//! the pending queue read by the inbox worker, re-read requests, and the hourly expiry of dedupe
//! keys with the journal values they came in.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::inbox::{DedupeSource, Delivery, IngestOutcome, kind};
use super::journal::{JournalRecord, corrupt, journal_value};
use super::keys;
use super::pending::{InboxMemory, PendingEntry, PendingRecord};
use super::{Store, StoreError};
use crate::domain::{ObjectType, OrgId, SalesforceId};

impl Store {
    pub(super) fn inbox(&self) -> std::sync::MutexGuard<'_, InboxMemory> {
        self.inner.inbox.memory()
    }

    /// Stores one message's deliveries and returns once they are durable and checkpointed into
    /// the journal tree (see [`Inbox::stage`]), blocking the calling thread on the committer:
    /// for tests and tools. The webhooks use [`Store::ingest_durably`].
    pub fn ingest(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let staged = self.inner.inbox.stage(org, deliveries, now)?;
        self.inner.commit.sync_blocking(true)?;
        Ok(staged.outcome)
    }

    /// Stores one message's deliveries and waits until they are durable: the acknowledgement
    /// path of both webhooks. The message is staged on the calling thread; the committer's next
    /// log sync, shared with every message staged meanwhile, makes it durable.
    pub async fn ingest_durably(
        &self,
        org: &OrgId,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let staged = self.inner.inbox.stage(org, &deliveries, now)?;
        drop(deliveries);
        self.inner.commit.sync(staged.needs_sled_flush).await?;
        Ok(staged.outcome)
    }

    /// Every pending record of an org, in key order.
    pub fn pending_records(&self, org: &OrgId) -> Result<Vec<PendingRecord>, StoreError> {
        self.pending_records_where(org, usize::MAX, |_| true)
    }

    /// Up to `limit` pending records of an org that `keep` accepts, in key order. Only the
    /// entries visited are copied, so a worker taking a batch does not copy a long queue.
    pub fn pending_records_where(
        &self,
        org: &OrgId,
        limit: usize,
        mut keep: impl FnMut(&PendingRecord) -> bool,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let prefix = keys::org(org);
        let mem = self.inbox();
        let mut out = Vec::new();
        for (k, slot) in mem.pending.range(prefix.clone()..) {
            if out.len() >= limit || !k.starts_with(&prefix) {
                break;
            }
            let (org, object, id) =
                keys::parse_pending(k).ok_or_else(|| corrupt("inbox_pending", "bad key"))?;
            let record = PendingRecord {
                org,
                object,
                id,
                entry: slot.entry.clone(),
            };
            if keep(&record) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// One pending record, if it is waiting.
    pub fn pending_record(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> Result<Option<PendingEntry>, StoreError> {
        Ok(self
            .inbox()
            .pending
            .get(&keys::pending(org, object, id))
            .map(|s| s.entry.clone()))
    }

    /// Records pending in the inbox.
    pub fn pending_count(&self) -> u64 {
        self.inbox().pending.len() as u64
    }

    /// Whether a delivery id has been seen (and not yet expired).
    pub fn has_seen(
        &self,
        org: &OrgId,
        source: DedupeSource,
        id: &str,
    ) -> Result<bool, StoreError> {
        let dedupe = &self.inner.inbox.dedupe;
        let key = keys::dedupe(org, kind(source), id);
        Ok(dedupe.find(&dedupe.state(), &key)?.is_some())
    }

    /// How many dedupe runs there are on disk, and how many ids wait in memory to be cut into
    /// one.
    pub fn dedupe_sizes(&self) -> (usize, usize) {
        self.inner.inbox.dedupe.sizes()
    }

    /// Moves every remembered id whose record is durable out of memory into the dedupe runs on
    /// disk, and merges what is due, on the calling thread (the dedupe thread does it as ids
    /// accumulate): for benchmarks and tests. Returns how many runs there are and how many ids
    /// stay in memory.
    pub fn settle_dedupe(&self) -> Result<(usize, usize), StoreError> {
        let dedupe = &self.inner.inbox.dedupe;
        dedupe.maintain(true)?;
        Ok(dedupe.sizes())
    }

    /// Object types of an org waiting for a full re-read.
    pub fn resync_requests(&self, org: &OrgId) -> Result<Vec<ObjectType>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.inbox.resync.scan_prefix(org.as_str().as_bytes()) {
            let (k, _) = kv?;
            if let Some(t) = k.get(18).copied().and_then(ObjectType::from_code) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Object types of an org waiting for a full re-read, each with the value that
    /// [`Store::clear_resync`] compares (so a request made during the re-read stays).
    pub fn resync_tokens(&self, org: &OrgId) -> Result<Vec<(ObjectType, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.inbox.resync.scan_prefix(keys::org(org)) {
            let (k, v) = kv?;
            if let Some(t) = keys::resync_object(&k) {
                out.push((t, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Clears a full re-read request if it still holds `token`; returns whether it did.
    pub fn clear_resync(
        &self,
        org: &OrgId,
        object: ObjectType,
        token: &[u8],
    ) -> Result<bool, StoreError> {
        let cleared = self
            .inner
            .inbox
            .resync
            .compare_and_swap(keys::resync(org, object), Some(token), None::<&[u8]>)?
            .is_ok();
        Ok(cleared)
    }

    /// Forgets dedupe keys older than `ttl` (see `dedupe`: ids in runs go a run at a time, so an
    /// id is remembered for at least `ttl` and at most about a quarter longer); and removes the
    /// journal values the compactor has not yet removed once every record in a value is older
    /// than `ttl` and none of the records they name is still pending. Returns how many dedupe keys
    /// were forgotten. Run hourly.
    pub fn expire_dedupe(&self, now: DateTime<Utc>, ttl: Duration) -> Result<u64, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.timestamp_millis().saturating_sub(ttl_ms);
        for kv in self.inner.inbox.journal.iter() {
            let (k, v) = kv?;
            let records = journal_value(&v)?;
            if records.iter().any(|(_, rec)| rec.received_ms >= cutoff) {
                continue;
            }
            let mem = self.inbox();
            let mut pending = false;
            for (_, rec) in &records {
                pending = pending || names_pending(&mem, rec)?;
            }
            drop(mem);
            if !pending {
                self.inner.inbox.journal.remove(&k)?;
            }
        }
        self.inner.inbox.dedupe.expire(cutoff, ttl)
    }
}

/// Whether a journal record names a record still pending.
fn names_pending(mem: &InboxMemory, rec: &JournalRecord) -> Result<bool, StoreError> {
    let org = OrgId::parse(&rec.org).map_err(|e| corrupt("inbox_journal", e))?;
    Ok(rec.notes.iter().any(|(code, id, ..)| {
        match (ObjectType::from_code(*code), SalesforceId::parse(id)) {
            (Some(object), Ok(id)) => mem.pending.contains_key(&keys::pending(&org, object, &id)),
            _ => false,
        }
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{ChangeType, Notification};
    use crate::store::inbox::Inbox;
    use crate::store::org_keys::OrgKeys;
    use crate::store::wal;
    use chrono::TimeZone as _;

    pub(in crate::store) fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    fn note(id: &str, stamp_s: Option<i64>) -> Notification {
        Notification {
            object: ObjectType::Contact,
            record_id: SalesforceId::parse(id).expect("id"),
            change: ChangeType::Update,
            system_modstamp: stamp_s.and_then(|s| Utc.timestamp_opt(s, 0).single()),
            modified_by: None,
        }
    }

    pub(in crate::store) fn delivery(dedupe: &str, notes: Vec<Notification>) -> Delivery {
        Delivery {
            dedupe_id: dedupe.into(),
            source: DedupeSource::OutboundNotification,
            notifications: notes,
            resync: vec![],
            digest: None,
        }
    }

    #[test]
    fn the_first_log_segment_exists_once_the_store_is_open() {
        // So that the first acknowledgement needs no new file descriptor.
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = Store::open(dir.path()).expect("open");
        let segments = wal::segments(&dir.path().join("inbox-log")).expect("segments");
        assert_eq!(segments.len(), 1);
    }

    #[test]
    fn many_notifications_for_one_record_collapse_keeping_the_newest_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let now = Utc::now();
        let a = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(200))],
        );
        let b = delivery(
            "04l1I000000fzt9QAA",
            vec![note("0031I0000081tbPQAQ", Some(100))],
        );
        let out = store.ingest(&org(), &[a.clone(), b], now).expect("ingest");
        assert_eq!(
            out,
            IngestOutcome {
                accepted: 2,
                duplicates: 0,
                new_pending: 1,
                replayed_different: 0,
            }
        );
        let again = store.ingest(&org(), &[a], now).expect("ingest");
        assert_eq!(
            again,
            IngestOutcome {
                accepted: 0,
                duplicates: 1,
                new_pending: 0,
                replayed_different: 0,
            }
        );
        let pending = store.pending_records(&org()).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].entry.system_modstamp_ms, Some(200_000));
        assert_eq!(pending[0].entry.notifications, 2);
        assert_eq!(store.pending_count(), 1);
    }

    #[test]
    fn records_synced_to_the_log_but_not_yet_in_the_journal_come_back_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = OrgId::parse("00D1I000003qqqE").expect("org");
        let a = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        let b = delivery(
            "04l1I000000fzt9QAA",
            vec![note("0031I0000081tb0", Some(100))],
        );
        let outcome = |accepted, duplicates, new_pending| IngestOutcome {
            accepted,
            duplicates,
            new_pending,
            replayed_different: 0,
        };
        {
            // The store's parts by hand, stopped where a kill would stop them: after the log
            // sync, before any checkpoint.
            let db = sled::Config::new().path(dir.path()).open().expect("db");
            let org_keys = OrgKeys::open(&db, dir.path(), &[]).expect("org keys");
            let (inbox, mut wal) = Inbox::open(&db, dir.path(), &org_keys).expect("inbox");
            let now = Utc::now();
            let staged = |o: &OrgId, d: Vec<Delivery>| inbox.stage(o, &d, now).expect("stage");
            assert_eq!(staged(&org(), vec![a.clone(), b]).outcome, outcome(2, 0, 2));
            // The same notification again, in another message.
            assert_eq!(staged(&org(), vec![a.clone()]).outcome, outcome(0, 1, 0));
            // The same id from another org is not a duplicate.
            assert_eq!(staged(&other, vec![a]).outcome, outcome(1, 0, 1));
            wal.append(inbox.take_staged());
            assert!(wal.sync().expect("sync").is_some());
            // Staged after the last sync: never acknowledged, so it may be lost.
            let late = delivery(
                "04l1I000000fzuAQAQ",
                vec![note("0031I0000081tbQ", Some(100))],
            );
            staged(&org(), vec![late]);
            assert_eq!(inbox.journal.len(), 0, "nothing checkpointed");
        }
        let log = dir.path().join("inbox-log");
        let left = wal::segments(&log).expect("segments");
        assert!(!left.is_empty());
        for _ in 0..2 {
            let store = Store::open(dir.path()).expect("reopen");
            let pending = store.pending_records(&org()).expect("pending");
            assert_eq!(pending.len(), 2, "{pending:?}");
            assert!(pending.iter().all(|p| p.entry.notifications == 1));
            assert_eq!(store.pending_records(&other).expect("pending").len(), 1);
            let src = DedupeSource::OutboundNotification;
            for (o, id) in [
                (org(), "04l1I000000fztEQAQ"),
                (org(), "04l1I000000fzt9QAA"),
                (other.clone(), "04l1I000000fztEQAQ"),
            ] {
                assert!(store.has_seen(&o, src, id).expect("seen"), "{o} {id}");
            }
            assert!(
                !store
                    .has_seen(&org(), src, "04l1I000000fzuAQAQ")
                    .expect("seen")
            );
            assert!(
                !store.inner.inbox.journal.is_empty(),
                "copied into the journal"
            );
            // Replayed, so deleted (the running store may have started a new one).
            assert!(left.iter().all(|(_, path)| !path.exists()));
        }
    }

    #[tokio::test]
    async fn a_message_refused_by_a_failed_sync_is_durable_once_its_retry_is_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let msg = || {
            vec![delivery(
                "04l1I000000fztEQAQ",
                vec![note("0031I0000081tbP", Some(100))],
            )]
        };
        {
            let store = Store::open(dir.path()).expect("open");
            store.inject_flush_failure(true);
            assert!(
                store
                    .ingest_durably(&org(), msg(), Utc::now())
                    .await
                    .is_err()
            );
            store.inject_flush_failure(false);
            // The retry is a duplicate in memory; its ack must wait for the first copy's record
            // to reach the disk.
            let retry = store
                .ingest_durably(&org(), msg(), Utc::now())
                .await
                .expect("retry");
            assert_eq!(retry.duplicates, 1);
            let logged: usize = wal::segments(&dir.path().join("inbox-log"))
                .expect("segments")
                .iter()
                .map(|(_, path)| wal::read_segment(path).expect("read").len())
                .sum();
            assert_eq!(
                logged, 1,
                "the first copy's record is in the log at the ack"
            );
        }
        {
            let store = Store::open(dir.path()).expect("reopen");
            assert_eq!(store.pending_count(), 1, "the record reached the disk");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledgement_does_not_wait_for_a_checkpoint_and_a_sled_waiter_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.inner.commit.hold_checkpoints(true);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.make_durable().await })
        };
        let acks = {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    let id = SalesforceId::mint("003", "C", n);
                    let message = delivery(
                        SalesforceId::mint("04l", "C", n).as_str(),
                        vec![note(id.as_str(), Some(1))],
                    );
                    store
                        .ingest_durably(&org(), vec![message], Utc::now())
                        .await
                        .expect("ingest");
                }
            })
        };
        let acked = tokio::time::timeout(std::time::Duration::from_secs(30), acks).await;
        let waited = waiter.is_finished();
        store.inner.commit.hold_checkpoints(false);
        acked
            .expect("every message acknowledged while the checkpoint is held")
            .expect("join");
        assert!(
            !waited,
            "a caller waiting for sled is answered only after the checkpoint"
        );
        waiter.await.expect("join").expect("durable");
        store.make_durable().await.expect("durable");
        assert_eq!(store.pending_count(), 20);
        assert!(
            store.checkpoints_completed() >= 1,
            "the messages reached sled"
        );
    }

    #[tokio::test]
    async fn a_checkpoint_puts_the_logged_records_in_the_journal_and_deletes_old_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let big = |n: u64| {
            // Enough notifications that a few messages fill a log segment.
            let notes = (0..100)
                .map(|i| {
                    note(
                        SalesforceId::mint("003", "C", n * 1000 + i).as_str(),
                        Some(1),
                    )
                })
                .collect();
            delivery(SalesforceId::mint("04l", "C", n).as_str(), notes)
        };
        let mut n = 0;
        let log = dir.path().join("inbox-log");
        while wal::segments(&log).expect("segments").len() < 2 {
            n += 1;
            store
                .ingest_durably(&org(), vec![big(n)], Utc::now())
                .await
                .expect("ingest");
            assert!(n < 10_000, "the log never moved to a second segment");
        }
        store.make_durable().await.expect("checkpoint");
        assert!(store.checkpoints_completed() >= 1);
        assert_eq!(
            wal::segments(&log).expect("segments").len(),
            1,
            "older segments deleted"
        );
        let journaled: usize = store
            .inner
            .inbox
            .journal
            .iter()
            .map(|kv| journal_value(&kv.expect("kv").1).expect("value").len())
            .sum();
        assert_eq!(journaled, n as usize, "one journal record per message");
    }

    #[tokio::test]
    async fn concurrent_durable_ingests_are_all_flushed_and_come_back_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let before = store.flushes_completed();
            let mut tasks = Vec::new();
            for n in 0..64u64 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let d = delivery(
                        SalesforceId::mint("04l", "R", n).as_str(),
                        vec![note(SalesforceId::mint("003", "R", n).as_str(), Some(1))],
                    );
                    store.ingest_durably(&org(), vec![d], Utc::now()).await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.expect("join").expect("ingest").accepted, 1);
            }
            let flushes = store.flushes_completed() - before;
            assert!((1..=64).contains(&flushes), "{flushes} flushes");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.pending_count(), 64);
    }

    #[test]
    fn dedupe_keys_expire_after_the_ttl_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = Utc::now();
        let week = Duration::from_secs(7 * 24 * 3600);
        store
            .ingest(&org(), &[delivery("04l1I000000fztEQAQ", vec![])], t0)
            .expect("ingest");
        let just_before = t0 + chrono::Duration::from_std(week).expect("dur");
        assert_eq!(store.expire_dedupe(just_before, week).expect("expire"), 0);
        let src = DedupeSource::OutboundNotification;
        assert!(
            store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
        let after = just_before + chrono::Duration::milliseconds(1);
        assert_eq!(store.expire_dedupe(after, week).expect("expire"), 1);
        assert!(
            !store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
    }

    #[test]
    fn orgs_do_not_share_dedupe_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let other = OrgId::parse("00D1I000003qqqE").expect("org");
        let d = delivery("04l1I000000fztEQAQ", vec![note("0031I0000081tbP", None)]);
        store
            .ingest(&org(), std::slice::from_ref(&d), Utc::now())
            .expect("ingest");
        let out = store.ingest(&other, &[d], Utc::now()).expect("ingest");
        assert_eq!(out.accepted, 1);
        assert_eq!(store.pending_records(&other).expect("pending").len(), 1);
    }

    fn clear(store: &Store, id: &str) -> bool {
        let id = SalesforceId::parse(id).expect("id");
        store
            .transact::<_, ()>(|tx| Ok(tx.clear_pending(&org(), ObjectType::Contact, &id)?))
            .expect("clear")
    }

    #[test]
    fn the_queue_is_rebuilt_from_the_journal_without_what_was_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        {
            let store = Store::open(dir.path()).expect("open");
            let msg = [
                delivery(
                    "04l1I000000fztEQAQ",
                    vec![note("0031I0000081tbP", Some(100))],
                ),
                delivery(
                    "04l1I000000fzt9QAA",
                    vec![note("0031I0000081tb0", Some(100))],
                ),
            ];
            store.ingest(&org(), &msg, now).expect("ingest");
            assert!(clear(&store, "0031I0000081tbP"));
            assert_eq!(store.pending_count(), 1);
            // A later notification for the cleared record makes it pending again.
            let later = delivery(
                "04l1I000000fzuAQAQ",
                vec![note("0031I0000081tbP", Some(300))],
            );
            store.ingest(&org(), &[later], now).expect("ingest");
            assert_eq!(store.pending_count(), 2);
            assert!(clear(&store, "0031I0000081tbP"));
        }
        let store = Store::open(dir.path()).expect("reopen");
        let pending = store.pending_records(&org()).expect("pending");
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].id.as_str(), "0031I0000081tb0QAA");
        let src = DedupeSource::OutboundNotification;
        for id in [
            "04l1I000000fztEQAQ",
            "04l1I000000fzt9QAA",
            "04l1I000000fzuAQAQ",
        ] {
            assert!(store.has_seen(&org(), src, id).expect("seen"), "{id}");
        }
        let again = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        assert_eq!(
            store
                .ingest(&org(), &[again], now)
                .expect("ingest")
                .duplicates,
            1
        );
        assert_eq!(store.pending_count(), 1);
    }

    #[test]
    fn an_expired_journal_record_stays_while_its_record_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = Utc::now();
        let week = Duration::from_secs(7 * 24 * 3600);
        let msg = delivery(
            "04l1I000000fztEQAQ",
            vec![note("0031I0000081tbP", Some(100))],
        );
        store.ingest(&org(), &[msg], t0).expect("ingest");
        let later = t0 + chrono::Duration::days(8);
        assert_eq!(
            store.expire_dedupe(later, week).expect("expire"),
            1,
            "the id is forgotten"
        );
        assert_eq!(store.inner.inbox.journal.len(), 1, "its record is kept");
        assert_eq!(store.pending_count(), 1);
        assert!(clear(&store, "0031I0000081tbP"));
        assert_eq!(store.expire_dedupe(later, week).expect("expire"), 0);
        assert_eq!(store.inner.inbox.journal.len(), 0);
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.pending_count(), 0);
        let src = DedupeSource::OutboundNotification;
        assert!(
            !store
                .has_seen(&org(), src, "04l1I000000fztEQAQ")
                .expect("seen")
        );
    }
}
