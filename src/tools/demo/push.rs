//! Section 5: changes made in the app through the local API (a contact, an email sent, a meeting
//! booked, an opportunity), pushed through the outbox; each row is read back from the org.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::org::Org;
use super::table::Row;
use super::{Service, until};
use crate::domain::SalesforceId;

/// `POST /api/v1{path}` and the record it answers with.
async fn create(svc: &Service, path: &str, body: Value) -> anyhow::Result<Value> {
    Ok(svc.api(Method::POST, path, Some(&body)).await?["record"].clone())
}

/// The Salesforce id the outbox stored on local record `path` once it was pushed.
async fn pushed_id(svc: &Service, path: &str, field: &str) -> anyhow::Result<SalesforceId> {
    let record = svc.api(Method::GET, path, None).await?;
    let id = record[field]
        .as_str()
        .with_context(|| format!("{path} has no {field}"))?;
    Ok(SalesforceId::parse(id)?)
}

/// What the org holds in `field` of `id`.
fn held(org: &Org, id: &SalesforceId, field: &str) -> String {
    org.sim
        .get(id)
        .map(|r| match &r[field] {
            Value::String(s) => s.clone(),
            Value::Null => "(empty)".into(),
            v => v.to_string(),
        })
        .unwrap_or_else(|| "(no such record)".into())
}

/// The four local records written, by what they are.
struct Written {
    contact: Value,
    email: Value,
    meeting: Value,
    product: Value,
}

/// Writes a contact, an email, a meeting and an opportunity at `company` through the API.
async fn write(svc: &Service, company: &Value) -> anyhow::Result<Written> {
    let company_id = &company["id"];
    let contact = create(svc, "/contacts", json!({"company_id": company_id, "first_name": "Mara",
        "last_name": "Quinn", "email": "mara.quinn@acme-renewables.example", "title": "Head of Ops"})).await?;
    let email = create(
        svc,
        "/activities",
        json!({"kind": "email_sent", "contact_id": contact["id"],
        "company_id": company_id, "subject": "Intro: Acme Renewables x sfsync",
        "description": "Sent from the approval queue"}),
    )
    .await?;
    let starts = chrono::Utc::now() + chrono::Duration::days(2);
    let meeting = create(
        svc,
        "/activities",
        json!({"kind": "meeting_booked", "contact_id": contact["id"],
        "company_id": company_id, "subject": "Discovery call", "starts_at": starts,
        "ends_at": starts + chrono::Duration::minutes(30)}),
    )
    .await?;
    let product = create(
        svc,
        "/company-products",
        json!({"company_id": company_id,
        "product": "Fleet Analytics", "status": "OPPORTUNITY", "opportunity_size": 25000.0,
        "close_date": (chrono::Utc::now() + chrono::Duration::days(30)).date_naive()}),
    )
    .await?;
    Ok(Written {
        contact,
        email,
        meeting,
        product,
    })
}

/// Each written record as the org holds it now.
async fn read_back(svc: &Service, org: &Org, w: &Written) -> anyhow::Result<Vec<Row>> {
    let c = pushed_id(
        svc,
        &format!("/contacts/{}", w.contact["id"]),
        "salesforce_id",
    )
    .await?;
    let e = pushed_id(
        svc,
        &format!("/activities/{}", w.email["id"]),
        "salesforce_id",
    )
    .await?;
    let m = pushed_id(
        svc,
        &format!("/activities/{}", w.meeting["id"]),
        "salesforce_id",
    )
    .await?;
    let o = pushed_id(
        svc,
        &format!("/company-products/{}", w.product["id"]),
        "salesforce_opportunity_id",
    )
    .await?;
    let name_at = |id: &SalesforceId, field: &str| {
        SalesforceId::parse(&held(org, id, field))
            .map_or_else(|_| "(nobody)".into(), |r| org.name_of(&r))
    };
    Ok(vec![
        Row::new(
            "New contact",
            "Mara Quinn",
            format!(
                "Contact {} {}, {}, at Account \"{}\"",
                held(org, &c, "FirstName"),
                held(org, &c, "LastName"),
                held(org, &c, "Email"),
                name_at(&c, "AccountId")
            ),
        ),
        Row::new(
            "Email sent",
            "Intro: Acme Renewables x sfsync",
            format!(
                "Task \"{}\", {} / {}, on {}",
                held(org, &e, "Subject"),
                held(org, &e, "TaskSubtype"),
                held(org, &e, "Status"),
                name_at(&e, "WhoId")
            ),
        ),
        Row::new(
            "Meeting booked",
            "Discovery call",
            format!(
                "Event \"{}\" with {}, {}",
                held(org, &m, "Subject"),
                name_at(&m, "WhoId"),
                held(org, &m, "StartDateTime")
            ),
        ),
        Row::new(
            "Opportunity",
            "Fleet Analytics",
            format!(
                "Opportunity \"{}\", {} {}, on \"{}\"",
                held(org, &o, "Name"),
                held(org, &o, "StageName"),
                held(org, &o, "Amount"),
                name_at(&o, "AccountId")
            ),
        ),
    ])
}

/// Writes the four changes, waits for the outbox to drain, and reads each back from the org.
pub(crate) async fn app_changes(
    svc: &Service,
    org: &Org,
    company: &Value,
) -> anyhow::Result<Vec<Row>> {
    println!("\n5. Changes in the app (the local API, then the outbox)");
    let written = write(svc, company).await?;
    let drained = until("the outbox to drain", || async {
        let status = svc.api(Method::GET, "/status", None).await?;
        Ok((status["outbox"]["pending"] == 0).then_some(status))
    })
    .await?;
    anyhow::ensure!(
        drained["outbox"]["dead"] == 0,
        "a push became a dead letter: {drained}"
    );
    println!(
        "   4 changes written, each with its outbox entry in one transaction; the outbox is empty"
    );
    read_back(svc, org, &written).await
}
