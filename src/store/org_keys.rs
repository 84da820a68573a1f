//! Each org's short key ([`OrgKey`]): the 3 bytes its keys start with in the trees every record
//! write touches (records, provenance, records_index, outbox), instead of its 18-character id.
//!
//! sled writes an index node whole whenever a child of it splits, and the nodes on the right
//! edge of a tree, where new keys go, keep every key's bytes whole (they have no upper bound to
//! share a prefix with); so the bytes of the org at the start of every key were written again
//! and again. An org gets its number the first time the store writes for it, and the number is
//! made durable (sled's flush and an `fsync`) before any key starts with it. Numbers are never
//! given twice and never change.
//!
//! Keys written by earlier versions start with the org id. The store's open moves them to the
//! short keys, in batches that each move their keys at once (the key under its new name
//! inserted, the old one removed): a crash in between leaves every key under one of its two
//! names, and the next open moves the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use super::keys::{self, OrgKey};
use super::{Store, StoreError, corrupt, disk};
use crate::domain::OrgId;

/// How many keys one batch of the move at open rewrites.
const MOVE_BATCH: usize = 1024;

/// The first byte of a key that starts with an org id: every org id starts with b'0', and
/// every short key with a byte below it.
const LEGACY_FIRST: &[u8] = b"0";

/// The orgs' short keys, all in memory (one entry per org), and the tree they are kept in.
pub(super) struct OrgKeys {
    db: sled::Db,
    dir: PathBuf,
    tree: sled::Tree,
    given: RwLock<HashMap<OrgId, OrgKey>>,
    /// Held while a key is given, so that no two orgs get the same number.
    giving: Mutex<()>,
}

impl OrgKeys {
    /// Reads every org's key, then moves the keys of `trees` written by earlier versions.
    pub(super) fn open(
        db: &sled::Db,
        dir: &Path,
        trees: &[(&'static str, &sled::Tree)],
    ) -> Result<Self, StoreError> {
        let tree = db.open_tree("org_keys")?;
        let mut given = HashMap::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let org = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| OrgId::parse(s).ok())
                .ok_or_else(|| corrupt("org_keys", "a key that is not an org id"))?;
            let key = OrgKey::from_stored(&v).ok_or_else(|| {
                corrupt(
                    "org_keys",
                    format!("the key of {org} is not 3 bytes below the limit"),
                )
            })?;
            given.insert(org, key);
        }
        let keys = Self {
            db: db.clone(),
            dir: dir.to_path_buf(),
            tree,
            given: RwLock::new(given),
            giving: Mutex::new(()),
        };
        for (name, tree) in trees {
            keys.move_legacy(name, tree)?;
        }
        Ok(keys)
    }

    /// The key of `org`, if it has one (an org the store never wrote for has none, and no keys).
    pub(super) fn get(&self, org: &OrgId) -> Option<OrgKey> {
        self.given
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(org)
            .copied()
    }

    /// The key of `org`, given now if it has none; durable before it is returned.
    ///
    /// Never called inside a sled transaction. The map's lock is held only to read or insert,
    /// never across sled's insert and flush: a transaction that holds sled's lock may be waiting
    /// to read the map.
    pub(super) fn get_or_give(&self, org: &OrgId) -> Result<OrgKey, StoreError> {
        if let Some(key) = self.get(org) {
            return Ok(key);
        }
        let _giving = self.giving.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = self.get(org) {
            return Ok(key);
        }
        let next = self
            .given
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|k| k.number())
            .max()
            .unwrap_or(0)
            + 1;
        let key = OrgKey::from_number(next).ok_or_else(|| {
            StoreError::Write(format!(
                "this store holds the most orgs it can ({})",
                OrgKey::LIMIT - 1
            ))
        })?;
        self.tree
            .insert(org.as_str().as_bytes(), &key.bytes()[..])?;
        self.db.flush()?;
        disk::fsync_data_file(&self.dir)?;
        self.given
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org.clone(), key);
        Ok(key)
    }

    /// Moves every key of `tree` that starts with an org id to the org's short key.
    fn move_legacy(&self, name: &'static str, tree: &sled::Tree) -> Result<(), StoreError> {
        let mut moved = 0u64;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in tree.range(LEGACY_FIRST..).take(MOVE_BATCH) {
                let (k, v) = kv?;
                let org = keys::legacy_org(&k).ok_or_else(|| {
                    corrupt(
                        name,
                        "a key that starts neither with an org key nor an org id",
                    )
                })?;
                batch.insert(keys::shortened(&k, self.get_or_give(&org)?), v);
                batch.remove(k);
                n += 1;
            }
            if n == 0 {
                break;
            }
            tree.apply_batch(batch)?;
            moved += n as u64;
        }
        if moved > 0 {
            tracing::info!(
                tree = name,
                moved,
                "store: keys of an earlier version moved to short org keys"
            );
        }
        Ok(())
    }
}

impl Store {
    /// The short key of `org` if the store ever wrote for it; an org without one has nothing
    /// stored in the record trees.
    pub(super) fn known_org_key(&self, org: &OrgId) -> Option<OrgKey> {
        self.inner.org_keys.get(org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Company, SalesforceId};
    use crate::store::{LocalRef, Provenance, RecordKind};
    use chrono::Utc;

    fn org(n: u8) -> OrgId {
        OrgId::parse(&format!("00D7F0000010{n}Xs")).expect("org")
    }

    const TREES: [&str; 4] = ["records", "records_index", "provenance", "outbox"];

    /// For `org`: a company linked to a Salesforce id, with a domain, a provenance entry and a
    /// live outbox entry.
    fn fill(store: &Store, org: &OrgId, sfid: &SalesforceId) {
        let mut c = Company::named(1, org.clone(), "Acme".into(), Utc::now());
        c.domain = Some("acme.com".into());
        c.salesforce_id = Some(sfid.clone());
        let me = LocalRef::new(RecordKind::Company, 1);
        let p = Provenance {
            side: "local".into(),
            event: "import-1".into(),
            rule: "create".into(),
            at: "2026-12-01T10:00:00+00:00".into(),
        };
        store
            .atomically(|tx| {
                tx.put_company(&c)?;
                tx.add_provenance(org, me, &p)?;
                tx.enqueue_push(org, me, None, None, Utc::now())
            })
            .expect("fill");
    }

    /// Everything a reader sees of `org`'s records, links, indexes, provenance and outbox.
    fn seen(store: &Store, org: &OrgId, sfid: &SalesforceId) -> String {
        let me = LocalRef::new(RecordKind::Company, 1);
        let by_domain = store
            .atomically(|tx| tx.companies_by_domain(org, "acme.com"))
            .expect("domain");
        let live = store
            .atomically(|tx| tx.outbox_entry_for(org, me))
            .expect("live")
            .map(|e| e.id);
        format!(
            "{:?} {:?} {by_domain:?} {:?} {:?} {live:?}",
            store.companies(org).expect("companies"),
            store.local_by_salesforce_id(org, sfid).expect("link"),
            store.provenance(org, me).expect("provenance"),
            store.outbox_entries(org, None).expect("outbox"),
        )
    }

    /// Every key of the record trees, by tree.
    fn all_keys(db: &sled::Db) -> Vec<Vec<Vec<u8>>> {
        TREES
            .iter()
            .map(|t| {
                let tree = db.open_tree(t).expect("tree");
                tree.iter()
                    .keys()
                    .map(|k| k.expect("key").to_vec())
                    .collect()
            })
            .collect()
    }

    /// Rewrites every `every`-th key of the record trees the way earlier versions wrote it
    /// (the org id first); without `keep_given`, the org keys tree goes too, as a store of an
    /// earlier version has none.
    fn write_as_before(dir: &Path, orgs: &[OrgId], every: usize, keep_given: bool) {
        let db = super::super::open_db(dir).expect("db");
        let given = db.open_tree("org_keys").expect("org keys");
        let id_of = |short: &[u8]| {
            orgs.iter()
                .find(|o| given.get(o.as_str()).expect("get").as_deref() == Some(short))
                .expect("an org of the test")
                .clone()
        };
        for t in TREES {
            let tree = db.open_tree(t).expect("tree");
            let keys: Vec<_> = tree.iter().keys().map(|k| k.expect("key")).collect();
            for k in keys.into_iter().step_by(every) {
                let v = tree.remove(&k).expect("remove").expect("value");
                let mut old = id_of(&k[..3]).as_str().as_bytes().to_vec();
                old.extend_from_slice(&k[3..]);
                tree.insert(old, v).expect("insert");
            }
        }
        if !keep_given {
            db.drop_tree("org_keys").expect("drop");
        }
        db.flush().expect("flush");
    }

    #[test]
    fn each_org_gets_its_own_key_once_and_keeps_it_across_opens() {
        let dir = tempfile::tempdir().expect("dir");
        let sfid = SalesforceId::parse("001000000000001AAA").expect("id");
        let (a, b) = {
            let store = Store::open(dir.path()).expect("store");
            assert_eq!(store.known_org_key(&org(1)), None);
            assert_eq!(
                store.companies(&org(1)).expect("read"),
                vec![],
                "nothing, no key"
            );
            fill(&store, &org(1), &sfid);
            fill(&store, &org(2), &sfid);
            let a = store
                .known_org_key(&org(1))
                .expect("given at the first write");
            let b = store
                .known_org_key(&org(2))
                .expect("given at the first write");
            assert_ne!(a, b);
            assert_ne!(seen(&store, &org(1), &sfid), seen(&store, &org(2), &sfid));
            (a, b)
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.known_org_key(&org(1)), Some(a));
        assert_eq!(store.known_org_key(&org(2)), Some(b));
        fill(&store, &org(3), &sfid);
        let c = store.known_org_key(&org(3)).expect("key");
        assert!(c != a && c != b, "a number is never given twice");
        for short in [a, b, c] {
            assert!(
                short.bytes()[0] < b'0',
                "no short key starts like an org id"
            );
        }
        assert_eq!(OrgKey::from_number(OrgKey::LIMIT), None);
        assert_eq!(OrgKey::from_number(0), None);
        let top = OrgKey::from_number(OrgKey::LIMIT - 1).expect("the last");
        assert_eq!(OrgKey::from_stored(&top.bytes()), Some(top));
        assert!(top.bytes()[0] < b'0');
    }

    #[test]
    fn giving_a_key_while_a_transaction_holds_sleds_lock_and_reads_the_keys_does_not_deadlock() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let sfid = SalesforceId::parse("001000000000001AAA").expect("id");
        fill(&store, &org(1), &sfid);
        let (inside, entered) = std::sync::mpsc::channel();
        let (finished, done) = std::sync::mpsc::channel();
        let writer = store.clone();
        std::thread::spawn(move || {
            let first = std::cell::Cell::new(true);
            writer
                .atomically(|tx| {
                    if first.replace(false) {
                        inside.send(()).expect("send");
                        // The other thread is now giving a key: it waits for this transaction.
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    tx.companies_by_domain(&org(1), "acme.com")
                })
                .expect("transaction");
            finished.send(()).expect("send");
        });
        entered.recv().expect("inside");
        let giver = store.clone();
        std::thread::spawn(move || {
            giver.inner.org_keys.get_or_give(&org(2)).expect("give");
        });
        done.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the transaction ends while a key is being given");
    }

    #[test]
    fn keys_of_an_earlier_version_move_at_open_and_read_the_same_and_a_half_done_move_finishes() {
        let sfid = SalesforceId::parse("001000000000001AAA").expect("id");
        let orgs = [org(1), org(2)];
        // (every, keep_given): an earlier version's store; a move a crash stopped half way.
        for (every, keep_given) in [(1, false), (2, true)] {
            let dir = tempfile::tempdir().expect("dir");
            let (before, short_keys) = {
                let store = Store::open(dir.path()).expect("store");
                for o in &orgs {
                    fill(&store, o, &sfid);
                }
                let before: Vec<String> = orgs.iter().map(|o| seen(&store, o, &sfid)).collect();
                (before, all_keys(&store.inner.db))
            };
            write_as_before(dir.path(), &orgs, every, keep_given);
            {
                let db = super::super::open_db(dir.path()).expect("db");
                let legacy = all_keys(&db).concat();
                let legacy = legacy.iter().filter(|k| k[0] >= b'0').count();
                let expected: usize = short_keys.iter().map(|t| t.len().div_ceil(every)).sum();
                assert_eq!(legacy, expected, "keys written as before");
                assert!(expected >= 5);
            }

            let store = Store::open(dir.path()).expect("reopen");
            let after: Vec<String> = orgs.iter().map(|o| seen(&store, o, &sfid)).collect();
            assert_eq!(after, before, "every={every}");
            let moved = all_keys(&store.inner.db);
            if keep_given {
                assert_eq!(moved, short_keys, "the same keys as before the half move");
            } else {
                assert_eq!(moved.concat().len(), short_keys.concat().len());
                assert!(
                    moved.concat().iter().all(|k| k[0] < b'0'),
                    "every key moved"
                );
            }
        }
    }
}
