//! `sfsync bench push`: API calls per record, drain rate and bytes written of the outbox.
//!
//! A simulated org on loopback (with `--latency-ms` on every call) is seeded with Accounts and
//! Contacts, which the service's temporary store holds linked. Then `--records` local changes of
//! mixed kinds are written, each with its outbox entry in one transaction: new Contacts, emails
//! sent (Tasks), meetings booked (Events) and opportunities. The service drains them, and the
//! org sends its Outbound Messages about those writes back to the service, as a real org does;
//! the run ends when the outbox is empty and every message has been delivered and handled. The
//! last line is
//! `push records=… api_calls=… calls_per_record=… drain_per_s=… write_bytes_per_record=…`, where
//! `api_calls` counts every data call the simulator answered from the start of the drain to
//! the end, the pulls the messages caused included, and the bytes are what the whole process
//! caused to be written (see [`super::measure`]).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::loopback::{self, Service};
use super::measure;
use crate::cli::PushBenchArgs;
use crate::domain::{
    Activity, ActivityKind, Company, CompanyProduct, Contact, OrgId, OwnershipStatus,
    SalesforceKind,
};
use crate::simulator::{Faults, SeedSpec, SeedSummary, Simulator, SimulatorConfig};
use crate::store::{LocalRef, RecordKind, Store, TxAbort};

/// Linked companies (and two linked contacts each) the changes refer to.
const COMPANIES: usize = 50;

const KEY: &str = "bench-push-webhook-key-01";

/// The fields each Outbound Message carries: the setup guide's minimum.
const MESSAGE_FIELDS: [&str; 3] = ["Id", "SystemModstamp", "LastModifiedById"];

/// Runs `bench push`.
pub async fn run(args: &PushBenchArgs) -> anyhow::Result<()> {
    let written_before = measure::write_bytes();
    let sim = loopback::simulator(SimulatorConfig {
        daily_api_limit: 10_000_000,
        ..SimulatorConfig::default()
    })
    .await?;
    let seeded = sim
        .seed_org(&SeedSpec {
            accounts: COMPANIES,
            contacts_per_account: 2,
            ..SeedSpec::default()
        })
        .map_err(|e| anyhow::anyhow!("seeding the simulator: {e}"))?;
    for object in ["Account", "Contact", "Lead", "Opportunity"] {
        sim.set_outbound_rule(object, &MESSAGE_FIELDS)?;
    }
    sim.set_faults(Faults {
        latency_ms: args.latency_ms,
        ..Faults::default()
    });
    let org = sim.org_id();
    eprintln!(
        "writing {} local changes with their outbox entries",
        args.records
    );
    let calls_before = sim.api_calls().total;
    let service = Service::start(&sim, KEY, |store| {
        let companies = link_seeded(store, &org, &seeded)?;
        write_changes(store, &org, &companies, args.records)
    })
    .await?;
    let started = Instant::now();
    let drained = settle(&sim, &service.store, &org, args.records).await?;
    let calls = sim.api_calls();
    eprintln!(
        "calls by endpoint: {:?}; their subrequests: {:?}",
        calls.by_endpoint, calls.by_subrequest
    );
    let calls = calls.total - calls_before;
    service.stop().await?;
    sim.shutdown();
    let written = measure::per_record(written_before, measure::write_bytes(), args.records);
    println!(
        "push records={} api_calls={} calls_per_record={:.4} drain_per_s={:.0} write_bytes_per_record={}",
        args.records,
        calls,
        calls as f64 / args.records.max(1) as f64,
        args.records as f64
            / drained
                .saturating_duration_since(started)
                .as_secs_f64()
                .max(f64::EPSILON),
        measure::per_record_text(written),
    );
    Ok(())
}

/// Waits until the outbox is empty, every Outbound Message has been delivered and the inbox
/// has handled them, with a progress bar; returns when the outbox became empty.
async fn settle(
    sim: &Simulator,
    store: &Store,
    org: &OrgId,
    records: usize,
) -> anyhow::Result<Instant> {
    let progress = indicatif::ProgressBar::new(records as u64);
    let deadline = Instant::now() + Duration::from_secs(300 + records as u64 / 20);
    let mut drained = None;
    let mut quiet = 0;
    while quiet < 3 {
        anyhow::ensure!(Instant::now() < deadline, "the run did not settle in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = store.outbox_counts(org)?;
        anyhow::ensure!(left.dead == 0, "{} entries became dead letters", left.dead);
        progress.set_position(records as u64 - left.pending.min(records as u64));
        if left.pending > 0 {
            continue;
        }
        let now = Instant::now();
        let drained_at = *drained.get_or_insert(now);
        let settled = sim.outbound_stats().pending == 0 && store.pending_count() == 0;
        quiet = if settled && now > drained_at {
            quiet + 1
        } else {
            0
        };
    }
    progress.finish_and_clear();
    drained.ok_or_else(|| anyhow::anyhow!("the outbox never drained"))
}

/// Local companies and contacts linked to the seeded Accounts and Contacts: `(company, contacts)`.
fn link_seeded(
    store: &Store,
    org: &OrgId,
    seeded: &SeedSummary,
) -> anyhow::Result<Vec<(u64, Vec<u64>)>> {
    let now = Utc::now();
    let out = store
        .transact(|tx| -> Result<_, TxAbort<Infallible>> {
            let mut out = Vec::new();
            for (n, account) in seeded.accounts.iter().enumerate() {
                let id = tx.next_id()?;
                tx.put_company(&Company {
                    salesforce_id: Some(account.clone()),
                    ..Company::named(id, org.clone(), format!("Seed Account {n}"), now)
                })?;
                let mut people = Vec::new();
                for (m, contact) in seeded.contacts.iter().skip(n * 2).take(2).enumerate() {
                    let cid = tx.next_id()?;
                    tx.put_contact(&Contact {
                        id: cid,
                        org_id: org.clone(),
                        company_id: Some(id),
                        first_name: None,
                        last_name: format!("Seeded {n}-{m}"),
                        email: None,
                        title: None,
                        phone: None,
                        salesforce_id: Some(contact.clone()),
                        salesforce_kind: Some(SalesforceKind::Contact),
                        updated_at: now,
                    })?;
                    people.push(cid);
                }
                out.push((id, people));
            }
            Ok(out)
        })
        .map_err(|e| anyhow::anyhow!("linking the seeded records: {e}"))?;
    Ok(out)
}

/// Writes `n` changes, a quarter of each kind, each with its outbox entry, in transactions of
/// 500.
fn write_changes(
    store: &Store,
    org: &OrgId,
    companies: &[(u64, Vec<u64>)],
    n: usize,
) -> anyhow::Result<()> {
    let now = Utc::now();
    for start in (0..n).step_by(500) {
        let end = (start + 500).min(n);
        store
            .transact(|tx| -> Result<(), TxAbort<Infallible>> {
                for i in start..end {
                    let (company, people) = &companies[i % companies.len()];
                    let id = tx.next_id()?;
                    let kind = match i % 4 {
                        0 => {
                            tx.put_contact(&Contact {
                                id,
                                org_id: org.clone(),
                                company_id: Some(*company),
                                first_name: Some("Bench".into()),
                                last_name: format!("Person {i}"),
                                email: Some(format!("person{i}@bench.example")),
                                title: None,
                                phone: None,
                                salesforce_id: None,
                                salesforce_kind: None,
                                updated_at: now,
                            })?;
                            RecordKind::Contact
                        }
                        1 | 2 => {
                            tx.put_activity(&Activity {
                                id,
                                org_id: org.clone(),
                                kind: if i % 4 == 1 {
                                    ActivityKind::EmailSent
                                } else {
                                    ActivityKind::MeetingBooked
                                },
                                contact_id: people.first().copied(),
                                company_id: Some(*company),
                                subject: format!("Touch {i}"),
                                description: None,
                                occurred_at: now,
                                starts_at: None,
                                ends_at: None,
                                salesforce_id: None,
                            })?;
                            RecordKind::Activity
                        }
                        _ => {
                            tx.put_company_product(&CompanyProduct {
                                id,
                                org_id: org.clone(),
                                company_id: *company,
                                product: format!("Product {i}"),
                                status: OwnershipStatus::Opportunity,
                                opportunity_size: Some(1000.0),
                                stage: Some("proposal".into()),
                                close_date: None,
                                salesforce_opportunity_id: None,
                                synced_stage: None,
                                updated_at: now,
                            })?;
                            RecordKind::CompanyProduct
                        }
                    };
                    tx.enqueue_push(org, LocalRef { kind, id }, None, None, now)?;
                }
                Ok(())
            })
            .map_err(|e| anyhow::anyhow!("writing local changes: {e}"))?;
    }
    Ok(())
}
