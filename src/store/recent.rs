//! An org's latest applied changes across all its records, newest first, from the provenance
//! tree (`org ‖ kind ‖ id(8) ‖ seq(8)`, where `seq` grows across the whole store).
//!
//! The tree is ordered by record, not by time, so this reads every provenance key of the org
//! and keeps the `limit` with the highest sequence numbers; only those values are decoded. It
//! is meant for a person's page, not for a hot path.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{LocalRef, Provenance, RecordKind, Store, StoreError};
use crate::domain::OrgId;

/// `kind(1) ‖ id(8) ‖ seq(8)` after the 18-character org id.
fn parts(key: &[u8]) -> Option<(RecordKind, u64, u64)> {
    let kind = RecordKind::from_code(*key.get(18)?)?;
    let id = u64::from_be_bytes(key.get(19..27)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(27..35)?.try_into().ok()?);
    Some((kind, id, seq))
}

impl Store {
    /// The org's `limit` latest provenance entries, newest first, with the record each
    /// concerns.
    pub fn latest_provenance(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> Result<Vec<(LocalRef, Provenance)>, StoreError> {
        let mut newest = BinaryHeap::with_capacity(limit + 1);
        for kv in self.inner.provenance.scan_prefix(org.as_str().as_bytes()) {
            let (k, v) = kv?;
            let Some((_, _, seq)) = parts(&k) else {
                continue;
            };
            newest.push(Reverse((seq, k, v)));
            if newest.len() > limit {
                newest.pop();
            }
        }
        let mut out = Vec::with_capacity(newest.len());
        for Reverse((_, k, v)) in newest.into_sorted_vec() {
            let Some((kind, id, _)) = parts(&k) else {
                continue;
            };
            let p = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                tree: "provenance",
                reason: e.to_string(),
            })?;
            out.push((LocalRef { kind, id }, p));
        }
        Ok(out)
    }
}
