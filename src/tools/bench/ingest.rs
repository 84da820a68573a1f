//! `sfsync bench ingest`: the same service is started twice on loopback with a temporary store:
//! once as it runs in production (each message's journal record written to the inbox log and
//! `fdatasync`ed before the ack, with group commit, and checkpointed into sled), once with the
//! store write skipped (the HTTP floor). 32 senders post 10-notification Outbound Messages to
//! each; the last line is `ingest durable_per_s=… floor_per_s=… ratio=… p99_ms=…`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::measure::{percentile_ms, process_cpu_time};
use super::outbound_message_xml;
use crate::app::{App, AppOptions};
use crate::cli::IngestBenchArgs;
use crate::config::Config;
use crate::domain::{OrgId, SalesforceId};
use crate::store::Store;

const ORG: &str = "00D7F00000107XsUAI";
const KEY: &str = "bench-webhook-key-0001";

struct RunResult {
    notifications_per_s: f64,
    p99_ms: f64,
    /// Process CPU time (user + system) per message, where the OS tells it.
    cpu_per_message: Option<Duration>,
    committer: Committer,
    elapsed: Duration,
}

/// The store's committer counters over a run.
#[derive(Default)]
struct Committer {
    flushes: u64,
    checkpoints: u64,
    /// Committer time: log write + fdatasync, journal copies, sled flush + fsync.
    spent: [Duration; 3],
}

impl Committer {
    fn read(store: &Store) -> Self {
        Self {
            flushes: store.flushes_completed(),
            checkpoints: store.checkpoints_completed(),
            spent: store.commit_time_spent(),
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            flushes: self.flushes - before.flushes,
            checkpoints: self.checkpoints - before.checkpoints,
            spent: std::array::from_fn(|i| self.spent[i].saturating_sub(before.spent[i])),
        }
    }
}

/// One run: a fresh service, `messages` posted by the senders, the service stopped.
async fn run_once(
    args: &IngestBenchArgs,
    skip_store: bool,
    run_no: u64,
    messages: usize,
) -> anyhow::Result<RunResult> {
    let dir = match &args.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("sfsync-bench")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("sfsync-bench").tempdir()?,
    };
    let config = Config::from_toml(&format!(
        "[server]\nlisten = \"{}\"\napi_token = \"bench-token-0123456789\"\n[store]\npath = \"{}\"\n[[connections]]\norg_id = \"{ORG}\"\nwebhook_key = \"{KEY}\"\n",
        args.listen,
        dir.path().display()
    ))?;
    let app = App::build_with(&config, AppOptions { skip_store }).await?;
    let url = format!(
        "http://{}/webhooks/salesforce/outbound/{KEY}",
        app.local_addr()
    );
    let store = app.state().store.clone();
    let before = Committer::read(&store);
    let token = CancellationToken::new();
    let server = tokio::spawn(app.run_until(token.clone()));
    let bodies = Arc::new(messages_of(args, run_no, messages)?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.senders)
        .build()?;
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let mut latencies = post_all(&client, args.senders, &url, bodies).await?;
    let elapsed = started.elapsed();
    let cpu_per_message = cpu_before
        .zip(process_cpu_time())
        .map(|(a, b)| b.saturating_sub(a) / u32::try_from(messages).unwrap_or(u32::MAX));
    let committer = Committer::read(&store).since(&before);
    drop(store);
    token.cancel();
    server.await.context("server task")??;
    latencies.sort();
    Ok(RunResult {
        notifications_per_s: (messages * args.per_message) as f64 / elapsed.as_secs_f64(),
        p99_ms: percentile_ms(&latencies, 0.99),
        cpu_per_message,
        committer,
        elapsed,
    })
}

/// The bodies of one run: `messages` Outbound Messages of `per_message` notifications, every
/// notification id new to the store (`run_no` keeps runs apart).
fn messages_of(
    args: &IngestBenchArgs,
    run_no: u64,
    messages: usize,
) -> anyhow::Result<Vec<String>> {
    let org = OrgId::parse(ORG)?;
    Ok((0..messages)
        .map(|m| {
            let notes: Vec<_> = (0..args.per_message)
                .map(|i| {
                    let n = (run_no * 10_000_000) + (m * args.per_message + i) as u64;
                    (
                        SalesforceId::mint("04l", "B", n),
                        SalesforceId::mint("003", "B", n),
                    )
                })
                .collect();
            outbound_message_xml(&org, &notes)
        })
        .collect())
}

/// Posts every body to `url` from `senders` concurrent senders, each taking the next body as
/// soon as its last was acknowledged; the latency of each post.
async fn post_all(
    client: &reqwest::Client,
    senders: usize,
    url: &str,
    bodies: Arc<Vec<String>>,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "text/xml; charset=utf-8")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                resp.bytes().await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    for t in tasks {
        latencies.extend(t.await.context("sender panicked")??);
    }
    Ok(latencies)
}

/// Runs `bench ingest` and prints its figures.
pub async fn run(args: &IngestBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.senders > 0 && args.per_message > 0 && args.messages > 0 && args.pairs > 0,
        "counts must be positive"
    );
    let warm = (args.messages / 10).max(1);
    run_once(args, true, 1, warm).await?;
    run_once(args, false, 2, warm).await?;
    // The host is shared and its speed drifts by tens of percent within seconds, so the two are
    // run in alternating pairs and the pair with the median ratio is reported.
    let mut pairs = Vec::with_capacity(args.pairs);
    for pair in 0..args.pairs as u64 {
        let floor = run_once(args, true, 3 + 2 * pair, args.messages).await?;
        let durable = run_once(args, false, 4 + 2 * pair, args.messages).await?;
        let ratio = durable.notifications_per_s / floor.notifications_per_s;
        println!(
            "pair {}: floor {:.0}/s{}, durable {:.0}/s{} (p99 {:.1} ms), ratio {ratio:.2}",
            pair + 1,
            floor.notifications_per_s,
            cpu_note(&floor),
            durable.notifications_per_s,
            cpu_note(&durable),
            durable.p99_ms,
        );
        pairs.push((ratio, floor, durable));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, floor, durable) = pairs.swap_remove(pairs.len() / 2);
    explain_commits(args, &durable);
    println!(
        "ingest durable_per_s={:.0} floor_per_s={:.0} ratio={ratio:.2} p99_ms={:.1}",
        durable.notifications_per_s, floor.notifications_per_s, durable.p99_ms
    );
    Ok(())
}

/// Where the durable run's commit time went.
fn explain_commits(args: &IngestBenchArgs, durable: &RunResult) {
    let c = &durable.committer;
    if c.flushes == 0 {
        return;
    }
    println!(
        "median pair, durable: {} group commits (log write + fdatasync), {:.1} messages each, one every {:.2} ms; {} checkpoints",
        c.flushes,
        args.messages as f64 / c.flushes as f64,
        durable.elapsed.as_secs_f64() * 1000.0 / c.flushes as f64,
        c.checkpoints,
    );
    let per_round = |d: Duration| d.as_secs_f64() * 1e6 / c.flushes as f64;
    println!(
        "median pair, durable: per commit {:.0} µs in log write + fdatasync, {:.0} µs copying into the journal tree, {:.0} µs in sled flush + fsync (checkpoints)",
        per_round(c.spent[0]),
        per_round(c.spent[1]),
        per_round(c.spent[2]),
    );
}

fn cpu_note(run: &RunResult) -> String {
    run.cpu_per_message
        .map(|d| format!(" ({:.0} µs CPU/message)", d.as_secs_f64() * 1e6))
        .unwrap_or_default()
}
