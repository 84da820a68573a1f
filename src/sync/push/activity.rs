//! Activity → Task (email sent) or Event (meeting booked), or a record of the custom activity
//! object `[activities]` names, its parts in the fields the mapping gives.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{Links, Payload, Plan, account_of, linked_kind, put, text};
use crate::config::{ActivityTarget, CustomActivity};
use crate::domain::{Activity, ActivityKind, SalesforceKind};
use crate::salesforce::Record;

/// An activity's write, to Task/Event or to the custom object `target` names.
pub fn activity(a: &Activity, links: Links<'_>, target: &ActivityTarget) -> Plan {
    let (sobject, fields) = match target {
        ActivityTarget::Standard => standard(a, links),
        ActivityTarget::Custom(c) => (Cow::Owned(c.object.clone()), custom(a, links, c)),
    };
    Plan::Send(Payload {
        sobject,
        existing: a.salesforce_id.clone(),
        fields,
        match_email: None,
        match_account: None,
        match_company: None,
    })
}

/// The linked person's id and whether it is a Lead.
fn who(links: Links<'_>) -> Option<(crate::domain::SalesforceId, SalesforceKind)> {
    links
        .contact
        .and_then(|c| Some((c.salesforce_id.clone()?, linked_kind(c)?)))
}

/// Task (`TaskSubtype` Email, `Status` Completed) or Event; `WhoId`/`WhatId` from the linked
/// person and Account (no `WhatId` with a Lead, which Salesforce refuses).
fn standard(a: &Activity, links: Links<'_>) -> (Cow<'static, str>, Record) {
    let mut f = Record::new();
    f.insert("Subject".into(), json!(a.subject));
    put(&mut f, "Description", text(a.description.as_ref()));
    let who = who(links);
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
    (Cow::Borrowed(sobject), f)
}

/// The custom object's fields: subject, description, kind, when (a meeting's start), the
/// Contact (not a Lead: the lookup is to Contact) and the Account, each where mapped.
fn custom(a: &Activity, links: Links<'_>, c: &CustomActivity) -> Record {
    let mut f = Record::new();
    let m = &c.fields;
    let field = |name: &Option<String>| name.clone();
    if let Some(subject) = field(&m.subject) {
        f.insert(subject, json!(a.subject));
    }
    if let Some(name) = field(&m.description) {
        put(&mut f, &name, text(a.description.as_ref()));
    }
    if let Some(name) = field(&m.kind) {
        let kind = match a.kind {
            ActivityKind::EmailSent => &c.kinds.email_sent,
            ActivityKind::MeetingBooked => &c.kinds.meeting_booked,
        };
        f.insert(name, json!(kind));
    }
    if let Some(name) = field(&m.occurred_at) {
        let when = match a.kind {
            ActivityKind::MeetingBooked => a.starts_at.unwrap_or(a.occurred_at),
            ActivityKind::EmailSent => a.occurred_at,
        };
        f.insert(name, json!(sf_datetime(when)));
    }
    if let Some(name) = field(&m.contact) {
        let contact = who(links).filter(|(_, k)| *k == SalesforceKind::Contact);
        put(&mut f, &name, contact.map(|(id, _)| json!(id)));
    }
    if let Some(name) = field(&m.company) {
        put(&mut f, &name, account_of(links.company).map(|id| json!(id)));
    }
    f
}

fn sf_datetime(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::config::{ActivityFields, ActivityKinds};
    use crate::domain::{Contact, OrgId, SalesforceId};

    #[test]
    fn a_custom_activity_fills_the_mapped_fields_and_leaves_a_lead_out_of_the_contact_lookup() {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let at = Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("time");
        let a = Activity {
            id: 3,
            org_id: org.clone(),
            kind: ActivityKind::EmailSent,
            contact_id: Some(2),
            company_id: None,
            subject: "Hello".into(),
            description: Some("Body".into()),
            occurred_at: at,
            starts_at: None,
            ends_at: None,
            salesforce_id: None,
        };
        let mut person = Contact {
            id: 2,
            org_id: org,
            company_id: None,
            first_name: None,
            last_name: "Lovelace".into(),
            email: None,
            title: None,
            phone: None,
            salesforce_id: Some(SalesforceId::mint("003", "5g", 1)),
            salesforce_kind: Some(SalesforceKind::Contact),
            updated_at: at,
        };
        let target = ActivityTarget::Custom(Box::new(CustomActivity {
            object: "Sales_Activity__c".into(),
            fields: ActivityFields {
                subject: Some("Subject__c".into()),
                description: Some("Description__c".into()),
                kind: Some("Type__c".into()),
                occurred_at: Some("Occurred_At__c".into()),
                contact: Some("Contact__c".into()),
                company: None,
                marker: None,
            },
            kinds: ActivityKinds::default(),
            marker: "Sfsync_Id__c".into(),
        }));
        let links = Links {
            company: None,
            contact: Some(&person),
        };
        let Plan::Send(p) = activity(&a, links, &target) else {
            panic!("no payload")
        };
        assert_eq!(p.sobject, "Sales_Activity__c");
        assert_eq!(p.fields["Subject__c"], json!("Hello"));
        assert_eq!(p.fields["Type__c"], json!("Email"));
        assert_eq!(
            p.fields["Occurred_At__c"],
            json!("2024-05-06T07:08:09.000Z")
        );
        assert_eq!(p.fields["Contact__c"], json!(person.salesforce_id));
        assert!(!p.fields.contains_key("Status"));
        person.salesforce_kind = Some(SalesforceKind::Lead);
        let links = Links {
            company: None,
            contact: Some(&person),
        };
        let Plan::Send(p) = activity(&a, links, &target) else {
            panic!("no payload")
        };
        assert!(!p.fields.contains_key("Contact__c"), "a Lead is no Contact");
    }
}
