//! The dedupe index's runs: immutable, sorted sets of remembered dedupe keys on disk, each with a
//! Bloom filter in memory (see `dedupe`).
//!
//! A run lives in the `inbox_dedupe` tree as chunks of about [`CHUNK_BYTES`] of entries in key
//! order, each chunk keyed by its run and its first key (so one range read finds the chunk that
//! may hold a key), and one meta value holding its time range, count and filter bits. An entry is
//! `len u32 ‖ key ‖ received_ms i64 ‖ has_digest u8 ‖ [digest u64]` (little-endian numbers).
//! A run appears whole or not at all: its meta is written in the same sled batch as its last
//! chunks; a run being merged is marked `writing` until then, and runs being deleted are marked
//! `dropping` until their chunks are gone, so an open after a crash finishes or undoes either.

use fastbloom::BloomFilter;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::corrupt;
use super::keys;

/// The Bloom filter's false-positive rate per run: a new id costs a disk read with about this
/// probability for each run.
const FALSE_POSITIVE: f64 = 0.001;
/// Bytes of entries per chunk value: a lookup reads and scans one chunk.
const CHUNK_BYTES: usize = 4 << 10;
/// Chunks written per sled batch while a merged run is written.
const CHUNKS_PER_BATCH: usize = 256;
const TREE: &str = "inbox_dedupe";

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

/// A run as the dedupe memory holds it: its place, its time range and its filter.
pub(super) struct Run {
    pub(super) id: u64,
    /// 0 for a run cut from the recent ids; merging runs of one level makes one of the next.
    pub(super) level: u8,
    pub(super) count: u64,
    /// The arrival times it covers (for a run of carried ids: when they were carried).
    pub(super) min_ms: i64,
    pub(super) max_ms: i64,
    filter: BloomFilter,
}

#[derive(Serialize, Deserialize)]
struct RunMeta {
    level: u8,
    count: u64,
    min_ms: i64,
    max_ms: i64,
    hashes: u32,
    /// The filter's bits, little-endian `u64` words.
    bits: Vec<u8>,
}

impl Run {
    /// Whether the run may hold the key of this hash (a Bloom filter: never a false "no").
    pub(super) fn may_hold(&self, hash: u64) -> bool {
        self.filter.contains_hash(hash)
    }

    /// Looks the key up on disk: one range read of the chunk that would hold it.
    pub(super) fn find(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<Seen>, StoreError> {
        let from = keys::dedupe_chunk(self.id, &[]);
        let to = keys::dedupe_chunk(self.id, key);
        match tree.range(from..=to).next_back() {
            Some(kv) => find_in_chunk(&kv?.1, key),
            None => Ok(None),
        }
    }

    /// Every entry, in key order, read chunk by chunk.
    pub(super) fn entries<'a>(
        &self,
        tree: &'a sled::Tree,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Seen), StoreError>> + 'a {
        tree.scan_prefix(keys::dedupe_chunks(self.id))
            .flat_map(|kv| match kv {
                Ok((_, chunk)) => match decode_chunk(&chunk) {
                    Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                },
                Err(e) => vec![Err(e.into())],
            })
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
        .ok_or_else(|| corrupt(TREE, "damaged chunk"))?;
    *rest = tail;
    Ok(head)
}

fn word<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], StoreError> {
    split(rest, N)?
        .try_into()
        .map_err(|_| corrupt(TREE, "damaged chunk"))
}

/// Walks a chunk's entries, calling `f(key, seen)` until it returns `false`.
fn walk_chunk(mut rest: &[u8], mut f: impl FnMut(&[u8], Seen) -> bool) -> Result<(), StoreError> {
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

/// Writes one run: entries pushed in key order become chunks in sled batches; the last batch
/// (from [`RunWriter::finish`]) also holds the run's meta.
pub(super) struct RunWriter {
    id: u64,
    level: u8,
    count: u64,
    min_ms: i64,
    max_ms: i64,
    filter: BloomFilter,
    chunk: Vec<u8>,
    first: Vec<u8>,
    batch: sled::Batch,
    chunks: usize,
}

impl RunWriter {
    /// A writer for run `id` of `capacity` entries at most.
    pub(super) fn new(id: u64, level: u8, capacity: u64) -> Self {
        let items = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        Self {
            id,
            level,
            count: 0,
            min_ms: i64::MAX,
            max_ms: i64::MIN,
            filter: BloomFilter::with_false_pos(FALSE_POSITIVE)
                .seed(&0)
                .expected_items(items),
            chunk: Vec::with_capacity(CHUNK_BYTES + 256),
            first: Vec::new(),
            batch: sled::Batch::default(),
            chunks: 0,
        }
    }

    /// Adds an entry; keys must come in ascending order.
    pub(super) fn push(&mut self, key: &[u8], seen: Seen, hash: u64) {
        if self.chunk.is_empty() {
            self.first = key.to_vec();
        }
        push_entry(&mut self.chunk, key, seen);
        self.filter.insert_hash(hash);
        self.count += 1;
        self.min_ms = self.min_ms.min(seen.received_ms);
        self.max_ms = self.max_ms.max(seen.received_ms);
        if self.chunk.len() >= CHUNK_BYTES {
            self.end_chunk();
        }
    }

    fn end_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 256));
            self.batch
                .insert(keys::dedupe_chunk(self.id, &self.first), chunk);
            self.chunks += 1;
        }
    }

    /// A batch of finished chunks, once there are enough to write.
    pub(super) fn full_batch(&mut self) -> Option<sled::Batch> {
        (self.chunks >= CHUNKS_PER_BATCH).then(|| {
            self.chunks = 0;
            std::mem::take(&mut self.batch)
        })
    }

    /// Sets the run's time range (a run of carried ids covers the time it was written).
    pub(super) fn set_time(&mut self, at_ms: i64) {
        self.min_ms = at_ms;
        self.max_ms = at_ms;
    }

    /// The last batch (the remaining chunks and the run's meta) and the run.
    pub(super) fn finish(mut self) -> Result<(sled::Batch, Run), StoreError> {
        self.end_chunk();
        let words = self.filter.as_slice();
        let meta = RunMeta {
            level: self.level,
            count: self.count,
            min_ms: self.min_ms,
            max_ms: self.max_ms,
            hashes: self.filter.num_hashes(),
            bits: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        };
        let value = postcard::to_stdvec(&meta).map_err(|e| corrupt(TREE, e))?;
        self.batch.insert(keys::dedupe_run(self.id), value);
        let run = Run {
            id: self.id,
            level: self.level,
            count: self.count,
            min_ms: self.min_ms,
            max_ms: self.max_ms,
            filter: self.filter,
        };
        Ok((self.batch, run))
    }
}

/// Removes every chunk of run `id`, in batches.
pub(super) fn delete_chunks(tree: &sled::Tree, id: u64) -> Result<(), StoreError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in tree
            .scan_prefix(keys::dedupe_chunks(id))
            .take(CHUNKS_PER_BATCH)
        {
            batch.remove(kv?.0);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        tree.apply_batch(batch)?;
    }
}

/// Reads the runs (oldest first) after finishing what a crash interrupted: a merged run that was
/// still being written is removed, and so are the chunks of runs that were being dropped.
pub(super) fn load(tree: &sled::Tree) -> Result<Vec<Run>, StoreError> {
    for prefix in [keys::dedupe_writing_all(), keys::dedupe_dropping_all()] {
        let marked: Vec<sled::IVec> = tree.scan_prefix(prefix).keys().collect::<Result<_, _>>()?;
        for marker in marked {
            let id = keys::dedupe_run_id(&marker).ok_or_else(|| corrupt(TREE, "bad marker"))?;
            if prefix_is_writing(&marker) {
                tree.remove(keys::dedupe_run(id))?;
            }
            delete_chunks(tree, id)?;
            tree.remove(marker)?;
        }
    }
    let mut runs = Vec::new();
    for kv in tree.scan_prefix(keys::dedupe_runs_all()) {
        let (k, v) = kv?;
        let id = keys::dedupe_run_id(&k).ok_or_else(|| corrupt(TREE, "bad run key"))?;
        let meta: RunMeta = postcard::from_bytes(&v).map_err(|e| corrupt(TREE, e))?;
        let words: Vec<u64> = meta
            .bits
            .chunks_exact(8)
            .map(|c| c.try_into().map(u64::from_le_bytes))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(TREE, e))?;
        if words.is_empty() || meta.hashes == 0 {
            return Err(corrupt(TREE, "empty filter"));
        }
        runs.push(Run {
            id,
            level: meta.level,
            count: meta.count,
            min_ms: meta.min_ms,
            max_ms: meta.max_ms,
            filter: BloomFilter::from_vec(words).seed(&0).hashes(meta.hashes),
        });
    }
    Ok(runs)
}

fn prefix_is_writing(marker: &[u8]) -> bool {
    marker.starts_with(&keys::dedupe_writing_all())
}
