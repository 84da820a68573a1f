//! Sections 3 and 4: "Import from Salesforce", then changes made in the org, pulled; every row
//! is read back from the local API once the change has been applied.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::org::Org;
use super::table::Row;
use super::{Service, until};
use crate::domain::SalesforceId;
use crate::simulator::ConvertOptions;

/// What the pull side leaves for the push side: the rows, and the local company the merge kept.
pub(crate) struct Pulled {
    pub(crate) rows: Vec<Row>,
    pub(crate) survivor: Value,
}

fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn person(v: &Value) -> String {
    format!("{} {}", text(v, "first_name"), text(v, "last_name"))
}

/// One import through the API, followed to its end; prints what it did.
async fn import_one(svc: &Service, body: Value, label: &str) -> anyhow::Result<()> {
    let started = svc.api(Method::POST, "/imports", Some(&body)).await?;
    let id = started["id"].as_u64().context("import id")?;
    let done = until(&format!("the import of {label}"), || async {
        let s = svc
            .api(Method::GET, &format!("/imports/{id}"), None)
            .await?;
        Ok((s["state"] != "running").then_some(s))
    })
    .await?;
    anyhow::ensure!(
        done["state"] == "done",
        "import {label} failed: {}",
        done["error"]
    );
    println!(
        "   {label:<48} {:>3} rows: {} created, {} updated, {} already up to date, {} quarantined",
        done["processed"], done["created"], done["updated"], done["unchanged"], done["quarantined"]
    );
    Ok(())
}

/// Section 3: every Account, then the Contacts and Opportunities of three of them.
pub(crate) async fn import(svc: &Service, org: &Org) -> anyhow::Result<()> {
    println!("\n3. Import from Salesforce (the app's \"Import\" button, through the local API)");
    import_one(svc, json!({"kind": "accounts"}), "Accounts (all)").await?;
    for account in org.seeded.accounts.iter().take(3) {
        let name = org.name_of(account);
        import_one(
            svc,
            json!({"kind": "contacts", "account": account.as_str()}),
            &format!("Contacts and Leads of {name}"),
        )
        .await?;
        import_one(
            svc,
            json!({"kind": "opportunities", "account": account.as_str()}),
            &format!("Opportunities of {name}"),
        )
        .await?;
    }
    Ok(())
}

/// Waits until the local record of `kind` linked to `id` passes `ready`, and returns it.
async fn linked_when(
    svc: &Service,
    kind: &str,
    id: &SalesforceId,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    until(&format!("{kind} {id}"), || async {
        Ok(svc.linked(kind, id.as_str()).await?.filter(|v| ready(v)))
    })
    .await
}

/// The local company product linked to opportunity `id` once `ready` holds.
async fn product_when(
    svc: &Service,
    id: &SalesforceId,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    until(&format!("the company product of {id}"), || async {
        let page = svc
            .api(Method::GET, "/company-products?limit=1000", None)
            .await?;
        Ok(page["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|p| p["salesforce_opportunity_id"] == id.as_str() && ready(p))
                .cloned()
        }))
    })
    .await
}

/// Edits in the org: an Account renamed, a Contact's title, an Opportunity won.
async fn edits(svc: &Service, org: &Org, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (a0, c0, o0) = (
        &org.seeded.accounts[0],
        &org.seeded.contacts[0],
        &org.seeded.opportunities[0],
    );
    let (old_account, who) = (org.name_of(a0), org.name_of(c0));
    org.sim
        .update(a0, json!({"Name": "Acme Renewables", "Industry": "Energy"}))?;
    org.sim
        .update(c0, json!({"Title": "VP Sales", "Phone": "+1 415 555 0100"}))?;
    org.sim
        .update(o0, json!({"StageName": "Closed Won", "Amount": 48000.0}))?;
    let company = linked_when(svc, "companies", a0, |c| c["name"] == "Acme Renewables").await?;
    rows.push(Row::new(
        "Account renamed",
        &old_account,
        format!(
            "company \"{}\", industry {}",
            text(&company, "name"),
            text(&company, "industry")
        ),
    ));
    let contact = linked_when(svc, "contacts", c0, |c| c["title"] == "VP Sales").await?;
    rows.push(Row::new(
        "Contact's title changed",
        &who,
        format!(
            "contact {}: title {}, phone {}",
            person(&contact),
            text(&contact, "title"),
            text(&contact, "phone")
        ),
    ));
    let product = product_when(svc, o0, |p| p["opportunity_size"] == 48000.0).await?;
    rows.push(Row::new(
        "Opportunity won",
        &org.name_of(o0),
        format!(
            "company product {}: {}, stage {}, size {}",
            text(&product, "product"),
            text(&product, "status"),
            text(&product, "stage"),
            text(&product, "opportunity_size")
        ),
    ));
    Ok(())
}

/// New records in the org: a Contact, and a Lead that is then converted.
async fn new_people(svc: &Service, org: &Org, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let a1 = &org.seeded.accounts[1];
    let grace = org.sim.create(
        "Contact",
        json!({"FirstName": "Grace", "LastName": "Hopper",
        "Email": "grace@navy.example", "Title": "Rear Admiral", "AccountId": a1.as_str()}),
    )?;
    let lead = org.sim.create(
        "Lead",
        json!({"FirstName": "Ada", "LastName": "Lovelace",
        "Company": "Analytical Engines", "Email": "ada@engines.example"}),
    )?;
    let contact = linked_when(svc, "contacts", &grace, |c| !c["company_id"].is_null()).await?;
    let company = svc
        .api(
            Method::GET,
            &format!("/companies/{}", contact["company_id"]),
            None,
        )
        .await?;
    rows.push(Row::new(
        "Contact created",
        "Grace Hopper",
        format!(
            "contact {} at company \"{}\"",
            person(&contact),
            text(&company, "name")
        ),
    ));
    let as_lead = linked_when(svc, "contacts", &lead, |_| true).await?;
    rows.push(Row::new(
        "Lead created",
        "Ada Lovelace",
        format!(
            "contact {} ({}) #{}",
            person(&as_lead),
            text(&as_lead, "salesforce_kind"),
            as_lead["id"]
        ),
    ));
    let converted = org.sim.convert_lead(&lead, ConvertOptions::default())?;
    let after = linked_when(svc, "contacts", &converted.contact_id, |c| {
        !c["company_id"].is_null()
    })
    .await?;
    let company = svc
        .api(
            Method::GET,
            &format!("/companies/{}", after["company_id"]),
            None,
        )
        .await?;
    rows.push(Row::new(
        "Lead converted",
        "Ada Lovelace",
        format!(
            "contact #{} now the {} {}, at company \"{}\"",
            after["id"],
            text(&after, "salesforce_kind"),
            text(&after, "salesforce_id"),
            text(&company, "name")
        ),
    ));
    Ok(())
}

/// A merge and a delete, which send no Outbound Message: the catch-up sweep finds them.
async fn merge_and_delete(svc: &Service, org: &Org, rows: &mut Vec<Row>) -> anyhow::Result<Value> {
    let (a1, a2, gone) = (
        &org.seeded.accounts[1],
        &org.seeded.accounts[2],
        &org.seeded.contacts[1],
    );
    let (survivor_name, loser_name, gone_name) =
        (org.name_of(a1), org.name_of(a2), org.name_of(gone));
    let loser = svc
        .linked("companies", a2.as_str())
        .await?
        .context("the company to merge away")?;
    let gone_local = svc
        .linked("contacts", gone.as_str())
        .await?
        .context("the contact to delete")?;
    org.sim.merge(a1, std::slice::from_ref(a2))?;
    org.sim.delete(gone)?;
    let client = svc
        .state
        .pull
        .orgs
        .get(&org.sim.org_id())
        .context("the org's connection")?;
    let report = crate::sync::sweep::sweep_org(&svc.state.store, &client).await?;
    println!(
        "   catch-up sweep (queryAll by SystemModstamp): {} changed and {} deleted rows queued, {} API calls",
        report.changed, report.deleted, report.api_calls
    );
    let loser_after = until("the merge", || async {
        let c = svc
            .api(Method::GET, &format!("/companies/{}", loser["id"]), None)
            .await?;
        let people = svc.api(Method::GET, "/contacts?limit=1000", None).await?;
        let moved = people["items"]
            .as_array()
            .is_some_and(|all| all.iter().all(|p| p["company_id"] != loser["id"]));
        Ok((c["salesforce_id"].is_null() && moved).then_some(c))
    })
    .await?;
    let survivor = linked_when(svc, "companies", a1, |_| true).await?;
    rows.push(Row::new(
        "Account merged away",
        &loser_name,
        format!(
            "company \"{}\" unlinked; its people now at \"{survivor_name}\"",
            text(&loser_after, "name")
        ),
    ));
    let gone_after = until("the delete", || async {
        let c = svc
            .api(
                Method::GET,
                &format!("/contacts/{}", gone_local["id"]),
                None,
            )
            .await?;
        Ok(c["salesforce_id"].is_null().then_some(c))
    })
    .await?;
    rows.push(Row::new(
        "Contact deleted",
        &gone_name,
        format!(
            "contact {} kept, unlinked from Salesforce",
            person(&gone_after)
        ),
    ));
    Ok(survivor)
}

/// Section 4: the changes, each read back from the local API.
pub(crate) async fn changes(svc: &Service, org: &Org) -> anyhow::Result<Pulled> {
    println!("\n4. Changes in Salesforce (Outbound Messages, then the catch-up sweep)");
    let mut rows = Vec::new();
    edits(svc, org, &mut rows).await?;
    new_people(svc, org, &mut rows).await?;
    let survivor = merge_and_delete(svc, org, &mut rows).await?;
    Ok(Pulled { rows, survivor })
}
