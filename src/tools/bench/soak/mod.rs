//! `sfsync bench soak --minutes N` (not run in CI): mixed pull and push load through faults and
//! SIGKILLs, then the local store compared with the org.
//!
//! The simulated org runs in this process (so it outlives every kill) with its faults on: 5xx
//! answers, row locks, connections dropped before and after a write commits, sessions that
//! expire every few dozen calls, and a few seconds of `REQUEST_LIMIT_EXCEEDED` every 20 s. The
//! service is `sfsync serve` as a child process on a store of its own, SIGKILLed once at a
//! random moment in every minute of the run and started again at once. Meanwhile four push tasks
//! write companies and contacts through the service's API, remembering every write the service
//! acknowledged (HTTP 2xx) and every write left unanswered, and a pull task creates and changes
//! Accounts and Contacts in the org, whose Outbound Messages go to the service (and are retried
//! by the org until acknowledged, as a real org does). Then the load stops, the faults go off,
//! the service is restarted cleanly and left until the outbox, the inbox and the org's outbound
//! queue are empty; it is stopped and its store compared with the org ([`compare`]). The last
//! line is `soak minutes=… kills=… acked_lost=… duplicates_in_org=… diverged=…`; the command
//! fails when any of the three counts is not zero.

pub mod compare;
mod load;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::compare::{Kind, LocalRow, OrgRow, Tally};
use self::load::Ledger;
use self::service::{ServiceFiles, ServiceProcess, status};
use super::loopback;
use crate::cli::SoakBenchArgs;
use crate::simulator::{Faults, Simulator, SimulatorConfig};
use crate::store::Store;

/// The fields each Outbound Message carries: the setup guide's minimum, so every change is
/// pulled.
const MESSAGE_FIELDS: [&str; 3] = ["Id", "SystemModstamp", "LastModifiedById"];

/// Concurrent writers through the service's API, each a request at a time.
const PUSH_TASKS: u64 = 4;

/// The faults on during the load.
fn faults() -> Faults {
    Faults {
        latency_ms: 5,
        error_5xx_rate: 0.03,
        lock_row_rate: 0.03,
        session_expiry_after_calls: Some(40),
        daily_api_limit: None,
        drop_connection_rate: 0.02,
        drop_after_commit_rate: 0.02,
    }
}

/// Runs `bench soak`.
pub async fn run(args: &SoakBenchArgs) -> anyhow::Result<()> {
    let minutes = args.minutes.max(1);
    let sim = loopback::simulator(SimulatorConfig {
        seed: args.seed,
        daily_api_limit: 100_000_000,
        outbound_retry_base: Duration::from_millis(200),
        outbound_retry_max: Duration::from_secs(3),
        ..SimulatorConfig::default()
    })
    .await?;
    for object in ["Account", "Contact"] {
        sim.set_outbound_rule(object, &MESSAGE_FIELDS)?;
    }
    let dir = tempfile::tempdir()?;
    let files = ServiceFiles::prepare(dir.path(), &sim)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let service = ServiceProcess::start(&files, &sim, &http).await?;
    sim.set_outbound_url(Some(files.outbound_url()));
    sim.set_faults(faults());
    eprintln!(
        "bench soak: {minutes} min, service log in {}",
        dir.path().join("serve.log").display()
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = CancellationToken::new();
    let pushers: Vec<_> = (0..PUSH_TASKS)
        .map(|t| {
            tokio::spawn(load::push(
                t,
                args.seed,
                files.base.clone(),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let puller = tokio::spawn(load::pull(sim.clone(), args.seed, stop.clone()));
    let limits = tokio::spawn(limit_windows(sim.clone(), stop.clone()));
    let run = kill_every_minute(&files, &sim, &http, service, minutes, args.seed).await;
    stop.cancel();
    for p in pushers {
        p.await?;
    }
    let changes = puller.await??;
    limits.await?;
    let (service, kills) = run?;
    sim.set_faults(Faults::default());
    {
        let l = ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        eprintln!(
            "load over: {kills} kills; local writes {} acked, {} unanswered, {} refused; {changes} org changes",
            l.acked, l.unanswered, l.refused
        );
    }
    service.stop().await?;
    let service = ServiceProcess::start(&files, &sim, &http).await?;
    settle(&files, &sim, &http).await?;
    service.stop().await?;
    let tally = verdict(&files, &sim, &ledger)?;
    sim.shutdown();
    println!(
        "soak minutes={minutes} kills={kills} acked_lost={} duplicates_in_org={} diverged={}",
        tally.acked_lost, tally.duplicates_in_org, tally.diverged
    );
    if tally != Tally::default() {
        let kept = dir.keep();
        anyhow::bail!(
            "the store and the org disagree; the service's store and log are kept in {}",
            kept.display()
        );
    }
    Ok(())
}

/// Every minute, SIGKILLs the service at a random moment (5 to 55 s in) and starts it again at
/// once; returns the last service and how many kills there were.
async fn kill_every_minute(
    files: &ServiceFiles,
    sim: &Simulator,
    http: &reqwest::Client,
    mut service: ServiceProcess,
    minutes: u64,
    seed: u64,
) -> anyhow::Result<(ServiceProcess, u64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut kills = 0;
    for minute in 0..minutes {
        let at = Duration::from_secs(minute * 60)
            + Duration::from_millis(rng.random_range(5_000..55_000));
        tokio::time::sleep_until((started + at).into()).await;
        service.kill()?;
        kills += 1;
        service = ServiceProcess::start(files, sim, http).await?;
        eprintln!(
            "minute {}: killed at {:.1} s and restarted",
            minute + 1,
            at.as_secs_f64()
        );
        tokio::time::sleep_until((started + Duration::from_secs((minute + 1) * 60)).into()).await;
    }
    Ok((service, kills))
}

/// Every 20 s, 3 s in which the org answers every data call `REQUEST_LIMIT_EXCEEDED` (its daily
/// limit set to what is already used), until `stop`.
async fn limit_windows(sim: Simulator, stop: CancellationToken) {
    while !stop.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(17)) => {}
            _ = stop.cancelled() => break,
        }
        sim.set_faults(Faults {
            daily_api_limit: Some(sim.api_usage()),
            ..faults()
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        sim.set_faults(faults());
    }
}

/// Waits until the outbox and the inbox are empty and the org has no Outbound Message left to
/// deliver, three times in a row a second apart.
async fn settle(
    files: &ServiceFiles,
    sim: &Simulator,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut quiet = 0;
    while quiet < 3 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service did not settle in 10 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = status(http, files).await?;
        let settled = s["outbox"]["pending"] == 0
            && s["inbox"]["pending"] == 0
            && sim.outbound_stats().pending == 0;
        quiet = if settled { quiet + 1 } else { 0 };
        if s["outbox"]["dead"] != 0 {
            eprintln!("dead letters: {}", s["outbox"]["dead"]);
        }
    }
    Ok(())
}

/// Reads the stopped service's store and the org and compares them.
fn verdict(files: &ServiceFiles, sim: &Simulator, ledger: &Mutex<Ledger>) -> anyhow::Result<Tally> {
    let store = Store::open(&files.store())?;
    let org = sim.org_id();
    let companies = store.companies(&org)?;
    let account_of: HashMap<u64, Option<String>> = companies
        .iter()
        .map(|c| (c.id, c.salesforce_id.as_ref().map(|s| s.to_string())))
        .collect();
    let local_companies = companies
        .iter()
        .map(|c| LocalRow {
            id: c.id,
            salesforce_id: c.salesforce_id.as_ref().map(|s| s.to_string()),
            fields: compare_fields(&[
                ("Name", json!(c.name)),
                ("NumberOfEmployees", json!(c.employees)),
            ]),
        })
        .collect();
    let local_contacts = store
        .contacts(&org)?
        .iter()
        .map(|c| {
            let account = c
                .company_id
                .and_then(|id| account_of.get(&id).cloned().flatten());
            LocalRow {
                id: c.id,
                salesforce_id: c.salesforce_id.as_ref().map(|s| s.to_string()),
                fields: compare_fields(&[
                    ("FirstName", json!(c.first_name)),
                    ("LastName", json!(c.last_name)),
                    ("Email", json!(c.email)),
                    ("AccountId", json!(account)),
                ]),
            }
        })
        .collect();
    let l = ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kinds = [
        Kind {
            marker_kind: "company",
            expected: l.companies.clone(),
            local: local_companies,
            org: org_rows(sim, "Account"),
        },
        Kind {
            marker_kind: "contact",
            expected: l.contacts.clone(),
            local: local_contacts,
            org: org_rows(sim, "Contact"),
        },
    ];
    let mut tally = Tally::default();
    let mut findings = Vec::new();
    for kind in &kinds {
        eprintln!(
            "{}: {} local, {} in the org, {} with acknowledged local writes",
            kind.marker_kind,
            kind.local.len(),
            kind.org.len(),
            kind.expected.len()
        );
        tally += compare::compare(kind, &mut findings);
    }
    for f in &findings {
        eprintln!("{f}");
    }
    Ok(tally)
}

fn compare_fields(pairs: &[(&str, Value)]) -> compare::Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// The org's records of `object`, with the marker sfsync writes.
fn org_rows(sim: &Simulator, object: &str) -> Vec<OrgRow> {
    sim.list(object)
        .into_iter()
        .filter_map(|r| {
            let Value::Object(fields) = r else {
                return None;
            };
            Some(OrgRow {
                id: fields.get("Id")?.as_str()?.to_string(),
                marker: fields
                    .get(crate::simulator::DEFAULT_MARKER_FIELD)
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields: fields.into_iter().collect(),
            })
        })
        .collect()
}
