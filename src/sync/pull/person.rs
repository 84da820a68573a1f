//! Contact / Lead → Contact, and lead conversions.

use crate::domain::{
    ChangeWhat, ConflictPolicy, Contact, ObjectType, SalesforceId, SalesforceKind,
};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{LocalRef, RecordKind, Subject, TxResult};

use super::fields::{id_of, str_of};
use super::ladder::{Rung, person_company, person_ladder};
use super::outcome::{Applied, Apply, Target, quarantine, record_applied};
use super::policy::{effective, rule_text, take};

/// Applies a Contact or Lead: a converted Lead re-links; the rest are matched by the ladder (or
/// the person's pick), created when they match nothing, quarantined when a rung finds several.
pub(super) fn apply_person(
    a: Apply<'_, '_>,
    object: ObjectType,
    id: &SalesforceId,
    record: &Record,
    target: Target,
) -> TxResult<Applied> {
    if object == ObjectType::Lead && record.bool_field("IsConverted") == Some(true) {
        return apply_conversion(a, id, record);
    }
    let (tx, org, origin) = (a.tx, a.org, a.origin);
    let kind = if object == ObjectType::Lead {
        SalesforceKind::Lead
    } else {
        SalesforceKind::Contact
    };
    let company = person_company(tx, org, object, record)?;
    let email = str_of(record, "Email");
    let rung = match target {
        Target::Local(local) => Rung::Found(local, "resolve:picked"),
        Target::Pushed(local) => Rung::Found(local, "push:match"),
        Target::New => Rung::Missing,
        Target::Ladder => person_ladder(tx, org, id, email.as_deref(), company)?,
    };
    let (contact, rule) = match rung {
        Rung::Ambiguous(rung, candidates) => {
            return quarantine(a, object, id, rung, candidates, record);
        }
        Rung::Found(local, rule) => match tx.contact(org, local)? {
            Some(c) => (c, rule),
            None => {
                return Ok(Applied::Ignored {
                    reason: format!("contact {local} does not exist"),
                });
            }
        },
        Rung::Missing => {
            let c = Contact {
                id: tx.next_id()?,
                org_id: org.clone(),
                company_id: None,
                first_name: None,
                last_name: String::new(),
                email: None,
                title: None,
                phone: None,
                salesforce_id: None,
                salesforce_kind: None,
                updated_at: origin.now,
            };
            (c, "create")
        }
    };
    write_person(a, contact, rule, id, kind, record, company)
}

/// A Contact's or Lead's fields on its local contact, as the contact policy lets them in.
fn write_person(
    a: Apply<'_, '_>,
    mut contact: Contact,
    rule: &str,
    id: &SalesforceId,
    kind: SalesforceKind,
    record: &Record,
    company: Option<u64>,
) -> TxResult<Applied> {
    let (tx, org, rules, origin) = (a.tx, a.org, a.rules, a.origin);
    let policy = rules.conflict_contact;
    let created = rule == "create";
    let me = LocalRef {
        kind: RecordKind::Contact,
        id: contact.id,
    };
    let (policy, pending) = effective(tx, org, me, created, policy)?;
    let before = contact.clone();
    take(&mut contact.first_name, str_of(record, "FirstName"), policy);
    let last = str_of(record, "LastName");
    match policy {
        ConflictPolicy::SalesforceWins => contact.last_name = last.unwrap_or_default(),
        ConflictPolicy::OursWins if contact.last_name.is_empty() => {
            contact.last_name = last.unwrap_or_default();
        }
        ConflictPolicy::OursWins => {}
    }
    take(&mut contact.email, str_of(record, "Email"), policy);
    take(&mut contact.title, str_of(record, "Title"), policy);
    take(&mut contact.phone, str_of(record, "Phone"), policy);
    if company.is_some() {
        take(&mut contact.company_id, company, policy);
    }
    contact.salesforce_id = Some(id.clone());
    contact.salesforce_kind = Some(kind);
    let target = LocalRef {
        kind: RecordKind::Contact,
        id: contact.id,
    };
    if !created && contact == before {
        return Ok(Applied::Unchanged { target });
    }
    contact.updated_at = origin.now;
    tx.put_contact(&contact)?;
    record_applied(a, target, created, rule_text(rule, policy, pending))
}

/// A converted Lead: the local contact linked to the Lead is re-linked to the Contact it became
/// (`ConvertedContactId`) and to the Company of `ConvertedAccountId`. When that Contact was
/// already pulled as a separate local contact, the two are folded into the Lead's (older) one.
fn apply_conversion(a: Apply<'_, '_>, lead: &SalesforceId, record: &Record) -> TxResult<Applied> {
    let (tx, org, rules, origin) = (a.tx, a.org, a.rules, a.origin);
    let Some(contact_id) = id_of(record, "ConvertedContactId") else {
        return Ok(Applied::Ignored {
            reason: "converted lead without a ConvertedContactId".into(),
        });
    };
    let company = match id_of(record, "ConvertedAccountId") {
        Some(account) => tx
            .by_salesforce_id(org, &account)?
            .filter(|l| l.kind == RecordKind::Company)
            .map(|l| l.id),
        None => None,
    };
    let from_lead = tx
        .by_salesforce_id(org, lead)?
        .filter(|l| l.kind == RecordKind::Contact);
    let from_contact = tx
        .by_salesforce_id(org, &contact_id)?
        .filter(|l| l.kind == RecordKind::Contact);
    let Some(mine) = from_lead else {
        return Ok(match from_contact {
            Some(target) => Applied::Unchanged { target },
            None => Applied::Ignored {
                reason: "converted lead was never synced".into(),
            },
        });
    };
    let Some(mut contact) = tx.contact(org, mine.id)? else {
        return Ok(Applied::Ignored {
            reason: "local contact vanished".into(),
        });
    };
    let mut rule = "convert:relink".to_string();
    if let Some(dup) = from_contact.filter(|d| d.id != mine.id) {
        if let Some(other) = tx.contact(org, dup.id)? {
            // The Contact's own pull created a second local contact: keep ours, take its
            // Salesforce values as the contact policy says, drop the duplicate.
            let policy = rules.conflict_contact;
            take(&mut contact.first_name, other.first_name, policy);
            if policy == ConflictPolicy::SalesforceWins || contact.last_name.is_empty() {
                contact.last_name = other.last_name;
            }
            take(&mut contact.email, other.email, policy);
            take(&mut contact.title, other.title, policy);
            take(&mut contact.phone, other.phone, policy);
            if other.company_id.is_some() {
                take(&mut contact.company_id, other.company_id, policy);
            }
            tx.record_change(org, ChangeWhat::Removed, Subject::Record(dup))?;
            tx.delete_contact(org, dup.id)?;
            rule = format!("convert:merged_duplicate_{}", dup.id);
        }
    }
    if company.is_some() {
        contact.company_id = company;
    }
    contact.salesforce_id = Some(contact_id.clone());
    contact.salesforce_kind = Some(SalesforceKind::Contact);
    contact.updated_at = origin.now;
    tx.put_contact(&contact)?;
    tx.add_provenance(
        org,
        mine,
        &origin.provenance(format!("{rule}:lead_{lead}_to_contact_{contact_id}")),
    )?;
    tx.record_change(org, ChangeWhat::Converted, Subject::Record(mine))?;
    Ok(Applied::Relinked {
        target: mine,
        survivor: contact_id,
    })
}
