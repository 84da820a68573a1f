//! sled's files on disk: its data file, the `fsync` that makes what sled's own flush wrote
//! durable (sled 0.34's flush ends in `sync_file_range`, which writes no file metadata), and
//! the page-cache advice that follows it.
//!
//! sled writes its log in pieces that end anywhere inside a page-cache folio, and syncs each
//! piece as it writes it. The kernel keeps a large write as large folios (up to hundreds of
//! KiB), so the next piece, which starts where the last one ended, dirties that whole folio
//! again: the kernel writes it back whole and charges it whole to the process. After every
//! `fsync`, the clean pages at the end of the data file, where a growing store's newest
//! segments are, are dropped from the page cache ([`EVICTED_TAIL_BYTES`]), so that the next
//! piece starts in a folio of its own size. The rest of the file keeps its cached pages, for
//! reads and for the next open.

use std::fs::File;
use std::path::Path;

/// How much of the end of sled's data file is dropped from the page cache after each `fsync`.
/// Measured on the pull and push benchmarks: 16 MiB kept most of the saving, 64 MiB all of
/// what dropping the whole file saved; dropping the whole file also made the next open read
/// every segment header from disk.
const EVICTED_TAIL_BYTES: u64 = 64 << 20;

/// The file sled keeps its log and pages in.
pub(super) fn data_file(dir: &Path) -> std::io::Result<File> {
    File::open(dir.join("db"))
}

/// `fsync` of sled's data file and of its directory.
pub(super) fn fsync_data_file(dir: &Path) -> std::io::Result<()> {
    fsync(&data_file(dir)?, dir)?;
    File::open(dir)?.sync_all()
}

/// `fsync` of sled's open data file: from its return on, what sled's flush wrote is on disk
/// (test builds report sled's files then to the crash-state test's tap). Then the file's tail
/// is dropped from the page cache (see the module's documentation).
pub(super) fn fsync(file: &File, _dir: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    #[cfg(test)]
    super::tap::sled_durable(_dir);
    // Advice only: a file whose length cannot be read now is simply not advised about.
    if let Ok(meta) = file.metadata() {
        let (from, len) = tail(meta.len());
        drop_cached(file, _dir, from, len);
    }
    Ok(())
}

/// The range of a data file of `len` bytes that is dropped from the page cache: its last
/// [`EVICTED_TAIL_BYTES`].
fn tail(len: u64) -> (u64, u64) {
    let from = len.saturating_sub(EVICTED_TAIL_BYTES);
    (from, len - from)
}

/// Advises the kernel to drop the clean cached pages of `len` bytes of `file` from `from`. Only
/// advice: what is on disk is unchanged, and a failure (or another OS) changes nothing else.
/// Test builds report each range the kernel accepted to the crash-state test's tap.
fn drop_cached(file: &File, _dir: &Path, from: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(n) = std::num::NonZeroU64::new(len) {
        match rustix::fs::fadvise(file, from, Some(n), rustix::fs::Advice::DontNeed) {
            Ok(()) => {
                #[cfg(test)]
                super::tap::evicted(_dir, from, len);
            }
            Err(e) => {
                tracing::debug!(error = %e, "dropping the data file's tail from the page cache");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_64_mib_of_the_data_file_are_dropped_or_all_of_a_smaller_file() {
        assert_eq!(tail(0), (0, 0));
        assert_eq!(tail(10 << 20), (0, 10 << 20));
        assert_eq!(tail(64 << 20), (0, 64 << 20));
        assert_eq!(tail(1 << 30), ((1 << 30) - (64 << 20), 64 << 20));
    }

    #[tokio::test]
    async fn every_durability_point_drops_the_data_files_tail_from_the_page_cache() {
        use crate::store::tap::{Event, Tap};
        let evicted = |events: Vec<Event>| -> Vec<(u64, u64)> {
            events
                .into_iter()
                .filter_map(|e| match e {
                    Event::Evicted { from, len } => Some((from, len)),
                    _ => None,
                })
                .collect()
        };
        let dir = tempfile::tempdir().expect("dir");
        let tap = Tap::register(dir.path());
        let store = crate::store::Store::open(dir.path()).expect("store");
        let org = crate::domain::OrgId::parse("00D7F00000107Xs").expect("org");
        tap.take();
        store.save_sealed_token(&org, b"sealed").expect("token");
        let ranges = evicted(tap.take());
        let len = std::fs::metadata(dir.path().join("db")).expect("db").len();
        let &(from, dropped) = ranges.last().expect("the token's flush drops a range");
        assert_eq!(from, 0, "a store smaller than the tail is dropped whole");
        assert!(dropped > 0 && dropped <= len, "{dropped} of {len}");
        store.make_durable().await.expect("durable");
        assert!(
            !evicted(tap.take()).is_empty(),
            "the group commit's fsync drops it too"
        );
    }
}
