//! Companies written by the application: create and update, each with its outbox entry.
//!
//! The domain is derived from the website unless given; a name must not be empty; revenue and
//! employees are never negative.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    LocalError, LocalResult, Saved, TxStep, enqueue, invalid, local_ref, non_empty, non_negative,
    refuse, write,
};
use crate::domain::{AppUser, ChangeWhat, Company, OrgId, normalize};
use crate::store::{RecordKind, Store, Subject, Tx};

/// A new company.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    /// Name (required, not empty); the Account's `Name`.
    #[schema(example = "Acme Energy")]
    pub name: String,
    /// Bare domain, matched against Accounts' websites (default: from `website`).
    #[schema(example = "acme.example")]
    pub domain: Option<String>,
    /// Website as the application shows it; the Account's `Website`.
    #[schema(example = "https://www.acme.example")]
    pub website: Option<String>,
    /// The Account's `Industry` picklist value.
    #[schema(example = "Energy")]
    pub industry: Option<String>,
    /// The Account's `AnnualRevenue` (at least 0).
    pub annual_revenue: Option<f64>,
    /// The Account's `NumberOfEmployees` (at least 0).
    pub employees: Option<i64>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

/// The fields of a company to change; an absent field keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyChanges {
    /// Name.
    pub name: Option<String>,
    /// Bare domain.
    pub domain: Option<String>,
    /// Website (also sets the domain when it has one).
    pub website: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    /// Annual revenue.
    pub annual_revenue: Option<f64>,
    /// Employees.
    pub employees: Option<i64>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

fn check(c: &Company) -> LocalResult<()> {
    non_empty("name", &c.name)?;
    non_negative("annual_revenue", c.annual_revenue)?;
    if c.employees.is_some_and(|n| n < 0) {
        return Err(invalid("employees", "must be at least 0"));
    }
    Ok(())
}

fn build(org: &OrgId, cmd: NewCompany, now: DateTime<Utc>) -> LocalResult<Company> {
    let c = Company {
        id: 0,
        org_id: org.clone(),
        name: cmd.name.trim().to_string(),
        domain: cmd
            .domain
            .as_deref()
            .or(cmd.website.as_deref())
            .and_then(normalize::domain),
        website: cmd.website,
        industry: cmd.industry,
        annual_revenue: cmd.annual_revenue,
        employees: cmd.employees,
        salesforce_id: None,
        updated_at: now,
    };
    check(&c)?;
    Ok(c)
}

fn insert(tx: &Tx<'_>, company: &Company, user: Option<&AppUser>) -> TxStep<Saved<Company>> {
    let c = Company {
        id: tx.next_id()?,
        ..company.clone()
    };
    tx.put_company(&c)?;
    let target = local_ref(RecordKind::Company, c.id);
    tx.record_change(&c.org_id, ChangeWhat::Created, Subject::Record(target))?;
    let outbox_id = enqueue(
        tx,
        &c.org_id,
        target,
        None,
        user,
        "api:create",
        c.updated_at,
    )?;
    Ok(Saved {
        record: c,
        outbox_id,
    })
}

/// Stores a new company and the entry that will push it as an Account.
pub async fn create(store: &Store, org: &OrgId, cmd: NewCompany) -> LocalResult<Saved<Company>> {
    let user = cmd.user.clone();
    let company = build(org, cmd, Utc::now())?;
    write(store, |tx| insert(tx, &company, user.as_ref())).await
}

fn apply(c: &mut Company, cmd: &CompanyChanges, now: DateTime<Utc>) {
    if let Some(v) = &cmd.name {
        c.name = v.trim().to_string();
    }
    if let Some(v) = &cmd.website {
        c.website = Some(v.clone());
        c.domain = normalize::domain(v).or(c.domain.take());
    }
    if let Some(v) = &cmd.domain {
        c.domain = normalize::domain(v);
    }
    if let Some(v) = &cmd.industry {
        c.industry = Some(v.clone());
    }
    if cmd.annual_revenue.is_some() {
        c.annual_revenue = cmd.annual_revenue;
    }
    if cmd.employees.is_some() {
        c.employees = cmd.employees;
    }
    c.updated_at = now;
}

/// Changes a company and enqueues its push (sharing a waiting entry).
pub async fn update(
    store: &Store,
    org: &OrgId,
    id: u64,
    cmd: CompanyChanges,
) -> LocalResult<Saved<Company>> {
    let now = Utc::now();
    write(store, |tx| {
        let Some(mut c) = tx.company(org, id)? else {
            return refuse(LocalError::NotFound("company"));
        };
        apply(&mut c, &cmd, now);
        check(&c).or_else(refuse)?;
        tx.put_company(&c)?;
        let target = local_ref(RecordKind::Company, c.id);
        tx.record_change(org, ChangeWhat::Updated, Subject::Record(target))?;
        let outbox_id = enqueue(tx, org, target, None, cmd.user.as_ref(), "api:update", now)?;
        Ok(Saved {
            record: c,
            outbox_id,
        })
    })
    .await
}
