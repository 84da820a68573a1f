//! The transactional outbox: one entry per local record that Salesforce has still to see.
//!
//! An entry is written by [`Tx::enqueue_push`] in the same transaction as the local write it
//! describes, so a change is never stored without its entry nor an entry without its change. An
//! entry names a record, not a payload: the drain worker pushes the record's state at the time
//! it sends. A record has at most one live entry; a change made while the entry waits or is in
//! flight bumps the entry's `version`, so the worker keeps the entry (and sends again) when the
//! version it sent is no longer the latest. That keeps per-record order by construction.
//!
//! Entries are JSON under their id. A stored record's value points at its live entry (see
//! `record_value`), which the local write rewrites anyway; a record not stored has a key of its
//! own to it (see `keys`). A call's creates are marked maybe sent without a rewrite of their
//! entries (see `sending`): reads here apply that mark.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{self, OrgKey};
use super::packed;
use super::record_value::Parts;
use super::refs::LocalRef;
use super::tx::{Tx, TxResult};
use super::{Store, StoreError};
use crate::domain::view::enum_text;
use crate::domain::{AppUser, OrgId, PushAs};
use utoipa::ToSchema;

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent, or to be sent again after a transient failure.
    Pending,
    /// Refused by Salesforce for good: waits for a person to retry or discard it.
    Dead,
}

/// One record's pending push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Entry id, increasing in enqueue order.
    pub id: u64,
    /// The org the record belongs to.
    pub org_id: OrgId,
    /// The local record to push.
    pub target: LocalRef,
    /// Pending or dead.
    pub state: OutboxState,
    /// Bumped by every change enqueued while this entry is live.
    pub version: u64,
    /// Failed sends so far (reset when a person retries).
    pub attempts: u32,
    /// A create may have reached Salesforce without its answer reaching us: look for the record
    /// before creating it again.
    pub maybe_sent: bool,
    /// Not to be sent before this instant (milliseconds since the epoch).
    pub next_attempt_ms: i64,
    /// Salesforce's message for the last failure.
    pub last_error: Option<String>,
    /// For contacts: what to create in Salesforce (`None`: the configured default).
    pub push_as: Option<PushAs>,
    /// The application user the write is made for: sent with their own connection when they
    /// have a working one, else with the org's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AppUser>,
    /// A person chose to create a new record after its look-up found several in the org: the
    /// next create goes ahead without a look-up by domain and name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_new: bool,
    /// Held until a person resolves this open conflict (its create found several records in the
    /// org): not sent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by_conflict: Option<u64>,
    /// Paused because the org's setup of this object is broken (the latest setup check): sent
    /// again when a later check passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_on: Option<String>,
    /// When the entry was first written.
    pub created_at: DateTime<Utc>,
    /// When the entry last changed.
    pub updated_at: DateTime<Utc>,
}

/// An outbox entry (a record's pending push, or a dead letter).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxEntryView {
    /// Entry id.
    id: u64,
    /// The org.
    org_id: String,
    /// `company`, `contact`, `company_product` or `activity`.
    kind: String,
    /// The local record id.
    record_id: u64,
    /// `pending` or `dead`.
    state: String,
    /// Failed sends so far.
    attempts: u32,
    /// Salesforce's message for the last failure.
    last_error: Option<String>,
    /// The application user the write is made for, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// Not sent before this instant.
    next_attempt_at: Option<DateTime<Utc>>,
    /// When the entry was written.
    created_at: DateTime<Utc>,
}

impl From<OutboxEntry> for OutboxEntryView {
    fn from(e: OutboxEntry) -> Self {
        Self {
            id: e.id,
            org_id: e.org_id.to_string(),
            kind: enum_text(&e.target.kind),
            record_id: e.target.id,
            state: enum_text(&e.state),
            attempts: e.attempts,
            last_error: e.last_error,
            user: e.user.map(|u| u.to_string()),
            next_attempt_at: DateTime::from_timestamp_millis(e.next_attempt_ms),
            created_at: e.created_at,
        }
    }
}

fn entry_key(org: OrgKey, id: u64) -> Vec<u8> {
    keys::outbox_entry(org, id)
}

fn record_key(org: OrgKey, target: LocalRef) -> Vec<u8> {
    keys::outbox_record(org, target.kind.code(), target.id)
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: "outbox",
        reason: e.to_string(),
    }
}

pub(super) fn abort(e: StoreError) -> sled::transaction::ConflictableTransactionError<StoreError> {
    sled::transaction::ConflictableTransactionError::Abort(e)
}

impl Tx<'_> {
    /// Records that `target` must be pushed: a new entry, or the live entry of that record with
    /// its version bumped (and `push_as` and `user` replaced when given). Returns the entry id.
    pub fn enqueue_push(
        &self,
        org: &OrgId,
        target: LocalRef,
        push_as: Option<PushAs>,
        user: Option<&AppUser>,
        now: DateTime<Utc>,
    ) -> TxResult<u64> {
        if let Some(mut entry) = self.outbox_entry_for(org, target)? {
            entry.version += 1;
            entry.updated_at = now;
            if push_as.is_some() {
                entry.push_as = push_as;
            }
            if let Some(user) = user {
                entry.user = Some(user.clone());
            }
            self.put_outbox_entry(&entry)?;
            return Ok(entry.id);
        }
        let id = self.outbox.generate_id()? + 1;
        let entry = OutboxEntry {
            id,
            org_id: org.clone(),
            target,
            state: OutboxState::Pending,
            version: 1,
            attempts: 0,
            maybe_sent: false,
            next_attempt_ms: now.timestamp_millis(),
            last_error: None,
            push_as,
            user: user.cloned(),
            create_new: false,
            held_by_conflict: None,
            paused_on: None,
            created_at: now,
            updated_at: now,
        };
        if !self.set_live_outbox(org, target, id)? {
            self.outbox
                .insert(record_key(self.org_key(org)?, target), &id.to_be_bytes())?;
        }
        self.put_outbox_entry(&entry)?;
        Ok(id)
    }

    /// Points a stored record's value at its new live entry; `false` when the record is not
    /// stored (nothing written): its entry is then found by a key of its own.
    fn set_live_outbox(&self, org: &OrgId, target: LocalRef, id: u64) -> TxResult<bool> {
        let key = target.key(self.org_key(org)?);
        let Some(value) = self.records.get(&key)? else {
            return Ok(false);
        };
        let mut parts = Parts::of(&value).map_err(abort)?;
        parts.outbox = Some(id);
        self.records.insert(key, parts.to_value())?;
        Ok(true)
    }

    /// An entry by id.
    pub fn outbox_entry(&self, org: &OrgId, id: u64) -> TxResult<Option<OutboxEntry>> {
        Ok(self
            .stored_outbox_entry(org, id)?
            .map(|e| self.sending.flag(e)))
    }

    /// An entry as stored, without the flag of a live sending mark.
    pub(super) fn stored_outbox_entry(
        &self,
        org: &OrgId,
        id: u64,
    ) -> TxResult<Option<OutboxEntry>> {
        match self.outbox.get(entry_key(self.org_key(org)?, id))? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&packed::unpack("outbox", &v).map_err(abort)?)
                    .map_err(|e| abort(corrupt(e)))?,
            )),
            None => Ok(None),
        }
    }

    /// The live entry of a record, if any: the one its stored value points at, else the one a
    /// key of its own points at (a record not stored, or an entry written by earlier versions).
    /// A pointer to an entry since removed is no live entry.
    pub fn outbox_entry_for(&self, org: &OrgId, target: LocalRef) -> TxResult<Option<OutboxEntry>> {
        let pointed = match self.records.get(target.key(self.org_key(org)?))? {
            Some(value) => Parts::of(&value).map_err(abort)?.outbox,
            None => None,
        };
        if let Some(id) = pointed {
            return self.outbox_entry(org, id);
        }
        let Some(raw) = self.outbox.get(record_key(self.org_key(org)?, target))? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = raw
            .as_ref()
            .try_into()
            .map_err(|_| abort(corrupt("record index value is not 8 bytes")))?;
        self.outbox_entry(org, u64::from_be_bytes(bytes))
    }

    /// Writes an entry back (state, attempts, schedule, error).
    pub fn put_outbox_entry(&self, entry: &OutboxEntry) -> TxResult<()> {
        self.outbox_written.borrow_mut().insert(entry.id);
        let bytes = packed::pack(&serde_json::to_vec(entry).map_err(|e| abort(corrupt(e)))?);
        self.outbox
            .insert(entry_key(self.org_key(&entry.org_id)?, entry.id), bytes)?;
        Ok(())
    }

    /// Removes an entry and its per-record key, if it has one (delivered, or discarded by a
    /// person). A record's value that points at it is left as it is: ids are never reused.
    pub fn remove_outbox_entry(&self, entry: &OutboxEntry) -> TxResult<()> {
        self.outbox_written.borrow_mut().insert(entry.id);
        self.outbox
            .remove(entry_key(self.org_key(&entry.org_id)?, entry.id))?;
        let rk = record_key(self.org_key(&entry.org_id)?, entry.target);
        if self
            .outbox
            .get(&rk)?
            .is_some_and(|v| v.as_ref() == entry.id.to_be_bytes())
        {
            self.outbox.remove(rk)?;
        }
        Ok(())
    }

    /// Releases an entry held by a conflict: due now; `create_new` when the person chose a new
    /// record over the candidates.
    pub fn release_held_entry(
        &self,
        org: &OrgId,
        target: LocalRef,
        create_new: bool,
        now: DateTime<Utc>,
    ) -> TxResult<Option<OutboxEntry>> {
        let Some(mut entry) = self.outbox_entry_for(org, target)? else {
            return Ok(None);
        };
        entry.held_by_conflict = None;
        entry.create_new = create_new;
        entry.last_error = None;
        entry.next_attempt_ms = now.timestamp_millis();
        entry.updated_at = now;
        self.put_outbox_entry(&entry)?;
        Ok(Some(entry))
    }
}

impl Store {
    /// Makes the entries paused on `object` due now (its setup was checked and passes). Returns
    /// how many.
    pub fn resume_paused(
        &self,
        org: &OrgId,
        object: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let paused: Vec<u64> = self
            .scan_outbox(org)
            .filter_map(|e| e.ok())
            .filter(|e| e.paused_on.as_deref() == Some(object))
            .map(|e| e.id)
            .collect();
        self.atomically(|tx| {
            let mut n = 0;
            for id in &paused {
                if let Some(mut e) = tx.outbox_entry(org, *id)? {
                    if e.paused_on.as_deref() == Some(object) {
                        e.paused_on = None;
                        e.last_error = None;
                        e.next_attempt_ms = now.timestamp_millis();
                        e.updated_at = now;
                        tx.put_outbox_entry(&e)?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        })
    }
}

/// Entries of one org by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Entries waiting to be sent.
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

impl Store {
    fn scan_outbox(
        &self,
        org: &OrgId,
    ) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> + use<> {
        let tree = self.inner.outbox.clone();
        let sending = self.inner.sending.clone();
        self.known_org_key(org)
            .into_iter()
            .flat_map(move |org| tree.scan_prefix(keys::outbox_entries(org)))
            .map(move |kv| {
                let (_, v) = kv?;
                let entry =
                    serde_json::from_slice(&packed::unpack("outbox", &v)?).map_err(corrupt)?;
                Ok(sending.flag(entry))
            })
    }

    /// An org's outbox entries in enqueue order, optionally only those in `state`.
    pub fn outbox_entries(
        &self,
        org: &OrgId,
        state: Option<OutboxState>,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for e in self.scan_outbox(org) {
            let e = e?;
            if state.is_none_or(|s| s == e.state) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Pending entries of an org whose time has come (`next_attempt_ms <= now_ms`), oldest
    /// first, at most `limit`.
    pub fn due_outbox(
        &self,
        org: &OrgId,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for e in self.scan_outbox(org) {
            let e = e?;
            if e.state == OutboxState::Pending && e.next_attempt_ms <= now_ms {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many entries of an org are pending and dead.
    pub fn outbox_counts(&self, org: &OrgId) -> Result<OutboxCounts, StoreError> {
        let mut counts = OutboxCounts::default();
        for e in self.scan_outbox(org) {
            match e?.state {
                OutboxState::Pending => counts.pending += 1,
                OutboxState::Dead => counts.dead += 1,
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RecordKind, TxAbort};
    use std::convert::Infallible;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    #[test]
    fn a_record_has_one_live_entry_whose_version_counts_its_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let target = LocalRef {
            kind: RecordKind::Contact,
            id: 9,
        };
        let other = LocalRef {
            kind: RecordKind::Activity,
            id: 9,
        };
        let now = Utc::now();
        let alice = AppUser::parse("alice").expect("user");
        let (a, b, c) = store
            .transact(|tx| -> Result<_, TxAbort<Infallible>> {
                let a = tx.enqueue_push(&org(), target, None, Some(&alice), now)?;
                let b = tx.enqueue_push(&org(), target, Some(PushAs::Lead), None, now)?;
                let c = tx.enqueue_push(&org(), other, None, None, now)?;
                Ok((a, b, c))
            })
            .expect("enqueue");

        assert_eq!(a, b);
        assert_ne!(a, c);
        let entries = store.outbox_entries(&org(), None).expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].version, 2);
        assert_eq!(entries[0].push_as, Some(PushAs::Lead));
        assert_eq!(
            entries[0].user,
            Some(alice),
            "a change with no user keeps the entry's"
        );
        assert_eq!(entries[1].user, None);
        assert_eq!(
            store.outbox_counts(&org()).expect("counts"),
            OutboxCounts {
                pending: 2,
                dead: 0
            }
        );
        assert_eq!(
            store
                .due_outbox(&org(), now.timestamp_millis() - 1, 10)
                .expect("due")
                .len(),
            0,
            "nothing is due before its time"
        );

        store
            .transact(|tx| -> Result<_, TxAbort<Infallible>> {
                tx.remove_outbox_entry(&entries[0])?;
                Ok(())
            })
            .expect("remove");
        let fresh = store
            .transact(|tx| -> Result<_, TxAbort<Infallible>> {
                Ok(tx.enqueue_push(&org(), target, None, None, now)?)
            })
            .expect("enqueue");
        assert_ne!(fresh, a, "a delivered record's next change is a new entry");
    }

    #[test]
    fn a_stored_records_value_points_at_its_live_entry_and_a_key_of_its_own_still_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let now = Utc::now();
        let company =
            |id: u64, name: &str| crate::domain::Company::named(id, org(), name.into(), now);
        let stored = LocalRef {
            kind: RecordKind::Company,
            id: 1,
        };
        let enqueue = |target: LocalRef| {
            store
                .atomically(|tx| tx.enqueue_push(&org(), target, None, None, now))
                .expect("enqueue")
        };
        let own_key = |target: LocalRef| {
            store
                .inner
                .outbox
                .get(record_key(
                    store.known_org_key(&org()).expect("org key"),
                    target,
                ))
                .expect("get")
        };
        store
            .atomically(|tx| tx.put_company(&company(1, "Acme")))
            .expect("company");

        let first = enqueue(stored);
        assert!(own_key(stored).is_none(), "no key of its own");
        store
            .atomically(|tx| tx.put_company(&company(1, "Acme Renamed")))
            .expect("rewrite");
        assert_eq!(
            enqueue(stored),
            first,
            "a rewrite keeps the pointer: one live entry"
        );
        let entry = store
            .atomically(|tx| tx.outbox_entry(&org(), first))
            .expect("entry")
            .expect("live");
        assert_eq!(entry.version, 2);
        store
            .atomically(|tx| tx.remove_outbox_entry(&entry))
            .expect("remove");
        assert_eq!(
            store
                .atomically(|tx| tx.outbox_entry_for(&org(), stored))
                .expect("read"),
            None,
            "a pointer to a removed entry is no live entry"
        );
        assert_ne!(enqueue(stored), first);

        // An entry found by a key of its own, as earlier versions wrote for every record (and
        // this one still does for a record not stored), of a record stored since.
        let older = LocalRef {
            kind: RecordKind::Company,
            id: 2,
        };
        let legacy = enqueue(older);
        assert!(own_key(older).is_some());
        store
            .atomically(|tx| tx.put_company(&company(2, "Older")))
            .expect("company");
        assert_eq!(enqueue(older), legacy, "found by its key of its own");
    }
}
