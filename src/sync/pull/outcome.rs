//! What applying a pulled record did ([`Applied`]), where the change came from ([`Origin`]),
//! and the records a person must place ([`Conflict`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ObjectType, OrgId, SalesforceId};
use crate::salesforce::Record;
use crate::store::{LocalRef, Provenance, Tx, TxResult};

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
        }
    }
}

/// A quarantined record: the Salesforce record and the local candidates a person picks from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The object type.
    pub object: ObjectType,
    /// The Salesforce record id.
    pub salesforce_id: SalesforceId,
    /// The rung that found several candidates (`domain`, `name`, `email`), or `no_company`.
    pub rung: String,
    /// Local ids of the candidates (Companies for Accounts, Contacts for Contacts and Leads).
    pub candidates: Vec<u64>,
    /// The record as pulled.
    pub record: Record,
    /// When it was quarantined (RFC 3339).
    pub at: String,
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
        tx.remove_conflict(org, old)?;
    }
    let conflict = Conflict {
        object,
        salesforce_id: id.clone(),
        rung: rung.into(),
        candidates,
        record: record.clone(),
        at: origin.now.to_rfc3339(),
    };
    let cid = tx.add_conflict(org, &conflict)?;
    tx.set_conflict_for(org, id, cid)?;
    tracing::info!(org = %org, id = %id, rung, conflict = cid, "record quarantined");
    Ok(Applied::Quarantined { conflict: cid })
}
