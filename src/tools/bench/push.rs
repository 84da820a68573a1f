//! `sfsync bench push`: API calls per record and drain rate of the outbox.
//!
//! A simulated org on loopback (with `--latency-ms` on every call) is seeded with Accounts and
//! Contacts, which a temporary store holds linked. Then `--records` local changes of mixed kinds
//! are written, each with its outbox entry in one transaction: new Contacts, emails sent (Tasks),
//! meetings booked (Events) and opportunities. One outbox worker drains them; the last line is
//! `push records=… api_calls=… calls_per_record=… drain_per_s=…`, where `api_calls` counts every
//! data call the simulator answered during the drain.

use std::convert::Infallible;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use secrecy::SecretBox;

use super::loopback;
use crate::cli::PushBenchArgs;
use crate::config::OutboxConfig;
use crate::domain::{
    Activity, ActivityKind, Company, CompanyProduct, Contact, OrgId, OwnershipStatus, PushAs,
    SalesforceKind,
};
use crate::salesforce::TokenKey;
use crate::simulator::{Faults, SeedSpec, SeedSummary, SimulatorConfig};
use crate::store::{LocalRef, RecordKind, Store, TxAbort};
use crate::worker::outbox::OutboxWorker;

/// Linked companies (and two linked contacts each) the changes refer to.
const COMPANIES: usize = 50;

/// Runs `bench push`.
pub async fn run(args: &PushBenchArgs) -> anyhow::Result<()> {
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
    let dir = tempfile::tempdir().context("temporary store")?;
    let store = Store::open(&dir.path().join("store")).context("opening the store")?;
    let org = sim.org_id();
    let companies = link_seeded(&store, &org, &seeded)?;
    eprintln!(
        "writing {} local changes with their outbox entries",
        args.records
    );
    write_changes(&store, &org, &companies, args.records)?;
    store.make_durable().await?;

    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let client = loopback::client(
        &sim,
        &store,
        TokenKey::new(1, SecretBox::new(Box::new(key))),
    )?;
    let mut worker = OutboxWorker::new(
        store.clone(),
        client,
        OutboxConfig::default(),
        PushAs::Contact,
    );
    sim.set_faults(Faults {
        latency_ms: args.latency_ms,
        ..Faults::default()
    });
    let calls_before = sim.api_calls().total;
    let started = Instant::now();
    let progress = indicatif::ProgressBar::new(args.records as u64);
    loop {
        let outcome = worker.step().await?;
        let left = store.outbox_counts(&org)?;
        progress.set_position(args.records as u64 - left.pending.min(args.records as u64));
        if !outcome.worked() && !worker.is_paused() {
            break;
        }
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let calls = sim.api_calls().total - calls_before;
    let left = store.outbox_counts(&org)?;
    if left.pending + left.dead > 0 {
        anyhow::bail!(
            "the drain stopped with {} pending and {} dead entries",
            left.pending,
            left.dead
        );
    }
    sim.shutdown();
    println!(
        "push records={} api_calls={} calls_per_record={:.4} drain_per_s={:.0}",
        args.records,
        calls,
        calls as f64 / args.records.max(1) as f64,
        args.records as f64 / elapsed.max(f64::EPSILON)
    );
    Ok(())
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
