//! Exactly once in effect: faults, an exhausted API budget and a restart in the middle of a
//! drain neither lose nor duplicate a pushed record.

use chrono::Utc;
use serde_json::{Value, json};
use sfsync::simulator::Faults;
use sfsync::store::Store;
use sfsync::worker::outbox::Outcome;

use crate::support::push::*;

/// Creates `companies` companies, each with two contacts, an email, a meeting and an opportunity.
async fn mixed_changes(env: &PushEnv, companies: usize) -> usize {
    let mut n = 0;
    for i in 0..companies {
        let company = env.company(&format!("Company{i}")).await;
        n += 1;
        for j in 0..2 {
            let contact = env
                .create(
                    "/contacts",
                    json!({"company_id": company, "last_name": format!("Person{i}-{j}"),
                           "email": format!("p{i}.{j}@company{i}.example")}),
                )
                .await;
            env.create(
                "/activities",
                json!({"kind": if j == 0 { "email_sent" } else { "meeting_booked" },
                       "contact_id": contact, "subject": format!("Touch {i}-{j}")}),
            )
            .await;
            n += 2;
        }
        env.create(
            "/company-products",
            json!({"company_id": company, "product": "Plan", "status": "OPPORTUNITY", "opportunity_size": 1000.0}),
        )
        .await;
        n += 1;
    }
    n
}

/// Every local record is linked, and the org holds each exactly once.
async fn assert_landed_once(env: &PushEnv, companies: usize) {
    for (path, field) in [
        ("/companies", "salesforce_id"),
        ("/contacts", "salesforce_id"),
        ("/activities", "salesforce_id"),
        ("/company-products", "salesforce_opportunity_id"),
    ] {
        let (_, list) = env.get(path).await;
        let list = list["items"].clone();
        for r in list.as_array().expect("list") {
            assert!(r[field].is_string(), "{path}: unlinked {r}");
        }
    }
    for (object, expected) in [
        ("Account", companies),
        ("Contact", companies * 2),
        ("Task", companies),
        ("Event", companies),
        ("Opportunity", companies),
    ] {
        assert_eq!(assert_no_duplicates(&env.sim, object), expected, "{object}");
        assert_eq!(env.live(object).len(), expected, "{object} count");
    }
    let (_, outbox) = env.get("/outbox").await;
    let outbox = outbox["items"].clone();
    assert_eq!(outbox, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_lands_exactly_once_under_faults() {
    let mut env = push_env().await;
    let companies = 6;
    mixed_changes(&env, companies).await;
    env.sim.set_faults(Faults {
        error_5xx_rate: 0.15,
        lock_row_rate: 0.15,
        drop_connection_rate: 0.1,
        drop_after_commit_rate: 0.5,
        session_expiry_after_calls: Some(4),
        ..Faults::default()
    });

    let reports = drain(&mut env.worker).await;

    env.sim.set_faults(Faults::default());
    assert!(
        reports.iter().map(|r| r.retrying).sum::<usize>() > 0,
        "the faults caused no retry: {reports:?}"
    );
    assert_landed_once(&env, companies).await;
}

#[tokio::test]
async fn an_exhausted_api_budget_pauses_the_org_until_calls_are_available() {
    let mut env = push_env().await;
    env.company("Limited").await;
    let used = env.sim.api_usage();
    env.sim.set_faults(Faults {
        daily_api_limit: Some(used),
        ..Faults::default()
    });

    let first = env.worker.step().await.expect("step");
    assert!(env.worker.is_paused(), "{first:?}");
    assert_eq!(first.into_report().delivered, 0);
    // While paused, nothing is sent.
    let calls = env.sim.api_calls().total;
    let again = env.worker.step().await.expect("step");
    assert_eq!(again, Outcome::Paused);
    assert_eq!(env.sim.api_calls().total, calls);
    let (_, pending) = env.get("/outbox?state=pending").await;
    let pending = pending["items"].clone();
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    let (_, dead) = env.get("/outbox?state=dead").await;
    let dead = dead["items"].clone();
    assert_eq!(dead, json!([]));

    // Still spent when the pause ends: paused again.
    let later = env
        .worker
        .step_at(Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("step");
    assert_eq!(later, Outcome::Paused);

    // A new window: work resumes.
    env.sim.set_faults(Faults::default());
    env.sim.reset_api_usage();
    drain(&mut env.worker).await;
    assert_eq!(env.live("Account").len(), 1);
}

#[tokio::test]
async fn the_configured_share_of_the_budget_pauses_before_the_limit() {
    let mut env = push_env().await;
    env.company("First").await;
    drain(&mut env.worker).await;
    // The next company costs two calls (look for it; create it and read its stamp in one
    // composite call); afterwards 80 % of the budget is used, the configured share.
    let after = env.sim.api_usage() + 2;
    assert!(after >= 4);
    env.sim.set_faults(Faults {
        daily_api_limit: Some(after * 5 / 4),
        ..Faults::default()
    });
    env.company("Second").await;
    let report = env.worker.step().await.expect("step").into_report();
    assert_eq!(report.delivered, 1);
    assert_eq!(env.sim.api_usage(), after);

    env.company("Third").await;
    let report = env.worker.step().await.expect("step");

    assert_eq!(report, Outcome::Paused);
    assert_eq!(env.sim.api_usage(), after, "no call once the share is used");
    assert_eq!(env.live("Account").len(), 2);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_drain_loses_and_duplicates_nothing() {
    let env = push_env().await;
    let companies = 3;
    mixed_changes(&env, companies).await;
    // Every write commits in Salesforce and its answer is lost.
    env.sim.set_faults(Faults {
        drop_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let PushEnv {
        env: SyncEnv { sim, app, org },
        mut worker,
    } = env;
    let report = worker.step().await.expect("step").into_report();
    assert!(report.retrying > 0, "{report:?}");
    assert!(
        !sim.list("Account").is_empty(),
        "the creates reached Salesforce"
    );

    // The process goes away mid-drain.
    drop(worker);
    let dir = app.stop().await;
    sim.set_faults(Faults::default());

    let store = Store::open(&dir.path().join("store")).expect("reopen");
    let pending = store.outbox_entries(&org, None).expect("entries");
    assert!(!pending.is_empty());
    assert!(
        pending.iter().any(|e| e.maybe_sent),
        "creates marked as maybe sent"
    );
    let mut worker = worker_on(&sim, &store);
    drain(&mut worker).await;

    assert!(
        store
            .outbox_entries(&org, None)
            .expect("entries")
            .is_empty()
    );
    for c in store.contacts(&org).expect("contacts") {
        assert!(c.salesforce_id.is_some());
    }
    for a in store.activities(&org).expect("activities") {
        assert!(a.salesforce_id.is_some());
    }
    for (object, expected) in [
        ("Account", companies),
        ("Contact", companies * 2),
        ("Task", companies),
        ("Event", companies),
        ("Opportunity", companies),
    ] {
        let live: Vec<Value> = sim
            .list(object)
            .into_iter()
            .filter(|r| r["IsDeleted"] != json!(true))
            .collect();
        assert_eq!(live.len(), expected, "{object}");
        assert_eq!(assert_no_duplicates(&sim, object), expected, "{object}");
    }
}

#[tokio::test]
async fn an_entry_that_keeps_failing_transiently_becomes_a_dead_letter_after_max_attempts() {
    let mut env = push_env().await;
    let company = env.company("Unlucky").await;
    env.sim.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });

    let reports = drain(&mut env.worker).await;

    let (_, dead) = env.get("/outbox?state=dead").await;
    let dead = dead["items"].clone();
    let message = dead[0]["last_error"].as_str().expect("message");
    assert!(
        message.starts_with("gave up after 50 attempts"),
        "{message}"
    );
    assert_eq!(reports.iter().map(|r| r.dead).sum::<usize>(), 1);
    // "Sync to Salesforce" gives it another chance.
    env.sim.set_faults(Faults::default());
    let (status, _) = env
        .post(&format!("/companies/{company}/sync"), json!({}))
        .await;
    assert_eq!(status, 202);
    drain(&mut env.worker).await;
    assert_eq!(env.live("Account").len(), 1);
}

#[tokio::test]
async fn with_an_external_id_marker_a_retried_create_is_an_idempotent_upsert() {
    let env = push_env().await;
    let companies = 2;
    mixed_changes(&env, companies).await;
    let mut worker = sfsync::worker::outbox::OutboxWorker::new(
        env.app.store().clone(),
        client_for(&env.sim, env.app.store()),
        sfsync::config::OutboxConfig {
            upsert_on_marker: true,
            ..outbox_config()
        },
        sfsync::domain::PushAs::Contact,
    );
    env.sim.set_faults(Faults {
        drop_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let first = worker.step().await.expect("step").into_report();
    assert!(first.retrying > 0, "{first:?}");
    env.sim.set_faults(Faults::default());

    drain(&mut worker).await;

    // Sent alone or as a subrequest of a composite call.
    let calls = env.sim.api_calls();
    let upserts: u64 = calls
        .by_endpoint
        .iter()
        .chain(&calls.by_subrequest)
        .filter(|(k, _)| k.starts_with("PATCH /composite/sobjects/{object}/{field}"))
        .map(|(_, n)| n)
        .sum();
    assert!(upserts > 0, "{:?}", env.sim.api_calls());
    assert_landed_once(&env, companies).await;
}

/// A create that reached Salesforce unanswered, then a local change before the retry: the retry
/// finds the earlier create by its marker, and the org must still end with the newer values,
/// which that create never carried.
#[tokio::test]
async fn a_change_made_after_an_unanswered_create_still_reaches_the_org() {
    let mut env = push_env().await;
    let company = env.company("Before").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Early", "email": "early@before.example"}),
        )
        .await;
    env.sim.set_faults(Faults {
        drop_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let first = env.worker.step().await.expect("step").into_report();
    assert!(first.retrying > 0, "{first:?}");
    assert_eq!(env.live("Account").len(), 1, "the create reached the org");
    let (status, _) = env
        .patch(&format!("/companies/{company}"), json!({"name": "After"}))
        .await;
    assert_eq!(status, 200);
    // Still unanswered: the Account is found by its marker, and the Contact's create goes out.
    for _ in 0..20 {
        if !env.live("Contact").is_empty() {
            break;
        }
        env.worker.step().await.expect("step");
    }
    assert_eq!(
        env.live("Contact").len(),
        1,
        "the contact's create reached the org"
    );
    let (status, _) = env
        .patch(
            &format!("/contacts/{contact}"),
            json!({"last_name": "Later"}),
        )
        .await;
    assert_eq!(status, 200);
    env.sim.set_faults(Faults::default());
    drain(&mut env.worker).await;

    let accounts = env.live("Account");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["Name"], json!("After"), "{accounts:?}");
    let contacts = env.live("Contact");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["LastName"], json!("Later"), "{contacts:?}");
    let (_, outbox) = env.get("/outbox").await;
    assert_eq!(outbox["items"], json!([]));
}
