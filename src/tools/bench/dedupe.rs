//! `sfsync bench dedupe`: the memory the dedupe memory costs per remembered notification id.
//!
//! The service is started on loopback with a temporary store and left idle; its RSS is read.
//! Then `--ids` unique notifications are stored through [`Store::ingest_durably`] (the webhooks'
//! own store call, without HTTP, which is far too slow for ten million here) by concurrent
//! senders, each message `--per-message` notifications naming records from a pool of
//! `--records`, so the pending queue stays the same size and what grows is the dedupe memory.
//! Once the store has settled (the ids whose records are durable moved to the dedupe runs on
//! disk), the RSS is read again and `has_seen` is timed for ids seen and
//! unseen; last, the store is reopened (timed) and deleted. The last line is
//! `dedupe ids=… rss_mb=… rss_idle_mb=… rss_peak_mb=… bytes_per_id=… lookup_p99_us=…`, where
//! `rss_mb` is read once the service is at rest after the burst, and `rss_peak_mb` is the
//! highest it reached during it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppOptions};
use crate::cli::DedupeBenchArgs;
use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
use crate::store::{DedupeSource, Delivery, Store};

const ORG: &str = "00D7F00000107XsUAI";

/// The process's resident set size in MiB, from `/proc/self/status` where there is one.
pub fn rss_mb() -> Option<f64> {
    super::measure::status_mb("self", "VmRSS:")
}

fn notification_id(n: u64) -> SalesforceId {
    SalesforceId::mint("04l", "D", n)
}

/// One message's deliveries: notifications `first..first + count`.
fn message(first: u64, count: u64, records: u64) -> Vec<Delivery> {
    (first..first + count)
        .map(|n| Delivery {
            dedupe_id: notification_id(n).to_string(),
            source: DedupeSource::OutboundNotification,
            notifications: vec![Notification {
                object: ObjectType::Contact,
                record_id: SalesforceId::mint("003", "D", n % records),
                change: ChangeType::Update,
                system_modstamp: None,
                modified_by: None,
            }],
            resync: vec![],
            digest: None,
        })
        .collect()
}

/// Stores `ids` notifications from `senders` concurrent senders.
async fn ingest_all(store: &Store, args: &DedupeBenchArgs) -> anyhow::Result<Duration> {
    let org = OrgId::parse(ORG)?;
    let next = Arc::new(AtomicU64::new(0));
    let per = args.per_message.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.senders.max(1) {
        let (store, org, next) = (store.clone(), org.clone(), next.clone());
        let (ids, records) = (args.ids, args.records.max(1));
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(per, Ordering::Relaxed);
                if first >= ids {
                    break;
                }
                let msg = message(first, per.min(ids - first), records);
                let out = store.ingest_durably(&org, msg, chrono::Utc::now()).await?;
                anyhow::ensure!(out.duplicates == 0, "a new id was taken for a duplicate");
            }
            anyhow::Ok(())
        }));
    }
    let progress = {
        let (store, next) = (store.clone(), next.clone());
        let step = (args.ids / 10).max(1);
        tokio::spawn(async move {
            let mut mark = step;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if next.load(Ordering::Relaxed) >= mark {
                    let (runs, recent) = store.dedupe_sizes();
                    let rss = rss_mb().unwrap_or(0.0);
                    println!("  {mark} ids: rss {rss:.1} MiB, {runs} runs, {recent} ids in memory");
                    mark += step;
                }
            }
        })
    };
    for t in tasks {
        t.await.context("sender panicked")??;
    }
    progress.abort();
    Ok(started.elapsed())
}

/// `has_seen` latencies, alternating an id seen and one never sent.
fn lookups(store: &Store, ids: u64, samples: u64) -> anyhow::Result<Vec<Duration>> {
    let org = OrgId::parse(ORG)?;
    let mut out = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let seen = i % 2 == 0;
        let n = if seen {
            (i.wrapping_mul(7_919)) % ids.max(1)
        } else {
            ids + i
        };
        let id = notification_id(n);
        let t = Instant::now();
        let found = store.has_seen(&org, DedupeSource::OutboundNotification, id.as_str())?;
        out.push(t.elapsed());
        anyhow::ensure!(found == seen, "has_seen({id}) = {found}");
    }
    out.sort();
    Ok(out)
}

fn dir_mb(dir: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

/// The RSS once the service is at rest after the burst: sampled every half second until it
/// stops falling (the allocator returns freed memory within about a second), at most 10 s.
async fn at_rest() -> anyhow::Result<f64> {
    let mut last = rss_mb().context("no /proc/self/status here")?;
    println!("settled: rss {last:.1} MiB");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_mb().context("no /proc/self/status here")?;
        println!("  at rest? rss {now:.1} MiB");
        if now > last - 0.5 {
            return Ok(now.min(last));
        }
        last = now;
    }
    Ok(last)
}

/// Runs `bench dedupe` and prints its figures.
pub async fn run(args: &DedupeBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.ids > 0, "--ids must be positive");
    let dir = match &args.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("sfsync-bench-dedupe")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("sfsync-bench-dedupe")
            .tempdir()?,
    };
    let store_dir = dir.path().join("store");
    let org = OrgId::parse(ORG)?;
    let config = super::loopback::service_config(
        &store_dir,
        &org,
        "bench-token-0123456789",
        "bench-dedupe-key-0001",
    )?;
    let app = App::build_with(&config, AppOptions::default()).await?;
    let store = app.state().store.clone();
    let token = CancellationToken::new();
    let server = tokio::spawn(app.run_until(token.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_mb().context("no /proc/self/status here")?;
    println!("idle service: rss {idle:.1} MiB");

    let took = ingest_all(&store, args).await?;
    println!("ingested: rss {:.1} MiB", rss_mb().unwrap_or(0.0));
    store.make_durable().await?;
    let (runs, recent) = store.settle_dedupe()?;
    let rss = at_rest().await?;
    println!(
        "stored {} ids in {:.1} s ({:.0}/s); {runs} runs on disk, {recent} ids in memory; rss {rss:.1} MiB; store {:.0} MiB on disk",
        args.ids,
        took.as_secs_f64(),
        args.ids as f64 / took.as_secs_f64(),
        dir_mb(&store_dir)
    );
    let lat = {
        let store = store.clone();
        let (ids, samples) = (args.ids, args.lookups.max(2));
        tokio::task::spawn_blocking(move || lookups(&store, ids, samples)).await??
    };
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)].as_secs_f64() * 1e6;
    println!(
        "has_seen over {} ids (half seen, half not): p50 {:.1} µs, p99 {:.1} µs",
        lat.len(),
        pct(50),
        pct(99)
    );
    drop(store);
    token.cancel();
    server.await.context("server task")??;
    let t = Instant::now();
    let reopened = Store::open(&store_dir)?;
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(reopened);
    println!("reopen: {open_ms:.0} ms");
    let growth = rss - idle;
    let peak = super::measure::status_mb("self", "VmHWM:").unwrap_or(0.0);
    println!(
        "dedupe ids={} rss_mb={rss:.1} rss_idle_mb={idle:.1} rss_peak_mb={peak:.1} bytes_per_id={:.1} lookup_p99_us={:.1}",
        args.ids,
        growth * 1024.0 * 1024.0 / args.ids as f64,
        pct(99)
    );
    Ok(())
}
