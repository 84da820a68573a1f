//! The inbox: dedupe keys and the coalesced pending queue, written together in one transaction.
//!
//! Each delivery (one Outbound Message notification, or one signed event) has a dedupe key that
//! lives at least the configured TTL. A new delivery adds or updates one pending entry per record
//! `(org, object, id)`; many deliveries for one record collapse into one entry that keeps the
//! newest `SystemModstamp` seen.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{self, DedupeKind};
use super::{Store, StoreError};
use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

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
}

/// A pending record's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The latest change type seen.
    pub change: ChangeType,
    /// The newest `SystemModstamp` seen, in milliseconds since the epoch.
    pub system_modstamp_ms: Option<i64>,
    /// How many notifications collapsed into this entry.
    pub notifications: u32,
    /// When the first of them arrived, in milliseconds since the epoch.
    pub first_seen_ms: i64,
}

impl PendingEntry {
    /// The newest `SystemModstamp` seen.
    pub fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    }
}

/// A pending record with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The org.
    pub org: OrgId,
    /// The object type.
    pub object: ObjectType,
    /// The record id.
    pub id: SalesforceId,
    /// What is known about it.
    pub entry: PendingEntry,
}

fn kind(source: DedupeSource) -> DedupeKind {
    match source {
        DedupeSource::OutboundNotification => DedupeKind::OutboundNotification,
        DedupeSource::WebhookId => DedupeKind::WebhookId,
    }
}

fn merge(old: Option<PendingEntry>, n: &Notification, now_ms: i64) -> PendingEntry {
    let stamp = n.system_modstamp.map(|t| t.timestamp_millis());
    match old {
        None => PendingEntry {
            change: n.change,
            system_modstamp_ms: stamp,
            notifications: 1,
            first_seen_ms: now_ms,
        },
        Some(mut e) => {
            e.notifications = e.notifications.saturating_add(1);
            // The newest stamp wins; a notification without a stamp keeps the known one.
            if stamp > e.system_modstamp_ms {
                e.system_modstamp_ms = stamp;
                e.change = n.change;
            } else if (stamp.is_none() || stamp == e.system_modstamp_ms)
                && (n.change == ChangeType::Delete || e.change != ChangeType::Delete)
            {
                e.change = n.change;
            }
            e
        }
    }
}

fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    }
}

impl Store {
    /// Stores one message's deliveries: each new delivery's pending entries, then its dedupe key;
    /// deliveries already seen are counted and skipped. Not durable until
    /// [`Store::make_durable`] returns.
    ///
    /// Why no sled transaction: sled 0.34 runs every transaction under one process-wide write
    /// lock, which made the intake several times slower than the HTTP floor. Instead each
    /// pending entry is merged with an atomic per-key update, concurrent requests write in
    /// parallel, and the order of writes carries the atomicity that matters: sled's log recovers
    /// a prefix, so a dedupe key on disk implies its pending entries are on disk too. A crash in
    /// between leaves pending entries without a dedupe key; the sender's retry then merges the
    /// same records again, which only coalesces. Two concurrent copies of one delivery may both
    /// merge their records (harmless) but only one inserts the dedupe key and counts as accepted.
    /// The inbox worker's record transactions hold sled's write lock for their whole run, so no
    /// single write here lands inside one; at worst a cleared entry is written back and pulled
    /// once more.
    pub fn ingest(
        &self,
        org: &OrgId,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let i = &self.inner;
        let now_ms = now.timestamp_millis();
        let received = u64::try_from(now_ms).unwrap_or(0).to_be_bytes();
        let mut out = IngestOutcome::default();
        for d in deliveries {
            let dkey = keys::dedupe(org, kind(d.source), &d.dedupe_id);
            if i.dedupe.contains_key(&dkey)? {
                out.duplicates += 1;
                continue;
            }
            for n in &d.notifications {
                let pkey = keys::pending(org, n.object, &n.record_id);
                let mut decode_error = None;
                let previous = i.pending.fetch_and_update(&pkey, |old| {
                    let old = match old.map(serde_json::from_slice::<PendingEntry>) {
                        Some(Ok(e)) => Some(e),
                        Some(Err(e)) => {
                            decode_error = Some(e.to_string());
                            None
                        }
                        None => None,
                    };
                    serde_json::to_vec(&merge(old, n, now_ms)).ok()
                })?;
                if let Some(e) = decode_error {
                    tracing::warn!(error = %e, "unreadable pending entry replaced");
                }
                if previous.is_none() {
                    out.new_pending += 1;
                }
            }
            for object in &d.resync {
                i.resync.insert(keys::resync(org, *object), &received)?;
            }
            // Last: the dedupe key, whose presence promises everything above.
            let fresh = i
                .dedupe
                .compare_and_swap(dkey, None as Option<&[u8]>, Some(&received[..]))?
                .is_ok();
            if fresh {
                out.accepted += 1;
            } else {
                out.duplicates += 1;
            }
        }
        i.pending_count
            .fetch_add(out.new_pending, Ordering::Relaxed);
        Ok(out)
    }

    /// Every pending record of an org, in key order.
    pub fn pending_records(&self, org: &OrgId) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.pending.scan_prefix(org.as_str().as_bytes()) {
            let (k, v) = kv?;
            let (org, object, id) =
                keys::parse_pending(&k).ok_or_else(|| corrupt("inbox_pending", "bad key"))?;
            let entry = serde_json::from_slice(&v).map_err(|e| corrupt("inbox_pending", e))?;
            out.push(PendingRecord {
                org,
                object,
                id,
                entry,
            });
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
        match self.inner.pending.get(keys::pending(org, object, id))? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("inbox_pending", e))?,
            )),
            None => Ok(None),
        }
    }

    /// Whether a delivery id has been seen (and not yet expired).
    pub fn has_seen(
        &self,
        org: &OrgId,
        source: DedupeSource,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .dedupe
            .contains_key(keys::dedupe(org, kind(source), id))?)
    }

    /// Object types of an org waiting for a full re-read.
    pub fn resync_requests(&self, org: &OrgId) -> Result<Vec<ObjectType>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.resync.scan_prefix(org.as_str().as_bytes()) {
            let (k, _) = kv?;
            if let Some(t) = k.get(18).copied().and_then(ObjectType::from_code) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Removes dedupe keys older than `ttl`; returns how many were removed. Each key's value is
    /// the time it was received, so this is one scan of the dedupe tree (run hourly).
    pub fn expire_dedupe(&self, now: DateTime<Utc>, ttl: Duration) -> Result<u64, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let cutoff = u64::try_from(now.timestamp_millis())
            .unwrap_or(0)
            .saturating_sub(ttl_ms);
        let mut removed = 0;
        for kv in self.inner.dedupe.iter() {
            let (k, v) = kv?;
            let received = v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("inbox_dedupe", "bad value"))?;
            if received < cutoff {
                self.inner.dedupe.remove(&k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    fn note(id: &str, stamp_s: Option<i64>) -> Notification {
        Notification {
            object: ObjectType::Contact,
            record_id: SalesforceId::parse(id).expect("id"),
            change: ChangeType::Update,
            system_modstamp: stamp_s.and_then(|s| Utc.timestamp_opt(s, 0).single()),
        }
    }

    fn delivery(dedupe: &str, notes: Vec<Notification>) -> Delivery {
        Delivery {
            dedupe_id: dedupe.into(),
            source: DedupeSource::OutboundNotification,
            notifications: notes,
            resync: vec![],
        }
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
                new_pending: 1
            }
        );
        let again = store.ingest(&org(), &[a], now).expect("ingest");
        assert_eq!(
            again,
            IngestOutcome {
                accepted: 0,
                duplicates: 1,
                new_pending: 0
            }
        );
        let pending = store.pending_records(&org()).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].entry.system_modstamp_ms, Some(200_000));
        assert_eq!(pending[0].entry.notifications, 2);
        assert_eq!(store.pending_count(), 1);
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
}
