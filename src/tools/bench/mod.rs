//! `sfsync bench`: figures measured as ratios against a baseline run in the same command.
//!
//! `bench ingest`: the same service is started twice on loopback with a temporary store: once as
//! it runs in production (each message's journal record written to the inbox log and
//! `fdatasync`ed before the ack, with group commit, and checkpointed into sled), once with the
//! store write skipped (the HTTP floor). 32 senders post
//! 10-notification Outbound Messages to each; the last line is
//! `ingest durable_per_s=… floor_per_s=… ratio=… p99_ms=…`.
//!
//! `bench pull`, `bench push` and `bench feed` are in their modules.

pub mod dedupe;
pub mod feed;
pub mod loopback;
pub mod pull;
pub mod push;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppOptions};
use crate::cli::IngestBenchArgs;
use crate::config::Config;
use crate::domain::{OrgId, SalesforceId};

const ORG: &str = "00D7F00000107XsUAI";
const KEY: &str = "bench-webhook-key-0001";

/// An Outbound Message of Contact notifications, shaped as Salesforce sends them.
pub fn outbound_message_xml(org: &OrgId, notes: &[(SalesforceId, SalesforceId)]) -> String {
    let mut xml = String::with_capacity(600 + notes.len() * 420);
    xml.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#);
    xml.push_str(&format!(
        "<OrganizationId>{org}</OrganizationId><ActionId>04k7F0000008V3hQAE</ActionId><SessionId xsi:nil=\"true\"/><EnterpriseUrl>https://ap5.salesforce.com/services/Soap/c/47.0/{o15}</EnterpriseUrl><PartnerUrl>https://ap5.salesforce.com/services/Soap/u/47.0/{o15}</PartnerUrl>",
        o15 = org.as_15()
    ));
    for (notification, record) in notes {
        xml.push_str(&format!(
            "<Notification><Id>{notification}</Id><sObject xsi:type=\"sf:Contact\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>{record}</sf:Id><sf:Email>bench@example.com</sf:Email><sf:FirstName>Bench</sf:FirstName><sf:LastName>Sender</sf:LastName><sf:SystemModstamp>2024-05-01T10:00:00.000Z</sf:SystemModstamp></sObject></Notification>"
        ));
    }
    xml.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    xml
}

struct RunResult {
    notifications_per_s: f64,
    p99_ms: f64,
    /// Process CPU time (user + system) per message, where the OS tells it.
    cpu_per_message: Option<Duration>,
    flushes: u64,
    checkpoints: u64,
    /// Committer time: log write + fdatasync, journal copies, sled flush + fsync.
    spent: [Duration; 3],
    elapsed: Duration,
}

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
    let flushes_before = store.flushes_completed();
    let checkpoints_before = store.checkpoints_completed();
    let spent_before = store.commit_time_spent();
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
    let flushes = store.flushes_completed() - flushes_before;
    let checkpoints = store.checkpoints_completed() - checkpoints_before;
    let spent_after = store.commit_time_spent();
    let spent: [Duration; 3] = std::array::from_fn(|i| spent_after[i] - spent_before[i]);
    drop(store);
    token.cancel();
    server.await.context("server task")??;
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or(Duration::ZERO);
    Ok(RunResult {
        notifications_per_s: (messages * args.per_message) as f64 / elapsed.as_secs_f64(),
        p99_ms: p99.as_secs_f64() * 1000.0,
        cpu_per_message,
        flushes,
        checkpoints,
        spent,
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
pub async fn ingest(args: &IngestBenchArgs) -> anyhow::Result<()> {
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
    if durable.flushes > 0 {
        println!(
            "median pair, durable: {} group commits (log write + fdatasync), {:.1} messages each, one every {:.2} ms; {} checkpoints",
            durable.flushes,
            args.messages as f64 / durable.flushes as f64,
            durable.elapsed.as_secs_f64() * 1000.0 / durable.flushes as f64,
            durable.checkpoints,
        );
        let per_round = |d: Duration| d.as_secs_f64() * 1e6 / durable.flushes as f64;
        println!(
            "median pair, durable: per commit {:.0} µs in log write + fdatasync, {:.0} µs copying into the journal tree, {:.0} µs in sled flush + fsync (checkpoints)",
            per_round(durable.spent[0]),
            per_round(durable.spent[1]),
            per_round(durable.spent[2]),
        );
    }
    println!(
        "ingest durable_per_s={:.0} floor_per_s={:.0} ratio={ratio:.2} p99_ms={:.1}",
        durable.notifications_per_s, floor.notifications_per_s, durable.p99_ms
    );
    Ok(())
}

fn cpu_note(run: &RunResult) -> String {
    run.cpu_per_message
        .map(|d| format!(" ({:.0} µs CPU/message)", d.as_secs_f64() * 1e6))
        .unwrap_or_default()
}

/// The process's CPU time so far (user + system), from `/proc/self/stat` where there is one;
/// the kernel counts it in ticks of 1/100 s on the platforms this runs on.
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at `state`; utime and stime
    // are the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
