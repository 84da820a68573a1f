//! Sending marks: the outbox entries of one call whose creates may be in flight.
//!
//! Before a call's creates go out, their entries are marked as maybe sent by one value naming
//! them all ([`Store::mark_outbox_maybe_sent`]), not by rewriting each entry: every read of an
//! entry named by a live mark says `maybe_sent` (see `outbox`). The transaction that writes back
//! what became of the call ends the mark ([`Tx::end_sending`]): the entries it wrote back kept
//! the flag as they read it, and any other entry of the mark gets it written. A mark left by a
//! crash is ended the same way when the store opens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::keys;
use super::outbox::{OutboxEntry, abort, corrupt};
use super::tx::{Tx, TxResult};
use super::{Store, StoreError};
use crate::domain::OrgId;

/// The entries of one call whose creates may be in flight, as stored under its mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SendingValue {
    org: OrgId,
    /// Sorted, without duplicates.
    ids: Vec<u64>,
}

/// The live sending marks, in memory (each also stored, see [`keys::outbox_sending`]).
#[derive(Debug, Default)]
pub(super) struct SendingMarks {
    marks: Mutex<BTreeMap<u64, SendingValue>>,
}

impl SendingMarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SendingValue>> {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a live mark names entry `id` of `org`.
    fn names(&self, org: &OrgId, id: u64) -> bool {
        self.lock()
            .values()
            .any(|m| m.org == *org && m.ids.binary_search(&id).is_ok())
    }

    /// `entry` as a read should see it: maybe sent while a live mark names it.
    pub(super) fn flag(&self, mut entry: OutboxEntry) -> OutboxEntry {
        if !entry.maybe_sent && self.names(&entry.org_id, entry.id) {
            entry.maybe_sent = true;
        }
        entry
    }
}

impl Tx<'_> {
    /// Ends sending mark `mark` (see the module): every entry it names that this transaction
    /// did not write back or remove, and that still exists, is stored maybe sent; the mark's
    /// value goes. The caller forgets the mark ([`Store::forget_sending`]) once this commits.
    pub fn end_sending(&self, mark: u64) -> TxResult<()> {
        let key = keys::outbox_sending(mark);
        let Some(value) = self.meta.get(&key)? else {
            return Ok(());
        };
        let sending: SendingValue = postcard::from_bytes(&value).map_err(|e| abort(corrupt(e)))?;
        let written = self.outbox_written.borrow().clone();
        for id in sending.ids {
            if written.contains(&id) {
                continue;
            }
            if let Some(mut e) = self.stored_outbox_entry(&sending.org, id)? {
                if !e.maybe_sent {
                    e.maybe_sent = true;
                    self.put_outbox_entry(&e)?;
                }
            }
        }
        self.meta.remove(key)?;
        Ok(())
    }
}

impl Store {
    /// Marks entries as possibly sent, before their creates go out: a create whose answer is
    /// lost is then looked up before it is sent again. One value names them all (a sending
    /// mark, see the module); returns the mark, for the transaction that writes back what became
    /// of them ([`Tx::end_sending`]). Not durable until [`Store::make_durable`] returns.
    pub fn mark_outbox_maybe_sent(&self, org: &OrgId, ids: &[u64]) -> Result<u64, StoreError> {
        let ids: BTreeSet<u64> = ids.iter().copied().collect();
        let value = SendingValue {
            org: org.clone(),
            ids: ids.into_iter().collect(),
        };
        let mark = self.inner.db.generate_id()?;
        let bytes = postcard::to_stdvec(&value).map_err(corrupt)?;
        self.inner.meta.insert(keys::outbox_sending(mark), bytes)?;
        self.inner.sending.lock().insert(mark, value);
        Ok(mark)
    }

    /// Forgets sending mark `mark` once the transaction that ended it has committed.
    pub fn forget_sending(&self, mark: u64) {
        self.inner.sending.lock().remove(&mark);
    }

    /// Ends every sending mark a crash left (see the module); at open, before any read.
    pub(super) fn end_left_sending_marks(&self) -> Result<usize, StoreError> {
        let mut marks = Vec::new();
        for kv in self.inner.meta.scan_prefix(keys::outbox_sending_all()) {
            let (key, value) = kv?;
            let mark = key
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt("a sending mark's key is not 9 bytes"))?;
            let value: SendingValue = postcard::from_bytes(&value).map_err(corrupt)?;
            marks.push((mark, value));
        }
        for (mark, value) in &marks {
            self.inner.sending.lock().insert(*mark, value.clone());
            self.atomically(|tx| tx.end_sending(*mark))?;
            self.forget_sending(*mark);
        }
        Ok(marks.len())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::outbox::OutboxEntry;
    use crate::store::{LocalRef, RecordKind, packed};

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    /// Entries 1..=n of org(), each for company i.
    fn entries(store: &Store, n: u64) -> Vec<u64> {
        let now = Utc::now();
        (1..=n)
            .map(|i| {
                store
                    .atomically(|tx| {
                        let target = LocalRef::new(RecordKind::Company, i);
                        tx.enqueue_push(&org(), target, None, None, now)
                    })
                    .expect("enqueue")
            })
            .collect()
    }

    /// Whether entry `id` is stored maybe sent, without any mark's flag.
    fn stored_flag(store: &Store, id: u64) -> Option<bool> {
        let key = keys::outbox_entry(store.known_org_key(&org()).expect("org key"), id);
        let v = store.inner.outbox.get(key).expect("get")?;
        let e: OutboxEntry =
            serde_json::from_slice(&packed::unpack("outbox", &v).expect("unpack")).expect("json");
        Some(e.maybe_sent)
    }

    /// `maybe_sent` of every entry of org(), as a read sees it.
    fn read_flags(store: &Store) -> Vec<bool> {
        let entries = store.outbox_entries(&org(), None).expect("entries");
        entries.iter().map(|e| e.maybe_sent).collect()
    }

    fn marks_stored(store: &Store) -> usize {
        store
            .inner
            .meta
            .scan_prefix(keys::outbox_sending_all())
            .count()
    }

    #[test]
    fn a_sending_mark_flags_its_entries_without_rewriting_them_and_its_end_keeps_the_flag_where_needed()
     {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let ids = entries(&store, 4);
        let mark = store
            .mark_outbox_maybe_sent(&org(), &ids[..3])
            .expect("mark");
        // Every read says maybe sent; nothing of the entries was written.
        assert_eq!(read_flags(&store), vec![true, true, true, false]);
        let in_tx = store
            .atomically(|tx| tx.outbox_entry(&org(), ids[0]))
            .expect("read")
            .expect("entry");
        assert!(in_tx.maybe_sent);
        assert!(ids.iter().all(|id| stored_flag(&store, *id) == Some(false)));
        // The write-back: the first delivered (removed), the second due again as a fresh send
        // (not maybe sent), the third not written back at all.
        store
            .atomically(|tx| {
                let first = tx.outbox_entry(&org(), ids[0])?.expect("first");
                tx.remove_outbox_entry(&first)?;
                let mut second = tx.outbox_entry(&org(), ids[1])?.expect("second");
                second.maybe_sent = false;
                tx.put_outbox_entry(&second)?;
                tx.end_sending(mark)
            })
            .expect("write back");
        store.forget_sending(mark);
        assert_eq!(marks_stored(&store), 0);
        assert_eq!(stored_flag(&store, ids[0]), None);
        assert_eq!(stored_flag(&store, ids[1]), Some(false));
        assert_eq!(
            stored_flag(&store, ids[2]),
            Some(true),
            "kept by the end of the mark"
        );
        assert_eq!(stored_flag(&store, ids[3]), Some(false), "never marked");
        assert_eq!(read_flags(&store), vec![false, true, false]);
    }

    #[test]
    fn a_sending_mark_a_crash_left_is_ended_at_open() {
        let dir = tempfile::tempdir().expect("dir");
        let ids = {
            let store = Store::open(dir.path()).expect("store");
            let ids = entries(&store, 3);
            store
                .mark_outbox_maybe_sent(&org(), &ids[1..])
                .expect("mark");
            assert_eq!(marks_stored(&store), 1);
            ids
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(marks_stored(&store), 0);
        let stored: Vec<_> = ids.iter().map(|id| stored_flag(&store, *id)).collect();
        assert_eq!(stored, vec![Some(false), Some(true), Some(true)]);
        assert_eq!(read_flags(&store), vec![false, true, true]);
    }
}
