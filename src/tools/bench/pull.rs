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
use crate::cli::{MessageFields, PullBenchArgs};
use crate::domain::{OrgId, SalesforceId, TypeFilter};
use crate::simulator::{DeliveryMode, Faults, SeedSpec, Simulator, SimulatorConfig};
use crate::store::{ChangesRead, Store};

const KEY: &str = "bench-pull-webhook-key-01";

/// The value the last change of every record writes, so the watcher can tell it apart.
pub(super) fn final_marker(k: usize) -> i64 {
    1_000_000 + k as i64
}

/// The fields the Account Outbound Message of the setup guide sends (deploy/salesforce).
pub(super) const SETUP_FIELDS: [&str; 4] = [
    "Id",
    "SystemModstamp",
    "LastModifiedById",
    "LastModifiedDate",
];

/// A simulated org with `n` Accounts, and their ids; its Account notifications carry `fields`.
pub(super) async fn org(
    n: usize,
    outbound_concurrency: usize,
    fields: MessageFields,
) -> anyhow::Result<(Simulator, Vec<SalesforceId>)> {
    let sim = loopback::simulator(SimulatorConfig {
        seed: 5,
        daily_api_limit: 10_000_000,
        outbound_concurrency,
        ..SimulatorConfig::default()
    })
    .await?;
    if fields == MessageFields::Setup {
        sim.set_outbound_rule("Account", &SETUP_FIELDS)?;
    }
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
    let (sim, accounts) = org(n, args.outbound_concurrency, args.message_fields).await?;
    let service = Service::start(&sim, KEY, |_| Ok(())).await?;
    go_live(&sim, args.latency_ms);
    eprintln!(
        "bench pull: {n} records, {k} notifications each, {} ms api latency, {:?} message fields",
        args.latency_ms, args.message_fields
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
    let stages = std::sync::Arc::new(std::sync::Mutex::new(Stages::default()));
    let sampler = tokio::spawn(follow_stages(
        sim.clone(),
        service.store.clone(),
        started,
        stages.clone(),
    ));
    change(&sim, &accounts, k, &changed).await?;
    let made = started.elapsed();
    let mut latencies = tokio::task::spawn_blocking(move || watcher.join())
        .await
        .context("watcher")?
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))?;
    let elapsed = started.elapsed();
    sampler.abort();
    let stages = stages.lock().map(|s| *s).unwrap_or_default();
    let [log_sync, journal_copy, sled_flush] = service.store.commit_time_spent();
    let checkpoints = service.store.checkpoints_completed();
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
    eprintln!(
        "changes made in {:.1} s; the org's queue of Outbound Messages peaked at {} notifications \
         and was last empty at {:.1} s; the inbox peaked at {} records waiting",
        made.as_secs_f64(),
        stages.org_queue_peak,
        stages.org_queue_empty_at.as_secs_f64(),
        stages.inbox_peak,
    );
    eprintln!(
        "the committer spent {:.1} s syncing the inbox log; the checkpointer {:.1} s copying it \
         into sled and {:.1} s flushing sled ({checkpoints} checkpoints)",
        log_sync.as_secs_f64(),
        journal_copy.as_secs_f64(),
        sled_flush.as_secs_f64(),
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

/// Where the backlog of a run sat: the org's queue of unacknowledged notifications and the
/// inbox's records waiting for a pull, at their largest, and when the org's queue was last seen
/// empty (from the start of the changes).
#[derive(Debug, Default, Clone, Copy)]
struct Stages {
    org_queue_peak: u64,
    org_queue_empty_at: Duration,
    inbox_peak: u64,
}

/// Samples both queues into `stages` every 10 ms, until aborted.
async fn follow_stages(
    sim: Simulator,
    store: Store,
    started: Instant,
    stages: std::sync::Arc<std::sync::Mutex<Stages>>,
) {
    loop {
        let org_queue = sim.outbound_stats().pending;
        let inbox = store.pending_count();
        if let Ok(mut s) = stages.lock() {
            s.org_queue_peak = s.org_queue_peak.max(org_queue);
            s.inbox_peak = s.inbox_peak.max(inbox);
            if org_queue > 0 {
                s.org_queue_empty_at = Duration::ZERO;
            } else if s.org_queue_peak > 0 && s.org_queue_empty_at.is_zero() {
                s.org_queue_empty_at = started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Each record's last change, as it is made: the record and when.
pub(super) type Changed = std::sync::mpsc::Sender<(SalesforceId, Instant)>;

/// The watcher, a thread of its own so that its reads do not hold up the service's runtime:
/// follows the store's change log (every transaction that changes a record logs the record as
/// it left it, in the same transaction) and returns, for each of `n` records, how long after
/// its last change a reader of the store could first see it local with its `NumberOfEmployees`
/// at `marker`. It reads only the entries logged since its last look, every 5 ms, so what it
/// costs grows with the changes applied, not with the records still waiting.
fn watch(
    store: Store,
    org: OrgId,
    changes: std::sync::mpsc::Receiver<(SalesforceId, Instant)>,
    n: usize,
    marker: i64,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(n);
        let mut changed: HashMap<SalesforceId, Instant> = HashMap::new();
        let mut local: HashMap<SalesforceId, Instant> = HashMap::new();
        let mut after = 0;
        let companies = TypeFilter::parse(&["company.*"]).unwrap_or_else(|_| TypeFilter::all());
        let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 100);
        while latencies.len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            changed.extend(changes.try_iter());
            let now = Instant::now();
            after = read_marked(&store, &org, after, &companies, marker, |id| {
                local.entry(id).or_insert(now);
            });
            local.retain(|id, at| match changed.remove(id) {
                Some(made) => {
                    latencies.push(at.saturating_duration_since(made));
                    false
                }
                None => true,
            });
        }
        latencies
    })
}

/// Reads the change log after `after` up to the last committed entry and calls `found` with
/// the Account id of every company of `org` logged with `employees` at `marker`; returns where
/// the next read starts.
fn read_marked(
    store: &Store,
    org: &OrgId,
    mut after: u64,
    filter: &TypeFilter,
    marker: i64,
    mut found: impl FnMut(SalesforceId),
) -> u64 {
    let upto = store.committed_changes();
    while after < upto {
        let Ok(ChangesRead::Page(page)) = store.read_changes(after, upto, 1_000, filter) else {
            break;
        };
        for entry in &page.entries {
            let data = &entry.data;
            let id = data.get("salesforce_id").and_then(|v| v.as_str());
            let employees = data.get("employees").and_then(serde_json::Value::as_i64);
            if entry.org_id == *org && employees == Some(marker) {
                if let Some(id) = id.and_then(|i| SalesforceId::parse(i).ok()) {
                    found(id);
                }
            }
        }
        if page.next <= after {
            break;
        }
        after = page.next;
    }
    after
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeWhat, Company};
    use crate::store::{LocalRef, RecordKind, Subject};

    fn write(store: &Store, org: &OrgId, id: u64, account: u64, employees: i64) {
        let mut c = Company::named(id, org.clone(), format!("A{id}"), chrono::Utc::now());
        c.employees = Some(employees);
        c.salesforce_id = Some(SalesforceId::mint("001", "5g", account));
        store
            .atomically(|tx| {
                tx.put_company(&c)?;
                let me = LocalRef::new(RecordKind::Company, id);
                tx.record_change(org, ChangeWhat::Updated, Subject::Record(me))?;
                Ok(())
            })
            .expect("write");
    }

    /// The fields the org's Account Outbound Message sends, as its control endpoint tells.
    async fn account_rule(sim: &Simulator) -> serde_json::Value {
        let url = format!("{}/__sim/outbound", sim.instance_url());
        let state: serde_json::Value = reqwest::get(url)
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        state["rules"]["Account"].clone()
    }

    #[tokio::test]
    async fn the_org_sends_the_setup_guides_fields_unless_asked_for_all_of_them() {
        let (sim, _) = org(1, 1, MessageFields::Setup).await.expect("org");
        let mut sent: Vec<String> =
            serde_json::from_value(account_rule(&sim).await).expect("fields");
        sent.sort();
        let mut want = SETUP_FIELDS.map(String::from).to_vec();
        want.sort();
        assert_eq!(sent, want);
        sim.shutdown();
        let (sim, _) = org(1, 1, MessageFields::All).await.expect("org");
        let all = account_rule(&sim).await;
        assert_eq!(all.as_array().map(Vec::len), Some(15), "{all}");
        sim.shutdown();
        let guide = include_str!("../../../deploy/salesforce/README.md");
        let from = guide
            .find("**Fields to send**")
            .expect("the guide names the fields");
        let item = &guide[from..];
        let item = &item[..item.find("\n- ").unwrap_or(item.len())];
        for field in SETUP_FIELDS {
            let named = format!("`{field}`");
            assert!(item.contains(&named), "{field} is not in the setup guide");
        }
    }

    #[test]
    fn the_watcher_finds_the_companies_logged_with_the_marker_of_its_org_once_each() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let other = OrgId::parse("00D7F00000107Xt").expect("org");
        let filter = TypeFilter::parse(&["company.*"]).expect("filter");
        write(&store, &org, 1, 1, 7);
        write(&store, &org, 2, 2, 99);
        write(&store, &other, 3, 3, 99);
        let mut found = Vec::new();
        let after = read_marked(&store, &org, 0, &filter, 99, |id| found.push(id));
        assert_eq!(found, [SalesforceId::mint("001", "5g", 2)]);
        assert_eq!(after, store.committed_changes());
        write(&store, &org, 1, 1, 99);
        let mut more = Vec::new();
        read_marked(&store, &org, after, &filter, 99, |id| more.push(id));
        assert_eq!(
            more,
            [SalesforceId::mint("001", "5g", 1)],
            "only what is new"
        );
    }
}
