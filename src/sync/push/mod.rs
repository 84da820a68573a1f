//! Push: what a local record becomes in Salesforce. Pure functions, no I/O: the
//! outbox worker resolves the linked records and sends what these build.
//!
//! - Company → Account, after a look for the Account in the org ([`matching`]).
//! - Contact → Contact (with `AccountId`) or Lead (with `Company`), as the entry or the config says;
//!   once linked, updates go to whichever object it is linked to.
//! - Activity `email_sent` → Task (`TaskSubtype` Email, `Status` Completed); `meeting_booked` →
//!   Event; `WhoId`/`WhatId` from the linked Contact/Lead and Account (`WhatId` is left out when
//!   the `WhoId` is a Lead, which Salesforce refuses). Or, as `[activities]` says, a record of
//!   a custom object with the activity's parts in the fields it names.
//! - CompanyProduct with status OPPORTUNITY and an `opportunity_size` → Opportunity on the
//!   Company's Account, the stage mapped to `StageName` through the stage table; a linked one
//!   follows CUSTOMER/LOST to the table's won and lost stages. Its `Name` is set on create only.

mod activity;
pub mod matching;

pub use activity::activity;

use std::borrow::Cow;

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

use crate::domain::{
    Company, CompanyProduct, Contact, OwnershipStatus, PushAs, SalesforceId, SalesforceKind,
    StageTable,
};
use crate::salesforce::Record;

/// A Salesforce write for one local record.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The object's API name (`Contact`, `Task`, a custom activity object, …).
    pub sobject: Cow<'static, str>,
    /// The record to update; `None` creates one.
    pub existing: Option<SalesforceId>,
    /// The fields to write (no `Id`, no marker).
    pub fields: Record,
    /// For people: the normalized email a record already in Salesforce would match on.
    pub match_email: Option<String>,
    /// For Contacts: the Account the match must be on.
    pub match_account: Option<SalesforceId>,
    /// For a new Account: what it is looked for by in the org before it is created.
    pub match_company: Option<matching::CompanyKeys>,
}

/// What to do with a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send this write.
    Send(Payload),
    /// Nothing to send, and why (the entry is done).
    Nothing(&'static str),
}

/// Everything Salesforce needs that lives in other local records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links<'a> {
    /// The record's Company.
    pub company: Option<&'a Company>,
    /// The activity's Contact.
    pub contact: Option<&'a Contact>,
}

/// The marker written on every record sfsync creates, so a retried create can find the record
/// an unanswered attempt made: `sfsync:{kind}:{local id}`.
pub fn marker(kind: &str, id: u64) -> String {
    format!("sfsync:{kind}:{id}")
}

pub(crate) fn put(fields: &mut Record, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        fields.insert(name.into(), v);
    }
}

pub(crate) fn text(v: Option<&String>) -> Option<Value> {
    v.filter(|s| !s.trim().is_empty()).map(|s| json!(s))
}

pub(crate) fn account_of(company: Option<&Company>) -> Option<SalesforceId> {
    company.and_then(|c| c.salesforce_id.clone())
}

/// Company → Account.
pub fn company(c: &Company) -> Plan {
    let mut f = Record::new();
    f.insert("Name".into(), json!(c.name));
    put(&mut f, "Website", text(c.website.as_ref()));
    put(&mut f, "Industry", text(c.industry.as_ref()));
    put(&mut f, "AnnualRevenue", c.annual_revenue.map(|v| json!(v)));
    put(&mut f, "NumberOfEmployees", c.employees.map(|v| json!(v)));
    Plan::Send(Payload {
        sobject: Cow::Borrowed("Account"),
        existing: c.salesforce_id.clone(),
        fields: f,
        match_email: None,
        match_account: None,
        match_company: Some(matching::CompanyKeys::of(c)),
    })
}

/// Which object a linked contact lives in: its recorded kind, else its id's key prefix.
pub fn linked_kind(c: &Contact) -> Option<SalesforceKind> {
    let id = c.salesforce_id.as_ref()?;
    Some(c.salesforce_kind.unwrap_or(if id.key_prefix() == "00Q" {
        SalesforceKind::Lead
    } else {
        SalesforceKind::Contact
    }))
}

/// Contact → Contact or Lead.
pub fn contact(c: &Contact, links: Links<'_>, push_as: PushAs) -> Plan {
    let kind = linked_kind(c).unwrap_or(match push_as {
        PushAs::Contact => SalesforceKind::Contact,
        PushAs::Lead => SalesforceKind::Lead,
    });
    let mut f = Record::new();
    f.insert("LastName".into(), json!(c.last_name));
    put(&mut f, "FirstName", text(c.first_name.as_ref()));
    put(&mut f, "Email", text(c.email.as_ref()));
    put(&mut f, "Title", text(c.title.as_ref()));
    put(&mut f, "Phone", text(c.phone.as_ref()));
    let account = account_of(links.company);
    let sobject = match kind {
        SalesforceKind::Contact => {
            put(&mut f, "AccountId", account.as_ref().map(|a| json!(a)));
            "Contact"
        }
        SalesforceKind::Lead => {
            put(&mut f, "Company", links.company.map(|co| json!(co.name)));
            "Lead"
        }
    };
    Plan::Send(Payload {
        sobject: Cow::Borrowed(sobject),
        existing: c.salesforce_id.clone(),
        fields: f,
        match_email: c.email.as_deref().and_then(crate::domain::normalize::email),
        match_account: account.filter(|_| kind == SalesforceKind::Contact),
        match_company: None,
    })
}

/// The standard `StageName` for a local funnel stage (case and punctuation ignored), defaulting
/// to `Prospecting`. A stage already spelled as a standard `StageName` maps to itself.
pub fn stage_name(stage: Option<&str>) -> &'static str {
    let Some(stage) = stage else {
        return "Prospecting";
    };
    if let Some(s) = crate::domain::standard_stage_name(stage) {
        return s;
    }
    let key: String = stage
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    match key.as_str() {
        "lead" | "new" | "prospect" => "Prospecting",
        "qualified" | "qualifying" | "discovery" => "Qualification",
        "needsanalysis" | "demo" | "evaluation" => "Needs Analysis",
        "valueproposition" => "Value Proposition",
        "decisionmakers" => "Id. Decision Makers",
        "proposal" | "quote" | "pricequote" => "Proposal/Price Quote",
        "negotiation" | "contract" => "Negotiation/Review",
        "won" | "closedwon" => "Closed Won",
        "lost" | "closedlost" => "Closed Lost",
        _ => "Prospecting",
    }
}

/// CompanyProduct → Opportunity on the Company's Account. The `StageName` comes from the stage
/// table ([`StageTable::push_stage_name`]: the org's own name while the product's stage and status
/// are unchanged, else the table's row), else from the standard names ([`stage_name`]). The
/// `Name` is written on create only, so the Opportunity keeps the name it was given.
pub fn company_product(
    p: &CompanyProduct,
    links: Links<'_>,
    stages: &StageTable,
    today: NaiveDate,
) -> Plan {
    let linked = p.salesforce_opportunity_id.is_some();
    let fallback = match p.status {
        OwnershipStatus::Opportunity => stage_name(p.stage.as_deref()),
        OwnershipStatus::Customer if linked => "Closed Won",
        OwnershipStatus::Lost if linked => "Closed Lost",
        _ => return Plan::Nothing("not an opportunity"),
    };
    if !linked && p.opportunity_size.is_none() {
        return Plan::Nothing("an opportunity needs an opportunity_size");
    }
    let Some(account) = account_of(links.company) else {
        return Plan::Nothing("the company has no Salesforce Account");
    };
    let stage = stages
        .push_stage_name(p.status, p.stage.as_deref(), p.synced_stage.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    let mut f = Record::new();
    if !linked {
        let company_name = links.company.map_or("", |c| c.name.as_str());
        f.insert(
            "Name".into(),
            json!(format!("{company_name} - {}", p.product)),
        );
    }
    f.insert("StageName".into(), json!(stage));
    f.insert(
        "CloseDate".into(),
        json!(
            p.close_date
                .unwrap_or(today + Duration::days(30))
                .to_string()
        ),
    );
    f.insert("AccountId".into(), json!(account));
    put(&mut f, "Amount", p.opportunity_size.map(|v| json!(v)));
    Plan::Send(Payload {
        sobject: Cow::Borrowed("Opportunity"),
        existing: p.salesforce_opportunity_id.clone(),
        fields: f,
        match_email: None,
        match_account: None,
        match_company: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActivityTarget;
    use crate::domain::{Activity, ActivityKind, OrgId};
    use chrono::{TimeZone as _, Utc};

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    fn acme(linked: bool) -> Company {
        Company {
            id: 1,
            org_id: org(),
            name: "Acme".into(),
            domain: None,
            website: Some("https://acme.example".into()),
            industry: None,
            annual_revenue: None,
            employees: None,
            salesforce_id: linked.then(|| SalesforceId::mint("001", "5g", 7)),
            updated_at: Utc::now(),
        }
    }

    fn ada() -> Contact {
        Contact {
            id: 2,
            org_id: org(),
            company_id: Some(1),
            first_name: Some("Ada".into()),
            last_name: "Lovelace".into(),
            email: Some("Ada@Example.com ".into()),
            title: None,
            phone: None,
            salesforce_id: None,
            salesforce_kind: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_new_contact_goes_to_its_companys_account_and_a_lead_carries_the_company_name() {
        let co = acme(true);
        let links = Links {
            company: Some(&co),
            contact: None,
        };
        let Plan::Send(p) = contact(&ada(), links, PushAs::Contact) else {
            panic!("no payload")
        };
        assert_eq!(p.sobject, "Contact");
        assert_eq!(p.fields["AccountId"], json!(co.salesforce_id));
        assert_eq!(p.match_email.as_deref(), Some("ada@example.com"));
        let Plan::Send(l) = contact(&ada(), links, PushAs::Lead) else {
            panic!("no payload")
        };
        assert_eq!(l.sobject, "Lead");
        assert_eq!(l.fields["Company"], json!("Acme"));
        assert!(!l.fields.contains_key("AccountId"));
    }

    #[test]
    fn an_email_is_a_completed_task_and_a_meeting_an_event() {
        let co = acme(true);
        let mut who = ada();
        who.salesforce_id = Some(SalesforceId::mint("00Q", "5g", 9));
        let at = Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("time");
        let mut a = Activity {
            id: 3,
            org_id: org(),
            kind: ActivityKind::EmailSent,
            contact_id: Some(2),
            company_id: Some(1),
            subject: "Hello".into(),
            description: None,
            occurred_at: at,
            starts_at: None,
            ends_at: None,
            salesforce_id: None,
        };
        let links = Links {
            company: Some(&co),
            contact: Some(&who),
        };
        let Plan::Send(t) = activity(&a, links, &ActivityTarget::Standard) else {
            panic!("no payload")
        };
        assert_eq!(t.sobject, "Task");
        assert_eq!(t.fields["TaskSubtype"], json!("Email"));
        assert_eq!(t.fields["Status"], json!("Completed"));
        assert_eq!(t.fields["ActivityDate"], json!("2024-05-06"));
        assert!(!t.fields.contains_key("WhatId"), "no WhatId with a Lead");
        a.kind = ActivityKind::MeetingBooked;
        let Plan::Send(e) = activity(&a, links, &ActivityTarget::Standard) else {
            panic!("no payload")
        };
        assert_eq!(e.sobject, "Event");
        assert_eq!(e.fields["EndDateTime"], json!("2024-05-06T07:38:09.000Z"));
    }

    #[test]
    fn stages_map_to_standard_stage_names() {
        assert_eq!(stage_name(Some("negotiation")), "Negotiation/Review");
        assert_eq!(stage_name(Some("needs analysis")), "Needs Analysis");
        assert_eq!(
            stage_name(Some("Proposal/Price Quote")),
            "Proposal/Price Quote"
        );
        assert_eq!(stage_name(None), "Prospecting");
    }

    #[test]
    fn only_sized_opportunities_on_a_linked_account_are_pushed() {
        let co = acme(true);
        let links = Links {
            company: Some(&co),
            contact: None,
        };
        let today = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
        let mut p = CompanyProduct {
            id: 4,
            org_id: org(),
            company_id: 1,
            product: "Widgets".into(),
            status: OwnershipStatus::Prospect,
            opportunity_size: Some(5000.0),
            stage: Some("proposal".into()),
            close_date: None,
            salesforce_opportunity_id: None,
            synced_stage: None,
            updated_at: Utc::now(),
        };
        let stages = StageTable::standard();
        assert!(matches!(
            company_product(&p, links, &stages, today),
            Plan::Nothing(_)
        ));
        p.status = OwnershipStatus::Opportunity;
        let Plan::Send(o) = company_product(&p, links, &stages, today) else {
            panic!("no payload")
        };
        assert_eq!(o.fields["StageName"], json!("Proposal/Price Quote"));
        assert_eq!(o.fields["CloseDate"], json!("2024-01-31"));
        assert_eq!(o.fields["Amount"], json!(5000.0));
        assert_eq!(o.fields["Name"], json!("Acme - Widgets"));
        p.salesforce_opportunity_id = Some(SalesforceId::mint("006", "5g", 4));
        let Plan::Send(o) = company_product(&p, links, &stages, today) else {
            panic!("no payload")
        };
        assert!(
            !o.fields.contains_key("Name"),
            "the name is set on create only"
        );
    }
}
