//! `sfsync bench pull`: what the pull side costs in Salesforce API calls, and how long a change
//! takes to reach the local store.
//!
//! A simulated org with `records` Accounts (50 ms of latency on every API call) and the service
//! on loopback with a temporary store. Each Account is changed `k` times back to back, a few
//! records every 10 ms; the org sends a real Outbound Message notification per change,
//! shuffled out of order. A watcher polls the store and notes when each record's last change is
//! local. A naive puller (one `GET` per notification) would spend one call per notification.
//! The last line is
//! `pull records=… notifications=… api_calls=… calls_per_record=… naive_calls=… p50_ms=… p99_ms=…`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::{SecretBox, SecretString};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::loopback;
use crate::app::App;
use crate::cli::PullBenchArgs;
use crate::domain::{OrgId, SalesforceId};
use crate::salesforce::TokenKey;
use crate::simulator::{DeliveryMode, Faults, SeedSpec, Simulator, SimulatorConfig};
use crate::store::Store;

const KEY: &str = "bench-pull-webhook-key-01";
const TOKEN: &str = "bench-pull-api-token-0123";

/// The value the last change of every record writes, so the watcher can tell it apart.
fn final_marker(k: usize) -> i64 {
    1_000_000 + k as i64
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Runs `bench pull`.
pub async fn run(args: &PullBenchArgs) -> anyhow::Result<()> {
    let n = args.records.max(1);
    let k = args.k.max(1);
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
    let dir = tempfile::tempdir().context("temporary store")?;
    let org = sim.org_id();
    let config = loopback::service_config(&dir.path().join("store"), &org, TOKEN, KEY)?;
    let app = App::build(&config).await?;
    let base = format!("http://{}", app.local_addr());
    let store = app.state().store.clone();
    let key = TokenKey::new(1, SecretBox::new(Box::new([9u8; 32])));
    let client = loopback::client(&sim, &store, key)?
        .with_access_token(SecretString::from(sim.credentials().access_token));
    app.connect_salesforce(client.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    sim.set_faults(Faults {
        latency_ms: args.latency_ms,
        ..Faults::default()
    });
    sim.set_delivery_mode(DeliveryMode {
        duplicate: false,
        out_of_order: true,
    });
    sim.set_outbound_url(Some(format!("{base}/webhooks/salesforce/outbound/{KEY}")));
    eprintln!(
        "bench pull: {n} records, {k} notifications each, {} ms api latency",
        args.latency_ms
    );
    let changed_at: ChangedAt = Arc::default();
    let watcher = watch(store, org, changed_at.clone(), n, final_marker(k));
    let started = Instant::now();
    change(&sim, &seeded.accounts, k, &changed_at).await?;
    let mut latencies = watcher.await.context("watcher")?;
    let elapsed = started.elapsed();
    latencies.sort();
    let api_calls = client.api_calls();
    let notifications = sim.outbound_stats().notifications_queued;
    let applied = latencies.len();
    shutdown.cancel();
    server.await.context("server task")??;
    sim.shutdown();
    eprintln!(
        "{applied}/{n} records reached the store in {:.1} s; {} token refreshes",
        elapsed.as_secs_f64(),
        client.token_requests()
    );
    if applied < n {
        anyhow::bail!("only {applied} of {n} records reached the store");
    }
    println!(
        "pull records={n} notifications={notifications} api_calls={api_calls} calls_per_record={:.4} naive_calls={notifications} p50_ms={:.0} p99_ms={:.0}",
        api_calls as f64 / n as f64,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    Ok(())
}

/// When each record's last change was made in the org.
type ChangedAt = Arc<std::sync::Mutex<HashMap<SalesforceId, Instant>>>;

/// The watcher: polls the store and returns, for each of `n` records, how long after its last
/// change it became local (its `NumberOfEmployees` is `marker`).
fn watch(
    store: Store,
    org: OrgId,
    changed_at: ChangedAt,
    n: usize,
    marker: i64,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        let mut done = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 100);
        while done.len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = Instant::now();
            let Ok(companies) = store.companies(&org) else {
                continue;
            };
            let changed = changed_at.lock().map(|m| m.clone()).unwrap_or_default();
            for c in companies {
                let Some(id) = c.salesforce_id else { continue };
                if c.employees == Some(marker) && !done.contains(&id) {
                    if let Some(at) = changed.get(&id) {
                        latencies.push(now.duration_since(*at));
                        done.insert(id);
                    }
                }
            }
        }
        latencies
    })
}

/// The changes: a few records every 10 ms, each changed `k` times back to back, the last time
/// to its final marker.
async fn change(
    sim: &Simulator,
    accounts: &[SalesforceId],
    k: usize,
    changed_at: &ChangedAt,
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
            if let Ok(mut m) = changed_at.lock() {
                m.insert(id.clone(), Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
