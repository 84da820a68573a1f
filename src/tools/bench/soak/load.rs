//! The soak's load: local writes through the service's API (the push side), each remembered by
//! its answer, and changes made in the org (the pull side), which the org's Outbound Messages
//! carry to the service.
//!
//! Rules: each push task writes only the records it created, one request at a time, so the
//! order of its writes to a record is the order they were sent; the push side's names and emails
//! never match the pull side's, so a push never links to a record the org made, and the org never
//! changes a record the push side made.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::compare::{Expect, Fields};
use super::service::API_TOKEN;
use crate::domain::SalesforceId;
use crate::simulator::Simulator;

/// Acknowledged local writes, by local id: companies and contacts.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Companies.
    pub(super) companies: BTreeMap<u64, Expect>,
    /// Contacts.
    pub(super) contacts: BTreeMap<u64, Expect>,
    /// Writes answered 2xx.
    pub(super) acked: u64,
    /// Writes that got no answer (refused connections included).
    pub(super) unanswered: u64,
    /// Writes answered with another status.
    pub(super) refused: u64,
}

/// Values unique to one write across the run.
static SEQ: AtomicU64 = AtomicU64::new(1);

fn next() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn fields(pairs: &[(&str, Value)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// What one API write got back.
enum Answer {
    /// 2xx, with the record's local id.
    Acked(u64),
    /// No answer: the write may or may not have committed.
    Unanswered,
    /// Another status: nothing was written.
    Refused,
}

async fn send(http: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Answer {
    let resp = http
        .request(method, url)
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await;
    let Ok(resp) = resp else {
        return Answer::Unanswered;
    };
    if !resp.status().is_success() {
        return Answer::Refused;
    }
    match resp.json::<Value>().await {
        Ok(v) => v["record"]["id"]
            .as_u64()
            .map_or(Answer::Unanswered, Answer::Acked),
        Err(_) => Answer::Unanswered,
    }
}

/// One write a push task sends.
struct Write {
    method: reqwest::Method,
    /// The path under `/api/v1`.
    path: String,
    body: Value,
    /// What it sets, by Salesforce field name.
    sets: Fields,
    is_company: bool,
    /// The record changed; `None` for a create.
    target: Option<u64>,
}

/// The next write of push task `task` over its own records: a new company now and then (and
/// until it has two), a new contact at one of them, or a change to one of either.
fn choose(task: u64, rng: &mut StdRng, companies: &[u64], contacts: &[u64]) -> Write {
    let n = next();
    let roll: f64 = rng.random();
    let name = format!("Soak Local {task}-{n}");
    let company = json!({"name": name, "employees": n});
    let company_sets = fields(&[("Name", json!(name)), ("NumberOfEmployees", json!(n))]);
    let pick = |rng: &mut StdRng, ids: &[u64]| ids[rng.random_range(0..ids.len())];
    let last = format!("L{task}-{n}");
    if companies.len() < 2 || roll < 0.15 {
        Write {
            method: reqwest::Method::POST,
            path: "/companies".into(),
            body: company,
            sets: company_sets,
            is_company: true,
            target: None,
        }
    } else if roll < 0.35 {
        let email = format!("local-{task}-{n}@soak.example");
        Write {
            method: reqwest::Method::POST,
            path: "/contacts".into(),
            body: json!({"company_id": pick(rng, companies), "first_name": "Local",
                "last_name": last, "email": email}),
            sets: fields(&[("LastName", json!(last)), ("Email", json!(email))]),
            is_company: false,
            target: None,
        }
    } else if roll < 0.7 || contacts.is_empty() {
        let id = pick(rng, companies);
        Write {
            method: reqwest::Method::PATCH,
            path: format!("/companies/{id}"),
            body: company,
            sets: company_sets,
            is_company: true,
            target: Some(id),
        }
    } else {
        let id = pick(rng, contacts);
        Write {
            method: reqwest::Method::PATCH,
            path: format!("/contacts/{id}"),
            body: json!({"last_name": last}),
            sets: fields(&[("LastName", json!(last))]),
            is_company: false,
            target: Some(id),
        }
    }
}

/// One push task: creates companies and contacts and changes them, until `stop`.
pub(super) async fn push(
    task: u64,
    seed: u64,
    base: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(seed ^ (task << 32));
    let (mut companies, mut contacts) = (Vec::<u64>::new(), Vec::<u64>::new());
    while !stop.is_cancelled() {
        let w = choose(task, &mut rng, &companies, &contacts);
        let url = format!("{base}/api/v1{}", w.path);
        let answer = send(&http, w.method, url, w.body).await;
        let acked = record(&ledger, answer, w.is_company, w.target, &w.sets);
        match (acked, w.target) {
            (Some(id), None) if w.is_company => companies.push(id),
            (Some(id), None) => contacts.push(id),
            _ => {}
        }
        // A refused or unanswered write (the service may be down) waits longer.
        let pause = Duration::from_millis(if acked.is_some() { 50 } else { 200 });
        tokio::time::sleep(pause).await;
    }
}

/// Notes a write's answer in the ledger; the acknowledged record's id when it was acked.
fn record(
    ledger: &Mutex<Ledger>,
    answer: Answer,
    is_company: bool,
    target: Option<u64>,
    write: &Fields,
) -> Option<u64> {
    let mut l = ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match answer {
        Answer::Acked(id) => {
            l.acked += 1;
            let map = if is_company {
                &mut l.companies
            } else {
                &mut l.contacts
            };
            map.entry(id).or_default().acked(write);
            Some(id)
        }
        Answer::Unanswered => {
            l.unanswered += 1;
            let map = if is_company {
                &mut l.companies
            } else {
                &mut l.contacts
            };
            if let Some(e) = target.and_then(|id| map.get_mut(&id)) {
                e.unanswered(write);
            }
            None
        }
        Answer::Refused => {
            l.refused += 1;
            None
        }
    }
}

/// The pull side: creates and changes Accounts and Contacts in the org as a sales rep, until
/// `stop`; returns how many changes it made.
pub(super) async fn pull(
    sim: Simulator,
    seed: u64,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let (mut accounts, mut contacts) = (Vec::<SalesforceId>::new(), Vec::<SalesforceId>::new());
    let mut changes = 0;
    while !stop.is_cancelled() {
        let n = next();
        let roll: f64 = rng.random();
        if accounts.len() < 2 || roll < 0.15 {
            let body = json!({"Name": format!("Soak Org {n}"), "NumberOfEmployees": n});
            accounts.push(sim.create("Account", body)?);
        } else if roll < 0.3 {
            let account = &accounts[rng.random_range(0..accounts.len())];
            let body = json!({"FirstName": "Org", "LastName": format!("O{n}"),
                "Email": format!("org-{n}@soak.example"), "AccountId": account});
            contacts.push(sim.create("Contact", body)?);
        } else if roll < 0.75 || contacts.is_empty() {
            let account = &accounts[rng.random_range(0..accounts.len())];
            let body = json!({"Name": format!("Soak Org {n}"), "NumberOfEmployees": n});
            sim.update(account, body)?;
        } else {
            let contact = &contacts[rng.random_range(0..contacts.len())];
            sim.update(contact, json!({"LastName": format!("O{n}")}))?;
        }
        changes += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(changes)
}
