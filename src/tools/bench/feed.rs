//! `sfsync bench feed`: how long a change in Salesforce takes to reach the app, signed.
//!
//! The pull bench's rig (a simulated org with `--records` Accounts and 50 ms of latency on every
//! API call, the service on loopback with a temporary store), plus an app on loopback that
//! verifies every POST with the Standard Webhooks verifier, configured as the service's one
//! `[[app_webhooks]]` entry. Each Account is changed once, a few every 10 ms; the org sends an
//! Outbound Message per change, out of order; the service pulls, logs, and POSTs. The latency of
//! a change runs from the org's write to the app holding the verified event that carries it.
//! The last line is `feed changes=… p50_ms=… p99_ms=… deliveries_per_change=…`, where a delivery
//! is any POST the app answered (one per change when nothing is sent twice).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::loopback::Service;
use super::measure::percentile_ms;
use super::pull::{change, final_marker, go_live, org};
use crate::cli::{FeedBenchArgs, MessageFields};
use crate::config::AppWebhook;
use crate::domain::WebhookSecret;
use crate::tools::app_receiver::AppReceiver;

const KEY: &str = "bench-feed-webhook-key-01";

/// Runs `bench feed`.
pub async fn run(args: &FeedBenchArgs) -> anyhow::Result<()> {
    let n = args.records.max(1);
    let secret = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 32])))?;
    let app = AppReceiver::start(secret.clone()).await?;
    let hook = AppWebhook {
        url: app.url.clone(),
        secret,
        types: Vec::new(),
    };
    let (sim, accounts) = org(n, 1, MessageFields::All).await?;
    let adjust = |c: &mut crate::config::Config| c.app_webhooks = vec![hook];
    let service = Service::start_adjusted(&sim, KEY, adjust, |_| Ok(())).await?;
    go_live(&sim, args.latency_ms);
    eprintln!(
        "bench feed: {n} records changed once each, {} ms api latency",
        args.latency_ms
    );
    let (changed, changes) = std::sync::mpsc::channel();
    let started = Instant::now();
    change(&sim, &accounts, 1, &changed).await?;
    let marker = serde_json::json!(final_marker(1));
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 100);
    let arrived = loop {
        let arrived = heard(&app, &marker);
        if arrived.len() >= n || Instant::now() > deadline {
            break arrived;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let changed: HashMap<_, _> = changes.try_iter().collect();
    let mut latencies: Vec<Duration> = changed
        .iter()
        .filter_map(|(id, at)| Some(arrived.get(id.as_str())?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let (posts, rejected) = app.posts_and_rejected();
    service.stop().await?;
    sim.shutdown();
    eprintln!(
        "{}/{n} changes reached the app in {:.1} s; {posts} POSTs, {rejected} refused",
        latencies.len(),
        elapsed.as_secs_f64(),
    );
    anyhow::ensure!(rejected == 0, "{rejected} signatures did not verify");
    anyhow::ensure!(
        latencies.len() == n,
        "only {} of {n} changes reached the app",
        latencies.len()
    );
    println!(
        "feed changes={n} p50_ms={:.0} p99_ms={:.0} deliveries_per_change={:.2}",
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        posts as f64 / n as f64
    );
    Ok(())
}

/// When the app first held each record's changed state, by the record's Salesforce id.
fn heard(app: &AppReceiver, marker: &serde_json::Value) -> HashMap<String, Instant> {
    let mut out = HashMap::new();
    for r in app.received() {
        let data = &r.entry.data;
        if data["employees"] != *marker {
            continue;
        }
        if let Some(id) = data["salesforce_id"].as_str() {
            out.entry(id.to_string()).or_insert(r.at);
        }
    }
    out
}
