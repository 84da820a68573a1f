//! The conflict queue as a person sees it: each quarantined record with its candidates' current
//! local values, and its resolution. A pull conflict is resolved by picking a local candidate or
//! creating a new local record; a push conflict (a create that found several records in the
//! org) by picking one of those records, which links the local record as a match would, or by
//! creating a new record in the org, which releases the held outbox entry. A resolution goes
//! through the same apply rules as a pull, with the conflict as its provenance.

use crate::domain::{Company, Contact, ObjectType, OrgId, SalesforceId};
use crate::salesforce::RecordExt as _;
use crate::store::{LocalRef, Page, PageRequest, Store, StoreError};
use crate::sync::pull::{self, Applied, Conflict, ConflictView, Origin, Rules, Target};

use super::{LocalError, LocalResult, invalid};

/// A candidate's current local record.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidate {
    /// For an Account.
    Company(Company),
    /// For a Contact or a Lead.
    Contact(Contact),
}

/// An open conflict with its candidates' local records.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenConflict {
    /// The conflict id.
    pub id: u64,
    /// Its org.
    pub org: OrgId,
    /// The quarantined record and the candidates' ids.
    pub conflict: Conflict,
    /// The candidates' current local records.
    pub candidates: Vec<Candidate>,
}

impl From<OpenConflict> for ConflictView {
    fn from(o: OpenConflict) -> Self {
        let records = o.candidates.into_iter().map(|c| match c {
            Candidate::Company(x) => serde_json::json!(x),
            Candidate::Contact(x) => serde_json::json!(x),
        });
        Self::new(o.id, &o.org, o.conflict, records.collect())
    }
}

/// How a person resolves a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Pull: link and update this local candidate.
    Candidate(u64),
    /// Push: link the local record to this record of the org.
    Record(SalesforceId),
    /// Create a new record (local for a pull conflict, in the org for a push one).
    Create,
}

fn candidates(store: &Store, org: &OrgId, c: &Conflict) -> Result<Vec<Candidate>, StoreError> {
    let mut out = Vec::with_capacity(c.candidates.len());
    for &id in &c.candidates {
        let found = match c.object {
            ObjectType::Account => store.record::<Company>(org, id)?.map(Candidate::Company),
            ObjectType::Contact | ObjectType::Lead => {
                store.record::<Contact>(org, id)?.map(Candidate::Contact)
            }
            ObjectType::Opportunity => None,
        };
        out.extend(found);
    }
    Ok(out)
}

fn open_conflict(store: &Store, org: &OrgId, id: u64, c: Conflict) -> LocalResult<OpenConflict> {
    Ok(OpenConflict {
        id,
        org: org.clone(),
        candidates: candidates(store, org, &c)?,
        conflict: c,
    })
}

/// One org's page of conflicts; with a Salesforce id, the one conflict open for it.
fn org_page(
    store: &Store,
    org: &OrgId,
    page: PageRequest,
    salesforce_id: Option<&SalesforceId>,
) -> LocalResult<Page<(u64, Conflict)>> {
    let Some(sf) = salesforce_id else {
        return Ok(store.conflict_page::<Conflict>(org, page, |_| true)?);
    };
    let id = store
        .conflict_for(org, sf)?
        .filter(|id| page.after.is_none_or(|a| *id > a));
    let found = match id {
        Some(id) => store.conflict::<Conflict>(org, id)?.map(|c| (id, c)),
        None => None,
    };
    Ok(Page {
        items: found.into_iter().collect(),
        next: None,
    })
}

/// One page of the open conflicts of these orgs, oldest first (conflict ids grow across
/// orgs), each with its candidates' local records; optionally only the one open for a
/// Salesforce id.
pub fn page(
    store: &Store,
    orgs: &[OrgId],
    page: PageRequest,
    salesforce_id: Option<&SalesforceId>,
) -> LocalResult<Page<OpenConflict>> {
    let mut found = Vec::new();
    // An org whose page stopped early bounds the merged page: past its `next`, its conflicts
    // are unread, so the merged page must not go past it either.
    let mut bound: Option<u64> = None;
    for org in orgs {
        let p = org_page(store, org, page, salesforce_id)?;
        bound = match (bound, p.next) {
            (Some(b), Some(n)) => Some(b.min(n)),
            (b, n) => b.or(n),
        };
        found.extend(p.items.into_iter().map(|(id, c)| (id, org, c)));
    }
    found.retain(|(id, ..)| bound.is_none_or(|b| *id <= b));
    found.sort_by_key(|(id, ..)| *id);
    let mut next = bound;
    if found.len() > page.limit {
        found.truncate(page.limit);
        next = found.last().map(|(id, ..)| *id);
    }
    let items = found
        .into_iter()
        .map(|(id, org, c)| open_conflict(store, org, id, c))
        .collect::<LocalResult<_>>()?;
    Ok(Page { items, next })
}

/// One open conflict of an org.
pub fn one(store: &Store, org: &OrgId, id: u64) -> LocalResult<OpenConflict> {
    let c = store
        .conflict::<Conflict>(org, id)?
        .ok_or(LocalError::NotFound("conflict"))?;
    open_conflict(store, org, id, c)
}

/// Applies the quarantined record as the person chose, closes the conflict, and waits until
/// that is durable.
pub async fn resolve(
    store: &Store,
    rules: &Rules,
    org: &OrgId,
    id: u64,
    choice: Resolution,
) -> LocalResult<Applied> {
    let conflict: Conflict = store
        .conflict(org, id)?
        .ok_or(LocalError::NotFound("conflict"))?;
    if let Some(local) = conflict.local {
        return resolve_push(store, rules, org, id, local, &conflict, choice).await;
    }
    let target = match choice {
        Resolution::Candidate(c) if conflict.candidates.contains(&c) => Target::Local(c),
        Resolution::Candidate(_) => {
            return Err(invalid("candidate", "not one of the conflict's candidates"));
        }
        Resolution::Record(_) => {
            return Err(invalid("salesforce_id", "only a push conflict takes one"));
        }
        Resolution::Create => Target::New,
    };
    let origin = Origin::new(format!("conflict:{id}"));
    let applied = pull::commit_record(
        store,
        org,
        rules,
        conflict.object,
        &conflict.record,
        &origin,
        target,
        None,
    )?;
    store.make_durable().await?;
    Ok(applied)
}

/// Resolves a push conflict: the picked record of the org is applied to the held local record
/// as a match would be (linked, its values taken as the conflict policy says) and the held entry
/// is done; or, to create, the entry is released to create a new record without a look-up.
/// Either way the conflict closes in the same transaction.
async fn resolve_push(
    store: &Store,
    rules: &Rules,
    org: &OrgId,
    id: u64,
    local: LocalRef,
    conflict: &Conflict,
    choice: Resolution,
) -> LocalResult<Applied> {
    let picked = match &choice {
        Resolution::Record(sf) => Some(
            conflict
                .matches
                .iter()
                .find(|r| r.sf_id().as_ref() == Some(sf))
                .ok_or_else(|| invalid("salesforce_id", "not one of the conflict's matches"))?,
        ),
        Resolution::Create => None,
        Resolution::Candidate(_) => {
            return Err(invalid(
                "candidate",
                "a push conflict is resolved by salesforce_id",
            ));
        }
    };
    let origin = Origin::new(format!("conflict:{id}"));
    let applied = store.atomically(|tx| {
        pull::close_conflict(tx, org, id)?;
        tx.clear_local_conflict_for(org, local)?;
        let Some(record) = picked else {
            tx.release_held_entry(org, local, true, origin.now)?;
            return Ok(Applied::Unchanged { target: local });
        };
        let target = Target::Pushed(local.id);
        let applied = pull::apply_record(tx, org, rules, conflict.object, record, &origin, target)?;
        if let Some(entry) = tx.outbox_entry_for(org, local)? {
            tx.remove_outbox_entry(&entry)?;
        }
        Ok(applied)
    })?;
    store.make_durable().await?;
    Ok(applied)
}
