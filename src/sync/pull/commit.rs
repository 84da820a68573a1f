//! Applying a pulled record ([`apply_record`]) and the transactions around it: the record, its
//! [`Seen`] bookmark, its conflict pointer and the pending entry it clears commit together.

use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{PendingEntry, Seen, Store, StoreError, Tx, TxResult};

use super::company::apply_account;
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
            tx.remove_conflict(org, conflict)?;
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
    let seen = stamp_ms(record).map(|stamp_ms| Seen {
        stamp_ms,
        pulled_ms: origin.now.timestamp_millis(),
    });
    store.atomically(|tx| {
        let applied = apply_record(tx, org, rules, object, record, origin, target)?;
        if let (Some(snapshot), Some(id)) = (clear, record.sf_id()) {
            clear_if_covered(tx, org, object, &id, snapshot, seen)?;
        }
        Ok(applied)
    })
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
    let children = match store.local_by_salesforce_id(org, id)? {
        Some(local) if master.is_some() => children_of(store, org, local)?,
        _ => Children::default(),
    };
    store.atomically(|tx| {
        let applied = apply_gone(tx, org, id, master, &children, origin)?;
        if let Some(snapshot) = clear {
            clear_if_covered(tx, org, object, id, snapshot, None)?;
        }
        Ok(applied)
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
    store.atomically(|tx| clear_if_covered(tx, org, object, id, snapshot, Some(seen)))
}

/// The stored [`Seen`] bookmark of a record.
pub fn seen(store: &Store, org: &OrgId, id: &SalesforceId) -> Result<Option<Seen>, StoreError> {
    store.seen(org, id)
}
