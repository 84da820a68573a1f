//! The timed samples of `bench scale`: API reads of single contacts and single-record pulls,
//! each over Contacts spread across every org.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::connect::Api;
use super::orgs::Orgs;
use crate::domain::SalesforceId;

/// A sampled Contact: its org, its API path, its id in the org, its local id.
pub(super) struct Sample {
    org: usize,
    path: String,
    salesforce_id: SalesforceId,
    local: u64,
}

/// `n` Contacts spread over the orgs and evenly over each org's Contacts (shifted by half a step
/// when `shifted`, so two sets do not overlap), with their local ids (looked up through
/// `GET /api/v1/contacts?salesforce_id=…`).
pub(super) async fn pick(
    api: &Api,
    orgs: &Orgs,
    n: usize,
    shifted: bool,
) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(n);
    let count = orgs.sims.len().max(1);
    let per_org = n.div_ceil(count);
    for k in 0..n {
        let org = k % count;
        let contacts = orgs.contacts.get(org).context("no such org")?;
        let stride = (contacts.len() / per_org).max(1);
        let offset = if shifted { stride / 2 } else { 0 };
        let at = ((k / count) * stride + offset) % contacts.len().max(1);
        let salesforce_id = contacts.get(at).context("an org without contacts")?.clone();
        let org_id = orgs.sims.get(org).context("no such org")?.org_id();
        let found = api
            .get(&format!(
                "/contacts?salesforce_id={salesforce_id}&org_id={org_id}"
            ))
            .await?;
        let local = found["items"][0]["id"]
            .as_u64()
            .with_context(|| format!("contact {salesforce_id} was not imported"))?;
        out.push(Sample {
            org,
            path: format!("/contacts/{local}?org_id={}", org_id),
            salesforce_id,
            local,
        });
    }
    Ok(out)
}

/// Reads each sample once with `GET /api/v1/contacts/{id}`; the times, sorted.
pub(super) async fn reads(api: &Api, samples: &[Sample]) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(samples.len());
    for s in samples {
        let started = Instant::now();
        let contact = api.get(&s.path).await?;
        times.push(started.elapsed());
        anyhow::ensure!(
            contact["salesforce_id"].as_str() == Some(s.salesforce_id.as_str()),
            "contact {} is not {}: {contact}",
            s.local,
            s.salesforce_id
        );
    }
    times.sort();
    Ok(times)
}

/// Changes each sample's `LastName` in its org, one at a time, and times until the local copy
/// holds the new name (polled every 2 ms through the API); the times, sorted.
pub(super) async fn pulls(
    api: &Api,
    orgs: &Orgs,
    samples: &[Sample],
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(samples.len());
    for (n, s) in samples.iter().enumerate() {
        let name = format!("Pulled {n}");
        let sim = orgs.sims.get(s.org).context("no such org")?;
        let started = Instant::now();
        sim.update(&s.salesforce_id, json!({"LastName": name}))
            .map_err(|e| anyhow::anyhow!("changing {}: {e}", s.salesforce_id))?;
        loop {
            let contact = api.get(&s.path).await?;
            if contact["last_name"].as_str() == Some(name.as_str()) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "contact {} never got its change",
                s.salesforce_id
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}
