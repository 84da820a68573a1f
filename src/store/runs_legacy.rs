//! Stores written before the dedupe runs moved into files kept them in the `inbox_dedupe` tree
//! (a meta value per run, its entries in chunk values). Opening such a store moves each run into a
//! file of its own with the same id and level, then removes the old keys; a crash during the move
//! repeats it at the next open (a run file written again replaces the first).

use std::path::Path;

use serde::Deserialize;

use super::StoreError;
use super::corrupt;
use super::keys;
use super::runs::{KeyHash, RunWriter, walk_chunk};

/// The head of a run meta of the tree layout (the rest, time range and filter, is rebuilt).
#[derive(Deserialize)]
struct LegacyMeta {
    level: u8,
    count: u64,
}

/// Moves the runs of the tree layout into files in `dir`; returns how many it moved.
pub(super) fn migrate(tree: &sled::Tree, dir: &Path, hash: &KeyHash) -> Result<usize, StoreError> {
    let mut metas = Vec::new();
    for kv in tree.scan_prefix(keys::legacy_dedupe_runs_all()) {
        let (k, v) = kv?;
        let id =
            keys::legacy_dedupe_run_id(&k).ok_or_else(|| corrupt("inbox_dedupe", "bad run key"))?;
        let (meta, _): (LegacyMeta, _) =
            postcard::take_from_bytes(&v).map_err(|e| corrupt("inbox_dedupe", e))?;
        metas.push((id, meta));
    }
    let stale = tree
        .iter()
        .keys()
        .filter(|k| !matches!(k.as_ref().map(|k| k.as_ref()), Ok(b"S" | b"W")))
        .count();
    if stale == 0 {
        return Ok(0);
    }
    for (id, meta) in &metas {
        let mut writer = RunWriter::new(dir, *id, meta.level, meta.count)?;
        for kv in tree.scan_prefix(keys::legacy_dedupe_chunks(*id)) {
            let (_, chunk) = kv?;
            let mut failed = None;
            walk_chunk(&chunk, |key, seen| {
                failed = writer.push(key, seen, hash.of(key)).err();
                failed.is_none()
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        writer.finish()?;
    }
    let mut batch = sled::Batch::default();
    for k in tree.iter().keys() {
        let k = k?;
        if !matches!(k.as_ref(), b"S" | b"W") {
            batch.remove(k);
        }
    }
    tree.apply_batch(batch)?;
    tree.flush()?;
    tracing::info!(
        runs = metas.len(),
        "dedupe runs moved from the store's tree into files"
    );
    Ok(metas.len())
}
