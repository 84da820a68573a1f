//! The inbox's write-ahead log: what makes an acknowledged message durable.
//!
//! sled's flush costs a hand-off to its I/O threads, a fresh I/O buffer and a `sync_file_range`
//! before our `fsync`, and measured as the largest part of a durable ack. So
//! the inbox's journal records are first appended here, and a round is durable once its bytes
//! are written and `fdatasync`ed; the committer then copies them into sled's journal tree in the
//! background and deletes the segments sled holds durably (a checkpoint).
//!
//! Segments are files `NNNNNNNNNNNNNNNNNNNN.log` in `inbox-log/`, zero-filled when created so that
//! `fdatasync` never has file metadata to write. A frame is
//! `len u32 ‖ crc32 u32 ‖ key [26] ‖ payload [len]` (little-endian numbers), the key being the
//! journal key `org ‖ seq`; a frame with length 0 or a bad checksum ends the segment (the zeroes
//! after the last write, or a write torn by a crash, which was never acknowledged).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per segment (a bigger one is made for a round that does not fit).
pub(super) const SEGMENT_BYTES: u64 = 4 << 20;
const KEY: usize = 26;
const HEADER: usize = 4 + 4 + KEY;

/// Appends one frame to `buf`.
pub(super) fn push_frame(buf: &mut Vec<u8>, key: &[u8], payload: &[u8]) {
    let written: Result<(), std::convert::Infallible> = push_frame_with(buf, key, |buf| {
        buf.extend_from_slice(payload);
        Ok(())
    });
    let Ok(()) = written;
}

/// Appends one frame to `buf` whose payload `write` appends in place (no copy of its own); if
/// `write` fails, `buf` is left as it was.
pub(super) fn push_frame_with<E>(
    buf: &mut Vec<u8>,
    key: &[u8],
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert_eq!(key.len(), KEY);
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    buf.extend_from_slice(key);
    if let Err(e) = write(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = u32::try_from(buf.len() - start - HEADER).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// How many bytes a frame with this payload takes.
pub(super) fn frame_len(payload: &[u8]) -> usize {
    HEADER + payload.len()
}

/// The frames in `bytes`, in order, up to the first empty or damaged one.
pub(super) fn frames(bytes: &[u8]) -> Frames<'_> {
    Frames { rest: bytes }
}

/// Iterator over `(key, payload)` frames (see [`frames`]).
pub(super) struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.rest.get(..HEADER)?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        if len == 0 {
            return None;
        }
        let key = &header[8..];
        let payload = self.rest.get(HEADER..HEADER + len)?;
        let mut check = crc32fast::Hasher::new();
        check.update(key);
        check.update(payload);
        if check.finalize() != crc {
            return None;
        }
        self.rest = &self.rest[HEADER + len..];
        Some((key, payload))
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

/// The segments in `dir`, oldest first.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            out.push((number, path));
        }
    }
    out.sort();
    Ok(out)
}

/// How much of a segment one zero-filling write covers: one page. The page cache keeps a file
/// in folios as large as the writes that filled them, and a later small write into a folio
/// dirties (and writes back) all of it; a segment zero-filled a page at a time keeps every
/// commit's small write to the page or two it touches.
const ZERO_FILL_WRITE: usize = 4096;

/// Creates a zero-filled segment and makes it and its directory entry durable.
fn create_segment(dir: &Path, number: u64, size: u64) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(segment_path(dir, number))?;
    let zeroes = [0u8; ZERO_FILL_WRITE];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(zeroes.len() as u64) as usize;
        file.write_all_at(&zeroes[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    #[cfg(test)]
    super::tap::created(dir, number, size);
    Ok(file)
}

/// `fdatasync` of a segment: from its return on, what was written to it is on disk (test
/// builds report it to the crash-state test's tap).
fn sync_data(file: &File, _dir: &Path, _segment: u64) -> io::Result<()> {
    file.sync_data()?;
    #[cfg(test)]
    super::tap::synced(_dir, _segment);
    Ok(())
}

/// The segment being written.
struct Segment {
    file: File,
    number: u64,
    size: u64,
    offset: u64,
}

/// The log's writer, owned by the committer thread.
pub(super) struct Wal {
    dir: PathBuf,
    current: Option<Segment>,
    next_number: u64,
    /// Bytes handed over and not yet known to be on disk, kept until a sync succeeds.
    unsynced: Vec<u8>,
    /// The last sync failed: the current segment's state is unknown, so the next sync starts a
    /// new segment and writes every unsynced byte there (replay tolerates a frame twice).
    broken: bool,
}

/// What opening the log found: its writer, the `(key, payload)` frames of the segments left
/// from before (oldest first), and those segments' paths.
pub(super) type Opened = (Wal, Vec<(Vec<u8>, Vec<u8>)>, Vec<PathBuf>);

/// What a successful sync wrote: the segment and the bytes, for the checkpoint.
pub(super) struct Synced {
    pub(super) segment: u64,
    pub(super) bytes: Vec<u8>,
}

impl Wal {
    /// Opens the log in `dir` and reads what its segments hold (see [`Opened`]); the caller
    /// deletes those segments once sled holds their frames durably.
    pub(super) fn open(dir: &Path) -> io::Result<Opened> {
        std::fs::create_dir_all(dir)?;
        let found = segments(dir)?;
        let mut recovered = Vec::new();
        for (_, path) in &found {
            let bytes = std::fs::read(path)?;
            recovered.extend(frames(&bytes).map(|(k, v)| (k.to_vec(), v.to_vec())));
        }
        let next_number = found.last().map_or(1, |(n, _)| n + 1);
        let wal = Wal {
            dir: dir.to_path_buf(),
            current: None,
            next_number,
            unsynced: Vec::new(),
            broken: false,
        };
        Ok((wal, recovered, found.into_iter().map(|(_, p)| p).collect()))
    }

    /// Creates the first segment now, so that the first sync does not wait for its zero-fill.
    pub(super) fn prepare(&mut self) -> io::Result<()> {
        if self.current.is_none() {
            self.start_segment(SEGMENT_BYTES)?;
        }
        Ok(())
    }

    fn start_segment(&mut self, size: u64) -> io::Result<()> {
        // A number is never tried twice: a failed creation may have left a (zeroed) file.
        let number = self.next_number;
        self.next_number += 1;
        let file = create_segment(&self.dir, number, size)?;
        self.current = Some(Segment {
            file,
            number,
            size,
            offset: 0,
        });
        self.broken = false;
        Ok(())
    }

    /// Adds bytes (whole frames) to what the next sync writes.
    pub(super) fn append(&mut self, bytes: Vec<u8>) {
        if self.unsynced.is_empty() {
            self.unsynced = bytes;
        } else {
            self.unsynced.extend_from_slice(&bytes);
        }
    }

    /// Writes every unsynced byte and `fdatasync`s it. On failure the bytes are kept for the next
    /// attempt, which starts a new segment.
    pub(super) fn sync(&mut self) -> io::Result<Option<Synced>> {
        if self.unsynced.is_empty() {
            return Ok(None);
        }
        let len = self.unsynced.len() as u64;
        let fits = self
            .current
            .as_ref()
            .is_some_and(|s| !self.broken && s.offset + len <= s.size);
        if !fits {
            self.start_segment(SEGMENT_BYTES.max(len))?;
        }
        let Some(seg) = self.current.as_mut() else {
            return Ok(None);
        };
        let written = seg
            .file
            .write_all_at(&self.unsynced, seg.offset)
            .and_then(|()| {
                #[cfg(test)]
                super::tap::wrote(&self.dir, seg.number, seg.offset, &self.unsynced);
                sync_data(&seg.file, &self.dir, seg.number)
            });
        if let Err(e) = written {
            self.broken = true;
            return Err(e);
        }
        seg.offset += len;
        Ok(Some(Synced {
            segment: seg.number,
            bytes: std::mem::take(&mut self.unsynced),
        }))
    }

    /// The directory of the log's segments.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Deletes the segments in `dir` before `segment` (or up to and including it when
/// `inclusive`): called once sled holds every frame they contain durably.
pub(super) fn delete_segments(dir: &Path, segment: u64, inclusive: bool) -> io::Result<()> {
    for (number, path) in segments(dir)? {
        if number < segment || (inclusive && number == segment) {
            std::fs::remove_file(&path)?;
            #[cfg(test)]
            super::tap::removed(&path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: u64) -> Vec<u8> {
        let mut k = b"00D7F00000107XsUAI".to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    #[test]
    fn frames_read_back_and_a_torn_or_zero_tail_ends_the_log() {
        let mut buf = Vec::new();
        push_frame(&mut buf, &key(1), b"first");
        push_frame(&mut buf, &key(2), b"second");
        let whole = buf.len();
        push_frame(&mut buf, &key(3), b"third, torn");
        let got: Vec<_> = frames(&buf)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (key(2), b"second".to_vec()));
        // A crash mid-write: the last frame is cut short, or its bytes are damaged.
        assert_eq!(frames(&buf[..buf.len() - 3]).count(), 2);
        let mut damaged = buf.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert_eq!(frames(&damaged).count(), 2);
        // Zero-filled space after the last write.
        let mut padded = buf[..whole].to_vec();
        padded.extend_from_slice(&[0u8; 64]);
        assert_eq!(frames(&padded).count(), 2);
    }

    #[test]
    fn synced_frames_come_back_from_every_segment_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, found, old) = Wal::open(dir.path()).expect("open");
        assert!(found.is_empty() && old.is_empty());
        let mut buf = Vec::new();
        push_frame(&mut buf, &key(1), b"one");
        wal.append(buf.clone());
        let first = wal.sync().expect("sync").expect("bytes");
        assert_eq!(first.bytes, buf);
        // A round bigger than what is left starts a new segment (of its own size if need be).
        let big = vec![7u8; SEGMENT_BYTES as usize];
        let mut buf = Vec::new();
        push_frame(&mut buf, &key(2), &big);
        wal.append(buf.clone());
        let second = wal.sync().expect("sync").expect("bytes");
        assert_eq!(second.segment, first.segment + 1);
        assert!(wal.sync().expect("sync").is_none(), "nothing new to write");
        drop(wal);
        let (wal, found, old) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(old.len(), 2);
        let keys: Vec<_> = found.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![key(1), key(2)]);
        assert_eq!(found[1].1, big);
        delete_segments(wal.dir(), second.segment, false).expect("delete");
        assert_eq!(segments(dir.path()).expect("list").len(), 1);
        delete_segments(wal.dir(), second.segment, true).expect("delete");
        assert!(segments(dir.path()).expect("list").is_empty());
    }

    #[test]
    fn a_failed_sync_keeps_its_bytes_and_writes_them_to_a_new_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = Wal::open(dir.path()).expect("open");
        let mut buf = Vec::new();
        push_frame(&mut buf, &key(1), b"one");
        wal.append(buf.clone());
        let first = wal.sync().expect("sync").expect("bytes");
        let mut more = Vec::new();
        push_frame(&mut more, &key(2), b"two");
        wal.append(more.clone());
        // Make the next segment's creation fail: a directory already has its name.
        let next = segment_path(dir.path(), first.segment + 1);
        wal.broken = true;
        std::fs::create_dir(&next).expect("block");
        assert!(wal.sync().is_err());
        std::fs::remove_dir(&next).expect("unblock");
        let again = wal.sync().expect("sync").expect("bytes");
        assert!(again.segment > first.segment + 1);
        assert_eq!(again.bytes, more, "the kept bytes are written");
    }
}
