//! `sfsync bench scale`: the service, as its own process, holding many records over many orgs.
//!
//! The orgs are simulators in the bench's process (one per org, seeded with Accounts and one
//! Contact each, sharing one connected app behind one login host, see [`orgs`]); the service is
//! `sfsync serve` started as a child process with a config listing every org ([`service`]).
//! Each org is connected through the OAuth redirects and its records imported through
//! `POST /api/v1/imports` (its Accounts, then its "All Contacts" list view), a few orgs at a
//! time ([`connect`]). Then the service is stopped with SIGTERM, the store's bytes on disk are
//! counted, and the service is started again on that store: `start_s` is the time from spawning
//! it to `/readyz` answering 200 (the store opened, the dedupe set and pending queue rebuilt).
//! On the restarted service, `GET /api/v1/contacts/{id}` is timed for Contacts spread over
//! every org, read once each with a cold cache, and then single-record pulls: a Contact's
//! `LastName` changed in its org, timed until the API shows it locally, which includes the
//! org's Outbound Message batching window (20 ms) and the 2 ms polling ([`probe`]).
//! `rss_mb` is the larger `VmHWM` of the two service processes; the stderr report says which.
//! The last line is
//! `scale records=… orgs=… rss_mb=… store_bytes_per_record=… start_s=… pull_p99_ms=… read_p99_ms=…`.

mod connect;
mod orgs;
mod probe;
mod service;

use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt as _;

use super::measure::percentile_ms;
use crate::cli::ScaleBenchArgs;
use connect::Api;
use orgs::Orgs;
use service::Setup;

/// Runs `bench scale`.
pub async fn run(args: &ScaleBenchArgs) -> anyhow::Result<()> {
    let n_orgs = args.orgs.max(1);
    let orgs = orgs::start(n_orgs, args.records.max(2 * n_orgs)).await?;
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("a temporary directory")?;
    let creds = orgs.sims.first().context("no org")?.credentials();
    let org_ids: Vec<_> = orgs.sims.iter().map(|s| s.org_id()).collect();
    let setup = Setup::write(
        dir.path(),
        &orgs.login_url,
        &org_ids,
        creds.client_id,
        creds.client_secret,
    )?;
    let api = Api {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        base: setup.base(),
    };
    let (first, first_start) = setup.start(&api.http).await?;
    eprintln!(
        "bench scale: service up in {:.2} s on an empty store",
        first_start.as_secs_f64()
    );
    let imported = connect_and_import(&api, &orgs, args.parallel.max(1)).await?;
    anyhow::ensure!(
        imported == orgs.records as u64,
        "imported {imported} rows of {} records",
        orgs.records
    );
    let samples = args.samples.max(1);
    let read_set = probe::pick(&api, &orgs, samples, false).await?;
    let pull_set = probe::pick(&api, &orgs, samples, true).await?;
    let first_rss = first.peak_rss_mb()?;
    first.stop().await?;
    let files = service::store_files(&dir.path().join("store"))?;
    let store_bytes: u64 = files.iter().map(|(_, (len, _))| len).sum();
    let (second, start) = setup.start(&api.http).await?;
    eprintln!(
        "bench scale: restarted in {:.2} s, peak RSS {:.0} MiB once ready; store by entry \
         (length/allocated bytes): {}",
        start.as_secs_f64(),
        second.peak_rss_mb()?,
        files
            .iter()
            .map(|(name, (len, allocated))| format!("{name} {len}/{allocated}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let reads = probe::reads(&api, &read_set).await?;
    let pulls = probe::pulls(&api, &orgs, &pull_set).await?;
    let second_rss = second.peak_rss_mb()?;
    second.stop().await?;
    orgs.shutdown();
    eprintln!(
        "bench scale: peak RSS {first_rss:.0} MiB importing, {second_rss:.0} MiB after the restart \
         (reads and pulls); store {store_bytes} bytes; read p50 {:.1} ms, pull p50 {:.1} ms",
        percentile_ms(&reads, 0.5),
        percentile_ms(&pulls, 0.5),
    );
    println!(
        "scale records={} orgs={n_orgs} rss_mb={:.0} store_bytes_per_record={} start_s={:.2} pull_p99_ms={:.1} read_p99_ms={:.1}",
        orgs.records,
        first_rss.max(second_rss),
        store_bytes / orgs.records as u64,
        start.as_secs_f64(),
        percentile_ms(&pulls, 0.99),
        percentile_ms(&reads, 0.99),
    );
    Ok(())
}

/// Connects every org, points its Outbound Messages at the service, and imports its records,
/// `parallel` orgs at a time; the rows applied in all.
async fn connect_and_import(api: &Api, orgs: &Orgs, parallel: usize) -> anyhow::Result<u64> {
    let started = Instant::now();
    for (i, sim) in orgs.sims.iter().enumerate() {
        connect::connect(api, orgs, i).await?;
        sim.set_outbound_url(Some(format!(
            "{}/webhooks/salesforce/outbound/{}",
            api.base,
            service::webhook_key(i)
        )));
    }
    eprintln!(
        "bench scale: {} orgs connected in {:.1} s",
        orgs.sims.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut imports = futures::stream::iter(orgs.sims.iter().map(|sim| connect::import(api, sim)))
        .buffer_unordered(parallel);
    let (mut applied, mut done) = (0, 0);
    while let Some(rows) = imports.next().await {
        applied += rows?;
        done += 1;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "bench scale: {done}/{} orgs imported, {applied} rows in {secs:.1} s ({:.0} rows/s)",
            orgs.sims.len(),
            applied as f64 / secs.max(1e-9)
        );
    }
    Ok(applied)
}
