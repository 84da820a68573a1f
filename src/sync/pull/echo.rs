//! sfsync's own writes, reported back. After the outbox writes a record it reads the record's
//! `SystemModstamp` back and keeps it. A pending record whose notifications all named the
//! connection's own user as `LastModifiedById`, at exactly that stamp, reports that write and
//! nothing else, so it needs no pull. Anything else is pulled: another stamp, no stamp, another
//! user (a person's change in the same second carries the same stamp but their id), or a
//! notification that does not say who. The stamp is forgotten when a pull read before that
//! write is held back (see [`super::commit_records`]), so the record's next notification is
//! pulled whoever it names.

use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
use crate::store::{PendingEntry, Store, StoreError};

use super::commit::clear_if_covered;

/// Whether a pending record only reports sfsync's own last write to it: every notification
/// named `own_user` as the last modifier, and its stamp is the one read back after the write
/// (`written_stamp_ms`).
pub fn is_own_write(
    entry: &PendingEntry,
    written_stamp_ms: Option<i64>,
    own_user: Option<&SalesforceId>,
) -> bool {
    let same_stamp = matches!(
        (entry.system_modstamp_ms, written_stamp_ms),
        (Some(seen), Some(written)) if seen == written
    );
    let by_us = matches!(
        (entry.modified_by.as_ref(), own_user),
        (Some(by), Some(us)) if by == us
    );
    entry.change != ChangeType::Delete && same_stamp && by_us
}

/// Clears the pending entry of a record that only reported sfsync's own write, unless a
/// notification arrived since `snapshot` was read. Returns whether it was cleared.
pub fn skip_own_write(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    snapshot: &PendingEntry,
) -> Result<bool, StoreError> {
    store.atomically(|tx| clear_if_covered(tx, org, object, id, snapshot, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: &str = "0055g0000000001AAA";
    const PERSON: &str = "0055g0000000002AAA";

    fn entry(stamp_ms: Option<i64>, by: Option<&str>) -> PendingEntry {
        PendingEntry {
            change: ChangeType::Update,
            system_modstamp_ms: stamp_ms,
            notifications: 1,
            first_seen_ms: 0,
            modified_by: by.map(|u| SalesforceId::parse(u).expect("user")),
        }
    }

    fn us() -> SalesforceId {
        SalesforceId::parse(US).expect("user")
    }

    #[test]
    fn our_user_at_the_stamp_read_back_is_our_own_write_whatever_else_the_message_carries() {
        assert!(is_own_write(
            &entry(Some(5_000), Some(US)),
            Some(5_000),
            Some(&us())
        ));
    }

    #[test]
    fn another_user_another_stamp_or_an_unknown_one_is_pulled() {
        let written = Some(5_000);
        let own = Some(us());
        let own = own.as_ref();
        assert!(!is_own_write(
            &entry(Some(5_000), Some(PERSON)),
            written,
            own
        ));
        assert!(!is_own_write(&entry(Some(6_000), Some(US)), written, own));
        assert!(!is_own_write(&entry(None, Some(US)), written, own));
        assert!(!is_own_write(&entry(Some(5_000), None), written, own));
        assert!(!is_own_write(&entry(Some(5_000), Some(US)), None, own));
        assert!(!is_own_write(&entry(Some(5_000), Some(US)), written, None));
        let mut deleted = entry(Some(5_000), Some(US));
        deleted.change = ChangeType::Delete;
        assert!(!is_own_write(&deleted, written, own));
    }
}
