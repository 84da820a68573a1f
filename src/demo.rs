//! `sfsync demo`: one command, no setup, nothing beyond loopback.
//!
//! It starts a simulated Salesforce org (seeded), starts the service against it with a
//! temporary store, imports the org's Accounts (and the Contacts and Opportunities of a few of
//! them) through the local API, then changes, merges, deletes and converts records in the
//! simulated org so that real Outbound Messages arrive, waits until every change is applied, and
//! prints what synced and what it cost in API calls.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::Rng as _;
use secrecy::SecretBox;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::bench::loopback;
use crate::cli::DemoArgs;
use crate::domain::{OrgId, SalesforceId};
use crate::salesforce::TokenKey;
use crate::simulator::{ConvertOptions, SeedSpec, SimulatorConfig};
use crate::store::Store;

const WAIT: Duration = Duration::from_secs(20);

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Polls `check` until it holds or `WAIT` passes.
async fn until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Demo {
    store: Store,
    org: OrgId,
    api: String,
    token: String,
    http: reqwest::Client,
    rows: Vec<[String; 4]>,
}

impl Demo {
    async fn import(&self, body: Value, label: &str) -> anyhow::Result<Value> {
        let started: Value = self
            .http
            .post(format!("{}/imports", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .context("starting an import")?
            .error_for_status()
            .context("starting an import")?
            .json()
            .await?;
        let id = started["id"].as_u64().context("import id")?;
        let deadline = Instant::now() + WAIT;
        let last: Value = loop {
            let status: Value = self
                .http
                .get(format!("{}/imports/{id}", self.api))
                .bearer_auth(&self.token)
                .send()
                .await?
                .json()
                .await?;
            if status["state"] != "running" {
                break status;
            }
            if Instant::now() > deadline {
                anyhow::bail!("timed out waiting for import {label}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        if last["state"] != "done" {
            anyhow::bail!("import {label} failed: {}", last["error"]);
        }
        println!(
            "  import {label:<40} {:>4} rows  ({} created, {} matched, {} unchanged, {} quarantined)",
            last["processed"],
            last["created"],
            last["updated"],
            last["unchanged"],
            last["quarantined"]
        );
        Ok(last)
    }

    fn company(&self, id: &SalesforceId) -> anyhow::Result<Option<crate::domain::Company>> {
        Ok(self
            .store
            .companies(&self.org)?
            .into_iter()
            .find(|c| c.salesforce_id.as_ref() == Some(id)))
    }

    fn contact(&self, id: &SalesforceId) -> anyhow::Result<Option<crate::domain::Contact>> {
        Ok(self
            .store
            .contacts(&self.org)?
            .into_iter()
            .find(|c| c.salesforce_id.as_ref() == Some(id)))
    }

    fn row(&mut self, change: &str, id: &SalesforceId, local: String) {
        self.rows.push([
            change.to_string(),
            id.to_string(),
            local,
            "applied".to_string(),
        ]);
    }
}

impl Demo {
    /// `POST /api/v1{path}` and the `record` it answers with.
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp: Value = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?
            .error_for_status()
            .with_context(|| format!("POST {path}"))?
            .json()
            .await?;
        Ok(resp["record"].clone())
    }
}

/// Step 4: a new contact, an email sent, a meeting booked and an opportunity, written through the
/// local API and drained by the service's outbox worker; returns one table row for each, read
/// back from the simulated org.
async fn push_side(
    demo: &Demo,
    sim: &crate::simulator::Simulator,
    company_id: u64,
    account: &SalesforceId,
) -> anyhow::Result<Vec<[String; 4]>> {
    let contact = demo
        .post(
            "/contacts",
            json!({"company_id": company_id, "first_name": "Mara", "last_name": "Quinn",
                   "email": "mara.quinn@acme-renewables.example", "title": "Head of Ops"}),
        )
        .await?;
    let contact_id = contact["id"].as_u64().context("contact id")?;
    let email = demo
        .post(
            "/activities",
            json!({"kind": "email_sent", "contact_id": contact_id, "company_id": company_id,
                   "subject": "Intro: Acme Renewables x sfsync", "description": "Sent from the approval queue"}),
        )
        .await?;
    let starts = chrono::Utc::now() + chrono::Duration::days(2);
    let meeting = demo
        .post(
            "/activities",
            json!({"kind": "meeting_booked", "contact_id": contact_id, "company_id": company_id,
                   "subject": "Discovery call", "starts_at": starts,
                   "ends_at": starts + chrono::Duration::minutes(30)}),
        )
        .await?;
    let product = demo
        .post(
            "/company-products",
            json!({"company_id": company_id, "product": "Fleet Analytics", "status": "OPPORTUNITY",
                   "opportunity_size": 25000.0,
                   "close_date": (chrono::Utc::now() + chrono::Duration::days(30)).date_naive()}),
        )
        .await?;
    let org = demo.org.clone();
    until("the outbox to drain", || async {
        let counts = demo.store.outbox_counts(&org)?;
        Ok(counts.pending == 0 && counts.dead == 0)
    })
    .await?;
    let store = &demo.store;
    let sf_of = |v: Option<SalesforceId>| v.context("pushed record has no salesforce id");
    let contact_sf = sf_of(
        store
            .contacts(&org)?
            .into_iter()
            .find(|c| c.id == contact_id)
            .and_then(|c| c.salesforce_id),
    )?;
    let activity_sf = |id: u64| -> anyhow::Result<SalesforceId> {
        sf_of(
            store
                .activities(&org)?
                .into_iter()
                .find(|a| a.id == id)
                .and_then(|a| a.salesforce_id),
        )
    };
    let email_sf = activity_sf(email["id"].as_u64().context("activity id")?)?;
    let meeting_sf = activity_sf(meeting["id"].as_u64().context("activity id")?)?;
    let product_id = product["id"].as_u64().context("product id")?;
    let opp_sf = sf_of(
        store
            .company_products(&org)?
            .into_iter()
            .find(|p| p.id == product_id)
            .and_then(|p| p.salesforce_opportunity_id),
    )?;
    let field = |id: &SalesforceId, f: &str| -> String {
        sim.get(id)
            .and_then(|r| {
                r.get(f)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            })
            .unwrap_or_else(|| "(missing)".into())
    };
    let row = |change: &str, id: &SalesforceId, held: String| {
        [
            change.to_string(),
            id.to_string(),
            held,
            "pushed".to_string(),
        ]
    };
    Ok(vec![
        row(
            "new contact",
            &contact_sf,
            format!(
                "Contact {} at Account {}",
                field(&contact_sf, "Email"),
                field(&contact_sf, "AccountId")
            ),
        ),
        row(
            "email sent",
            &email_sf,
            format!(
                "Task \"{}\", {} / {}",
                field(&email_sf, "Subject"),
                field(&email_sf, "TaskSubtype"),
                field(&email_sf, "Status")
            ),
        ),
        row(
            "meeting booked",
            &meeting_sf,
            format!(
                "Event \"{}\" with {}",
                field(&meeting_sf, "Subject"),
                field(&meeting_sf, "WhoId")
            ),
        ),
        row(
            "opportunity",
            &opp_sf,
            format!(
                "Opportunity {} on {}, {}",
                field(&opp_sf, "Amount"),
                account,
                field(&opp_sf, "StageName")
            ),
        ),
    ])
}

/// Runs the demo.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let sim = loopback::simulator(SimulatorConfig {
        seed: args.seed,
        outbound_retry_base: Duration::from_millis(200),
        ..SimulatorConfig::default()
    })
    .await?;
    let accounts = args.accounts.max(4);
    let seeded = sim.seed_org(&SeedSpec {
        accounts,
        contacts_per_account: 2,
        opportunities_per_account: 1,
        leads: 3,
        ..SeedSpec::default()
    })?;
    println!(
        "simulated org {} at {} ({} accounts, {} contacts, {} opportunities, {} leads)",
        sim.org_id(),
        sim.instance_url(),
        seeded.accounts.len(),
        seeded.contacts.len(),
        seeded.opportunities.len(),
        seeded.leads.len()
    );

    let dir = tempfile::tempdir().context("temporary store")?;
    let token = random_token(32);
    let key = random_token(24);
    let config = loopback::service_config(&dir.path().join("store"), &sim.org_id(), &token, &key)?;
    let app = App::build(&config).await?;
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let store = state.store.clone();

    // The token key is made in-process: the demo's refresh token lives only as long as it does.
    let mut raw = [0u8; 32];
    rand::rng().fill(&mut raw);
    let client = loopback::client(
        &sim,
        &store,
        TokenKey::new(1, SecretBox::new(Box::new(raw))),
    )?;
    app.connect_salesforce(client.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    sim.set_outbound_url(Some(format!("{base}/webhooks/salesforce/outbound/{key}")));
    println!(
        "sfsync listening on {base} (store {})\n",
        dir.path().display()
    );

    let mut demo = Demo {
        store: store.clone(),
        org: sim.org_id(),
        api: format!("{base}/api/v1"),
        token,
        http: reqwest::Client::new(),
        rows: Vec::new(),
    };

    println!("1. Import from Salesforce");
    demo.import(json!({"kind": "accounts"}), "accounts (all)")
        .await?;
    for a in seeded.accounts.iter().take(3) {
        demo.import(
            json!({"kind": "contacts", "account": a.as_str()}),
            &format!("contacts of {a}"),
        )
        .await?;
        demo.import(
            json!({"kind": "opportunities", "account": a.as_str()}),
            &format!("opportunities of {a}"),
        )
        .await?;
    }
    let calls_after_import = client.api_calls();

    println!("\n2. Changes in Salesforce, delivered as Outbound Messages");
    let (a0, a1, a2) = (
        seeded.accounts[0].clone(),
        seeded.accounts[1].clone(),
        seeded.accounts[2].clone(),
    );
    sim.update(
        &a0,
        json!({"Name": "Acme Renewables", "Industry": "Energy"}),
    )?;
    let c0 = seeded.contacts[0].clone();
    sim.update(
        &c0,
        json!({"Title": "VP Sales", "Phone": "+1 415 555 0100"}),
    )?;
    let o0 = seeded.opportunities[0].clone();
    sim.update(&o0, json!({"StageName": "Closed Won", "Amount": 48000.0}))?;
    let new_contact = sim.create(
        "Contact",
        json!({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.example",
               "Title": "Rear Admiral", "AccountId": a1.as_str()}),
    )?;
    let lead = sim.create(
        "Lead",
        json!({"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines",
               "Email": "ada@engines.example"}),
    )?;

    until("the first changes", || async {
        Ok(demo
            .company(&a0)?
            .is_some_and(|c| c.name == "Acme Renewables")
            && demo
                .contact(&c0)?
                .is_some_and(|c| c.title.as_deref() == Some("VP Sales"))
            && demo.contact(&new_contact)?.is_some()
            && demo.contact(&lead)?.is_some()
            && store.company_products(&demo.org)?.iter().any(|p| {
                p.salesforce_opportunity_id.as_ref() == Some(&o0)
                    && p.status == crate::domain::OwnershipStatus::Customer
            }))
    })
    .await?;
    demo.row(
        "Account renamed",
        &a0,
        "company renamed: Acme Renewables".into(),
    );
    demo.row(
        "Contact title changed",
        &c0,
        "contact title: VP Sales".into(),
    );
    demo.row(
        "Opportunity Closed Won",
        &o0,
        "company product: CUSTOMER, 48000".into(),
    );
    let grace = demo.contact(&new_contact)?.context("grace")?;
    demo.row(
        "Contact created",
        &new_contact,
        format!(
            "contact {} created at company {}",
            grace.id,
            grace.company_id.map_or("-".to_string(), |c| c.to_string())
        ),
    );
    let ada = demo.contact(&lead)?.context("ada")?;
    demo.row(
        "Lead created",
        &lead,
        format!("contact {} (kind lead)", ada.id),
    );

    let converted = sim.convert_lead(&lead, ConvertOptions::default())?;
    until("the conversion", || async {
        Ok(demo
            .contact(&converted.contact_id)?
            .is_some_and(|c| c.id == ada.id && c.company_id.is_some()))
    })
    .await?;
    demo.row(
        "Lead converted",
        &lead,
        format!(
            "contact {} re-linked to Contact {}",
            ada.id, converted.contact_id
        ),
    );

    println!("\n3. A merge and a delete (no Outbound Message: the catch-up sweep finds them)");
    let loser = demo.company(&a2)?.context("loser company")?;
    let survivor = demo.company(&a1)?.context("survivor company")?;
    sim.merge(&a1, std::slice::from_ref(&a2))?;
    let gone = seeded.contacts[1].clone();
    let gone_local = demo.contact(&gone)?.context("contact to delete")?;
    sim.delete(&gone)?;
    let report = crate::sync::sweep::sweep_org(&store, &client).await?;
    println!(
        "  sweep (this org's first: it looks back 24 h): {} changed, {} deleted rows queued, {} api calls",
        report.changed, report.deleted, report.api_calls
    );
    until("the merge and the delete", || async {
        let companies = store.companies(&demo.org)?;
        let loser_unlinked = companies
            .iter()
            .any(|c| c.id == loser.id && c.salesforce_id.is_none());
        let contacts = store.contacts(&demo.org)?;
        let deleted_unlinked = contacts
            .iter()
            .any(|c| c.id == gone_local.id && c.salesforce_id.is_none());
        let moved = !contacts.iter().any(|c| c.company_id == Some(loser.id));
        Ok(loser_unlinked && deleted_unlinked && moved && store.pending_count() == 0)
    })
    .await?;
    demo.row(
        "Account merged away",
        &a2,
        format!(
            "company {} unlinked; its records now at company {}",
            loser.id, survivor.id
        ),
    );
    demo.row(
        "Contact deleted",
        &gone,
        format!(
            "contact {} kept, unlinked (deleted in Salesforce)",
            gone_local.id
        ),
    );

    println!("\n4. Changes in the app, pushed to Salesforce through the outbox");
    let pushed = push_side(&demo, &sim, survivor.id, &a1).await?;

    println!();
    let widths = [24, 18, 72, 7];
    let header = ["change in Salesforce", "record", "local result", "status"];
    let line = |cols: &[String; 4]| {
        cols.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&header.map(str::to_string)));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &demo.rows {
        println!("{}", line(row));
    }
    println!();
    let push_header = [
        "change in the app",
        "Salesforce record",
        "what the org now holds",
        "status",
    ];
    println!("{}", line(&push_header.map(str::to_string)));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &pushed {
        println!("{}", line(row));
    }
    let sim_calls = sim.api_calls();
    println!(
        "\nlocal now: {} companies, {} contacts, {} company products, {} open conflicts",
        store.companies(&demo.org)?.len(),
        store.contacts(&demo.org)?.len(),
        store.company_products(&demo.org)?.len(),
        store.conflicts::<Value>(&demo.org)?.len()
    );
    println!(
        "notifications received: {} ({} duplicates); outbound messages sent by the org: {}",
        state.counters.received_total(),
        state.counters.duplicates_total(),
        sim.outbound_stats().messages_sent
    );
    println!(
        "api calls: {} for the imports, {} for everything after; {} counted by the org; {:.1} s",
        calls_after_import,
        client.api_calls() - calls_after_import,
        sim_calls.total,
        started.elapsed().as_secs_f64()
    );
    shutdown.cancel();
    server.await.context("server task")??;
    sim.shutdown();
    Ok(())
}
