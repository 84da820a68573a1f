//! The inbox worker driven one `step()` at a time: batching, skipping what is already applied,
//! back-off after a failed pull, the pause on `REQUEST_LIMIT_EXCEEDED`, the session refresh,
//! and the re-check that keeps a notification that arrived during a pull.

use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use serde_json::json;
use sfsync::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
use sfsync::simulator::{Faults, SeedSpec, Simulator, SimulatorConfig};
use sfsync::store::{DedupeSource, Delivery, Store};
use sfsync::sync::orgs::PullContext;
use sfsync::sync::pull::{self, Origin, Rules, Target};
use sfsync::telemetry::Gauges;
use sfsync::worker::Backoff;
use sfsync::worker::inbox::{InboxSettings, InboxWorker, Outcome};
use tempfile::TempDir;

use crate::support::org::{client_for, start as start_sim};

struct Rig {
    sim: Simulator,
    store: Store,
    org: OrgId,
    ctx: PullContext,
    _dir: TempDir,
}

async fn rig() -> Rig {
    let sim = start_sim(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let ctx = PullContext::new(Rules::default());
    ctx.orgs.insert(client_for(&sim, &store));
    Rig {
        org: sim.org_id(),
        sim,
        store,
        ctx,
        _dir: dir,
    }
}

fn settings() -> InboxSettings {
    InboxSettings {
        gather: Duration::ZERO,
        backoff: Backoff {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(60),
        },
        ..InboxSettings::default()
    }
}

impl Rig {
    fn worker(&self) -> InboxWorker {
        InboxWorker::new(self.store.clone(), self.ctx.clone(), settings())
    }

    fn notify(&self, object: ObjectType, id: &SalesforceId, tag: &str, stamp_s: Option<i64>) {
        self.store
            .ingest(
                &self.org,
                &[Delivery {
                    dedupe_id: format!("test-{tag}"),
                    source: DedupeSource::WebhookId,
                    notifications: vec![Notification {
                        object,
                        record_id: id.clone(),
                        change: ChangeType::Update,
                        system_modstamp: stamp_s.and_then(|s| Utc.timestamp_opt(s, 0).single()),
                        modified_by: None,
                    }],
                    resync: vec![],
                    digest: None,
                }],
                Utc::now(),
            )
            .expect("ingest");
    }

    /// `n` Accounts made in the org, their ids.
    fn accounts(&self, n: usize) -> Vec<SalesforceId> {
        let spec = SeedSpec {
            accounts: n,
            ..SeedSpec::default()
        };
        self.sim.seed_org(&spec).expect("seed").accounts
    }

    fn calls(&self) -> u64 {
        self.ctx.orgs.get(&self.org).expect("client").api_calls()
    }
}

fn worked(outcome: Outcome) -> sfsync::worker::inbox::StepReport {
    match outcome {
        Outcome::Worked(r) => r,
        other => panic!("expected work, got {other:?}"),
    }
}

#[tokio::test]
async fn one_step_pulls_two_thousand_four_hundred_records_in_two_calls_and_clears_them() {
    let rig = rig().await;
    let accounts = rig.accounts(2_400);
    for (i, id) in accounts.iter().enumerate() {
        rig.notify(ObjectType::Account, id, &format!("a{i}"), None);
        rig.notify(ObjectType::Account, id, &format!("b{i}"), None);
    }
    assert_eq!(rig.store.pending_count(), 2_400);
    let mut worker = rig.worker();
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(report.pulled, 2_400);
    assert_eq!(report.applied, 2_400);
    assert_eq!(report.api_calls, 2, "retrieves of up to 2,000 ids");
    assert_eq!(rig.store.pending_count(), 0);
    assert_eq!(worker.step().await.expect("step"), Outcome::Idle);
}

#[tokio::test]
async fn a_step_takes_the_next_due_records_while_its_last_batches_apply_never_twice() {
    let rig = rig().await;
    let accounts = rig.accounts(3_500);
    for (i, id) in accounts.iter().enumerate() {
        rig.notify(ObjectType::Account, id, &format!("r{i}"), None);
    }
    let mut worker = InboxWorker::new(
        rig.store.clone(),
        rig.ctx.clone(),
        InboxSettings {
            max_per_step: 1_000,
            ..settings()
        },
    );
    let calls = rig.calls();
    let report = worked(worker.step().await.expect("step"));
    // 1,000 taken, then three more takes of up to 1,000 while those apply: none taken twice.
    assert_eq!((report.pulled, report.applied), (3_500, 3_500));
    assert_eq!(rig.calls() - calls, 4, "one retrieve per take");
    assert_eq!(rig.store.pending_count(), 0);
    assert_eq!(worker.step().await.expect("step"), Outcome::Idle);
}

#[tokio::test]
async fn a_notification_already_applied_is_cleared_without_a_call() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Stamped"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "first", None);
    let mut worker = rig.worker();
    worked(worker.step().await.expect("step"));
    let calls = rig.calls();
    let seen = pull::seen(&rig.store, &rig.org, &id)
        .expect("seen")
        .expect("a bookmark");
    // An older stamp (a late, out-of-order delivery) needs no pull.
    rig.notify(
        ObjectType::Account,
        &id,
        "late",
        Some(seen.stamp_ms / 1000 - 5),
    );
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(report.skipped, 1);
    assert_eq!(rig.calls(), calls, "no call for a change already applied");
    assert_eq!(rig.store.pending_count(), 0);
}

#[tokio::test]
async fn a_failed_pull_stays_pending_and_backs_off_instead_of_hammering() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Flaky"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "n", None);
    rig.sim.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });
    let mut worker = rig.worker();
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(report.failed, 1);
    assert_eq!(rig.store.pending_count(), 1, "still pending");
    let calls = rig.calls();
    assert_eq!(worker.step().await.expect("step"), Outcome::Idle);
    assert_eq!(rig.calls(), calls, "backing off: no call");

    // Once Salesforce answers again, the entry is pulled (a fresh worker has no back-off).
    rig.sim.set_faults(Faults::default());
    let mut fresh = rig.worker();
    let report = worked(fresh.step().await.expect("step"));
    assert_eq!(report.applied, 1);
    assert_eq!(rig.store.pending_count(), 0);
}

#[tokio::test]
async fn request_limit_exceeded_pauses_the_org_and_keeps_its_entries() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Limited"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "n", None);
    rig.sim.set_faults(Faults {
        daily_api_limit: Some(0),
        ..Faults::default()
    });
    let mut worker = rig.worker();
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(report.failed, 1);
    assert!(worker.is_paused(&rig.org));
    let calls = rig.calls();
    assert_eq!(worker.step().await.expect("step"), Outcome::Paused);
    assert_eq!(rig.calls(), calls, "a paused org makes no call");
    assert_eq!(rig.store.pending_count(), 1);
}

#[tokio::test]
async fn pulls_pause_once_the_configured_share_of_the_budget_is_used() {
    let rig = rig().await;
    let first = rig
        .sim
        .create("Account", json!({"Name": "Half"}))
        .expect("create");
    let second = rig
        .sim
        .create("Account", json!({"Name": "Spent"}))
        .expect("create");
    // After the next call, just over half the day's calls are used.
    let used = rig.sim.api_usage() + 1;
    rig.sim.set_faults(Faults {
        daily_api_limit: Some(2 * used - 1),
        ..Faults::default()
    });
    let mut worker = InboxWorker::new(
        rig.store.clone(),
        rig.ctx.clone(),
        InboxSettings {
            limit_share: 0.5,
            ..settings()
        },
    );
    rig.notify(ObjectType::Account, &first, "first", None);
    assert_eq!(worked(worker.step().await.expect("step")).applied, 1);

    rig.notify(ObjectType::Account, &second, "second", None);
    let calls = rig.calls();
    assert_eq!(worker.step().await.expect("step"), Outcome::Paused);
    assert!(worker.is_paused(&rig.org));
    assert_eq!(rig.calls(), calls, "no call past the share");
    assert_eq!(rig.store.pending_count(), 1);
}

#[tokio::test]
async fn a_step_makes_no_more_retrieves_than_the_budget_share_has_left() {
    let rig = rig().await;
    let accounts = rig.accounts(4_501);
    let (first, rest) = accounts.split_first().expect("accounts");
    // After the next call, the share (half the day's calls) has two calls left.
    let used = rig.sim.api_usage() + 1;
    rig.sim.set_faults(Faults {
        daily_api_limit: Some(2 * (used + 2)),
        ..Faults::default()
    });
    let mut worker = InboxWorker::new(
        rig.store.clone(),
        rig.ctx.clone(),
        InboxSettings {
            limit_share: 0.5,
            ..settings()
        },
    );
    rig.notify(ObjectType::Account, first, "first", None);
    assert_eq!(worked(worker.step().await.expect("step")).applied, 1);

    for (i, id) in rest.iter().enumerate() {
        rig.notify(ObjectType::Account, id, &format!("n{i}"), None);
    }
    let calls = rig.calls();
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(rig.calls() - calls, 2, "three batches, two calls left");
    assert_eq!((report.applied, report.failed), (4_000, 0));
    assert_eq!(rig.store.pending_count(), 500, "the third batch waits");
    assert_eq!(worker.step().await.expect("step"), Outcome::Paused);
}

#[tokio::test]
async fn an_expired_session_is_refreshed_and_the_pull_goes_through() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Sessions"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "n", None);
    rig.sim.expire_sessions();
    let mut worker = rig.worker();
    let report = worked(worker.step().await.expect("step"));
    assert_eq!(report.applied, 1);
    let client = rig.ctx.orgs.get(&rig.org).expect("client");
    assert_eq!(client.token_requests(), 1);
}

#[tokio::test]
async fn a_notification_that_arrives_during_the_pull_is_not_cleared() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Racing"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "before", None);
    let before = rig
        .store
        .pending_record(&rig.org, ObjectType::Account, &id)
        .expect("read")
        .expect("pending");
    let client = rig.ctx.orgs.get(&rig.org).expect("client");
    let record = client
        .retrieve_collection(
            "Account",
            std::slice::from_ref(&id),
            pull::fields_for(ObjectType::Account),
        )
        .await
        .expect("retrieve")
        .remove(0)
        .expect("record");
    // A newer change and its notification land between the read and the apply.
    rig.sim
        .update(&id, json!({"Name": "Racing 2"}))
        .expect("update");
    let newer = rig.sim.get(&id).expect("record")["SystemModstamp"]
        .as_str()
        .and_then(pull::parse_datetime)
        .expect("stamp");
    rig.notify(ObjectType::Account, &id, "during", Some(newer.timestamp()));
    pull::commit_record(
        &rig.store,
        &rig.org,
        &Rules::default(),
        ObjectType::Account,
        &record,
        &Origin::new("test"),
        Target::Ladder,
        Some(&before),
    )
    .expect("apply");
    assert_eq!(
        rig.store.pending_count(),
        1,
        "the newer notification waits for its pull"
    );
    let mut worker = rig.worker();
    worked(worker.step().await.expect("step"));
    let companies = rig.store.companies(&rig.org).expect("companies");
    assert_eq!(companies[0].name, "Racing 2");
    assert_eq!(rig.store.pending_count(), 0);
}

#[tokio::test]
async fn a_local_change_waiting_in_the_outbox_is_not_overwritten_by_a_pull() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Before", "Industry": "Retail"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "create", None);
    let mut worker = rig.worker();
    worked(worker.step().await.expect("step"));
    let local = rig.store.companies(&rig.org).expect("companies")[0].clone();
    // The application renames the company; the push waits in the outbox.
    rig.store
        .transact(|tx| {
            let mut c = local.clone();
            c.name = "Ours, Unsent".into();
            tx.put_company(&c)?;
            tx.enqueue_push(
                &rig.org,
                sfsync::store::LocalRef {
                    kind: sfsync::store::RecordKind::Company,
                    id: c.id,
                },
                None,
                None,
                Utc::now(),
            )?;
            Ok::<_, sfsync::store::TxAbort<()>>(())
        })
        .expect("local change");
    rig.sim
        .update(&id, json!({"Name": "Theirs", "NumberOfEmployees": 5}))
        .expect("update");
    rig.notify(ObjectType::Account, &id, "update", None);
    worked(worker.step().await.expect("step"));
    let after = rig.store.companies(&rig.org).expect("companies")[0].clone();
    assert_eq!(after.name, "Ours, Unsent", "the unsent local change stays");
    assert_eq!(after.employees, Some(5), "an empty field is filled");
    let rules: Vec<String> = rig
        .store
        .provenance(
            &rig.org,
            sfsync::store::LocalRef {
                kind: sfsync::store::RecordKind::Company,
                id: local.id,
            },
        )
        .expect("provenance")
        .into_iter()
        .map(|p| p.rule)
        .collect();
    assert_eq!(
        rules.last().map(String::as_str),
        Some("match:salesforce_id;policy:local_change_pending")
    );
}

#[tokio::test]
async fn a_record_read_before_sfsyncs_own_later_write_is_held_back_once_then_read_again() {
    let rig = rig().await;
    let id = rig
        .sim
        .create("Account", json!({"Name": "Before"}))
        .expect("create");
    rig.notify(ObjectType::Account, &id, "create", None);
    let mut worker = rig.worker();
    worked(worker.step().await.expect("step"));
    rig.sim
        .update(&id, json!({"Name": "After"}))
        .expect("update");
    rig.notify(ObjectType::Account, &id, "update", None);
    // sfsync's own write to the record, stamped after anything a read can return now: as when
    // its push lands between the pull's read and the apply.
    let later = Utc::now().timestamp_millis() + 3_600_000;
    rig.store
        .atomically(|tx| tx.set_written_stamp(&rig.org, &id, later))
        .expect("stamp");

    let held = worked(worker.step().await.expect("step"));

    assert_eq!((held.pulled, held.stale, held.applied), (1, 1, 0));
    let name = |rig: &Rig| {
        rig.store.companies(&rig.org).expect("companies")[0]
            .name
            .clone()
    };
    assert_eq!(name(&rig), "Before", "nothing of the early read is applied");
    assert_eq!(
        rig.store.pending_count(),
        1,
        "the record waits to be read again"
    );
    assert_eq!(rig.store.written_stamp(&rig.org, &id).expect("stamp"), None);
    let metrics = rig.ctx.orgs.telemetry().metrics.render(&Gauges {
        inbox_pending: 1,
        orgs: Vec::new(),
    });
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sfsync_pull_applied_total{")
                && l.contains(r#"object="Account""#)
                && l.contains(r#"result="stale""#)
                && l.ends_with(" 1")),
        "{metrics}"
    );

    let again = worked(worker.step().await.expect("step"));

    assert_eq!((again.pulled, again.stale, again.applied), (1, 0, 1));
    assert_eq!(name(&rig), "After");
    assert_eq!(rig.store.pending_count(), 0);
}
