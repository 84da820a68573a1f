//! The conflict queue as a person sees it: each quarantined record with its candidates' current
//! local values, and its resolution by picking a candidate or creating a new local record. A
//! resolution goes through the same apply rules as a pull, with the conflict as its provenance.

use crate::domain::{Company, Contact, ObjectType, OrgId};
use crate::store::{Store, StoreError};
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
    Ok(match c.object {
        ObjectType::Account => store
            .companies(org)?
            .into_iter()
            .filter(|x| c.candidates.contains(&x.id))
            .map(Candidate::Company)
            .collect(),
        ObjectType::Contact | ObjectType::Lead => store
            .contacts(org)?
            .into_iter()
            .filter(|x| c.candidates.contains(&x.id))
            .map(Candidate::Contact)
            .collect(),
        ObjectType::Opportunity => Vec::new(),
    })
}

/// Every open conflict of these orgs, org by org, oldest first.
pub fn list(store: &Store, orgs: &[OrgId]) -> LocalResult<Vec<OpenConflict>> {
    let mut out = Vec::new();
    for org in orgs {
        for (id, conflict) in store.conflicts::<Conflict>(org)? {
            out.push(OpenConflict {
                id,
                org: org.clone(),
                candidates: candidates(store, org, &conflict)?,
                conflict,
            });
        }
    }
    Ok(out)
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
