//! The match ladder: which local record a pulled one is, rung by rung (Salesforce id, then
//! domain and name for companies, email and company for people). Rungs after the first only
//! consider local records not yet linked to Salesforce.

use crate::domain::{Company, ObjectType, OrgId, SalesforceId, normalize};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{RecordKind, Tx, TxResult};

use super::fields::{id_of, str_of};

/// Unlinked local ids among `ids`, read through `get`.
fn unlinked<T>(
    ids: Vec<u64>,
    get: impl Fn(u64) -> TxResult<Option<T>>,
    linked: impl Fn(&T) -> bool,
) -> TxResult<Vec<u64>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(r) = get(id)? {
            if !linked(&r) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

pub(super) enum Rung {
    Found(u64, &'static str),
    Ambiguous(&'static str, Vec<u64>),
    Missing,
}

pub(super) fn company_ladder(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    website: Option<&str>,
    name: Option<&str>,
) -> TxResult<Rung> {
    if let Some(local) = tx.by_salesforce_id(org, id)? {
        if local.kind == RecordKind::Company {
            return Ok(Rung::Found(local.id, "match:salesforce_id"));
        }
    }
    let get = |i| tx.company(org, i);
    let linked = |c: &Company| c.salesforce_id.is_some();
    if let Some(w) = website {
        let c = unlinked(tx.companies_by_domain(org, w)?, get, linked)?;
        match c.len() {
            0 => {}
            1 => return Ok(Rung::Found(c[0], "match:domain")),
            _ => return Ok(Rung::Ambiguous("domain", c)),
        }
    }
    if let Some(n) = name {
        let c = unlinked(tx.companies_by_name(org, n)?, get, linked)?;
        match c.len() {
            0 => {}
            1 => return Ok(Rung::Found(c[0], "match:name")),
            _ => return Ok(Rung::Ambiguous("name", c)),
        }
    }
    Ok(Rung::Missing)
}

/// The local Company of a Contact or Lead: by `AccountId` (Contacts), else a unique Company
/// with the domain of the Lead's `Website` or of the email, else (Leads) a unique Company with
/// the Lead's normalized `Company` name.
pub(super) fn person_company(
    tx: &Tx<'_>,
    org: &OrgId,
    object: ObjectType,
    record: &Record,
) -> TxResult<Option<u64>> {
    if let Some(account) = id_of(record, "AccountId") {
        if let Some(local) = tx.by_salesforce_id(org, &account)? {
            if local.kind == RecordKind::Company {
                return Ok(Some(local.id));
            }
        }
        return Ok(None);
    }
    let mut domains = Vec::new();
    if object == ObjectType::Lead {
        domains.extend(str_of(record, "Website"));
    }
    domains.extend(record.str_field("Email").and_then(normalize::email_domain));
    for d in domains {
        let c = tx.companies_by_domain(org, &d)?;
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
    }
    if object == ObjectType::Lead {
        if let Some(name) = str_of(record, "Company") {
            let c = tx.companies_by_name(org, &name)?;
            if c.len() == 1 {
                return Ok(Some(c[0]));
            }
        }
    }
    Ok(None)
}

pub(super) fn person_ladder(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    email: Option<&str>,
    company: Option<u64>,
) -> TxResult<Rung> {
    if let Some(local) = tx.by_salesforce_id(org, id)? {
        if local.kind == RecordKind::Contact {
            return Ok(Rung::Found(local.id, "match:salesforce_id"));
        }
    }
    let Some(email) = email else {
        return Ok(Rung::Missing);
    };
    let mut candidates = Vec::new();
    for local in tx.contacts_by_email(org, email)? {
        if let Some(c) = tx.contact(org, local)? {
            let same_company = match (company, c.company_id) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            };
            if c.salesforce_id.is_none() && same_company {
                candidates.push(local);
            }
        }
    }
    Ok(match candidates.len() {
        0 => Rung::Missing,
        1 => Rung::Found(candidates[0], "match:email_company"),
        _ => Rung::Ambiguous("email", candidates),
    })
}
