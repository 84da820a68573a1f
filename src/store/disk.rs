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
    fsync(&data_file(dir)?, dir)?;
    File::open(dir)?.sync_all()
}

/// `fsync` of sled's open data file: from its return on, what sled's flush wrote is on disk
/// (test builds report sled's files then to the crash-state test's tap).
pub(super) fn fsync(file: &File, _dir: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    #[cfg(test)]
    super::tap::sled_durable(_dir);
    Ok(())
}
