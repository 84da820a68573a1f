//! `sfsync bench pull`: what the pull side costs in Salesforce API calls and bytes written, and
//! how long a change takes to reach the local store.
//!
//! A simulated org with `records` Accounts (50 ms of latency on every API call) and the service
//! on loopback with a temporary store. Each Account is changed `k` times back to back, a few
//! records every 10 ms; the org sends a real Outbound Message notification per change,
//! shuffled out of order. A watcher polls the store and notes when each record's last change is
//! local. A naive puller (one `GET` per notification) would spend one call per notification.
//! The last line is
//! `pull records=… notifications=… api_calls=… calls_per_record=… naive_calls=… p50_ms=… p99_ms=… write_bytes_per_record=…`,
//! the bytes being what the whole process caused to be written (see [`super::measure`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::loopback::{self, Service};
use super::measure::{self, percentile_ms};
use crate::cli::PullBenchArgs;
use crate::domain::{Company, OrgId, SalesforceId};
use crate::simulator::{DeliveryMode, Faults, SeedSpec, Simulator, SimulatorConfig};
use crate::store::Store;

const KEY: &str = "bench-pull-webhook-key-01";

/// The value the last change of every record writes, so the watcher can tell it apart.
pub(super) fn final_marker(k: usize) -> i64 {
    1_000_000 + k as i64
}

/// A simulated org with `n` Accounts, and their ids.
pub(super) async fn org(n: usize) -> anyhow::Result<(Simulator, Vec<SalesforceId>)> {
    let sim = loopback::simulator(SimulatorConfig {
        seed: 5,
        daily_api_limit: 10_000_000,
        ..SimulatorConfig::default()
    })
    .await?;
    let seeded = sim.seed_org(&SeedSpec {
        accounts: n,
        ..SeedSpec::default()
    })?;
    Ok((sim, seeded.accounts))
}

/// Once the service runs: `latency_ms` on every API call, and Outbound Messages out of order.
pub(super) fn go_live(sim: &Simulator, latency_ms: u64) {
    sim.set_faults(Faults {
        latency_ms,
        ..Faults::default()
    });
    sim.set_delivery_mode(DeliveryMode {
        duplicate: false,
        out_of_order: true,
    });
}

/// Runs `bench pull`.
pub async fn run(args: &PullBenchArgs) -> anyhow::Result<()> {
    let n = args.records.max(1);
    let k = args.k.max(1);
    let written_before = measure::write_bytes();
    let (sim, accounts) = org(n).await?;
    let service = Service::start(&sim, KEY, |_| Ok(())).await?;
    go_live(&sim, args.latency_ms);
    eprintln!(
        "bench pull: {n} records, {k} notifications each, {} ms api latency",
        args.latency_ms
    );
    let (changed, changes) = std::sync::mpsc::channel();
    let watcher = watch(
        service.store.clone(),
        sim.org_id(),
        changes,
        n,
        final_marker(k),
    );
    let started = Instant::now();
    let calls_before = service.client.api_calls();
    change(&sim, &accounts, k, &changed).await?;
    let mut latencies = tokio::task::spawn_blocking(move || watcher.join())
        .await
        .context("watcher")?
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))?;
    let elapsed = started.elapsed();
    latencies.sort();
    let api_calls = service.client.api_calls() - calls_before;
    let notifications = sim.outbound_stats().notifications_queued;
    let applied = latencies.len();
    let refreshes = service.client.token_requests();
    service.stop().await?;
    sim.shutdown();
    let written = measure::per_record(written_before, measure::write_bytes(), n);
    eprintln!(
        "{applied}/{n} records reached the store in {:.1} s; {refreshes} token refreshes",
        elapsed.as_secs_f64()
    );
    if applied < n {
        anyhow::bail!("only {applied} of {n} records reached the store");
    }
    println!(
        "pull records={n} notifications={notifications} api_calls={api_calls} calls_per_record={:.4} naive_calls={notifications} p50_ms={:.0} p99_ms={:.0} write_bytes_per_record={}",
        api_calls as f64 / n as f64,
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        measure::per_record_text(written),
    );
    Ok(())
}

/// Each record's last change, as it is made: the record and when.
pub(super) type Changed = std::sync::mpsc::Sender<(SalesforceId, Instant)>;

/// The watcher, a thread of its own so that its reads do not hold up the service's runtime:
/// polls the store for the records changed so far and returns, for each of `n` records, how
/// long after its last change it became local (its `NumberOfEmployees` is `marker`). A poll
/// reads only the records not yet local, and the next waits at least twice as long as the last
/// took, so the watcher never takes more than a third of a core from the service.
fn watch(
    store: Store,
    org: OrgId,
    changes: std::sync::mpsc::Receiver<(SalesforceId, Instant)>,
    n: usize,
    marker: i64,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(n);
        let mut waiting: HashMap<SalesforceId, Instant> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 100);
        let mut pause = Duration::from_millis(20);
        while latencies.len() < n && Instant::now() < deadline {
            std::thread::sleep(pause);
            waiting.extend(changes.try_iter());
            let now = Instant::now();
            waiting.retain(|id, at| {
                let local = store
                    .local_by_salesforce_id(&org, id)
                    .ok()
                    .flatten()
                    .and_then(|l| store.record::<Company>(&org, l.id).ok().flatten());
                let done = local.is_some_and(|c| c.employees == Some(marker));
                if done {
                    latencies.push(now.duration_since(*at));
                }
                !done
            });
            pause = Duration::from_millis(20).max(now.elapsed() * 2);
        }
        latencies
    })
}

/// The changes: a few records every 10 ms, each changed `k` times back to back, the last time
/// to its final marker.
pub(super) async fn change(
    sim: &Simulator,
    accounts: &[SalesforceId],
    k: usize,
    changed: &Changed,
) -> anyhow::Result<()> {
    let per_tick = (accounts.len() / 400).max(1);
    for chunk in accounts.chunks(per_tick) {
        for id in chunk {
            for round in 1..=k {
                let value = if round == k {
                    final_marker(k)
                } else {
                    round as i64
                };
                sim.update(id, json!({"NumberOfEmployees": value}))?;
            }
            changed.send((id.clone(), Instant::now()))?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
