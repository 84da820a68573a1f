//! Applying a pulled record ([`apply_record`]) and the transactions around it: the record, its
//! [`Seen`] bookmark, its conflict pointer and the pending entry it clears commit together.

use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{PendingEntry, Seen, Store, StoreError, Tx, TxResult};

use super::company::apply_account;
use super::conflicts::close_conflict;
use super::fields::stamp_ms;
use super::gone::{Children, apply_gone, children_of};
use super::opportunity::apply_opportunity;
use super::outcome::{Applied, Apply, Origin, Target};
use super::person::apply_person;
use super::policy::Rules;

/// Applies a pulled record of `object` (Account, Contact, Lead or Opportunity), records its
/// [`Seen`] bookmark and its provenance. `pulled_ms` is when it was read.
pub fn apply_record(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    record: &Record,
    origin: &Origin,
    target: Target,
) -> TxResult<Applied> {
    let Some(id) = record.sf_id() else {
        return Ok(Applied::Ignored {
            reason: "record without an Id".into(),
        });
    };
    let a = Apply {
        tx,
        org,
        rules,
        origin,
    };
    let applied = match object {
        ObjectType::Account => apply_account(a, &id, record, target)?,
        ObjectType::Contact | ObjectType::Lead => apply_person(a, object, &id, record, target)?,
        ObjectType::Opportunity => apply_opportunity(a, &id, record)?,
    };
    if let Some(stamp) = stamp_ms(record) {
        let seen = Seen {
            stamp_ms: stamp,
            pulled_ms: origin.now.timestamp_millis(),
        };
        tx.set_seen(org, &id, &seen)?;
    }
    if !matches!(applied, Applied::Quarantined { .. }) {
        if let Some(conflict) = tx.conflict_for(org, &id)? {
            close_conflict(tx, org, conflict)?;
            tx.clear_conflict_for(org, &id)?;
        }
    }
    Ok(applied)
}

/// Clears a pending entry after its record was applied, but only if nothing newer arrived
/// meanwhile: the entry must be unchanged since `snapshot` was read before the pull, or its
/// newest stamp must be covered by what was applied (`seen`). Otherwise it stays pending.
pub fn clear_if_covered(
    tx: &Tx<'_>,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    snapshot: &PendingEntry,
    seen: Option<Seen>,
) -> TxResult<bool> {
    let clear = match tx.pending_entry(org, object, id)? {
        None => false,
        Some(now) if now == *snapshot => true,
        Some(now) => {
            now.change != ChangeType::Delete
                && matches!((now.system_modstamp_ms, seen), (Some(s), Some(seen)) if seen.covers(s))
        }
    };
    if clear {
        tx.clear_pending(org, object, id)?;
    }
    Ok(clear)
}

/// Applies a pulled record in one transaction and, when `clear` holds the pending entry as it
/// was before the pull, clears that entry in the same transaction (see [`clear_if_covered`]).
#[allow(clippy::too_many_arguments)]
pub fn commit_record(
    store: &Store,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    record: &Record,
    origin: &Origin,
    target: Target,
    clear: Option<&PendingEntry>,
) -> Result<Applied, StoreError> {
    let applied = commit_records(
        store,
        org,
        rules,
        object,
        &[(record, clear)],
        origin,
        target,
    )?;
    Ok(applied.into_iter().next().unwrap_or(Applied::Ignored {
        reason: "nothing applied".into(),
    }))
}

/// Records applied per store transaction. A transaction holds the store's write lock from its
/// first read to its commit, and every other read waits meanwhile (intake's dedupe lookups
/// among them, which hold up every webhook), so a retrieved batch or a query page is applied in
/// transactions of this many.
pub const APPLY_CHUNK: usize = 200;

/// A pulled record and, when it was pulled for a pending entry, that entry as it was before the
/// pull (see [`clear_if_covered`]).
pub type PulledRecord<'a> = (&'a Record, Option<&'a PendingEntry>);

/// Applies pulled records of `object` in order, in ONE transaction, each clearing its pending
/// entry as [`commit_record`] does. One transaction per batch, not per record: each sled
/// transaction writes its own log buffers, and a batch of them costs a few writes instead of
/// a few per record. `origin.now` is when the records were read.
///
/// A record matched by the ladder that was read before sfsync's own latest write to it took
/// effect ([`read_before_own_write`]) is not applied ([`Applied::Stale`]): its values may be
/// older than those sfsync wrote, and the notification of that write would be taken for
/// sfsync's own and skipped, leaving the older values here for good. Its pending entry, if
/// any, stays and the written stamp is forgotten ([`skip_stale`]), so the next read of the
/// record (the inbox's next step), which holds sfsync's write and any change made in the org
/// meanwhile, is applied. Without a pending entry (an import) nothing reads it again at once:
/// the local copy holds sfsync's newer write, and the record's next notification is pulled.
pub fn commit_records(
    store: &Store,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    records: &[PulledRecord<'_>],
    origin: &Origin,
    target: Target,
) -> Result<Vec<Applied>, StoreError> {
    let pulled_ms = origin.now.timestamp_millis();
    let (applied, held) = store.atomically(|tx| {
        let mut out = Vec::with_capacity(records.len());
        let mut held = Vec::new();
        for (record, clear) in records {
            if target == Target::Ladder {
                if let Some(written_ms) = skip_stale(tx, org, record, pulled_ms)? {
                    held.push((*record, written_ms));
                    out.push(Applied::Stale);
                    continue;
                }
            }
            out.push(apply_record(
                tx, org, rules, object, record, origin, target,
            )?);
            if let (Some(snapshot), Some(id)) = (clear, record.sf_id()) {
                let seen = stamp_ms(record).map(|stamp_ms| Seen {
                    stamp_ms,
                    pulled_ms,
                });
                clear_if_covered(tx, org, object, &id, snapshot, seen)?;
            }
        }
        Ok((out, held))
    })?;
    for (record, written_ms) in held {
        let id = record.sf_id();
        let id = id.as_ref().map_or("", SalesforceId::as_str);
        let (stamp_ms, object) = (stamp_ms(record), object.api_name());
        tracing::debug!(org = %org, object, record = id, ?stamp_ms, written_ms, pulled_ms, "record read before sfsync's own write to it; not applied, read again");
    }
    Ok(applied)
}

/// Whether a record read with `stamp_ms` by a read that began at `pulled_ms` (local clock) may
/// predate sfsync's own write whose stamp read back was `written_ms`: the write is surely in
/// the read only when the read's stamp is newer, or the same and the read began after that
/// second was over ([`Seen::covers`]; stamps have whole seconds, so a write in the same second
/// may have come after the read). A record without a stamp cannot be told and is not held back.
pub fn read_before_own_write(stamp_ms: Option<i64>, pulled_ms: i64, written_ms: i64) -> bool {
    stamp_ms.is_some_and(|stamp_ms| {
        !Seen {
            stamp_ms,
            pulled_ms,
        }
        .covers(written_ms)
    })
}

/// Holds back a pulled record read before sfsync's own latest write to it
/// ([`read_before_own_write`]): nothing of it is applied and its pending entry is left, and the
/// written stamp is forgotten, so no notification of the record is skipped as sfsync's own
/// until it is read again. The next read cannot be held back the same way unless sfsync writes
/// the record again meanwhile. Returns the forgotten stamp when it was held back.
fn skip_stale(tx: &Tx<'_>, org: &OrgId, record: &Record, pulled_ms: i64) -> TxResult<Option<i64>> {
    let Some(id) = record.sf_id() else {
        return Ok(None);
    };
    let Some(written_ms) = tx.written_stamp(org, &id)? else {
        return Ok(None);
    };
    if !read_before_own_write(stamp_ms(record), pulled_ms, written_ms) {
        return Ok(None);
    }
    tx.forget_written_stamp(org, &id)?;
    Ok(Some(written_ms))
}

/// A record gone from Salesforce: its id, the survivor when it was merged, the local records
/// pointing at its local copy (see [`children_of`]), and its pending entry before the call.
pub struct GoneRecord<'a> {
    /// The record.
    pub id: &'a SalesforceId,
    /// The merge survivor, if any.
    pub master: Option<&'a SalesforceId>,
    /// What a merge re-points.
    pub children: Children,
    /// The pending entry to clear, as read before the call.
    pub clear: Option<&'a PendingEntry>,
}

impl<'a> GoneRecord<'a> {
    /// A gone record, with the children of its local copy read when it was merged.
    pub fn read(
        store: &Store,
        org: &OrgId,
        id: &'a SalesforceId,
        master: Option<&'a SalesforceId>,
        clear: Option<&'a PendingEntry>,
    ) -> Result<Self, StoreError> {
        let children = match store.local_by_salesforce_id(org, id)? {
            Some(local) if master.is_some() => children_of(store, org, local)?,
            _ => Children::default(),
        };
        Ok(Self {
            id,
            master,
            children,
            clear,
        })
    }
}

/// [`apply_gone`] in one transaction, clearing the pending entry as [`commit_record`] does.
#[allow(clippy::too_many_arguments)]
pub fn commit_gone(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    master: Option<&SalesforceId>,
    origin: &Origin,
    clear: Option<&PendingEntry>,
) -> Result<Applied, StoreError> {
    let gone = GoneRecord::read(store, org, id, master, clear)?;
    let applied = commit_gone_records(store, org, object, &[gone], origin)?;
    Ok(applied.into_iter().next().unwrap_or(Applied::Ignored {
        reason: "nothing applied".into(),
    }))
}

/// [`apply_gone`] for many records of `object` in one transaction, each clearing its pending
/// entry.
pub fn commit_gone_records(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    gone: &[GoneRecord<'_>],
    origin: &Origin,
) -> Result<Vec<Applied>, StoreError> {
    store.atomically(|tx| {
        let mut out = Vec::with_capacity(gone.len());
        for g in gone {
            out.push(apply_gone(tx, org, g.id, g.master, &g.children, origin)?);
            if let Some(snapshot) = g.clear {
                clear_if_covered(tx, org, object, g.id, snapshot, None)?;
            }
        }
        Ok(out)
    })
}

/// A pending entry to clear without a pull: its record, the entry as it was read, and the
/// stored [`Seen`] that covers it (`None` for an echo of sfsync's own write).
pub type Covered<'a> = (ObjectType, &'a SalesforceId, &'a PendingEntry, Option<Seen>);

/// Clears pending entries whose change needs no pull (already applied, or sfsync's own write),
/// in one transaction, each only if nothing newer arrived (see [`clear_if_covered`]). Returns
/// whether each was cleared.
pub fn clear_covered(
    store: &Store,
    org: &OrgId,
    entries: &[Covered<'_>],
) -> Result<Vec<bool>, StoreError> {
    store.atomically(|tx| {
        entries
            .iter()
            .map(|(object, id, snapshot, seen)| {
                clear_if_covered(tx, org, *object, id, snapshot, *seen)
            })
            .collect()
    })
}

/// Clears a pending entry whose change is already applied (its stamp is covered by the stored
/// [`Seen`]) without a pull. Returns whether it was cleared.
pub fn skip_covered(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    snapshot: &PendingEntry,
    seen: Seen,
) -> Result<bool, StoreError> {
    let cleared = clear_covered(store, org, &[(object, id, snapshot, Some(seen))])?;
    Ok(cleared.first().copied().unwrap_or(false))
}

/// The stored [`Seen`] bookmark of a record.
pub fn seen(store: &Store, org: &OrgId, id: &SalesforceId) -> Result<Option<Seen>, StoreError> {
    store.seen(org, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SAME_SECOND_MARGIN_MS;

    const WRITTEN: i64 = 10_000;

    #[test]
    fn a_read_stamped_before_sfsyncs_write_predates_it_and_a_later_one_does_not() {
        assert!(read_before_own_write(Some(9_000), 20_000, WRITTEN));
        assert!(!read_before_own_write(Some(11_000), 10_500, WRITTEN));
    }

    #[test]
    fn a_read_in_the_second_of_sfsyncs_write_predates_it_until_that_second_is_over() {
        assert!(
            read_before_own_write(Some(WRITTEN), 10_400, WRITTEN),
            "the write may have come later in the same second"
        );
        assert!(!read_before_own_write(
            Some(WRITTEN),
            WRITTEN + SAME_SECOND_MARGIN_MS,
            WRITTEN
        ));
    }

    #[test]
    fn a_record_without_a_stamp_is_not_held_back() {
        assert!(!read_before_own_write(None, 0, WRITTEN));
    }
}
