//! Push: what a local record becomes in Salesforce. Pure functions, no I/O: the
//! outbox worker resolves the linked records and sends what these build.
//!
//! - Company → Account.
//! - Contact → Contact (with `AccountId`) or Lead (with `Company`), as the entry or the config says;
//!   once linked, updates go to whichever object it is linked to.
//! - Activity `email_sent` → Task (`TaskSubtype` Email, `Status` Completed); `meeting_booked` →
//!   Event; `WhoId`/`WhatId` from the linked Contact/Lead and Account (`WhatId` is left out when
//!   the `WhoId` is a Lead, which Salesforce refuses).
//! - CompanyProduct with status OPPORTUNITY and an `opportunity_size` → Opportunity on the
//!   Company's Account, the stage mapped to `StageName`; a linked one follows CUSTOMER/LOST to
//!   Closed Won/Closed Lost.

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

use crate::domain::{
    Activity, ActivityKind, Company, CompanyProduct, Contact, OwnershipStatus, PushAs,
    SalesforceId, SalesforceKind,
};
use crate::salesforce::Record;

/// A Salesforce write for one local record.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The object's API name (`Contact`, `Task`, …).
    pub sobject: &'static str,
    /// The record to update; `None` creates one.
    pub existing: Option<SalesforceId>,
    /// The fields to write (no `Id`, no marker).
    pub fields: Record,
    /// For people: the normalized email a record already in Salesforce would match on.
    pub match_email: Option<String>,
    /// For Contacts: the Account the match must be on.
    pub match_account: Option<SalesforceId>,
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

fn put(fields: &mut Record, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        fields.insert(name.into(), v);
    }
}

fn text(v: Option<&String>) -> Option<Value> {
    v.filter(|s| !s.trim().is_empty()).map(|s| json!(s))
}

fn account_of(company: Option<&Company>) -> Option<SalesforceId> {
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
        sobject: "Account",
        existing: c.salesforce_id.clone(),
        fields: f,
        match_email: None,
        match_account: None,
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
        sobject,
        existing: c.salesforce_id.clone(),
        fields: f,
        match_email: c.email.as_deref().and_then(crate::domain::normalize::email),
        match_account: account.filter(|_| kind == SalesforceKind::Contact),
    })
}

/// Activity → Task (email sent) or Event (meeting booked).
pub fn activity(a: &Activity, links: Links<'_>) -> Plan {
    let mut f = Record::new();
    f.insert("Subject".into(), json!(a.subject));
    put(&mut f, "Description", text(a.description.as_ref()));
    let who = links
        .contact
        .and_then(|c| Some((c.salesforce_id.clone()?, linked_kind(c)?)));
    let who_is_lead = matches!(who, Some((_, SalesforceKind::Lead)));
    put(&mut f, "WhoId", who.map(|(id, _)| json!(id)));
    if !who_is_lead {
        put(
            &mut f,
            "WhatId",
            account_of(links.company).map(|id| json!(id)),
        );
    }
    let creating = a.salesforce_id.is_none();
    let sobject = match a.kind {
        ActivityKind::EmailSent => {
            f.insert("Status".into(), json!("Completed"));
            f.insert(
                "ActivityDate".into(),
                json!(a.occurred_at.date_naive().to_string()),
            );
            if creating {
                // Settable on create only.
                f.insert("TaskSubtype".into(), json!("Email"));
            }
            "Task"
        }
        ActivityKind::MeetingBooked => {
            let start = a.starts_at.unwrap_or(a.occurred_at);
            let end = a
                .ends_at
                .filter(|e| *e > start)
                .unwrap_or(start + Duration::minutes(30));
            f.insert("StartDateTime".into(), json!(sf_datetime(start)));
            f.insert("EndDateTime".into(), json!(sf_datetime(end)));
            "Event"
        }
    };
    Plan::Send(Payload {
        sobject,
        existing: a.salesforce_id.clone(),
        fields: f,
        match_email: None,
        match_account: None,
    })
}

fn sf_datetime(dt: chrono::DateTime<chrono::Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The standard `StageName` for a local funnel stage (case and punctuation ignored), defaulting
/// to `Prospecting`. A stage already spelled as a standard `StageName` maps to itself.
pub fn stage_name(stage: Option<&str>) -> &'static str {
    const STANDARD: &[&str] = &[
        "Prospecting",
        "Qualification",
        "Needs Analysis",
        "Value Proposition",
        "Id. Decision Makers",
        "Perception Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    ];
    let Some(stage) = stage else {
        return "Prospecting";
    };
    if let Some(s) = STANDARD
        .iter()
        .find(|s| s.eq_ignore_ascii_case(stage.trim()))
    {
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

/// CompanyProduct → Opportunity on the Company's Account.
pub fn company_product(p: &CompanyProduct, links: Links<'_>, today: NaiveDate) -> Plan {
    let linked = p.salesforce_opportunity_id.is_some();
    let stage = match p.status {
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
    let mut f = Record::new();
    let company_name = links.company.map_or("", |c| c.name.as_str());
    f.insert(
        "Name".into(),
        json!(format!("{company_name} - {}", p.product)),
    );
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
        sobject: "Opportunity",
        existing: p.salesforce_opportunity_id.clone(),
        fields: f,
        match_email: None,
        match_account: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrgId;
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
        let Plan::Send(t) = activity(&a, links) else {
            panic!("no payload")
        };
        assert_eq!(t.sobject, "Task");
        assert_eq!(t.fields["TaskSubtype"], json!("Email"));
        assert_eq!(t.fields["Status"], json!("Completed"));
        assert_eq!(t.fields["ActivityDate"], json!("2024-05-06"));
        assert!(!t.fields.contains_key("WhatId"), "no WhatId with a Lead");
        a.kind = ActivityKind::MeetingBooked;
        let Plan::Send(e) = activity(&a, links) else {
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
            updated_at: Utc::now(),
        };
        assert!(matches!(
            company_product(&p, links, today),
            Plan::Nothing(_)
        ));
        p.status = OwnershipStatus::Opportunity;
        let Plan::Send(o) = company_product(&p, links, today) else {
            panic!("no payload")
        };
        assert_eq!(o.fields["StageName"], json!("Proposal/Price Quote"));
        assert_eq!(o.fields["CloseDate"], json!("2024-01-31"));
        assert_eq!(o.fields["Amount"], json!(5000.0));
    }
}
