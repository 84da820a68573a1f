//! A record's history, and an org's latest changes: each change applied, from which side
//! (`salesforce` or `local`), which event (a notification, the sweep, an import, a conflict resolution, an
//! API request, an outbox entry), which rule, and which conflict policy when one decided.

use crate::domain::{Activity, Company, CompanyProduct, Contact, OrgId};
use crate::store::{LocalRef, Page, PageRequest, Provenance, RecordKind, Store, StoreError};

use super::{LocalError, LocalResult};

/// One applied change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `salesforce` or `local`.
    pub side: String,
    /// What caused it: `notification`, `sweep`, `import:{id}`, `conflict:{id}`, `api`,
    /// `outbox:{id}`.
    pub event: String,
    /// The rule applied (`create`, `match:salesforce_id`, `api:update`, …), without the policy.
    pub rule: String,
    /// The conflict policy that decided (`salesforce_wins`, `ours_wins`,
    /// `local_change_pending`), when one did.
    pub policy: Option<String>,
    /// When, in RFC 3339.
    pub at: String,
}

impl From<Provenance> for Change {
    fn from(p: Provenance) -> Self {
        // Pulled changes record their rule as `<rule>;policy:<policy>`.
        let (rule, policy) = match p.rule.split_once(";policy:") {
            Some((rule, policy)) => (rule.to_string(), Some(policy.to_string())),
            None => (p.rule, None),
        };
        Self {
            side: p.side,
            event: p.event,
            rule,
            policy,
            at: p.at,
        }
    }
}

fn exists(store: &Store, org: &OrgId, target: LocalRef) -> Result<bool, StoreError> {
    let id = target.id;
    Ok(match target.kind {
        RecordKind::Company => store.record::<Company>(org, id)?.is_some(),
        RecordKind::Contact => store.record::<Contact>(org, id)?.is_some(),
        RecordKind::CompanyProduct => store.record::<CompanyProduct>(org, id)?.is_some(),
        RecordKind::Activity => store.record::<Activity>(org, id)?.is_some(),
    })
}

/// One page of a record's history. A record that is gone keeps its history (a contact removed
/// as a lead conversion's duplicate); a record with neither is not found.
pub fn page(
    store: &Store,
    org: &OrgId,
    target: LocalRef,
    page: PageRequest,
) -> LocalResult<Page<Change>> {
    let found = store.provenance_page(org, target, page)?;
    if found.items.is_empty() && page.after.is_none() && !exists(store, org, target)? {
        return Err(LocalError::NotFound("record"));
    }
    Ok(Page {
        items: found.items.into_iter().map(Change::from).collect(),
        next: found.next,
    })
}

/// The org's latest applied changes across all its records, newest first, each with the record
/// it concerns.
pub fn latest(store: &Store, org: &OrgId, limit: usize) -> LocalResult<Vec<(LocalRef, Change)>> {
    Ok(store
        .latest_provenance(org, limit)?
        .into_iter()
        .map(|(target, p)| (target, Change::from(p)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_rule_is_told_apart_from_its_policy() {
        let change = Change::from(Provenance {
            side: "salesforce".into(),
            event: "notification".into(),
            rule: "match:domain;policy:ours_wins".into(),
            at: "2024-05-01T10:00:00+00:00".into(),
        });

        assert_eq!(change.rule, "match:domain");
        assert_eq!(change.policy.as_deref(), Some("ours_wins"));
    }
}
