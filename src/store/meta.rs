//! Small typed values kept per org beside the records: what was last pulled of a Salesforce
//! record ([`Seen`]), the open conflict of a quarantined one, the `SystemModstamp` the outbox read
//! back after writing one, where each object's catch-up sweep resumes ([`SweepCursor`]) and when
//! the sweep last succeeded, and the Salesforce user a connection acts as.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys;
use super::refs::LocalRef;
use super::tx::{Tx, TxResult, read_json};
use super::{Store, StoreError};
use crate::domain::{ObjectType, OrgId, SalesforceId};

/// Salesforce's `SystemModstamp` has whole seconds: two changes in one second carry the same
/// stamp. A pull is known to include every change of its stamp's second only when it happened
/// after that second (plus this margin for clock skew).
pub const SAME_SECOND_MARGIN_MS: i64 = 2_000;

/// What was last pulled of one Salesforce record: its `SystemModstamp` and when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The record's `SystemModstamp`, in milliseconds since the epoch.
    pub stamp_ms: i64,
    /// When sfsync read it, in milliseconds since the epoch (local clock).
    pub pulled_ms: i64,
}

impl Seen {
    /// Whether a change stamped `stamp_ms` is already reflected by this pull.
    pub fn covers(&self, stamp_ms: i64) -> bool {
        stamp_ms < self.stamp_ms
            || (stamp_ms == self.stamp_ms
                && self.pulled_ms >= self.stamp_ms + SAME_SECOND_MARGIN_MS)
    }
}

/// Where an object's sweep resumes: the last `(SystemModstamp, Id)` it stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepCursor {
    /// `SystemModstamp` in milliseconds.
    pub stamp_ms: i64,
    /// The record id at that stamp (ties are ordered by id).
    pub id: String,
}

impl Tx<'_> {
    /// What was last pulled of a Salesforce record: kept in its link to a local record when it
    /// has one, else under a key of its own.
    pub fn seen(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<Seen>> {
        match self.link(org, id)?.and_then(|l| l.seen) {
            Some(seen) => Ok(Some(seen)),
            None => self.get_json(self.meta, "meta", &keys::seen(org, id)),
        }
    }

    /// Records what was just pulled of a Salesforce record: in its link to a local record when
    /// it has one (no key of its own), else under a key of its own. A key of its own left from
    /// before the record was linked is older than the link's and read only if the link goes;
    /// an older [`Seen`] only ever makes a change look not yet applied, so it is pulled again.
    pub fn set_seen(&self, org: &OrgId, id: &SalesforceId, seen: &Seen) -> TxResult<()> {
        if self.update_link(org, id, |l| l.seen = Some(*seen))? {
            return Ok(());
        }
        self.put_json(self.meta, "meta", keys::seen(org, id), seen)
    }

    /// The open conflict a quarantined Salesforce record is listed under.
    pub fn conflict_for(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<u64>> {
        self.get_json(self.meta, "meta", &keys::conflict_of(org, id))
    }

    /// Points a quarantined Salesforce record at its open conflict.
    pub fn set_conflict_for(&self, org: &OrgId, id: &SalesforceId, conflict: u64) -> TxResult<()> {
        self.put_json(self.meta, "meta", keys::conflict_of(org, id), &conflict)
    }

    /// Forgets the open conflict of a Salesforce record (it applied).
    pub fn clear_conflict_for(&self, org: &OrgId, id: &SalesforceId) -> TxResult<()> {
        self.meta.remove(keys::conflict_of(org, id))?;
        Ok(())
    }

    /// The open conflict of a local record whose create found several records in the org.
    pub fn local_conflict_for(&self, org: &OrgId, local: LocalRef) -> TxResult<Option<u64>> {
        let key = keys::local_conflict_of(org, local.kind.code(), local.id);
        self.get_json(self.meta, "meta", &key)
    }

    /// Points a local record at the open conflict its create found.
    pub fn set_local_conflict_for(
        &self,
        org: &OrgId,
        local: LocalRef,
        conflict: u64,
    ) -> TxResult<()> {
        let key = keys::local_conflict_of(org, local.kind.code(), local.id);
        self.put_json(self.meta, "meta", key, &conflict)
    }

    /// Forgets the open conflict of a local record (resolved).
    pub fn clear_local_conflict_for(&self, org: &OrgId, local: LocalRef) -> TxResult<()> {
        self.meta
            .remove(keys::local_conflict_of(org, local.kind.code(), local.id))?;
        Ok(())
    }

    /// The `SystemModstamp` (ms) the outbox read back after its last write to a record: kept in
    /// its link to a local record when it has one, else under a key of its own.
    pub fn written_stamp(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<i64>> {
        match self.link(org, id)?.and_then(|l| l.written_ms) {
            Some(ms) => Ok(Some(ms)),
            None => self.get_json(self.meta, "meta", &keys::written_stamp(org, id)),
        }
    }

    /// Records the `SystemModstamp` (ms) read back after sfsync wrote a record: in its link to a
    /// local record when it has one (a key of its own from before is removed), else under a key
    /// of its own.
    pub fn set_written_stamp(&self, org: &OrgId, id: &SalesforceId, stamp_ms: i64) -> TxResult<()> {
        let key = keys::written_stamp(org, id);
        if self.update_link(org, id, |l| l.written_ms = Some(stamp_ms))? {
            if self.meta.get(&key)?.is_some() {
                self.meta.remove(key)?;
            }
            return Ok(());
        }
        self.put_json(self.meta, "meta", key, &stamp_ms)
    }

    /// Forgets the `SystemModstamp` read back after sfsync's last write to a record, wherever it
    /// is kept: no notification of it is taken for sfsync's own write any more, so the next one
    /// is pulled.
    pub fn forget_written_stamp(&self, org: &OrgId, id: &SalesforceId) -> TxResult<()> {
        self.update_link(org, id, |l| l.written_ms = None)?;
        self.meta.remove(keys::written_stamp(org, id))?;
        Ok(())
    }

    /// Moves an object's sweep cursor.
    pub fn set_sweep_cursor(
        &self,
        org: &OrgId,
        object: ObjectType,
        cursor: &SweepCursor,
    ) -> TxResult<()> {
        self.put_json(self.meta, "meta", keys::sweep_cursor(org, object), cursor)
    }

    /// Records that the org's catch-up sweep finished without error at `at`.
    pub fn set_last_sweep(&self, org: &OrgId, at: DateTime<Utc>) -> TxResult<()> {
        self.put_json(self.meta, "meta", keys::last_sweep(org), &at)
    }
}

impl Store {
    /// What was last pulled of a Salesforce record, read outside a transaction.
    pub fn seen(&self, org: &OrgId, id: &SalesforceId) -> Result<Option<Seen>, StoreError> {
        match self.link(org, id)?.and_then(|l| l.seen) {
            Some(seen) => Ok(Some(seen)),
            None => read_json(&self.inner.meta, "meta", &keys::seen(org, id)),
        }
    }

    /// The open conflict of a quarantined Salesforce record, read outside a transaction.
    pub fn conflict_for(&self, org: &OrgId, id: &SalesforceId) -> Result<Option<u64>, StoreError> {
        read_json(&self.inner.meta, "meta", &keys::conflict_of(org, id))
    }

    /// The `SystemModstamp` (ms) the outbox read back after its last write to a record, read
    /// outside a transaction.
    pub fn written_stamp(&self, org: &OrgId, id: &SalesforceId) -> Result<Option<i64>, StoreError> {
        match self.link(org, id)?.and_then(|l| l.written_ms) {
            Some(ms) => Ok(Some(ms)),
            None => read_json(&self.inner.meta, "meta", &keys::written_stamp(org, id)),
        }
    }

    /// Where an object's catch-up sweep resumes, once it has run.
    pub fn sweep_cursor(
        &self,
        org: &OrgId,
        object: ObjectType,
    ) -> Result<Option<SweepCursor>, StoreError> {
        read_json(&self.inner.meta, "meta", &keys::sweep_cursor(org, object))
    }

    /// Moves an object's sweep cursor (durable with the next flush).
    pub fn set_sweep_cursor(
        &self,
        org: &OrgId,
        object: ObjectType,
        cursor: &SweepCursor,
    ) -> Result<(), StoreError> {
        self.atomically(|tx| tx.set_sweep_cursor(org, object, cursor))
    }

    /// When the org's catch-up sweep last finished without error.
    pub fn last_sweep(&self, org: &OrgId) -> Result<Option<DateTime<Utc>>, StoreError> {
        read_json(&self.inner.meta, "meta", &keys::last_sweep(org))
    }

    /// Records that the org's catch-up sweep finished without error at `at`.
    pub fn set_last_sweep(&self, org: &OrgId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.atomically(|tx| tx.set_last_sweep(org, at))
    }

    /// The Salesforce user an org's connection acts as, as saved at the last authorization.
    pub fn connection_user(&self, org: &OrgId) -> Result<Option<SalesforceId>, StoreError> {
        let Some(v) = self.inner.tokens.get(keys::connection_user(org))? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&v).map_err(|e| corrupt_user(e.to_string()))?;
        SalesforceId::parse(text)
            .map(Some)
            .map_err(|e| corrupt_user(e.to_string()))
    }

    /// Saves the Salesforce user an org's connection acts as, durably (like its token).
    pub fn save_connection_user(&self, org: &OrgId, user: &SalesforceId) -> Result<(), StoreError> {
        self.inner
            .tokens
            .insert(keys::connection_user(org), user.as_str().as_bytes())?;
        self.flush_tokens()
    }
}

fn corrupt_user(reason: String) -> StoreError {
    StoreError::Corrupt {
        tree: "oauth_tokens",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_covers_older_stamps_and_its_own_second_only_once_that_second_is_over() {
        let seen = Seen {
            stamp_ms: 10_000,
            pulled_ms: 10_400,
        };
        assert!(seen.covers(9_000));
        assert!(!seen.covers(10_000), "a change later in the same second");
        assert!(!seen.covers(11_000));
        let later = Seen {
            stamp_ms: 10_000,
            pulled_ms: 12_000,
        };
        assert!(later.covers(10_000));
    }

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    fn linked_company(id: u64, sfid: &SalesforceId) -> crate::domain::Company {
        serde_json::from_value(
            serde_json::json!({"id": id, "org_id": org(), "name": "Acme",
            "salesforce_id": sfid, "updated_at": Utc::now()}),
        )
        .expect("a company")
    }

    #[test]
    fn a_linked_records_stamp_lives_in_its_link_and_an_unlinked_ones_under_its_own_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let linked = SalesforceId::parse("001000000000001AAA").expect("id");
        let alone = SalesforceId::parse("001000000000002AAA").expect("id");
        let (first, second) = (
            Seen {
                stamp_ms: 1_000,
                pulled_ms: 1_500,
            },
            Seen {
                stamp_ms: 2_000,
                pulled_ms: 2_500,
            },
        );
        store
            .atomically(|tx| {
                tx.set_seen(&org(), &linked, &first)?;
                tx.put_company(&linked_company(7, &linked))?;
                tx.set_seen(&org(), &linked, &second)?;
                tx.set_seen(&org(), &alone, &first)?;
                assert_eq!(
                    tx.seen(&org(), &linked)?,
                    Some(second),
                    "read in the transaction"
                );
                Ok(())
            })
            .expect("write");

        assert_eq!(store.seen(&org(), &linked).expect("read"), Some(second));
        assert_eq!(store.seen(&org(), &alone).expect("read"), Some(first));
        let meta = &store.inner.meta;
        assert!(meta.get(keys::seen(&org(), &alone)).expect("get").is_some());
        assert_eq!(
            read_json::<Seen>(meta, "meta", &keys::seen(&org(), &linked)).expect("get"),
            Some(first),
            "the key of its own keeps what was seen before the link, and is not written again"
        );
        assert_eq!(
            store.local_by_salesforce_id(&org(), &linked).expect("link"),
            Some(LocalRef::new(super::super::RecordKind::Company, 7)),
            "the link still reads as the local record"
        );

        let moved = SalesforceId::parse("001000000000003AAA").expect("id");
        store
            .atomically(|tx| tx.put_company(&linked_company(7, &moved)))
            .expect("relink");
        assert_eq!(
            store.seen(&org(), &linked).expect("read"),
            Some(first),
            "once the link goes, the older stamp is read: the next change is pulled again"
        );
    }

    #[test]
    fn a_linked_records_written_stamp_lives_in_its_link_and_is_forgotten_wherever_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let linked = SalesforceId::parse("001000000000001AAA").expect("id");
        let alone = SalesforceId::parse("001000000000002AAA").expect("id");
        let own_key = |id| keys::written_stamp(&org(), id);
        store
            .atomically(|tx| {
                // Kept under its own key before the record was linked, as earlier versions did.
                tx.set_written_stamp(&org(), &linked, 1_000)?;
                tx.put_company(&linked_company(7, &linked))?;
                assert_eq!(tx.written_stamp(&org(), &linked)?, Some(1_000));
                tx.set_written_stamp(&org(), &linked, 2_000)?;
                tx.set_written_stamp(&org(), &alone, 3_000)?;
                Ok(())
            })
            .expect("write");

        let meta = &store.inner.meta;
        assert_eq!(
            store.written_stamp(&org(), &linked).expect("read"),
            Some(2_000)
        );
        assert!(
            meta.get(own_key(&linked)).expect("get").is_none(),
            "the key of its own went once the link held the stamp"
        );
        assert_eq!(
            store.written_stamp(&org(), &alone).expect("read"),
            Some(3_000)
        );
        assert!(meta.get(own_key(&alone)).expect("get").is_some());

        store
            .atomically(|tx| {
                tx.forget_written_stamp(&org(), &linked)?;
                tx.forget_written_stamp(&org(), &alone)
            })
            .expect("forget");
        assert_eq!(store.written_stamp(&org(), &linked).expect("read"), None);
        assert_eq!(store.written_stamp(&org(), &alone).expect("read"), None);
        assert_eq!(
            store.local_by_salesforce_id(&org(), &linked).expect("link"),
            Some(LocalRef::new(super::super::RecordKind::Company, 7)),
        );
    }
}
