//! Match before create: a company the org already holds is linked, not created again; several
//! candidates are a conflict a person resolves; the contacts under a linked company find their
//! existing records; and a storm of such pushes under faults leaves every record in the org once.

use serde_json::{Value, json};
use sfsync::domain::{ConflictPolicy, SalesforceId};
use sfsync::simulator::Faults;

use crate::push_support::*;

fn account(env: &PushEnv, name: &str, website: Option<&str>) -> SalesforceId {
    let mut fields = json!({"Name": name, "Industry": "Energy"});
    if let Some(w) = website {
        fields["Website"] = json!(w);
    }
    env.sim
        .create("Account", fields)
        .expect("account in the org")
}

async fn company(env: &PushEnv, name: &str, website: &str) -> u64 {
    env.create("/companies", json!({"name": name, "website": website}))
        .await
}

fn query_calls(env: &PushEnv) -> u64 {
    env.sim
        .api_calls()
        .by_endpoint
        .get("GET /query")
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_company_the_org_holds_by_domain_is_linked_and_takes_the_orgs_values() {
    let mut env = push_env().await;
    let theirs = account(
        &env,
        "Acme Corporation",
        Some("https://WWW.Acme.example/home"),
    );
    let ours = company(&env, "Acme", "acme.example").await;

    drain(&mut env.worker).await;

    assert_eq!(env.sf_id("/companies", ours, "salesforce_id").await, theirs);
    assert_eq!(env.live("Account").len(), 1, "no second Account");
    let local = env.listed("/companies", ours).await;
    assert_eq!(
        local["name"], "Acme Corporation",
        "salesforce_wins: {local}"
    );
    assert_eq!(local["industry"], "Energy");
    let (_, history) = env.get(&format!("/companies/{ours}/history")).await;
    assert!(history.to_string().contains("push:match"), "{history}");
    let (_, outbox) = env.get("/outbox").await;
    assert_eq!(outbox["items"], json!([]));
}

#[tokio::test]
async fn without_a_domain_match_the_normalized_name_links() {
    let mut env = push_env().await;
    account(&env, "Globex Logistics", Some("globex-logistics.example"));
    let theirs = account(&env, "Globex, Inc.", None);
    let ours = company(&env, "GLOBEX", "https://globex.example").await;

    drain(&mut env.worker).await;

    assert_eq!(env.sf_id("/companies", ours, "salesforce_id").await, theirs);
    assert_eq!(env.live("Account").len(), 2);
}

#[tokio::test]
async fn ours_wins_links_and_keeps_our_values_on_both_sides() {
    let mut env = push_env_with(|c| c.sync.conflict_company = ConflictPolicy::OursWins).await;
    let theirs = account(&env, "Hooli XYZ", Some("hooli.example"));
    let ours = company(&env, "Hooli", "https://hooli.example").await;

    drain(&mut env.worker).await;

    assert_eq!(env.sf_id("/companies", ours, "salesforce_id").await, theirs);
    let local = env.listed("/companies", ours).await;
    assert_eq!(local["name"], "Hooli");
    assert_eq!(local["industry"], "Energy", "an empty field is filled");
    assert_eq!(
        env.record(&theirs)["Name"],
        "Hooli XYZ",
        "a link writes nothing"
    );
}

#[tokio::test]
async fn a_new_company_the_org_lacks_is_created_after_one_query_for_the_batch() {
    let mut env = push_env().await;
    account(&env, "Somebody Else", Some("else.example"));
    for i in 0..20 {
        company(&env, &format!("Newco {i}"), &format!("newco{i}.example")).await;
    }
    let before = query_calls(&env);

    drain(&mut env.worker).await;

    assert_eq!(query_calls(&env) - before, 1, "one look-up for the batch");
    assert_eq!(env.live("Account").len(), 21);
}

#[tokio::test]
async fn two_matching_accounts_are_a_conflict_and_nothing_is_created_until_it_is_resolved() {
    let mut env = push_env().await;
    let first = account(&env, "Initech", Some("https://initech.example"));
    let second = account(
        &env,
        "Initech EMEA",
        Some("http://www.initech.example/emea"),
    );
    account(&env, "Umbrella", Some("umbrella.example"));
    let picked = company(&env, "Initech", "initech.example").await;
    let fresh = company(&env, "Umbrella Health", "umbrella.example").await;
    account(&env, "Umbrella Corp", Some("umbrella.example"));

    drain(&mut env.worker).await;

    assert_eq!(env.live("Account").len(), 4, "nothing created");
    let (_, pending) = env.get("/outbox?state=pending").await;
    let pending = pending["items"].as_array().expect("items").clone();
    assert_eq!(pending.len(), 2, "{pending:?}");
    for e in &pending {
        let why = e["last_error"].as_str().unwrap_or_default();
        assert!(why.contains("resolve conflict"), "{why}");
    }
    let (_, dead) = env.get("/outbox?state=dead").await;
    assert_eq!(dead["items"], json!([]));
    let (_, conflicts) = env.get("/conflicts").await;
    let conflicts = conflicts["items"].as_array().expect("items").clone();
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    let of = |local: u64| -> Value {
        conflicts
            .iter()
            .find(|c| c["local"]["id"] == json!(local))
            .cloned()
            .expect("a conflict for the company")
    };
    let initech = of(picked);
    assert_eq!(initech["side"], "push");
    assert_eq!(initech["rung"], "domain");
    assert_eq!(initech["matches"].as_array().map(Vec::len), Some(2));

    // A person picks the second Account for Initech and a new one for Umbrella Health.
    let (code, body) = env
        .post(
            &format!("/conflicts/{}/resolve", initech["id"]),
            json!({"salesforce_id": second.as_str()}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = env
        .post(
            &format!("/conflicts/{}/resolve", of(fresh)["id"]),
            json!({"create": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    drain(&mut env.worker).await;

    assert_eq!(
        env.sf_id("/companies", picked, "salesforce_id").await,
        second
    );
    assert_ne!(
        env.sf_id("/companies", picked, "salesforce_id").await,
        first
    );
    let created = env.sf_id("/companies", fresh, "salesforce_id").await;
    assert_eq!(env.record(&created)["Name"], "Umbrella Health");
    assert_eq!(env.live("Account").len(), 5);
    let (_, conflicts) = env.get("/conflicts").await;
    assert_eq!(conflicts["items"], json!([]));
    let (_, outbox) = env.get("/outbox").await;
    assert_eq!(outbox["items"], json!([]));
}

#[tokio::test]
async fn the_people_of_a_company_just_linked_find_their_existing_contact_and_lead() {
    let mut env = push_env().await;
    let theirs = account(&env, "Cyberdyne Systems", Some("cyberdyne.example"));
    let miles = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Dyson", "Email": "Miles@Cyberdyne.example", "AccountId": theirs.as_str()}),
        )
        .expect("contact");
    let sarah = env
        .sim
        .create(
            "Lead",
            json!({"LastName": "Connor", "Company": "Cyberdyne Systems", "Email": "sarah@cyberdyne.example"}),
        )
        .expect("lead");
    let ours = company(&env, "Cyberdyne", "https://cyberdyne.example").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": ours, "last_name": "Dyson", "email": "miles@cyberdyne.example"}),
        )
        .await;
    let lead = env
        .create(
            "/contacts",
            json!({"company_id": ours, "last_name": "Connor", "email": "sarah@cyberdyne.example",
                   "push_as": "lead"}),
        )
        .await;

    drain(&mut env.worker).await;

    assert_eq!(env.sf_id("/companies", ours, "salesforce_id").await, theirs);
    assert_eq!(
        env.sf_id("/contacts", contact, "salesforce_id").await,
        miles
    );
    assert_eq!(env.sf_id("/contacts", lead, "salesforce_id").await, sarah);
    assert_eq!(env.live("Account").len(), 1);
    assert_eq!(env.live("Contact").len(), 1);
    assert_eq!(env.live("Lead").len(), 1);
}

/// An org holding `n` Accounts with two Contacts each, and local copies of them made by the
/// application: each company with the two people and a third the org lacks. Returns the local
/// companies.
async fn storm_records(env: &PushEnv, n: usize) -> Vec<u64> {
    let companies = n;
    for i in 0..companies {
        let website = format!("https://www.storm{i}.example");
        let a = account(env, &format!("Storm {i} Ltd"), Some(&website));
        for j in 0..2 {
            env.sim
                .create(
                    "Contact",
                    json!({"LastName": format!("P{i}-{j}"), "AccountId": a.as_str(),
                           "Email": format!("p{j}@storm{i}.example")}),
                )
                .expect("contact");
        }
    }
    let mut locals = Vec::new();
    for i in 0..companies {
        let c = company(env, &format!("Storm {i}"), &format!("storm{i}.example")).await;
        for j in 0..3 {
            env.create(
                "/contacts",
                json!({"company_id": c, "last_name": format!("P{i}-{j}"),
                       "email": format!("p{j}@storm{i}.example")}),
            )
            .await;
        }
        locals.push(c);
    }
    locals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_pushes_of_companies_the_org_holds_leaves_each_record_once_under_faults() {
    let mut env = push_env().await;
    let companies = 12;
    let locals = storm_records(&env, companies).await;
    env.sim.set_faults(Faults {
        error_5xx_rate: 0.3,
        lock_row_rate: 0.3,
        drop_connection_rate: 0.2,
        drop_after_commit_rate: 0.5,
        session_expiry_after_calls: Some(3),
        ..Faults::default()
    });
    // The same companies pushed again and again, between drains and while they wait.
    let mut reports = Vec::new();
    for round in 0..3 {
        for c in &locals {
            env.post(&format!("/companies/{c}/sync"), json!({})).await;
            env.patch(
                &format!("/companies/{c}"),
                json!({"industry": format!("Round {round}")}),
            )
            .await;
        }
        reports.extend(drain(&mut env.worker).await);
    }

    env.sim.set_faults(Faults::default());
    assert!(
        reports.iter().map(|r| r.retrying).sum::<usize>() > 0,
        "the faults caused no retry: {reports:?}"
    );
    assert_eq!(env.live("Account").len(), companies, "each Account once");
    // Two Contacts per company were there; the third is new and created once.
    assert_eq!(
        env.live("Contact").len(),
        companies * 3,
        "each Contact once"
    );
    assert_no_duplicates(&env.sim, "Contact");
    let mut emails: Vec<String> = env
        .live("Contact")
        .iter()
        .map(|c| c["Email"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), companies * 3);
    for (path, n) in [("/companies", companies), ("/contacts", companies * 3)] {
        let (_, list) = env.get(&format!("{path}?limit=1000")).await;
        let list = list["items"].as_array().expect("items").clone();
        assert_eq!(list.len(), n);
        assert!(
            list.iter().all(|r| r["salesforce_id"].is_string()),
            "{path}"
        );
    }
    let (_, outbox) = env.get("/outbox").await;
    assert_eq!(outbox["items"], json!([]));
}

#[tokio::test]
async fn a_push_conflict_is_shown_in_the_console_and_resolved_there_by_picking_the_orgs_record() {
    use crate::console_security::{csrf_of, get, post, sign_in};
    let mut env = push_env().await;
    account(&env, "Hooli", Some("https://hooli.example"));
    let second = account(&env, "Hooli XYZ", Some("hooli.example/xyz"));
    let local = company(&env, "Hooli", "hooli.example").await;
    drain(&mut env.worker).await;
    let (_, conflicts) = env.get("/conflicts").await;
    let id = conflicts["items"][0]["id"]
        .as_u64()
        .expect("a push conflict");

    let (session, _) = sign_in(&env.app).await;
    let page = get(&env.app, &format!("/orgs/{}", env.org), Some(&session)).await;
    let html = page.text().await.expect("html");
    assert!(
        html.contains(&format!("local company #{local} found 2 records")),
        "{html}"
    );
    assert!(html.contains(&format!("Link to {second}")), "{html}");
    let csrf = csrf_of(&html);
    let path = format!("/orgs/{}/conflicts/{id}/resolve", env.org);
    let form = [("csrf", csrf.as_str()), ("salesforce_id", second.as_str())];
    let resp = post(&env.app, &path, &session, &form).await;
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER);
    drain(&mut env.worker).await;

    assert_eq!(
        env.sf_id("/companies", local, "salesforce_id").await,
        second
    );
    assert_eq!(env.live("Account").len(), 2, "nothing created");
    let (_, conflicts) = env.get("/conflicts").await;
    assert_eq!(conflicts["items"], json!([]));
}
