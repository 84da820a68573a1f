//! What applying a pulled record did ([`Applied`]), where the change came from ([`Origin`]),
//! and the quarantine of records a person must place.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{ChangeWhat, ObjectType, OrgId, SalesforceId};
use crate::salesforce::Record;
use crate::store::{LocalRef, Provenance, Subject, Tx, TxResult};

use super::conflicts::{Conflict, close_conflict, log_conflict};
use super::policy::Rules;

/// Where an applied change came from, for provenance.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The event: `notification`, `sweep`, `import:{id}`, `conflict:{id}`.
    pub event: String,
    /// When it is applied.
    pub now: DateTime<Utc>,
}

impl Origin {
    /// An origin stamped now.
    pub fn new(event: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            now: Utc::now(),
        }
    }

    pub(super) fn provenance(&self, rule: impl Into<String>) -> Provenance {
        Provenance {
            side: "salesforce".into(),
            event: self.event.clone(),
            rule: rule.into(),
            at: self.now.to_rfc3339(),
        }
    }
}

/// How the local target is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// By the match ladder.
    Ladder,
    /// This local record (a person resolved a conflict by picking it).
    Local(u64),
    /// A new local record (a person resolved a conflict by creating one).
    New,
    /// This local record, whose push found the record in the org (match before create): it is
    /// linked and takes the org's values as the conflict policy says. Its own outbox entry is
    /// the one being delivered, so it does not count as an unsent local change.
    Pushed(u64),
}

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Applied {
    /// A local record was created.
    Created {
        /// It.
        target: LocalRef,
    },
    /// A local record was matched (by `rule`) and updated or linked.
    Updated {
        /// It.
        target: LocalRef,
        /// The rung and policy used.
        rule: String,
    },
    /// The local record already held these values.
    Unchanged {
        /// It.
        target: LocalRef,
    },
    /// Ambiguous or unplaceable: listed as a conflict.
    Quarantined {
        /// The conflict id.
        conflict: u64,
    },
    /// Deleted in Salesforce: the local record keeps its data, loses its link.
    Unlinked {
        /// It.
        target: LocalRef,
    },
    /// Merged or converted in Salesforce: local links now point at the survivor.
    Relinked {
        /// The local record now linked to the survivor.
        target: LocalRef,
        /// The survivor.
        survivor: SalesforceId,
    },
    /// Nothing local to do (e.g. a deleted record never synced).
    Ignored {
        /// Why.
        reason: String,
    },
    /// Read before sfsync's own later write to the record took effect: its values may be older
    /// than those sfsync wrote, so it was not applied; a pending entry for it stays, so the
    /// record is read again.
    Stale,
}

impl Applied {
    /// The outcome's name, as `sfsync_pull_applied_total` labels it (`result`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Updated { .. } => "updated",
            Self::Unchanged { .. } => "unchanged",
            Self::Quarantined { .. } => "quarantined",
            Self::Unlinked { .. } => "unlinked",
            Self::Relinked { .. } => "relinked",
            Self::Ignored { .. } => "ignored",
            Self::Stale => "stale",
        }
    }
}

/// One pulled record being applied: the transaction it commits in, its org, the rules and
/// where it came from.
#[derive(Clone, Copy)]
pub(super) struct Apply<'a, 't> {
    pub(super) tx: &'a Tx<'t>,
    pub(super) org: &'a OrgId,
    pub(super) rules: &'a Rules,
    pub(super) origin: &'a Origin,
}

/// After a pulled record was written: its provenance (`create` for a new record, else `rule`)
/// and what the apply did.
pub(super) fn record_applied(
    a: Apply<'_, '_>,
    target: LocalRef,
    created: bool,
    rule: String,
) -> TxResult<Applied> {
    let (tx, org, origin) = (a.tx, a.org, a.origin);
    let rule = if created { "create".to_string() } else { rule };
    tx.add_provenance(org, target, &origin.provenance(rule.clone()))?;
    let what = if created {
        ChangeWhat::Created
    } else {
        ChangeWhat::Updated
    };
    tx.record_change(org, what, Subject::Record(target))?;
    Ok(if created {
        Applied::Created { target }
    } else {
        Applied::Updated { target, rule }
    })
}

/// Lists a record for a person to place, with its candidates (replacing an older conflict
/// of the same record).
pub(super) fn quarantine(
    a: Apply<'_, '_>,
    object: ObjectType,
    id: &SalesforceId,
    rung: &str,
    candidates: Vec<u64>,
    record: &Record,
) -> TxResult<Applied> {
    let (tx, org, origin) = (a.tx, a.org, a.origin);
    if let Some(old) = tx.conflict_for(org, id)? {
        close_conflict(tx, org, old)?;
    }
    let conflict = Conflict {
        object,
        salesforce_id: Some(id.clone()),
        rung: rung.into(),
        candidates,
        record: record.clone(),
        at: origin.now.to_rfc3339(),
        local: None,
        matches: Vec::new(),
    };
    let cid = tx.add_conflict(org, &conflict)?;
    tx.set_conflict_for(org, id, cid)?;
    log_conflict(tx, org, cid, &conflict, ChangeWhat::Opened)?;
    tracing::info!(org = %org, id = %id, rung, conflict = cid, "record quarantined");
    Ok(Applied::Quarantined { conflict: cid })
}

/// Holds a local record whose create found several records in the org (`matches`, on `rung`)
/// for a person to resolve: a push conflict, replacing one already open for the record.
/// Returns the conflict id.
pub fn hold_push(
    tx: &Tx<'_>,
    org: &OrgId,
    local: LocalRef,
    object: ObjectType,
    rung: &str,
    matches: Vec<Record>,
    at: DateTime<Utc>,
) -> TxResult<u64> {
    if let Some(old) = tx.local_conflict_for(org, local)? {
        close_conflict(tx, org, old)?;
    }
    let conflict = Conflict {
        object,
        salesforce_id: None,
        rung: rung.into(),
        candidates: Vec::new(),
        record: Record::new(),
        at: at.to_rfc3339(),
        local: Some(local),
        matches,
    };
    let cid = tx.add_conflict(org, &conflict)?;
    tx.set_local_conflict_for(org, local, cid)?;
    log_conflict(tx, org, cid, &conflict, ChangeWhat::Opened)?;
    tracing::info!(org = %org, local = local.id, rung, conflict = cid, "push held: several records in the org");
    Ok(cid)
}
