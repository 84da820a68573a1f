//! What a records tree value holds: the record's JSON, then what the store keeps beside it so
//! that the transactions that rewrite the record anyway write no key of their own for it.
//!
//! `json ‖ [OUTBOX ‖ entry id(8, BE)] ‖ [PROVENANCE ‖ entries (postcard)]`, each part after the
//! JSON optional, in that order. The JSON is packed (see `packed`), and a packed value says how
//! long it is. Earlier versions wrote it plain: serde_json never writes either marker byte raw
//! (it escapes control characters), so plain JSON ends at the first of them. A value of plain
//! JSON alone is what the earliest versions wrote.
//!
//! - The outbox part: the id of the record's live outbox entry, written when the entry is
//!   created. It may name an entry since removed: entry ids are never reused, so that reads as
//!   no live entry.
//! - The provenance part: the record's newest provenance entries (see `provenance`).

use std::borrow::Cow;

use super::StoreError;
use super::packed;

/// Starts the outbox part.
const OUTBOX: u8 = 0x1F;

/// Starts the provenance part.
const PROVENANCE: u8 = 0x1E;

fn is_marker(b: &u8) -> bool {
    *b == OUTBOX || *b == PROVENANCE
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: "records",
        reason: e.to_string(),
    }
}

/// A records tree value taken apart.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Parts<'a> {
    /// The record's JSON as stored (packed, or plain).
    pub(super) json: &'a [u8],
    pub(super) outbox: Option<u64>,
    /// The provenance part's bytes, after its marker (empty: none).
    pub(super) provenance: &'a [u8],
}

impl<'a> Parts<'a> {
    pub(super) fn of(value: &'a [u8]) -> Result<Self, StoreError> {
        let (json, mut rest) = packed::split_off("records", value, is_marker)?;
        let mut outbox = None;
        if let Some(after) = rest.strip_prefix(&[OUTBOX]) {
            let (id, tail) = after
                .split_first_chunk::<8>()
                .ok_or_else(|| corrupt("an outbox part shorter than its id"))?;
            outbox = Some(u64::from_be_bytes(*id));
            rest = tail;
        }
        let provenance = match rest.split_first() {
            None => &[][..],
            Some((&PROVENANCE, tail)) => tail,
            Some(_) => return Err(corrupt("an unknown part after the record")),
        };
        Ok(Self {
            json,
            outbox,
            provenance,
        })
    }

    /// The value these parts make.
    pub(super) fn to_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.json.len() + 10 + self.provenance.len());
        v.extend_from_slice(self.json);
        if let Some(id) = self.outbox {
            v.push(OUTBOX);
            v.extend_from_slice(&id.to_be_bytes());
        }
        if !self.provenance.is_empty() {
            v.push(PROVENANCE);
            v.extend_from_slice(self.provenance);
        }
        v
    }
}

/// The record's JSON in a records tree value (or the whole of another tree's JSON value).
pub(super) fn json_part(value: &[u8]) -> Result<Cow<'_, [u8]>, StoreError> {
    packed::unpack("records", packed::split_off("records", value, is_marker)?.0)
}

/// A record's new JSON, packed, with every other part its stored value (`old`) holds.
pub(super) fn with_parts_of(json: &[u8], old: Option<&[u8]>) -> Result<Vec<u8>, StoreError> {
    let mut value = packed::pack(json);
    if let Some(old) = old {
        value.extend_from_slice(packed::split_off("records", old, is_marker)?.1);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_of_parts_reads_back_and_the_json_ends_where_they_start() {
        let json = br#"{"name":"A \u001e or \u001f"}"#;
        assert!(
            !serde_json::to_vec("\u{1e}\u{1f}")
                .expect("json")
                .iter()
                .any(is_marker)
        );
        for outbox in [None, Some(7)] {
            for provenance in [&b""[..], &b"\x02abc"[..]] {
                let parts = Parts {
                    json,
                    outbox,
                    provenance,
                };
                let value = parts.to_value();
                assert_eq!(Parts::of(&value).expect("parts"), parts);
                assert_eq!(json_part(&value).expect("json").as_ref(), json);
                let renamed = with_parts_of(b"{}", Some(&value)).expect("renamed");
                let kept = Parts::of(&renamed).expect("parts");
                assert_eq!((kept.outbox, kept.provenance), (outbox, provenance));
                assert_eq!(json_part(&renamed).expect("json").as_ref(), b"{}");
                // A packed JSON may hold the marker bytes: its length says where it ends.
                let marked = with_parts_of(json, Some(&value)).expect("packed");
                let again = Parts::of(&marked).expect("parts");
                assert_eq!((again.outbox, again.provenance), (outbox, provenance));
                assert_eq!(json_part(&marked).expect("json").as_ref(), json);
                assert_eq!(Parts::of(&again.to_value()).expect("parts"), again);
            }
        }
        assert!(Parts::of(b"{}\x1f\x00").is_err(), "a cut outbox part");
        assert!(Parts::of(b"{}\x1f\x00\x00\x00\x00\x00\x00\x00\x01\x1f").is_err());
    }
}
