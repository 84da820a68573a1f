//! Account → Company.

use crate::domain::{Company, ConflictPolicy, ObjectType, OrgId, SalesforceId, normalize};
use crate::salesforce::Record;
use crate::store::{LocalRef, RecordKind, Tx, TxResult};

use super::fields::{f64_of, i64_of, str_of};
use super::ladder::{Rung, company_ladder};
use super::outcome::{Applied, Apply, Origin, Target, quarantine, record_applied};
use super::policy::{effective, rule_text, take};

/// Applies an Account: matched by the ladder (or the person's pick), created when it matches
/// nothing, quarantined when a rung finds several.
pub(super) fn apply_account(
    a: Apply<'_, '_>,
    id: &SalesforceId,
    record: &Record,
    target: Target,
) -> TxResult<Applied> {
    let (tx, org, rules, origin) = (a.tx, a.org, a.rules, a.origin);
    let name = str_of(record, "Name");
    let website = str_of(record, "Website");
    let rung = match target {
        Target::Local(local) => Rung::Found(local, "resolve:picked"),
        Target::Pushed(local) => Rung::Found(local, "push:match"),
        Target::New => Rung::Missing,
        Target::Ladder => company_ladder(tx, org, id, website.as_deref(), name.as_deref())?,
    };
    let (mut company, rule) = match rung {
        Rung::Ambiguous(rung, candidates) => {
            let object = ObjectType::Account;
            return quarantine(a, object, id, rung, candidates, record);
        }
        Rung::Found(local, rule) => match tx.company(org, local)? {
            Some(c) => (c, rule),
            None => {
                return Ok(Applied::Ignored {
                    reason: format!("company {local} does not exist"),
                });
            }
        },
        Rung::Missing => (new_company(tx, org, name.clone(), origin)?, "create"),
    };
    let created = rule == "create";
    let before = company.clone();
    let me = LocalRef {
        kind: RecordKind::Company,
        id: company.id,
    };
    let (policy, pending) = match target {
        Target::Pushed(_) => (rules.conflict_company, false),
        _ => effective(tx, org, me, created, rules.conflict_company)?,
    };
    take_account(&mut company, record, policy);
    company.salesforce_id = Some(id.clone());
    if !created && company == before {
        return Ok(Applied::Unchanged { target: me });
    }
    company.updated_at = origin.now;
    tx.put_company(&company)?;
    let rule = rule_text(rule, policy, pending);
    record_applied(a, me, created, rule)
}

/// A new local company for an Account that matched none.
fn new_company(
    tx: &Tx<'_>,
    org: &OrgId,
    name: Option<String>,
    origin: &Origin,
) -> TxResult<Company> {
    let id = tx.next_id()?;
    Ok(Company::named(
        id,
        org.clone(),
        name.unwrap_or_default(),
        origin.now,
    ))
}

/// The Account's fields, as `policy` lets them in.
fn take_account(company: &mut Company, record: &Record, policy: ConflictPolicy) {
    let name = str_of(record, "Name");
    match policy {
        ConflictPolicy::SalesforceWins => {
            company.name = name.unwrap_or(std::mem::take(&mut company.name));
        }
        ConflictPolicy::OursWins if company.name.is_empty() => {
            company.name = name.unwrap_or_default();
        }
        ConflictPolicy::OursWins => {}
    }
    take(&mut company.website, str_of(record, "Website"), policy);
    company.domain = company.website.as_deref().and_then(normalize::domain);
    take(&mut company.industry, str_of(record, "Industry"), policy);
    let revenue = f64_of(record, "AnnualRevenue");
    take(&mut company.annual_revenue, revenue, policy);
    let employees = i64_of(record, "NumberOfEmployees");
    take(&mut company.employees, employees, policy);
}
