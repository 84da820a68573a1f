//! The pull side's local API: imports with progress, the conflict list, and resolving a
//! conflict by picking a candidate or creating a new record.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sfsync::domain::TypeFilter;
use sfsync::simulator::SeedSpec;
use sfsync::store::ChangesRead;
use sfsync::sync::pull;

use crate::support::env::{SyncEnv as PullEnv, start};
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(10);

async fn finished_import(env: &PullEnv, id: u64) -> Value {
    eventually("the import to finish", WAIT, || async {
        let (status, body) = env.api(Method::GET, &format!("/imports/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        (body["state"] != "running").then_some(body)
    })
    .await
}

#[tokio::test]
async fn an_import_of_accounts_by_filter_reports_progress_and_applies_every_row() {
    let env = start().await;
    env.sim.set_outbound_url(None);
    let seeded = env
        .sim
        .seed_org(&SeedSpec {
            accounts: 30,
            contacts_per_account: 2,
            opportunities_per_account: 1,
            ..SeedSpec::default()
        })
        .expect("seed");
    let energy = env
        .sim
        .list("Account")
        .into_iter()
        .filter(|a| a["Industry"] == "Energy")
        .count() as u64;
    assert!(energy > 0);

    let (status, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "accounts", "filter": "Industry = 'Energy'"})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["total"], energy);
    assert_eq!(done["processed"], energy);
    assert_eq!(done["created"], energy);
    assert_eq!(
        env.store().companies(&env.org).expect("companies").len() as u64,
        energy
    );

    let account = &seeded.accounts[0];
    let (_, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "contacts", "account": account.as_str()})),
        )
        .await;
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["state"], "done", "{done}");
    let company = env.company_of(account).expect("the account came in too");
    let people = env.store().contacts(&env.org).expect("contacts");
    assert_eq!(
        people
            .iter()
            .filter(|c| c.company_id == Some(company.id))
            .count(),
        2
    );
    let (_, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "opportunities", "account": account.as_str()})),
        )
        .await;
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["created"], 1, "{done}");
    assert!(env.product_of(&seeded.opportunities[0]).is_some());
}

#[tokio::test]
async fn an_import_applies_its_rows_in_transactions_of_many() {
    let env = start().await;
    env.sim.set_outbound_url(None);
    env.sim
        .seed_org(&SeedSpec {
            accounts: 450,
            ..SeedSpec::default()
        })
        .expect("seed");

    let (status, started) = env
        .api(Method::POST, "/imports", Some(json!({"kind": "accounts"})))
        .await;
    assert_eq!(status, 202, "{started}");
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["created"], 450, "{done}");

    let store = env.store();
    let upto = store.committed_changes();
    let ChangesRead::Page(page) = store
        .read_changes(0, upto, 1000, &TypeFilter::all())
        .expect("read")
    else {
        panic!("nothing compacted yet");
    };
    let created: Vec<_> = page
        .entries
        .iter()
        .filter(|e| e.kind.to_string() == "company.created")
        .collect();
    assert_eq!(created.len(), 450);
    // The entries of one transaction carry its commit time.
    let transactions: std::collections::BTreeSet<_> = created.iter().map(|e| e.timestamp).collect();
    assert!(
        transactions.len() <= 450_usize.div_ceil(pull::APPLY_CHUNK) + 1,
        "{} transactions for 450 rows",
        transactions.len()
    );
}

#[tokio::test]
async fn an_import_of_an_accounts_contacts_brings_the_open_leads_of_its_company_name() {
    let env = start().await;
    env.sim.set_outbound_url(None);
    let account = env
        .sim
        .create("Account", json!({"Name": "Pawnee Parks"}))
        .expect("account");
    let leads: Vec<_> = [
        ("Knope", "Pawnee Parks"),
        ("Ludgate", "Pawnee Parks"),
        ("Wyatt", "Eagleton Parks"),
    ]
    .into_iter()
    .map(|(last, company)| {
        let lead = json!({"LastName": last, "Company": company});
        env.sim.create("Lead", lead).expect("lead")
    })
    .collect();
    let converted = env
        .sim
        .create(
            "Lead",
            json!({"LastName": "Perkins", "Company": "Pawnee Parks"}),
        )
        .expect("lead");
    env.sim
        .convert_lead(&converted, sfsync::simulator::ConvertOptions::default())
        .expect("convert");

    let (status, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "contacts", "account": account.as_str()})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;

    assert_eq!(done["state"], "done", "{done}");
    let company = env.company_of(&account).expect("the account came in too");
    for lead in &leads[..2] {
        let local = env
            .contact_of(lead)
            .expect("a lead with the account's name");
        assert_eq!(
            local.salesforce_kind,
            Some(sfsync::domain::SalesforceKind::Lead)
        );
        assert_eq!(
            local.company_id,
            Some(company.id),
            "placed by the Company name"
        );
    }
    assert!(
        env.contact_of(&leads[2]).is_none(),
        "another company's lead"
    );
    assert!(env.contact_of(&converted).is_none(), "a converted lead");
}

#[tokio::test]
async fn an_import_of_an_unknown_account_fails_visibly() {
    let env = start().await;
    let (_, started) = env
        .api(
            Method::POST,
            "/imports",
            Some(json!({"kind": "contacts", "account": "001000000000042"})),
        )
        .await;
    let done = finished_import(&env, started["id"].as_u64().expect("id")).await;
    assert_eq!(done["state"], "failed");
    assert!(done["error"].as_str().is_some_and(|e| !e.is_empty()));
    let (status, _) = env
        .api(Method::POST, "/imports", Some(json!({"kind": "nonsense"})))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_conflict_is_listed_with_its_candidates_and_resolved_by_picking_one() {
    let env = start().await;
    let a = env.local_company("Pick Me", "pick.com");
    let b = env.local_company("Not Me", "www.pick.com");
    let id = env
        .sim
        .create("Account", json!({"Name": "Pick", "Website": "pick.com"}))
        .expect("create");
    let listed = eventually("the conflict in the API", WAIT, || async {
        let (_, body) = env.api(Method::GET, "/conflicts", None).await;
        body["items"].as_array().filter(|l| !l.is_empty()).cloned()
    })
    .await;
    let conflict = &listed[0];
    assert_eq!(conflict["salesforce_id"], id.as_str());
    assert_eq!(conflict["rung"], "domain");
    assert_eq!(conflict["candidates"], json!([a, b]));
    assert_eq!(conflict["candidate_records"][0]["name"], "Pick Me");
    let cid = conflict["id"].as_u64().expect("id");

    let (status, body) = env
        .api(
            Method::POST,
            &format!("/conflicts/{cid}/resolve"),
            Some(json!({"candidate": 999})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = env
        .api(
            Method::POST,
            &format!("/conflicts/{cid}/resolve"),
            Some(json!({"candidate": a})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "updated");
    assert_eq!(env.company_of(&id).map(|c| c.id), Some(a));
    let (_, after) = env.api(Method::GET, "/conflicts", None).await;
    assert_eq!(after["items"], json!([]));
    let (status, _) = env
        .api(
            Method::POST,
            &format!("/conflicts/{cid}/resolve"),
            Some(json!({"candidate": a})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_conflict_resolved_by_creating_a_new_record_links_a_fresh_one() {
    let env = start().await;
    let a = env.local_company("Twin A", "twins.com");
    let b = env.local_company("Twin B", "twins.com");
    let id = env
        .sim
        .create("Account", json!({"Name": "Twins", "Website": "twins.com"}))
        .expect("create");
    let listed = eventually("the conflict in the API", WAIT, || async {
        let (_, body) = env.api(Method::GET, "/conflicts", None).await;
        body["items"].as_array().filter(|l| !l.is_empty()).cloned()
    })
    .await;
    let cid = listed[0]["id"].as_u64().expect("id");
    let (status, body) = env
        .api(
            Method::POST,
            &format!("/conflicts/{cid}/resolve"),
            Some(json!({"create": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "created");
    let linked = env.company_of(&id).expect("linked");
    assert!(linked.id != a && linked.id != b);
    assert_eq!(linked.name, "Twins");
}

#[tokio::test]
async fn the_import_command_drives_the_api_to_the_end() {
    let env = start().await;
    env.sim.set_outbound_url(None);
    env.sim
        .seed_org(&SeedSpec {
            accounts: 12,
            ..SeedSpec::default()
        })
        .expect("seed");
    let args = sfsync::cli::ImportArgs {
        url: env.app.base.clone(),
        token: crate::support::TOKEN.into(),
        org: env.org.to_string(),
        what: sfsync::cli::ImportWhat::Accounts {
            filter: String::new(),
        },
    };
    sfsync::tools::commands::import(&args)
        .await
        .expect("import");
    assert_eq!(env.store().companies(&env.org).expect("list").len(), 12);

    let bad = sfsync::cli::ImportArgs {
        what: sfsync::cli::ImportWhat::Contacts {
            account: "not-an-id".into(),
        },
        ..args
    };
    let err = sfsync::tools::commands::import(&bad)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("422"), "{err}");
}
