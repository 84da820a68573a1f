//! Provenance: every change applied to a record, from which side, which event, which rule, when.
//!
//! A record's newest entries live in its own value in the records tree (its provenance part, see
//! `record_value`), so an applied change costs no key of its own: the change rewrites the record
//! anyway. When a record holds more than [`INLINE_MAX`] entries, they move together, as one
//! chunk, to the provenance tree under `record key ‖ first entry's seq`. A record that is removed
//! moves its entries there first, so its history stays. Entries of a record not stored at all go
//! to the tree at once.
//!
//! The provenance tree also holds entries written one per key as JSON (`record key ‖ seq`), as
//! earlier versions did; a chunk starts with [`CHUNK`], which no JSON value starts with. Every
//! `seq` comes from one counter, so a record's entries, chunks before inline ones, are in order.
//!
//! Entries, inline or in a chunk, are postcard in the compact layout: [`COMPACT`], then each
//! entry's seq, its side as a code when it is `salesforce` or `local`, its event and rule, and its
//! time as nanoseconds since the epoch when that gives back the same RFC 3339 text (the text
//! itself otherwise). The 35 bytes of `2026-12-01T10:00:00.123456789+00:00` become 9. Entries
//! written by earlier versions, postcard of `(seq, Provenance)` pairs, are still read: that
//! layout starts with the count of entries, which is never zero.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::keys;
use super::outbox::abort;
use super::pages::{Page, PageRequest};
use super::record_value::Parts;
use super::refs::{LocalRef, Provenance, RecordKind};
use super::tx::{Tx, TxResult};
use super::{Store, StoreError};
use crate::domain::OrgId;

/// Starts a provenance tree value that holds several entries (postcard).
const CHUNK: u8 = 0x01;

/// The most entries a record's value holds before they move to the tree as one chunk.
pub(super) const INLINE_MAX: usize = 4;

/// Starts entries in the compact layout.
const COMPACT: u8 = 0x00;

/// One entry and its sequence number.
type Entry = (u64, Provenance);

/// An entry's side in the compact layout.
#[derive(Serialize, Deserialize)]
enum Side {
    Salesforce,
    Local,
    Other(String),
}

/// An entry's time in the compact layout.
#[derive(Serialize, Deserialize)]
enum At {
    /// Nanoseconds since the epoch, whose RFC 3339 text (`DateTime<Utc>::to_rfc3339`) is the
    /// entry's.
    Nanos(i64),
    /// Any other text, as it is.
    Text(String),
}

/// One entry in the compact layout: seq, side, event, rule, time.
#[derive(Serialize, Deserialize)]
struct Compact(u64, Side, String, String, At);

impl Compact {
    fn of((seq, p): &Entry) -> Self {
        let side = match p.side.as_str() {
            "salesforce" => Side::Salesforce,
            "local" => Side::Local,
            other => Side::Other(other.to_owned()),
        };
        let nanos = DateTime::parse_from_rfc3339(&p.at)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .filter(|n| Utc.timestamp_nanos(*n).to_rfc3339() == p.at);
        let at = nanos.map_or_else(|| At::Text(p.at.clone()), At::Nanos);
        Self(*seq, side, p.event.clone(), p.rule.clone(), at)
    }

    fn entry(self) -> Entry {
        let Self(seq, side, event, rule, at) = self;
        let side = match side {
            Side::Salesforce => "salesforce".to_owned(),
            Side::Local => "local".to_owned(),
            Side::Other(other) => other,
        };
        let at = match at {
            At::Nanos(n) => Utc.timestamp_nanos(n).to_rfc3339(),
            At::Text(text) => text,
        };
        (
            seq,
            Provenance {
                side,
                event,
                rule,
                at,
            },
        )
    }
}

/// Entries in the compact layout, appended to `out`.
fn encode(entries: &[Entry], out: &mut Vec<u8>, tree: &'static str) -> Result<(), StoreError> {
    out.push(COMPACT);
    let compact: Vec<Compact> = entries.iter().map(Compact::of).collect();
    postcard::to_io(&compact, out).map_err(|e| corrupt(tree, e))?;
    Ok(())
}

/// Entries in either layout.
fn decode(bytes: &[u8], tree: &'static str) -> Result<Vec<Entry>, StoreError> {
    match bytes.split_first() {
        Some((&COMPACT, rest)) => {
            let compact: Vec<Compact> = postcard::from_bytes(rest).map_err(|e| corrupt(tree, e))?;
            Ok(compact.into_iter().map(Compact::entry).collect())
        }
        _ => postcard::from_bytes(bytes).map_err(|e| corrupt(tree, e)),
    }
}

fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    }
}

/// The provenance entries a records tree value holds after the record's JSON.
fn inline_part(value: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let bytes = Parts::of(value)?.provenance;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    decode(bytes, "records")
}

/// The entries of one provenance tree value: a chunk, or one JSON entry numbered by its key.
fn tree_entries(key: &[u8], value: &[u8]) -> Result<Vec<Entry>, StoreError> {
    if let Some(chunk) = value.strip_prefix(&[CHUNK]) {
        return decode(chunk, "provenance");
    }
    let seq = key
        .len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt("provenance", "a key shorter than its seq"))?;
    let p = serde_json::from_slice(value).map_err(|e| corrupt("provenance", e))?;
    Ok(vec![(seq, p)])
}

/// `kind(1) ‖ id(8)` after the org key of a records or provenance key.
fn target_of(key: &[u8]) -> Option<LocalRef> {
    let (kind, id) = keys::record_of_key(key)?;
    Some(LocalRef {
        kind: RecordKind::from_code(kind)?,
        id,
    })
}

impl Tx<'_> {
    /// Appends a provenance entry for a record: into the record's value when it is stored.
    pub fn add_provenance(&self, org: &OrgId, target: LocalRef, p: &Provenance) -> TxResult<()> {
        let seq = self.provenance.generate_id()?;
        let key = target.key(self.org_key(org)?);
        let Some(value) = self.records.get(&key)? else {
            return self.put_chunk(org, target, &[(seq, p.clone())]);
        };
        let mut inline = inline_part(&value).map_err(abort)?;
        inline.push((seq, p.clone()));
        if inline.len() > INLINE_MAX {
            self.put_chunk(org, target, &inline)?;
            inline.clear();
        }
        let mut encoded = Vec::new();
        if !inline.is_empty() {
            encode(&inline, &mut encoded, "records").map_err(abort)?;
        }
        let mut parts = Parts::of(&value).map_err(abort)?;
        parts.provenance = &encoded;
        self.records.insert(key, parts.to_value())?;
        Ok(())
    }

    /// Moves the inline entries of a record about to be removed to the provenance tree.
    pub(super) fn keep_history(&self, org: &OrgId, target: LocalRef) -> TxResult<()> {
        if let Some(value) = self.records.get(target.key(self.org_key(org)?))? {
            let inline = inline_part(&value).map_err(abort)?;
            if !inline.is_empty() {
                self.put_chunk(org, target, &inline)?;
            }
        }
        Ok(())
    }

    fn put_chunk(&self, org: &OrgId, target: LocalRef, entries: &[Entry]) -> TxResult<()> {
        let Some((first, _)) = entries.first() else {
            return Ok(());
        };
        let key = keys::provenance(self.org_key(org)?, target.kind.code(), target.id, *first);
        let mut value = vec![CHUNK];
        encode(entries, &mut value, "provenance").map_err(abort)?;
        self.provenance.insert(key, value)?;
        Ok(())
    }
}

impl Store {
    /// A record's entries with their sequence numbers, oldest first. The record's value is read
    /// before the tree: entries a transaction moves to the tree in between are then read twice,
    /// and kept once, rather than missed.
    fn history(&self, org: &OrgId, target: LocalRef) -> Result<Vec<Entry>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(Vec::new());
        };
        let key = target.key(org);
        let inline = match self.inner.records.get(&key)? {
            Some(v) => inline_part(&v)?,
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for kv in self.inner.provenance.scan_prefix(&key) {
            let (k, v) = kv?;
            out.extend(tree_entries(&k, &v)?);
        }
        out.extend(inline);
        out.sort_by_key(|(seq, _)| *seq);
        out.dedup_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    /// A record's provenance, oldest first.
    pub fn provenance(&self, org: &OrgId, target: LocalRef) -> Result<Vec<Provenance>, StoreError> {
        Ok(self
            .history(org, target)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// One page of a record's provenance, oldest first: each change applied to it, from which
    /// side, which event, which rule. A page reads the record's whole history, which is one
    /// record's changes.
    pub fn provenance_page(
        &self,
        org: &OrgId,
        target: LocalRef,
        page: PageRequest,
    ) -> Result<Page<Provenance>, StoreError> {
        let limit = page.limit.max(1);
        let mut rest = self
            .history(org, target)?
            .into_iter()
            .filter(|(seq, _)| page.after.is_none_or(|after| *seq > after));
        let items: Vec<Entry> = rest.by_ref().take(limit).collect();
        let more = rest.next().is_some();
        Ok(Page {
            next: items.last().map(|(seq, _)| *seq).filter(|_| more),
            items: items.into_iter().map(|(_, p)| p).collect(),
        })
    }

    /// The org's `limit` latest provenance entries, newest first, with the record each
    /// concerns. It reads every entry of the org, in its records and then in the provenance tree
    /// (entries moved to the tree in between are read twice and kept once): meant for a person's
    /// page, not for a hot path.
    pub fn latest_provenance(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> Result<Vec<(LocalRef, Provenance)>, StoreError> {
        let mut newest = BinaryHeap::with_capacity(limit + 1);
        let mut keep = |target: LocalRef, entries: Vec<Entry>| {
            for (seq, p) in entries {
                let older = newest.len() >= limit
                    && newest
                        .peek()
                        .is_some_and(|Reverse(o): &Reverse<Newest>| seq <= o.0);
                if older || newest.iter().any(|Reverse(n)| n.0 == seq) {
                    continue;
                }
                newest.push(Reverse(Newest(seq, target, p)));
                if newest.len() > limit {
                    newest.pop();
                }
            }
        };
        let Some(org) = self.known_org_key(org) else {
            return Ok(Vec::new());
        };
        for kv in self.inner.records.scan_prefix(keys::org_short(org)) {
            let (k, v) = kv?;
            if let Some(target) = target_of(&k) {
                keep(target, inline_part(&v)?);
            }
        }
        for kv in self.inner.provenance.scan_prefix(keys::org_short(org)) {
            let (k, v) = kv?;
            if let Some(target) = target_of(&k) {
                keep(target, tree_entries(&k, &v)?);
            }
        }
        Ok(newest
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(Newest(_, target, p))| (target, p))
            .collect())
    }
}

/// An entry ordered by its sequence number alone (unique across the store).
struct Newest(u64, LocalRef, Provenance);

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Company, Contact};
    use chrono::Utc;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    /// The org's short key, given now if the store has not written for it yet.
    fn short(store: &Store) -> keys::OrgKey {
        store.inner.org_keys.get_or_give(&org()).expect("org key")
    }

    fn entry(n: usize) -> Provenance {
        Provenance {
            side: "salesforce".into(),
            event: format!("04l7F00000{n:08}"),
            rule: "match:salesforce_id".into(),
            at: "2026-12-01T10:00:00+00:00".into(),
        }
    }

    fn events(entries: &[Provenance]) -> Vec<String> {
        entries.iter().map(|p| p.event.clone()).collect()
    }

    fn company(store: &Store, id: u64, name: &str) {
        let c = Company::named(id, org(), name.into(), Utc::now());
        store.atomically(|tx| tx.put_company(&c)).expect("company");
    }

    fn add(store: &Store, target: LocalRef, from: usize, to: usize) {
        for n in from..to {
            store
                .atomically(|tx| tx.add_provenance(&org(), target, &entry(n)))
                .expect("add");
        }
    }

    fn tree_keys(store: &Store) -> usize {
        store.inner.provenance.len()
    }

    #[test]
    fn a_records_newest_entries_live_in_its_value_and_move_to_the_tree_as_one_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let me = LocalRef::new(RecordKind::Company, 1);
        company(&store, 1, "Acme");

        add(&store, me, 0, 1);
        assert_eq!(tree_keys(&store), 0, "the change cost no key of its own");
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            events(&[entry(0)])
        );

        add(&store, me, 1, INLINE_MAX + 2);
        assert_eq!(
            tree_keys(&store),
            1,
            "the first {} moved as one chunk",
            INLINE_MAX + 1
        );
        // Rewriting the record keeps its entries; every reader of the record sees only it.
        company(&store, 1, "Acme Renamed");
        let all: Vec<Provenance> = (0..INLINE_MAX + 2).map(entry).collect();
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            events(&all)
        );
        let read: Company = store.record(&org(), 1).expect("read").expect("there");
        assert_eq!(read.name, "Acme Renamed");
        assert_eq!(
            store.companies(&org()).expect("all")[0].name,
            "Acme Renamed"
        );

        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .provenance_page(&org(), me, PageRequest { after, limit: 2 })
                .expect("page");
            paged.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(
            events(&paged),
            events(&all),
            "pages walk every entry once, in order"
        );
    }

    #[test]
    fn entries_kept_one_per_key_chunks_and_inline_ones_read_together_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let (one, two) = (
            LocalRef::new(RecordKind::Company, 1),
            LocalRef::new(RecordKind::Company, 2),
        );
        // As earlier versions wrote it: one JSON entry under `record key ‖ seq`.
        let seq = store.inner.db.generate_id().expect("seq");
        store
            .inner
            .provenance
            .insert(
                keys::provenance(short(&store), one.kind.code(), one.id, seq),
                serde_json::to_vec(&entry(0)).expect("json"),
            )
            .expect("legacy");
        company(&store, 1, "One");
        company(&store, 2, "Two");
        add(&store, one, 1, INLINE_MAX + 3);
        add(&store, two, 100, 101);

        let all: Vec<Provenance> = (0..INLINE_MAX + 3).map(entry).collect();
        assert_eq!(
            events(&store.provenance(&org(), one).expect("read")),
            events(&all)
        );
        let latest = store.latest_provenance(&org(), 3).expect("latest");
        let got: Vec<(LocalRef, String)> = latest.into_iter().map(|(t, p)| (t, p.event)).collect();
        assert_eq!(
            got,
            [
                (two, entry(100).event),
                (one, entry(INLINE_MAX + 2).event),
                (one, entry(INLINE_MAX + 1).event),
            ]
        );
    }

    #[test]
    fn entries_read_both_in_a_records_value_and_in_the_tree_are_kept_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let me = LocalRef::new(RecordKind::Company, 1);
        company(&store, 1, "Acme");
        add(&store, me, 0, 2);
        // As a read would see it if a transaction moved the entries to the tree while it ran.
        let value = store
            .inner
            .records
            .get(me.key(short(&store)))
            .expect("get")
            .expect("value");
        let inline = inline_part(&value).expect("inline");
        store
            .atomically(|tx| tx.put_chunk(&org(), me, &inline))
            .expect("chunk");

        let both = [entry(0), entry(1)];
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            events(&both)
        );
        let latest = store.latest_provenance(&org(), 5).expect("latest");
        let got: Vec<String> = latest.into_iter().map(|(_, p)| p.event).collect();
        assert_eq!(got, [entry(1).event, entry(0).event]);
    }

    #[test]
    fn a_removed_record_keeps_its_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let me = LocalRef::new(RecordKind::Contact, 5);
        let contact: Contact = serde_json::from_value(serde_json::json!({
            "id": 5, "org_id": org(), "last_name": "Doe", "updated_at": Utc::now()
        }))
        .expect("contact");
        store
            .atomically(|tx| tx.put_contact(&contact))
            .expect("contact");
        add(&store, me, 0, 2);
        store
            .atomically(|tx| tx.delete_contact(&org(), 5))
            .expect("delete");

        assert!(store.record::<Contact>(&org(), 5).expect("read").is_none());
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            events(&[entry(0), entry(1)])
        );
    }

    #[test]
    fn entries_are_kept_compact_and_read_back_as_written() {
        let now = Utc::now().to_rfc3339();
        let entries: Vec<Entry> = vec![
            (1, entry(1)),
            (
                2,
                Provenance {
                    at: now.clone(),
                    ..entry(2)
                },
            ),
            (
                3,
                Provenance {
                    side: "local".into(),
                    at: "2026-12-01T12:00:00.5+02:00".into(),
                    ..entry(3)
                },
            ),
            (
                4,
                Provenance {
                    side: "import".into(),
                    at: "yesterday".into(),
                    ..entry(4)
                },
            ),
        ];
        let mut compact = Vec::new();
        encode(&entries, &mut compact, "records").expect("encode");
        assert_eq!(decode(&compact, "records").expect("decode"), entries);
        // The times that `to_rfc3339` wrote are kept as numbers.
        let one = |e: &Entry| {
            let mut out = Vec::new();
            encode(std::slice::from_ref(e), &mut out, "records").expect("encode");
            out.len()
        };
        let legacy = |e: &Entry| postcard::to_stdvec(&vec![e]).expect("legacy").len();
        assert!(
            one(&entries[1]) + 30 <= legacy(&entries[1]),
            "{} against {}",
            one(&entries[1]),
            legacy(&entries[1])
        );
        assert!(one(&entries[3]) <= legacy(&entries[3]) + 3);
        // What earlier versions wrote still reads.
        let old = postcard::to_stdvec(&entries).expect("legacy");
        assert_eq!(decode(&old, "records").expect("legacy"), entries);
        assert!(decode(&[COMPACT, 0xff], "records").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_at() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i64>().prop_map(|n| Utc.timestamp_nanos(n).to_rfc3339()),
                (0i64..4_000_000_000_000, 0u32..1_000_000_000).prop_map(|(ms, ns)| {
                    let t = Utc.timestamp_millis_opt(ms).single().expect("in range");
                    chrono::Timelike::with_nanosecond(&t, ns)
                        .unwrap_or(t)
                        .to_rfc3339()
                }),
                ".{0,40}",
            ]
        }

        proptest! {
            #[test]
            fn any_entries_come_back_from_the_compact_layout(
                entries in proptest::collection::vec(
                    (
                        any::<u64>(),
                        prop_oneof![Just("salesforce".to_owned()), Just("local".to_owned()), ".{0,12}"],
                        ".{0,30}",
                        ".{0,30}",
                        any_at(),
                    ),
                    1..6,
                ),
            ) {
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .map(|(seq, side, event, rule, at)| (seq, Provenance { side, event, rule, at }))
                    .collect();
                let mut bytes = Vec::new();
                encode(&entries, &mut bytes, "records").expect("encode");
                prop_assert_eq!(decode(&bytes, "records").expect("decode"), entries);
            }

            #[test]
            fn any_bytes_decode_to_entries_or_an_error(
                bytes in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                let _ = decode(&bytes, "records");
            }
        }
    }

    #[test]
    fn inline_entries_and_chunks_of_earlier_versions_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let me = LocalRef::new(RecordKind::Company, 1);
        company(&store, 1, "Acme");
        let key = me.key(short(&store));
        // A chunk of two, and one entry inline, as earlier versions wrote them.
        let seq = || store.inner.db.generate_id().expect("seq");
        let (first, second, third) = (seq(), seq(), seq());
        let mut chunk = vec![CHUNK];
        let two = vec![(first, entry(1)), (second, entry(2))];
        chunk.extend(postcard::to_stdvec(&two).expect("chunk"));
        store
            .inner
            .provenance
            .insert(
                keys::provenance(short(&store), me.kind.code(), me.id, first),
                chunk,
            )
            .expect("chunk");
        let value = store.inner.records.get(&key).expect("get").expect("record");
        let inline = postcard::to_stdvec(&vec![(third, entry(3))]).expect("inline");
        let mut parts = Parts::of(&value).expect("parts");
        parts.provenance = &inline;
        store
            .inner
            .records
            .insert(&key, parts.to_value())
            .expect("inline");
        let want = |n: usize| events(&(1..=n).map(entry).collect::<Vec<_>>());
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            want(3)
        );
        // The next entry rewrites the inline ones in the compact layout.
        add(&store, me, 4, 5);
        let value = store.inner.records.get(&key).expect("get").expect("record");
        assert_eq!(Parts::of(&value).expect("parts").provenance[0], COMPACT);
        assert_eq!(
            events(&store.provenance(&org(), me).expect("read")),
            want(4)
        );
    }
}
