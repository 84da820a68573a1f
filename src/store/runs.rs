//! The dedupe index's runs: immutable, sorted sets of remembered dedupe keys, each in a file of
//! its own beside sled, with a Bloom filter and a sparse index in memory (see `dedupe`).
//!
//! Why files and not sled: sled 0.34 keeps much of what it holds in memory whatever its cache
//! size, so ids stored there cost memory in proportion to the window; a run file costs only its
//! filter and one index entry per chunk, and lookups read through the kernel's page cache.
//!
//! A run file is its chunks (about [`CHUNK_BYTES`] of entries in key order each), then a footer
//! (postcard: level, rank, count, time range, the journal sequence number it covers, the runs it
//! replaces, the filter's bits and each chunk's first key and place), then the footer's length,
//! its CRC-32 and [`MAGIC`]. An entry is `len u32 ‖ key ‖ received_ms i64 ‖ has_digest u8 ‖
//! [digest u64]` (little-endian numbers). A chunk is stored as an LZ4 block with its size
//! prepended: sorted keys share the org and most of the id, and neighbours' arrival times share
//! their high bytes, so a chunk takes about a fifth of its bytes, and every merge writes that much
//! less. Files ending in [`MAGIC_PLAIN`], written by earlier versions, hold plain chunks and are
//! still read.
//!
//! A run appears whole or not at all: it is written to `<id>.run.tmp`, synced, renamed to
//! `<id>.run` and the directory synced. At open, leftover `.tmp` files are deleted, and so is
//! every run that a complete run says it replaces (a merge whose inputs' removal a crash cut
//! short).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use fastbloom::BloomFilter;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::corrupt;

/// The Bloom filter's false-positive rate per run: a new id costs a disk read with about this
/// probability for each run.
const FALSE_POSITIVE: f64 = 0.001;
/// Bytes of entries per chunk: a lookup reads and scans one chunk; memory holds one index entry
/// per chunk.
const CHUNK_BYTES: usize = 16 << 10;
/// The last bytes of a run file whose chunks are LZ4-compressed.
const MAGIC: &[u8; 8] = b"sfdrun02";
/// The last bytes of a run file whose chunks are plain, as earlier versions wrote them.
const MAGIC_PLAIN: &[u8; 8] = b"sfdrun01";
/// The most bytes a chunk may claim to hold once decompressed: a larger claim is a damaged
/// chunk, and is never allocated.
const MAX_CHUNK: usize = 4 << 20;
/// Footer length, CRC-32, magic.
const TRAILER: usize = 4 + 4 + MAGIC.len();
const WHAT: &str = "dedupe runs";

/// What is remembered of a delivery id: when it arrived, and for a signed event a digest of its
/// body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) received_ms: i64,
    pub(super) digest: Option<u64>,
}

/// The seeded hash every filter of a store uses (SipHash-1-3 over the key bytes), so that filters
/// written to disk stay valid across restarts and an outsider cannot aim ids at them.
pub(super) struct KeyHash(fastbloom::DefaultHasher);

impl KeyHash {
    pub(super) fn new(seed: &[u8; 16]) -> Self {
        Self(fastbloom::DefaultHasher::seeded(seed))
    }

    pub(super) fn of(&self, key: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.0.build_hasher();
        h.write(key);
        h.finish()
    }
}

/// Where a chunk lies in its run file, and its first key.
struct Chunk {
    first: Box<[u8]>,
    offset: u64,
    len: u32,
}

/// A run as the dedupe memory holds it: its file, its time range, its filter and its index.
pub(super) struct Run {
    pub(super) id: u64,
    /// 0 for a run cut from the recent ids; merging runs of one level makes one of the next.
    pub(super) level: u8,
    /// Its place among the runs (oldest first): its id, or for a merged run its first input's.
    pub(super) rank: u64,
    pub(super) count: u64,
    /// The arrival times it covers.
    pub(super) min_ms: i64,
    pub(super) max_ms: i64,
    /// The journal sequence number through which every dedupe key was in a run when it was cut.
    pub(super) covered: u64,
    filter: BloomFilter,
    chunks: Vec<Chunk>,
    /// Whether its chunks are LZ4-compressed.
    compressed: bool,
    file: File,
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Footer {
    level: u8,
    rank: u64,
    count: u64,
    min_ms: i64,
    max_ms: i64,
    covered: u64,
    replaces: Vec<u64>,
    hashes: u32,
    /// The filter's bits, little-endian `u64` words.
    bits: Vec<u8>,
    /// Per chunk: first key, offset, length.
    chunks: Vec<(Vec<u8>, u64, u32)>,
}

fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.run"))
}

fn tmp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.run.tmp"))
}

/// `fsync` of a directory, so that a rename or an unlink in it is durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Run {
    /// Whether the run may hold the key of this hash (a Bloom filter: never a false "no").
    pub(super) fn may_hold(&self, hash: u64) -> bool {
        self.filter.contains_hash(hash)
    }

    /// A chunk's entries, decompressed.
    fn read(&self, chunk: &Chunk) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0; chunk.len as usize];
        self.file.read_exact_at(&mut buf, chunk.offset)?;
        if self.compressed {
            return super::lz4_decompress(WHAT, &buf, MAX_CHUNK);
        }
        Ok(buf)
    }

    /// Looks the key up on disk: one read of the chunk that would hold it.
    pub(super) fn find(&self, key: &[u8]) -> Result<Option<Seen>, StoreError> {
        let after = self.chunks.partition_point(|c| &*c.first <= key);
        match after.checked_sub(1).map(|i| &self.chunks[i]) {
            Some(chunk) => find_in_chunk(&self.read(chunk)?, key),
            None => Ok(None),
        }
    }

    /// Every entry, in key order, read chunk by chunk.
    pub(super) fn entries(&self) -> impl Iterator<Item = Result<(Vec<u8>, Seen), StoreError>> + '_ {
        self.chunks.iter().flat_map(
            |c| match self.read(c).and_then(|bytes| decode_chunk(&bytes)) {
                Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            },
        )
    }

    /// Deletes the run's file (the caller syncs the directory); a file already gone is fine.
    pub(super) fn remove_file(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    #[cfg(test)]
    pub(super) fn fill_filter_for_test(&mut self) {
        let words = self.filter.as_slice().len();
        self.filter = BloomFilter::from_vec(vec![u64::MAX; words]).hashes(self.filter.num_hashes());
    }
}

fn push_entry(buf: &mut Vec<u8>, key: &[u8], seen: Seen) {
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&seen.received_ms.to_le_bytes());
    match seen.digest {
        Some(d) => {
            buf.push(1);
            buf.extend_from_slice(&d.to_le_bytes());
        }
        None => buf.push(0),
    }
}

fn split<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| corrupt(WHAT, "damaged chunk"))?;
    *rest = tail;
    Ok(head)
}

fn word<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], StoreError> {
    split(rest, N)?
        .try_into()
        .map_err(|_| corrupt(WHAT, "damaged chunk"))
}

/// Walks a chunk's entries, calling `f(key, seen)` until it returns `false`.
pub(super) fn walk_chunk(
    mut rest: &[u8],
    mut f: impl FnMut(&[u8], Seen) -> bool,
) -> Result<(), StoreError> {
    while !rest.is_empty() {
        let len = u32::from_le_bytes(word(&mut rest)?);
        let key = split(&mut rest, len as usize)?;
        let received_ms = i64::from_le_bytes(word(&mut rest)?);
        let digest = match word::<1>(&mut rest)? {
            [0] => None,
            _ => Some(u64::from_le_bytes(word(&mut rest)?)),
        };
        if !f(
            key,
            Seen {
                received_ms,
                digest,
            },
        ) {
            break;
        }
    }
    Ok(())
}

fn find_in_chunk(chunk: &[u8], key: &[u8]) -> Result<Option<Seen>, StoreError> {
    let mut found = None;
    walk_chunk(chunk, |k, seen| {
        if k == key {
            found = Some(seen);
        }
        found.is_none() && k < key
    })?;
    Ok(found)
}

fn decode_chunk(chunk: &[u8]) -> Result<Vec<(Vec<u8>, Seen)>, StoreError> {
    let mut out = Vec::new();
    walk_chunk(chunk, |k, seen| {
        out.push((k.to_vec(), seen));
        true
    })?;
    Ok(out)
}

/// Writes one run file: entries pushed in key order become chunks; [`RunWriter::finish`] adds
/// the footer and makes the file durable under its final name. Dropped unfinished, it deletes
/// its temporary file.
pub(super) struct RunWriter {
    dir: PathBuf,
    id: u64,
    footer: Footer,
    filter: BloomFilter,
    chunk: Vec<u8>,
    first: Vec<u8>,
    out: Option<BufWriter<File>>,
    offset: u64,
}

impl RunWriter {
    /// A writer for run `id` of `capacity` entries at most, in `dir`.
    pub(super) fn new(dir: &Path, id: u64, level: u8, capacity: u64) -> Result<Self, StoreError> {
        let items = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp_path(dir, id))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            id,
            footer: Footer {
                level,
                rank: id,
                count: 0,
                min_ms: i64::MAX,
                max_ms: i64::MIN,
                covered: 0,
                replaces: Vec::new(),
                hashes: 0,
                bits: Vec::new(),
                chunks: Vec::new(),
            },
            filter: BloomFilter::with_false_pos(FALSE_POSITIVE)
                .seed(&0)
                .expected_items(items),
            chunk: Vec::with_capacity(CHUNK_BYTES + 256),
            first: Vec::new(),
            out: Some(BufWriter::with_capacity(CHUNK_BYTES * 4, file)),
            offset: 0,
        })
    }

    /// Adds an entry; keys must come in ascending order.
    pub(super) fn push(&mut self, key: &[u8], seen: Seen, hash: u64) -> Result<(), StoreError> {
        if self.chunk.is_empty() {
            self.first = key.to_vec();
        }
        push_entry(&mut self.chunk, key, seen);
        self.filter.insert_hash(hash);
        let f = &mut self.footer;
        f.count += 1;
        f.min_ms = f.min_ms.min(seen.received_ms);
        f.max_ms = f.max_ms.max(seen.received_ms);
        if self.chunk.len() >= CHUNK_BYTES {
            self.end_chunk()?;
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> Result<(), StoreError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let out = self.out.as_mut().ok_or_else(|| corrupt(WHAT, "finished"))?;
        let block = lz4_flex::block::compress_prepend_size(&self.chunk);
        out.write_all(&block)?;
        let len = u32::try_from(block.len()).map_err(|e| corrupt(WHAT, e))?;
        let first = std::mem::take(&mut self.first);
        self.footer.chunks.push((first, self.offset, len));
        self.offset += u64::from(len);
        self.chunk.clear();
        Ok(())
    }

    /// Sets the run's place among the runs (see [`Run::rank`]) and the runs it replaces.
    pub(super) fn replacing(&mut self, rank: u64, runs: Vec<u64>) {
        self.footer.rank = rank;
        self.footer.replaces = runs;
    }

    /// Sets the journal sequence number through which every dedupe key is in a run.
    pub(super) fn set_covered(&mut self, seq: u64) {
        self.footer.covered = seq;
    }

    /// Writes the footer, syncs the file, renames it to its final name and syncs the
    /// directory: from here on the run survives a power loss.
    pub(super) fn finish(mut self) -> Result<Run, StoreError> {
        self.end_chunk()?;
        self.footer.hashes = self.filter.num_hashes();
        self.footer.bits = self
            .filter
            .as_slice()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let footer = postcard::to_stdvec(&self.footer).map_err(|e| corrupt(WHAT, e))?;
        let len = u32::try_from(footer.len()).map_err(|e| corrupt(WHAT, e))?;
        let mut out = self.out.take().ok_or_else(|| corrupt(WHAT, "finished"))?;
        out.write_all(&footer)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&crc32fast::hash(&footer).to_le_bytes())?;
        out.write_all(MAGIC)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let path = run_path(&self.dir, self.id);
        std::fs::rename(tmp_path(&self.dir, self.id), &path)?;
        sync_dir(&self.dir)?;
        let footer = std::mem::replace(&mut self.footer, empty_footer());
        let filter = std::mem::replace(&mut self.filter, BloomFilter::with_num_bits(64).hashes(1));
        Ok(into_run(self.id, footer, filter, file, true, path))
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(tmp_path(&self.dir, self.id));
        }
    }
}

fn empty_footer() -> Footer {
    Footer {
        level: 0,
        rank: 0,
        count: 0,
        min_ms: 0,
        max_ms: 0,
        covered: 0,
        replaces: Vec::new(),
        hashes: 0,
        bits: Vec::new(),
        chunks: Vec::new(),
    }
}

/// The run a footer describes, in `file` (its chunks LZ4-compressed or not).
fn into_run(
    id: u64,
    footer: Footer,
    filter: BloomFilter,
    file: File,
    compressed: bool,
    path: PathBuf,
) -> Run {
    Run {
        id,
        level: footer.level,
        rank: footer.rank,
        count: footer.count,
        min_ms: footer.min_ms,
        max_ms: footer.max_ms,
        covered: footer.covered,
        filter,
        chunks: footer
            .chunks
            .into_iter()
            .map(|(first, offset, len)| Chunk {
                first: first.into_boxed_slice(),
                offset,
                len,
            })
            .collect(),
        compressed,
        file,
        path,
    }
}

/// Reads a run file's footer; returns the run and the runs it replaces.
fn read_run(id: u64, path: PathBuf) -> Result<(Run, Vec<u64>), StoreError> {
    let file = File::open(&path)?;
    let size = file.metadata()?.len();
    let damaged = || corrupt(WHAT, format!("damaged run file {}", path.display()));
    let trailer_at = size.checked_sub(TRAILER as u64).ok_or_else(damaged)?;
    let mut trailer = [0u8; TRAILER];
    file.read_exact_at(&mut trailer, trailer_at)?;
    let (len, rest) = trailer.split_at(4);
    let (crc, magic) = rest.split_at(4);
    let len = u64::from(u32::from_le_bytes(len.try_into().map_err(|_| damaged())?));
    let compressed = match magic {
        m if m == MAGIC => true,
        m if m == MAGIC_PLAIN => false,
        _ => return Err(damaged()),
    };
    let footer_at = trailer_at.checked_sub(len).ok_or_else(damaged)?;
    let mut bytes = vec![0; usize::try_from(len).map_err(|_| damaged())?];
    file.read_exact_at(&mut bytes, footer_at)?;
    if crc32fast::hash(&bytes).to_le_bytes() != crc {
        return Err(damaged());
    }
    let mut footer: Footer = postcard::from_bytes(&bytes).map_err(|e| corrupt(WHAT, e))?;
    let words: Vec<u64> = footer
        .bits
        .chunks_exact(8)
        .map(|c| c.try_into().map(u64::from_le_bytes))
        .collect::<Result<_, _>>()
        .map_err(|e| corrupt(WHAT, e))?;
    if words.is_empty() || footer.hashes == 0 {
        return Err(corrupt(WHAT, "empty filter"));
    }
    let filter = BloomFilter::from_vec(words).seed(&0).hashes(footer.hashes);
    let replaces = std::mem::take(&mut footer.replaces);
    footer.bits = Vec::new();
    Ok((
        into_run(id, footer, filter, file, compressed, path),
        replaces,
    ))
}

/// Reads the runs in `dir` (ordered by rank, oldest first) after finishing what a crash
/// interrupted: unfinished files are deleted, and so are the runs a complete run replaces.
pub(super) fn load(dir: &Path) -> Result<Vec<Run>, StoreError> {
    std::fs::create_dir_all(dir)?;
    let mut runs = Vec::new();
    let mut replaced = HashSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".run.tmp") {
            std::fs::remove_file(&path)?;
        } else if let Some(id) = name.strip_suffix(".run") {
            let id = u64::from_str_radix(id, 16).map_err(|e| corrupt(WHAT, e))?;
            let (run, replaces) = read_run(id, path)?;
            replaced.extend(replaces);
            runs.push(run);
        }
    }
    let (gone, mut kept): (Vec<Run>, Vec<Run>) =
        runs.into_iter().partition(|r| replaced.contains(&r.id));
    for run in &gone {
        run.remove_file()?;
    }
    sync_dir(dir)?;
    kept.sort_by_key(|r| (r.rank, r.id));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<u8> {
        format!("00D7F00000107XsUAI\x0104l7F0000{n:09}AAA").into_bytes()
    }

    fn seen(n: u32) -> Seen {
        Seen {
            received_ms: 1_764_000_000_000 + i64::from(n),
            digest: (n % 3 == 0).then_some(u64::from(n) * 7),
        }
    }

    /// Writes `n` entries as earlier versions did: plain chunks, ending in [`MAGIC_PLAIN`].
    fn write_plain(dir: &Path, id: u64, n: u32, hash: &KeyHash) {
        let mut filter = BloomFilter::with_false_pos(FALSE_POSITIVE)
            .seed(&0)
            .expected_items(n as usize);
        let mut footer = empty_footer();
        footer.rank = id;
        let mut file = Vec::new();
        let mut chunk = Vec::new();
        let mut first = Vec::new();
        for i in 0..n {
            if chunk.is_empty() {
                first = key(i);
            }
            push_entry(&mut chunk, &key(i), seen(i));
            filter.insert_hash(hash.of(&key(i)));
            footer.count += 1;
            if chunk.len() >= CHUNK_BYTES || i + 1 == n {
                let len = u32::try_from(chunk.len()).expect("len");
                footer.chunks.push((first.clone(), file.len() as u64, len));
                file.append(&mut chunk);
            }
        }
        footer.hashes = filter.num_hashes();
        footer.bits = filter
            .as_slice()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let footer = postcard::to_stdvec(&footer).expect("footer");
        file.extend_from_slice(&footer);
        file.extend(u32::try_from(footer.len()).expect("len").to_le_bytes());
        file.extend(crc32fast::hash(&footer).to_le_bytes());
        file.extend_from_slice(MAGIC_PLAIN);
        std::fs::write(run_path(dir, id), file).expect("write");
    }

    fn check(run: &Run, n: u32, hash: &KeyHash) {
        for i in (0..n).step_by(97).chain([n - 1]) {
            assert!(run.may_hold(hash.of(&key(i))));
            assert_eq!(run.find(&key(i)).expect("find"), Some(seen(i)), "entry {i}");
        }
        assert_eq!(run.find(&key(n)).expect("find"), None);
        let all: Vec<_> = run.entries().collect::<Result<_, _>>().expect("entries");
        assert_eq!(all.len(), n as usize);
        assert!(
            all.iter()
                .zip(0..)
                .all(|((k, s), i)| *k == key(i) && *s == seen(i))
        );
    }

    #[test]
    fn runs_are_written_compressed_and_plain_runs_of_earlier_versions_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = KeyHash::new(&[7; 16]);
        let n = 5_000;
        let mut writer = RunWriter::new(dir.path(), 1, 0, u64::from(n)).expect("writer");
        for i in 0..n {
            writer
                .push(&key(i), seen(i), hash.of(&key(i)))
                .expect("push");
        }
        let run = writer.finish().expect("finish");
        assert!(run.chunks.len() > 1, "several chunks");
        check(&run, n, &hash);
        drop(run);
        write_plain(dir.path(), 2, n, &hash);

        let runs = load(dir.path()).expect("load");
        let [compressed, plain] = &runs[..] else {
            panic!("two runs, not {}", runs.len())
        };
        assert!(compressed.compressed && !plain.compressed);
        check(compressed, n, &hash);
        check(plain, n, &hash);
        let size = |id| {
            std::fs::metadata(run_path(dir.path(), id))
                .expect("size")
                .len()
        };
        assert!(
            size(1) * 2 < size(2),
            "compressed {} bytes, plain {}",
            size(1),
            size(2)
        );
    }

    #[test]
    fn a_damaged_compressed_chunk_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = KeyHash::new(&[7; 16]);
        let mut writer = RunWriter::new(dir.path(), 1, 0, 100).expect("writer");
        for i in 0..100 {
            writer
                .push(&key(i), seen(i), hash.of(&key(i)))
                .expect("push");
        }
        drop(writer.finish().expect("finish"));
        let path = run_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).expect("read");
        // The prepended size now claims more than any chunk may hold.
        bytes[3] = 0x7f;
        std::fs::write(&path, bytes).expect("write");
        let runs = load(dir.path()).expect("the footer is intact");
        let err = runs[0].find(&key(5)).expect_err("damaged");
        assert!(err.to_string().contains("dedupe runs"), "{err}");
    }
}
