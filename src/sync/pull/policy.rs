//! The conflict policy: which side's values a pulled record's fields take (`[sync]`), and the
//! rule text its provenance records.

use crate::config::SyncConfig;
use crate::domain::{ConflictPolicy, OrgId, StageTable};
use crate::store::{LocalRef, RecordKind, Tx, TxResult};

/// The documented pull rules, from `[sync]`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Contacts and Leads.
    pub conflict_contact: ConflictPolicy,
    /// Companies.
    pub conflict_company: ConflictPolicy,
    /// `StageName` → status and internal stage.
    pub stages: StageTable,
}

impl Rules {
    /// The rules of a `[sync]` section.
    pub fn from_config(sync: &SyncConfig) -> Self {
        Self {
            conflict_contact: sync.conflict_contact,
            conflict_company: sync.conflict_company,
            stages: StageTable::with_overrides(&sync.stages),
        }
    }
}

/// Whether a local record has a change Salesforce has not seen yet (a live outbox entry). Its
/// fields are then kept as `ours_wins` would: the outbox is about to send them, and Salesforce's
/// older values must not overwrite the change before it is sent.
pub(super) fn local_change_pending(
    tx: &Tx<'_>,
    org: &OrgId,
    kind: RecordKind,
    id: u64,
) -> TxResult<bool> {
    Ok(tx.outbox_entry_for(org, LocalRef { kind, id })?.is_some())
}

pub(super) fn rule_text(rule: &str, policy: ConflictPolicy, pending: bool) -> String {
    if pending {
        format!("{rule};policy:local_change_pending")
    } else {
        format!("{rule};{}", policy_rule(policy))
    }
}

pub(super) fn policy_rule(policy: ConflictPolicy) -> &'static str {
    match policy {
        ConflictPolicy::SalesforceWins => "policy:salesforce_wins",
        ConflictPolicy::OursWins => "policy:ours_wins",
    }
}

/// The policy a pulled record's fields are applied with, and whether a local change is
/// pending: a new local record takes everything; one with an unsent local change keeps its
/// fields (`ours_wins`); any other follows the configured `policy`.
pub(super) fn effective(
    tx: &Tx<'_>,
    org: &OrgId,
    local: LocalRef,
    created: bool,
    policy: ConflictPolicy,
) -> TxResult<(ConflictPolicy, bool)> {
    if created {
        return Ok((ConflictPolicy::SalesforceWins, false));
    }
    if local_change_pending(tx, org, local.kind, local.id)? {
        return Ok((ConflictPolicy::OursWins, true));
    }
    Ok((policy, false))
}

/// Sets `slot` to `value` when Salesforce wins, or fills it when it is empty.
pub(super) fn take<T>(slot: &mut Option<T>, value: Option<T>, policy: ConflictPolicy) {
    match policy {
        ConflictPolicy::SalesforceWins => *slot = value,
        ConflictPolicy::OursWins => {
            if slot.is_none() {
                *slot = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_wins_fills_only_empty_fields() {
        let mut kept = Some("ours".to_string());
        take(&mut kept, Some("theirs".into()), ConflictPolicy::OursWins);
        assert_eq!(kept.as_deref(), Some("ours"));
        let mut empty = None;
        take(
            &mut empty,
            Some("theirs".to_string()),
            ConflictPolicy::OursWins,
        );
        assert_eq!(empty.as_deref(), Some("theirs"));
        take(&mut kept, None, ConflictPolicy::SalesforceWins);
        assert_eq!(kept, None);
    }
}
