//! The catch-up sweep: changes made while the service was down, whose Outbound Messages never
//! arrived, are found by the `(SystemModstamp, Id)` cursor at the next start-up.

use std::time::Duration;

use serde_json::json;
use sfsync::domain::ObjectType;
use sfsync::simulator::{SeedSpec, SimulatorConfig};
use sfsync::sync::sweep;

use crate::support::env::{SyncEnv as PullEnv, serve};
use crate::support::eventually;
use crate::support::org::start as start_sim;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_start_up_sweep_recovers_changes_made_while_the_service_was_down() {
    // Arrange: an org the service learns about through its first start-up sweep alone.
    let sim = start_sim(SimulatorConfig::default()).await;
    let seeded = sim
        .seed_org(&SeedSpec {
            accounts: 6,
            contacts_per_account: 2,
            ..SeedSpec::default()
        })
        .expect("seed");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = serve(&sim, dir, |c| c.sync.sweep_interval_s = 3600, true, true).await;
    let env = PullEnv {
        org: sim.org_id(),
        sim: sim.clone(),
        app,
    };
    eventually("the initial sync", WAIT, || async {
        (env.store().companies(&env.org).ok()?.len() == 6
            && env.store().contacts(&env.org).ok()?.len() == 12)
            .then_some(())
    })
    .await;
    let first_cursor = sweep::cursor(env.store(), &env.org, ObjectType::Account)
        .expect("cursor")
        .expect("the first sweep stored its cursor");
    let survivor = env.company_of(&seeded.accounts[2]).expect("survivor");
    let merged_away = env.company_of(&seeded.accounts[3]).expect("loser");
    let deleted = env.contact_of(&seeded.contacts[0]).expect("contact");
    let PullEnv { sim, app, org } = env;
    let dir = app.stop().await;

    // Act: while the service is down, Outbound Messages go nowhere and are never delivered.
    sim.set_outbound_url(None);
    sim.update(&seeded.accounts[0], json!({"Name": "Renamed While Down"}))
        .expect("rename");
    sim.delete(&seeded.contacts[0]).expect("delete");
    sim.merge(&seeded.accounts[2], &[seeded.accounts[3].clone()])
        .expect("merge");
    let born = sim
        .create("Account", json!({"Name": "Born While Down"}))
        .expect("create");
    let app = serve(&sim, dir, |c| c.sync.sweep_interval_s = 3600, true, false).await;
    let env = PullEnv { org, sim, app };

    // Assert: the start-up sweep found all four.
    eventually("the recovered changes", WAIT, || async {
        let renamed = env.company_of(&seeded.accounts[0])?.name == "Renamed While Down";
        let unlinked = env
            .store()
            .contacts(&env.org)
            .ok()?
            .into_iter()
            .find(|c| c.id == deleted.id)?
            .salesforce_id
            .is_none();
        let moved = env
            .store()
            .contacts(&env.org)
            .ok()?
            .into_iter()
            .filter(|c| c.company_id == Some(survivor.id))
            .count()
            == 4;
        let loser_unlinked = env
            .store()
            .companies(&env.org)
            .ok()?
            .into_iter()
            .find(|c| c.id == merged_away.id)?
            .salesforce_id
            .is_none();
        let created = env.company_of(&born).is_some();
        (renamed && unlinked && moved && loser_unlinked && created).then_some(())
    })
    .await;
    let cursor = sweep::cursor(env.store(), &env.org, ObjectType::Account)
        .expect("cursor")
        .expect("cursor");
    assert!(cursor.stamp_ms >= first_cursor.stamp_ms);
    assert!(
        env.sim.outbound_stats().pending > 0,
        "the Outbound Messages were never delivered"
    );
    let calls = env.client().api_calls();
    assert!(
        calls <= 20,
        "a sweep and its pulls stay cheap: {calls} calls"
    );
}

#[tokio::test]
async fn a_resync_request_re_reads_an_object_from_the_beginning_once() {
    let env = crate::support::env::start().await;
    env.sim.set_outbound_url(None);
    env.sim
        .seed_org(&SeedSpec {
            accounts: 5,
            ..SeedSpec::default()
        })
        .expect("seed");
    // Sweeps "ten seconds later": every row is settled, so the cursor passes them all.
    let later = || chrono::Utc::now() + chrono::Duration::seconds(10);
    let first = sweep::sweep_org_at(env.store(), &env.client(), later())
        .await
        .expect("sweep");
    assert_eq!(first.changed, 5);
    let quiet = sweep::sweep_org_at(env.store(), &env.client(), later())
        .await
        .expect("sweep");
    assert_eq!(quiet.changed, 0, "the cursor is past every row");
    // A change event said Account records were missed (a wildcard or overflow event).
    env.store()
        .ingest(
            &env.org,
            &[sfsync::store::Delivery {
                dedupe_id: "gap-1".into(),
                source: sfsync::store::DedupeSource::WebhookId,
                notifications: vec![],
                resync: vec![ObjectType::Account],
                digest: None,
            }],
            chrono::Utc::now(),
        )
        .expect("ingest");
    let again = sweep::sweep_org_at(env.store(), &env.client(), later())
        .await
        .expect("sweep");
    assert_eq!(again.full_rereads, 1);
    assert_eq!(again.changed, 5, "every account read again");
    assert_eq!(again.duplicates, 0, "and queued again");
    assert!(
        env.store()
            .resync_requests(&env.org)
            .expect("requests")
            .is_empty()
    );
    let after = sweep::sweep_org_at(env.store(), &env.client(), later())
        .await
        .expect("sweep");
    assert_eq!((after.full_rereads, after.changed), (0, 0));
    env.settle(WAIT).await;
    assert_eq!(env.store().companies(&env.org).expect("list").len(), 5);
}
