//! The dedupe memory's tests: runs, merges, expiry, crashes and the older layout.
use std::time::Duration;

use chrono::{TimeZone as _, Utc};

use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
use crate::store::{DedupeSource, Delivery, Store};

fn org() -> OrgId {
    OrgId::parse("00D7F00000107XsUAI").expect("org")
}

fn id(n: u64) -> String {
    SalesforceId::mint("04l", "T", n).to_string()
}

fn delivery(n: u64, record: Option<u64>) -> Delivery {
    Delivery {
        dedupe_id: id(n),
        source: DedupeSource::OutboundNotification,
        notifications: record
            .map(|r| Notification {
                object: ObjectType::Contact,
                record_id: SalesforceId::mint("003", "T", r),
                change: ChangeType::Update,
                system_modstamp: None,
                modified_by: None,
            })
            .into_iter()
            .collect(),
        resync: vec![],
        digest: None,
    }
}

fn seen(store: &Store, n: u64) -> bool {
    store
        .has_seen(&org(), DedupeSource::OutboundNotification, &id(n))
        .expect("has_seen")
}

fn ingest(store: &Store, ids: std::ops::Range<u64>, at: chrono::DateTime<Utc>) -> u64 {
    let msg: Vec<_> = ids.map(|n| delivery(n, None)).collect();
    store.ingest(&org(), &msg, at).expect("ingest").accepted
}

#[test]
fn a_filter_false_positive_is_resolved_by_the_run_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(ingest(&store, 0..100, Utc::now()), 100);
    assert_eq!(
        store.settle_dedupe().expect("settle"),
        (1, 0),
        "one run, none in memory"
    );
    // Real filters: ids never sent are not seen (a false positive is read on disk).
    assert!((1_000..3_000).all(|n| !seen(&store, n)));
    // Filters that answer "maybe" to everything: every answer now comes from the disk.
    store.inner.inbox.dedupe.fill_filters_for_test();
    assert!((0..100).all(|n| seen(&store, n)));
    assert!((100..1_000).all(|n| !seen(&store, n)));
    assert_eq!(
        ingest(&store, 50..150, Utc::now()),
        50,
        "only the new half is new"
    );
}

#[test]
fn a_duplicate_is_recognised_after_a_reopen_from_a_run_or_from_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        ingest(&store, 0..10, Utc::now());
        store.settle_dedupe().expect("settle");
        // Durable in the journal, not yet cut into a run.
        ingest(&store, 10..20, Utc::now());
    }
    for _ in 0..2 {
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 10));
        assert!((0..20).all(|n| seen(&store, n)));
        assert!(!seen(&store, 20));
        let again = store
            .ingest(&org(), &[delivery(3, None), delivery(13, None)], Utc::now())
            .expect("ingest");
        assert_eq!((again.accepted, again.duplicates), (0, 2));
    }
}

#[test]
fn runs_merge_in_fours_and_every_id_stays_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        for batch in 0..4u64 {
            ingest(&store, batch * 50..batch * 50 + 50, Utc::now());
            let (runs, recent) = store.settle_dedupe().expect("settle");
            assert_eq!(recent, 0);
            assert_eq!(runs, if batch < 3 { batch as usize + 1 } else { 1 });
        }
        assert!((0..200).all(|n| seen(&store, n)));
        assert_eq!(
            run_files(dir.path()).len(),
            1,
            "the merged runs' files are deleted"
        );
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 0));
    assert!((0..200).all(|n| seen(&store, n)));
}

#[test]
fn expiry_drops_whole_runs_and_a_pending_record_stays_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = Utc.timestamp_opt(1_700_000_000, 0).single().expect("t0");
    let ttl = Duration::from_secs(7 * 24 * 3600);
    let after =
        t0 + chrono::Duration::from_std(ttl).expect("ttl") + chrono::Duration::milliseconds(1);
    let pending = |store: &Store| store.pending_records(&org()).expect("pending");
    {
        let store = Store::open(dir.path()).expect("open");
        // Id 1's message names a record that stays pending; ids 2..10 name none.
        store
            .ingest(&org(), &[delivery(1, Some(1))], t0)
            .expect("ingest");
        ingest(&store, 2..10, t0);
        store.settle_dedupe().expect("settle");
        assert_eq!(
            store
                .expire_dedupe(t0 + chrono::Duration::days(7), ttl)
                .expect("expire"),
            0,
            "not yet"
        );
        assert_eq!(store.expire_dedupe(after, ttl).expect("expire"), 9);
        assert!(!seen(&store, 1) && !seen(&store, 2));
        assert!(run_files(dir.path()).is_empty(), "the run's file is gone");
        assert_eq!(pending(&store).len(), 1);
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert!(!seen(&store, 1) && !seen(&store, 2));
    let left = pending(&store);
    assert_eq!(left.len(), 1, "the record is still pending");
    let again = store
        .ingest(&org(), &[delivery(1, Some(1))], after)
        .expect("ingest");
    assert_eq!(
        (again.accepted, again.new_pending),
        (1, 0),
        "folded into it"
    );
    assert_eq!(pending(&store)[0].entry.notifications, 2);
}

/// The run files of a store, by name.
fn run_files(store: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.join("dedupe-runs"))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_merge_or_a_write_cut_short_by_a_crash_is_finished_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = dir.path().join("dedupe-runs");
    let first = {
        let store = Store::open(dir.path()).expect("open");
        ingest(&store, 0..10, Utc::now());
        store.settle_dedupe().expect("settle");
        let first = run_files(dir.path());
        assert_eq!(first.len(), 1);
        let kept = std::fs::read(runs.join(&first[0])).expect("read run");
        for batch in 1..4u64 {
            ingest(&store, batch * 10..batch * 10 + 10, Utc::now());
            store.settle_dedupe().expect("settle");
        }
        assert_eq!(run_files(dir.path()).len(), 1, "merged");
        // A crash lost the removal of the first input, and left a run half written.
        std::fs::write(runs.join(&first[0]), kept).expect("restore");
        std::fs::write(runs.join("00000000000000ff.run.tmp"), b"half a run").expect("tmp");
        first
    };
    let store = Store::open(dir.path()).expect("reopen");
    let after = run_files(dir.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, first, "the merged run stays, its input goes");
    assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 0));
    assert!((0..40).all(|n| seen(&store, n)));
    assert!(!seen(&store, 40));
}

#[test]
fn a_damaged_run_file_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        ingest(&store, 0..10, Utc::now());
        store.settle_dedupe().expect("settle");
    }
    let path = dir
        .path()
        .join("dedupe-runs")
        .join(&run_files(dir.path())[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() - 40;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("dedupe runs"), "{err}");
}

#[test]
fn runs_kept_in_the_tree_by_an_older_version_move_into_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = Utc::now();
    {
        let store = Store::open(dir.path()).expect("open");
        // The tree layout: a meta (level, count, …) and chunks of entries.
        let tree = &store.inner.inbox.dedupe.tree;
        let mut meta = vec![1u8];
        meta.extend(postcard::to_stdvec(&20u64).expect("count"));
        let mut meta_key = b"M".to_vec();
        meta_key.extend(7u64.to_be_bytes());
        tree.insert(meta_key, meta).expect("meta");
        let mut keyed: Vec<Vec<u8>> = (0..20)
            .map(|n| {
                super::keys::dedupe(
                    &org(),
                    super::keys::DedupeKind::OutboundNotification,
                    &id(n),
                )
            })
            .collect();
        keyed.sort();
        for half in keyed.chunks(10) {
            let mut chunk = Vec::new();
            for key in half {
                chunk.extend(u32::try_from(key.len()).expect("len").to_le_bytes());
                chunk.extend(key);
                chunk.extend(t0.timestamp_millis().to_le_bytes());
                chunk.push(0);
            }
            let mut chunk_key = b"R".to_vec();
            chunk_key.extend(7u64.to_be_bytes());
            chunk_key.extend(&half[0]);
            tree.insert(chunk_key, chunk).expect("chunk");
        }
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(run_files(dir.path()), ["0000000000000007.run"]);
    assert_eq!(store.inner.inbox.dedupe.sizes(), (1, 0));
    assert!((0..20).all(|n| seen(&store, n)));
    assert!(!seen(&store, 20));
    let tree = &store.inner.inbox.dedupe.tree;
    assert!(tree.scan_prefix(b"M").next().is_none() && tree.scan_prefix(b"R").next().is_none());
    assert_eq!(ingest(&store, 18..22, Utc::now()), 2, "two of four are new");
}

#[test]
fn a_replayed_signed_id_with_another_body_is_a_duplicate_counted_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = |digest: u64| Delivery {
        dedupe_id: "msg_replayed_1".into(),
        source: DedupeSource::WebhookId,
        notifications: vec![],
        resync: vec![],
        digest: Some(digest),
    };
    let first = Delivery::digest_of(b"{\"a\":1}");
    let other = Delivery::digest_of(b"{\"a\":2}");
    assert_ne!(first, other);
    let check = |store: &Store, digest: u64, replayed: u64| {
        let out = store
            .ingest(&org(), &[signed(digest)], Utc::now())
            .expect("ingest");
        assert_eq!(
            (out.accepted, out.duplicates, out.replayed_different),
            (0, 1, replayed)
        );
    };
    {
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(
            store
                .ingest(&org(), &[signed(first)], Utc::now())
                .expect("ingest")
                .accepted,
            1
        );
        check(&store, first, 0);
        check(&store, other, 1);
    }
    {
        // From the journal after a reopen, then from a run.
        let store = Store::open(dir.path()).expect("reopen");
        check(&store, other, 1);
        store.settle_dedupe().expect("settle");
        check(&store, first, 0);
        check(&store, other, 1);
    }
}
