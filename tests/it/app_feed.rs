//! Done when: an app that only listens to sfsync's webhooks, and one that only follows the feed,
//! each end with the same records as sfsync's store after a storm with faults on both sides
//! (the org's 5xx, dropped connections and expiring sessions; the app's 5xx and slow answers);
//! and after a restart deliveries resume at the cursor, nothing lost, nothing out of order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sfsync::domain::SalesforceId;
use sfsync::simulator::{SeedSummary, SimulatorConfig};
use sfsync::tools::app_receiver::AppFaults;
use tokio_util::sync::CancellationToken;

use crate::app_support::{AppCopy, caught_up, differences, start_app_env};
use crate::pull_storm::{seed_stormy, storm_org, stormy_faults};
use crate::support::env::SyncEnv;
use crate::support::{TOKEN, eventually};

const WAIT: Duration = Duration::from_secs(15);

/// A reader that only follows `GET /api/v1/changes` (long polls), building its own copy; it
/// checks that no sequence number is ever skipped.
fn follow(
    base: String,
    read: Arc<AtomicU64>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<AppCopy> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (mut copy, mut after) = (AppCopy::default(), 0u64);
        while !stop.is_cancelled() {
            let url = format!("{base}/api/v1/changes?after={after}&limit=500&wait=1");
            let Ok(resp) = http.get(url).bearer_auth(TOKEN).send().await else {
                continue;
            };
            let page: Value = resp.json().await.expect("a page");
            for e in page["changes"].as_array().cloned().unwrap_or_default() {
                assert_eq!(e["seq"].as_u64(), Some(after + 1), "a gap in the feed");
                after += 1;
                copy.apply(&e);
            }
            read.store(after, Ordering::Release);
        }
        copy
    })
}

/// Waits until nothing moves: the org has sent everything, the inbox and the outbox are empty,
/// the webhook has settled every change, and the log stood still for a moment.
async fn quiet(env: &SyncEnv, timeout: Duration) -> u64 {
    eventually("everything to settle", timeout, || async {
        env.settle(timeout).await;
        let (_, status) = env.api(reqwest::Method::GET, "/status", None).await;
        let head = env.store().committed_changes();
        let idle =
            status["outbox"]["pending"] == 0 && status["app_webhooks"][0]["lag_entries"] == 0;
        tokio::time::sleep(Duration::from_millis(300)).await;
        (idle && env.store().committed_changes() == head).then_some(head)
    })
    .await
}

/// A round of the storm: a change in the org, or one of the app's own writes.
async fn change(env: &SyncEnv, seeded: &SeedSummary, round: u64) {
    let pick = |ids: &[SalesforceId]| ids[(round as usize * 7919) % ids.len()].clone();
    let result = match round % 6 {
        0 => env.sim.update(
            &pick(&seeded.accounts),
            json!({"Industry": format!("Industry {}", round % 7), "NumberOfEmployees": round}),
        ),
        1 => env.sim.update(
            &pick(&seeded.contacts),
            json!({"Title": format!("Title {round}"), "Phone": format!("555-{round:04}")}),
        ),
        2 => env.sim.update(
            &pick(&seeded.leads),
            json!({"Title": format!("Lead {round}")}),
        ),
        3 => env.sim.update(
            &pick(&seeded.opportunities),
            json!({"StageName": "Qualification", "Amount": round as f64 * 10.0}),
        ),
        4 => {
            let body = json!({"last_name": format!("App {round}"),
                              "email": format!("app{round}@example.com")});
            let (status, _) = env
                .api(reqwest::Method::POST, "/contacts", Some(body))
                .await;
            assert_eq!(status, 201);
            Ok(())
        }
        _ => {
            let body = json!({"kind": "email_sent", "subject": format!("Hello {round}")});
            let (status, _) = env
                .api(reqwest::Method::POST, "/activities", Some(body))
                .await;
            assert_eq!(status, 201);
            Ok(())
        }
    };
    result.expect("change");
}

#[tokio::test]
async fn an_app_that_only_listens_ends_with_the_services_records_after_a_storm_with_faults_on_both_sides()
 {
    let config = storm_org(13);
    let s = start_app_env(config, |c| {
        c.changes.max_attempts = 1000;
        c.changes.delivery_timeout_s = 2;
        c.changes.delivery_concurrency = 8;
    })
    .await;
    let env = &s.env;
    let seeded = seed_stormy(env, 20, 2, 10);
    let stop = CancellationToken::new();
    let read = Arc::new(AtomicU64::new(0));
    let follower = follow(env.app.base.clone(), read.clone(), stop.clone());
    env.sim.set_faults(stormy_faults());
    s.app.set_faults(AppFaults {
        error_rate: 0.25,
        slow_rate: 0.1,
        slow_ms: 300,
    });
    for round in 0..300u64 {
        change(env, &seeded, round).await;
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // A cap for a hang, not a speed target.
    let head = quiet(env, Duration::from_secs(180)).await;
    eventually("the follower", WAIT, || async {
        (read.load(Ordering::Acquire) == head).then_some(())
    })
    .await;
    stop.cancel();
    let followed = follower.await.expect("follower");

    let received = s.app.received();
    let mut listened = AppCopy::default();
    let mut order: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for r in &received {
        let entry = serde_json::to_value(&r.entry).expect("json");
        listened.apply(&entry);
        let key = (r.entry.kind.kind.as_str().to_string(), r.entry.subject_id());
        let last = order.entry(key.clone()).or_insert(0);
        assert!(
            r.entry.seq >= *last,
            "{key:?}: {} after {last}",
            r.entry.seq
        );
        *last = r.entry.seq;
    }
    let diffs = differences(env, &listened).await;
    assert!(
        diffs.is_empty(),
        "the listening app differs:\n{}",
        diffs.join("\n")
    );
    let diffs = differences(env, &followed).await;
    assert!(
        diffs.is_empty(),
        "the following app differs:\n{}",
        diffs.join("\n")
    );

    let (posts, rejected) = s.app.posts_and_rejected();
    assert_eq!(rejected, 0, "every POST verified");
    assert!(
        posts > received.len() as u64,
        "the app refused some: {posts} posts"
    );
    let hook = caught_up(env, WAIT).await;
    assert_eq!(hook["dead_letters"], 0);
    let kinds: std::collections::BTreeSet<String> =
        received.iter().map(|r| r.entry.kind.to_string()).collect();
    for kind in [
        "company.created",
        "contact.pushed",
        "activity.pushed",
        "company_product.updated",
    ] {
        assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn after_a_restart_deliveries_resume_at_the_cursor_nothing_lost_nothing_out_of_order() {
    let s = start_app_env(SimulatorConfig::default(), |_| {}).await;
    for name in ["One", "Two", "Three"] {
        s.env
            .sim
            .create("Account", json!({"Name": name}))
            .expect("account");
    }
    caught_up(&s.env, WAIT).await;
    eventually("three deliveries", WAIT, || async {
        (s.app.received().len() == 3).then_some(())
    })
    .await;
    s.env.sim.set_outbound_url(None);
    // While sfsync restarts the org goes on; its messages wait for it.
    for name in ["Four", "Five"] {
        s.env
            .sim
            .create("Account", json!({"Name": name}))
            .expect("account");
    }
    let s = s.restarted().await;
    eventually("five deliveries", WAIT, || async {
        (s.app.received().len() >= 5).then_some(())
    })
    .await;
    caught_up(&s.env, WAIT).await;

    let seqs: Vec<u64> = s.app.received().iter().map(|r| r.entry.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "each once, in order");
    let (_, page) = s
        .env
        .api(reqwest::Method::GET, "/changes?after=3", None)
        .await;
    let mut names: Vec<&str> = page["changes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["data"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    assert_eq!(names, ["Five", "Four"]);
    assert_eq!(page["next"], 5);
}

#[tokio::test]
async fn a_delivery_under_way_at_shutdown_finishes_and_is_not_sent_again_after_the_restart() {
    let s = start_app_env(SimulatorConfig::default(), |_| {}).await;
    // The app holds every answer, so the service is stopped while the POST is under way.
    s.app.set_faults(AppFaults {
        slow_rate: 1.0,
        slow_ms: 1_500,
        ..AppFaults::default()
    });
    s.env
        .sim
        .create("Account", json!({"Name": "Held"}))
        .expect("account");
    eventually("the delivery under way", WAIT, || async {
        (s.app.arrived() >= 1).then_some(())
    })
    .await;
    assert!(s.app.received().is_empty(), "still held by the app");
    let s = s.restarted().await;
    s.app.set_faults(AppFaults::default());
    let hook = caught_up(&s.env, WAIT).await;
    assert_eq!(hook["cursor"], 1, "{hook}");
    assert_eq!(hook["delivered_total"], 0, "nothing sent again: {hook}");
    let ids: Vec<String> = s.app.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["chg_1"], "taken once, before the stop ended");
}
