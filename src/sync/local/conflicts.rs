//! The conflict queue as a person sees it: each quarantined record with its candidates' current
//! local values, and its resolution by picking a candidate or creating a new local record. A
//! resolution goes through the same apply rules as a pull, with the conflict as its provenance.

use crate::domain::{Company, Contact, ObjectType, OrgId, SalesforceId};
use crate::store::{Page, PageRequest, Store, StoreError};
use crate::sync::pull::{self, Applied, Conflict, Origin, Rules, Target};

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

/// How a person resolves a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Link and update this candidate.
    Candidate(u64),
    /// Create a new local record.
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
    let target = match choice {
        Resolution::Candidate(c) if conflict.candidates.contains(&c) => Target::Local(c),
        Resolution::Candidate(_) => {
            return Err(invalid("candidate", "not one of the conflict's candidates"));
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
