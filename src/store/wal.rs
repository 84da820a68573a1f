//! The inbox's write-ahead log: what makes an acknowledged message durable.
//!
//! sled's flush costs a hand-off to its I/O threads, a fresh I/O buffer and a `sync_file_range`
//! before our `fsync`, and measured as the largest part of a durable ack. So
//! the inbox's journal records are first appended here, and a round is durable once its bytes
//! are written and `fdatasync`ed; the committer then copies them into sled's journal tree in the
//! background and retires the segments sled holds durably (a checkpoint).
//!
//! Segments are files `NNNNNNNNNNNNNNNNNNNN.wal` in `inbox-log/`, every block of them written
//! before use, so that `fdatasync` never has file metadata to write: a new one is zero-filled,
//! and a retired one is kept as a spare (`NNNNNNNNNNNNNNNNNNNN.spare`, up to [`SPARES`]) and
//! renamed to the next segment's name when one is needed, its old bytes left in place. Each sync
//! writes one chunk, `len u32 ‖ crc32 u32 ‖ body [len]`, whose checksum covers the segment's
//! number before the body: a spare's old chunks were written under another number and fail it,
//! so reading a segment stops at the first chunk that is empty, cut short or fails its checksum
//! (the zeroes or old bytes after the last write, or a write torn by a crash, which was never
//! acknowledged). The body is the frames, or, when the length's top bit ([`COMPRESSED`]) is set,
//! the frames as an LZ4 block with their size prepended: a message's frames repeat the org in
//! every dedupe key and much of every record id, so the log writes about a fifth of their bytes.
//! Chunks without the bit, as earlier versions wrote them all, are still read. A frame is
//! `len u32 ‖ crc32 u32 ‖ key [26] ‖ payload [len]` (little-endian numbers), the key being the
//! journal key `org ‖ seq`; frames are also the format the checkpoint copies into sled. Earlier
//! versions wrote bare frames to `NNNNNNNNNNNNNNNNNNNN.log` segments, which are still read, and
//! deleted when retired.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per segment (a bigger one is made for a round that does not fit, and deleted when
/// retired). Small, since a segment is written once whole before its first use; spares make
/// that once per spare, not once per segment.
pub(super) const SEGMENT_BYTES: u64 = 512 << 10;
/// Retired segments kept for reuse at most: enough for the segments a burst fills between two
/// checkpoints.
const SPARES: usize = 8;
const KEY: usize = 26;
const HEADER: usize = 4 + 4 + KEY;
/// A chunk's length and checksum.
pub(super) const CHUNK_HEADER: usize = 8;
/// The bit of a chunk's length that says its body is LZ4-compressed.
pub(super) const COMPRESSED: u32 = 1 << 31;
/// LZ4 expands at most about 255 times: a compressed body claiming more is damaged, and its
/// claim is never allocated.
const LZ4_MAX_RATIO: usize = 256;

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

fn chunk_crc(segment: u64, frames: &[u8]) -> u32 {
    let mut check = crc32fast::Hasher::new();
    check.update(&segment.to_le_bytes());
    check.update(frames);
    check.finalize()
}

/// The chunk that writes `frames`, its header left to [`seal`]: the frames compressed when that
/// makes them shorter, else as they are.
fn unsealed_chunk(frames: &[u8]) -> Vec<u8> {
    let mut out = vec![0; CHUNK_HEADER];
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    let bound = lz4_flex::block::get_maximum_output_size(frames.len());
    out.resize(CHUNK_HEADER + 4 + bound, 0);
    let compressed = lz4_flex::block::compress_into(frames, &mut out[CHUNK_HEADER + 4..])
        .ok()
        .filter(|n| 4 + n < frames.len());
    match compressed {
        Some(n) => {
            out.truncate(CHUNK_HEADER + 4 + n);
            out[..4].copy_from_slice(&COMPRESSED.to_le_bytes());
        }
        None => {
            out.truncate(CHUNK_HEADER);
            out.extend_from_slice(frames);
        }
    }
    out
}

/// Writes a chunk's header for segment `segment`: its body's length (with the [`COMPRESSED`]
/// flag [`unsealed_chunk`] left) and its checksum.
fn seal(segment: u64, chunk: &mut [u8]) {
    let flag = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) & COMPRESSED;
    let body = &chunk[CHUNK_HEADER..];
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| len & COMPRESSED == 0)
        .unwrap_or(COMPRESSED - 1);
    let crc = chunk_crc(segment, body);
    chunk[..4].copy_from_slice(&(len | flag).to_le_bytes());
    chunk[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The frames of the chunks of segment `segment` in `bytes`, in order, up to the first chunk
/// that is empty, cut short or fails its checksum. A compressed body that passes its checksum
/// and still does not decompress is an error, not the end of the log: no crash writes that.
pub(super) fn chunk_frames(segment: u64, bytes: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let owned = |(k, v): (&[u8], &[u8])| (k.to_vec(), v.to_vec());
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(header) = rest.get(..CHUNK_HEADER) {
        let word = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let len = (word & !COMPRESSED) as usize;
        let Some(body) = rest.get(CHUNK_HEADER..CHUNK_HEADER + len) else {
            break;
        };
        if len == 0 || chunk_crc(segment, body) != crc {
            break;
        }
        if word & COMPRESSED == 0 {
            out.extend(frames(body).map(owned));
        } else {
            out.extend(frames(&decompress(segment, body)?).map(owned));
        }
        rest = &rest[CHUNK_HEADER + len..];
    }
    Ok(out)
}

/// A compressed chunk's frames.
fn decompress(segment: u64, body: &[u8]) -> io::Result<Vec<u8>> {
    super::lz4_decompress("inbox log", body, body.len().saturating_mul(LZ4_MAX_RATIO)).map_err(
        |e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {segment}: a checksummed chunk does not decompress: {e}"),
            )
        },
    )
}

/// A segment file's kind, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Bare frames, as earlier versions wrote them.
    Frames,
    /// Chunks under the segment's number.
    Chunks,
    /// A retired segment kept for reuse: not part of the log.
    Spare,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

fn spare_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.spare"))
}

/// The number and kind a log file's name gives it; `None` for any other file.
fn name_of(path: &Path) -> Option<(u64, Kind)> {
    let kind = match path.extension()?.to_str()? {
        "log" => Kind::Frames,
        "wal" => Kind::Chunks,
        "spare" => Kind::Spare,
        _ => return None,
    };
    let number = path.file_stem()?.to_str()?.parse::<u64>().ok()?;
    Some((number, kind))
}

/// The files of `dir` with a numbered name, by kind, ordered by number.
fn numbered(dir: &Path) -> io::Result<Vec<(u64, Kind, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some((number, kind)) = name_of(&path) {
            out.push((number, kind, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The segments in `dir`, oldest first (spares are not segments).
#[cfg(test)]
pub(super) fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    Ok(numbered(dir)?
        .into_iter()
        .filter(|(_, kind, _)| *kind != Kind::Spare)
        .map(|(n, _, p)| (n, p))
        .collect())
}

/// The `(key, payload)` frames the segment at `path` holds, as a reopen reads them.
pub(super) fn read_segment(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let bytes = std::fs::read(path)?;
    match name_of(path) {
        Some((number, Kind::Chunks)) => chunk_frames(number, &bytes),
        _ => Ok(frames(&bytes)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()),
    }
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

/// Renames a spare to segment `number` and makes the new name durable; `None` when there is no
/// spare. A spare not [`SEGMENT_BYTES`] long (it cannot be, but a file is what it is) is deleted.
fn reuse_spare(dir: &Path, number: u64) -> io::Result<Option<File>> {
    for (_old, kind, path) in numbered(dir)? {
        if kind != Kind::Spare {
            continue;
        }
        if std::fs::metadata(&path)?.len() != SEGMENT_BYTES {
            std::fs::remove_file(&path)?;
            continue;
        }
        let to = segment_path(dir, number);
        std::fs::rename(&path, &to)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&to)?;
        File::open(dir)?.sync_all()?;
        #[cfg(test)]
        super::tap::reused(dir, _old, number);
        return Ok(Some(file));
    }
    Ok(None)
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

/// What a successful sync wrote: the segment and the frames, for the checkpoint.
pub(super) struct Synced {
    pub(super) segment: u64,
    pub(super) bytes: Vec<u8>,
}

impl Wal {
    /// Opens the log in `dir` and reads what its segments hold (see [`Opened`]); the caller
    /// retires those segments once sled holds their frames durably.
    pub(super) fn open(dir: &Path) -> io::Result<Opened> {
        std::fs::create_dir_all(dir)?;
        let found = numbered(dir)?;
        let mut recovered = Vec::new();
        let mut old = Vec::new();
        for (_, kind, path) in &found {
            if *kind != Kind::Spare {
                recovered.extend(read_segment(path)?);
                old.push(path.clone());
            }
        }
        let next_number = found.iter().map(|(n, _, _)| n + 1).max().unwrap_or(1);
        let wal = Wal {
            dir: dir.to_path_buf(),
            current: None,
            next_number,
            unsynced: Vec::new(),
            broken: false,
        };
        Ok((wal, recovered, old))
    }

    /// Makes the first segment now, so that the first sync does not wait for it.
    pub(super) fn prepare(&mut self) -> io::Result<()> {
        if self.current.is_none() {
            self.start_segment(SEGMENT_BYTES)?;
        }
        Ok(())
    }

    fn start_segment(&mut self, size: u64) -> io::Result<()> {
        // A number is never tried twice: a failed creation may have left a file of that name.
        let number = self.next_number;
        self.next_number += 1;
        let spare = if size <= SEGMENT_BYTES {
            reuse_spare(&self.dir, number)?
        } else {
            None
        };
        let (file, size) = match spare {
            Some(file) => (file, SEGMENT_BYTES),
            None => (create_segment(&self.dir, number, size)?, size),
        };
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

    /// Writes every unsynced byte, as one chunk, and `fdatasync`s it. On failure the bytes are
    /// kept for the next attempt, which starts a new segment.
    pub(super) fn sync(&mut self) -> io::Result<Option<Synced>> {
        if self.unsynced.is_empty() {
            return Ok(None);
        }
        let mut chunk = unsealed_chunk(&self.unsynced);
        let len = chunk.len() as u64;
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
        seal(seg.number, &mut chunk);
        let written = seg.file.write_all_at(&chunk, seg.offset).and_then(|()| {
            #[cfg(test)]
            super::tap::wrote(&self.dir, seg.number, seg.offset, &chunk);
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

/// Retires the segments in `dir` before `segment` (or up to and including it when
/// `inclusive`): called once sled holds every frame they contain durably. Each becomes a spare
/// while fewer than [`SPARES`] are kept and it is of [`SEGMENT_BYTES`] and chunks; the rest are
/// deleted. Neither is made durable here: a crash may bring a retired segment back, and its
/// frames are then read again, which replay tolerates.
pub(super) fn retire_segments(dir: &Path, segment: u64, inclusive: bool) -> io::Result<()> {
    let found = numbered(dir)?;
    let mut spares = found.iter().filter(|(_, k, _)| *k == Kind::Spare).count();
    for (number, kind, path) in found {
        let due = number < segment || (inclusive && number == segment);
        if !due || kind == Kind::Spare {
            continue;
        }
        if kind == Kind::Chunks
            && spares < SPARES
            && std::fs::metadata(&path)?.len() == SEGMENT_BYTES
        {
            std::fs::rename(&path, spare_path(dir, number))?;
            spares += 1;
        } else {
            std::fs::remove_file(&path)?;
        }
        #[cfg(test)]
        super::tap::retired(dir, number);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
