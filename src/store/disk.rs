//! sled's files on disk: its data file, and the `fsync` that makes what sled's own flush wrote
//! durable (sled 0.34's flush ends in `sync_file_range`, which writes no file metadata).

use std::fs::File;
use std::path::Path;

/// The file sled keeps its log and pages in.
pub(super) fn data_file(dir: &Path) -> std::io::Result<File> {
    File::open(dir.join("db"))
}

/// `fsync` of sled's data file and of its directory.
pub(super) fn fsync_data_file(dir: &Path) -> std::io::Result<()> {
    let file = data_file(dir)?;
    file.sync_all()?;
    drop_clean_pages(&file);
    File::open(dir)?.sync_all()
}

/// Drops a file's clean pages from the page cache, right after an `fsync` made them clean.
///
/// Why: sled writes its log in buffers of up to a segment (512 KiB) and then, in the same
/// places, pieces as small as a few bytes. The page cache keeps a file in folios as large as
/// the writes that filled them, and a small write into a cached folio dirties, and writes
/// back, the whole folio: measured with the pull and push benchmarks, that multiplied the
/// bytes written many times. A dropped page is read again (a page) before a partial write.
/// sled reads its pages from its own cache, so the page cache holds little it needs. Failure
/// only costs bytes written, so it is ignored.
pub(super) fn drop_clean_pages(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}
