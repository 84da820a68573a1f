//! The change log through the running service: each kind of local change (pulled creates,
//! updates, deletes, merges, conversions; the app's writes and their pushes; conflicts opened
//! and resolved; dead letters) is one entry, in commit order, whose `data` is the record as the
//! API shows it.

use std::time::Duration;

use serde_json::{Value, json};
use sfsync::simulator::Faults;
use sfsync::sync::sweep::sweep_org;

use crate::pull_rules::{Folded, convert_after_its_contact, local_company, loser_with_a_contact};
use crate::push_support::{drain, push_env};
use crate::support::env::{SyncEnv, start};
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(10);

/// Every entry of the feed as `(type, data.id)`, and the entries themselves.
async fn feed_of(env: &SyncEnv) -> Vec<Value> {
    let (status, page) = env
        .api(reqwest::Method::GET, "/changes?limit=1000", None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["changes"].as_array().cloned().unwrap_or_default()
}

fn types(entries: &[Value]) -> Vec<(String, u64)> {
    entries
        .iter()
        .map(|e| {
            let t = e["type"].as_str().unwrap_or_default().to_string();
            (t, e["data"]["id"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn pair(t: &str, id: u64) -> (String, u64) {
    (t.to_string(), id)
}

#[tokio::test]
async fn pulled_creates_updates_deletes_and_merges_are_logged_in_commit_order() {
    let env = start().await;
    let acme = env
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("account");
    let local = eventually("acme", WAIT, || async { env.company_of(&acme) }).await;
    env.settle(WAIT).await;
    env.sim
        .update(&acme, json!({"Industry": "Energy"}))
        .expect("update");
    eventually("the update", WAIT, || async {
        (env.company_of(&acme)?.industry.as_deref() == Some("Energy")).then_some(())
    })
    .await;
    let (loser, local_loser, local_person) = loser_with_a_contact(&env).await;
    env.sim
        .merge(&acme, std::slice::from_ref(&loser))
        .expect("merge");
    // Merges and deletes send no Outbound Message: the sweep finds them.
    sweep_org(env.store(), &env.client()).await.expect("sweep");
    eventually("the merge", WAIT, || async {
        let gone = env.store().companies(&env.org).ok()?;
        gone.iter()
            .any(|c| c.id == local_loser.id && c.salesforce_id.is_none())
            .then_some(())
    })
    .await;
    env.sim.delete(&acme).expect("delete");
    sweep_org(env.store(), &env.client()).await.expect("sweep");
    eventually("the unlink", WAIT, || async {
        env.company_of(&acme).is_none().then_some(())
    })
    .await;
    env.settle(WAIT).await;

    let entries = feed_of(&env).await;
    assert_eq!(
        types(&entries),
        vec![
            pair("company.created", local.id),
            pair("company.updated", local.id),
            pair("company.created", local_loser.id),
            pair("contact.created", local_person.id),
            pair("contact.updated", local_person.id),
            pair("company.merged", local_loser.id),
            pair("company.deleted", local.id),
        ],
        "{entries:#?}"
    );
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(entries[1]["data"]["industry"], "Energy");
    assert_eq!(entries[4]["data"]["company_id"], local.id, "re-pointed");
    assert_eq!(entries[6]["data"]["salesforce_id"], Value::Null, "unlinked");
    assert_eq!(entries[0]["org_id"], env.org.as_str());
    // `data` is the record as the API shows it.
    let (_, shown) = env
        .api(
            reqwest::Method::GET,
            &format!("/companies/{}", local.id),
            None,
        )
        .await;
    assert_eq!(entries[6]["data"], shown);
}

#[tokio::test]
async fn a_conflict_opened_replaced_and_resolved_is_logged_with_its_view() {
    let env = start().await;
    // Written straight to the store, with no kind logged: each is logged as `updated`.
    local_company(env.store(), &env.org, "Dup One", Some("dup.com"));
    local_company(env.store(), &env.org, "Dup Two", Some("https://dup.com"));
    let id = env
        .sim
        .create("Account", json!({"Name": "Dup", "Website": "www.dup.com"}))
        .expect("create");
    env.settle(WAIT).await;
    env.sim
        .update(&id, json!({"Industry": "Retail"}))
        .expect("update");
    let replaced = eventually("the refreshed conflict", WAIT, || async {
        let entries = feed_of(&env).await;
        (entries.len() >= 5).then_some(entries)
    })
    .await;
    let second = replaced[4]["data"]["id"].as_u64().expect("conflict id");
    let (status, _) = env
        .api(
            reqwest::Method::POST,
            &format!("/conflicts/{second}/resolve"),
            Some(json!({"create": true})),
        )
        .await;
    assert_eq!(status, 200);

    let entries = feed_of(&env).await;
    let kinds: Vec<String> = types(&entries).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        kinds,
        [
            "company.updated",
            "company.updated",
            "conflict.opened",
            "conflict.resolved",
            "conflict.opened",
            "company.created",
            "conflict.resolved",
        ]
    );
    let opened = &entries[2]["data"];
    assert_eq!(opened["rung"], "domain");
    assert_eq!(opened["salesforce_id"], id.as_str());
    assert_eq!(
        opened["candidate_records"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        entries[3]["data"]["id"], opened["id"],
        "the first one replaced"
    );
    assert_eq!(entries[6]["data"]["id"], second);
    assert_eq!(entries[5]["data"]["salesforce_id"], id.as_str());
}

#[tokio::test]
async fn a_conversion_that_folds_a_duplicate_logs_the_removal_and_the_conversion() {
    let env = start().await;
    let Folded {
        local,
        duplicate,
        contact,
    } = convert_after_its_contact(&env).await;

    let entries = feed_of(&env).await;
    let logged = types(&entries);
    let at = |t: &str, id: u64| logged.iter().position(|p| *p == pair(t, id));
    let created = at("contact.created", local.id).expect("the lead's contact");
    let duplicated = at("contact.created", duplicate.id).expect("the duplicate");
    let removed = at("contact.removed", duplicate.id).expect("the duplicate removed");
    let converted = at("contact.converted", local.id).expect("the conversion");
    assert!(created < duplicated && duplicated < removed, "{logged:?}");
    assert_eq!(converted, removed + 1, "one transaction: {logged:?}");
    assert_eq!(
        entries[converted]["data"]["salesforce_id"],
        contact.as_str()
    );
    assert_eq!(entries[converted]["data"]["salesforce_kind"], "contact");
    assert_eq!(entries[removed]["data"]["email"], "ron@vgb.com");
}

#[tokio::test]
async fn the_apps_writes_their_pushes_and_a_dead_letter_are_logged() {
    let mut env = push_env().await;
    let company = env.company("Acme").await;
    let (status, _) = env
        .patch(
            &format!("/companies/{company}"),
            json!({"industry": "Energy"}),
        )
        .await;
    assert_eq!(status, 200);
    drain(&mut env.worker).await;
    let unlucky = env.company("Unlucky").await;
    env.sim.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });
    drain(&mut env.worker).await;
    let (_, dead) = env.get("/outbox?state=dead").await;
    let entry = dead["items"][0]["id"].as_u64().expect("dead letter");
    let (status, _) = env.post(&format!("/outbox/{entry}/retry"), json!({})).await;
    assert_eq!(status, 200);

    let (_, page) = env.get("/changes?limit=1000").await;
    let entries = page["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        types(&entries),
        vec![
            pair("company.created", company),
            pair("company.updated", company),
            pair("company.pushed", company),
            pair("company.created", unlucky),
            pair("outbox.dead_letter", entry),
            pair("outbox.resolved", entry),
        ],
        "{entries:#?}"
    );
    let account = entries[2]["data"]["salesforce_id"]
        .as_str()
        .expect("the id");
    assert!(account.starts_with("001"), "{account}");
    assert_eq!(entries[4]["data"]["state"], "dead");
    assert_eq!(entries[4]["data"]["record_id"], unlucky);
    assert_eq!(entries[5]["data"]["state"], "pending");
}
