//! A simulated org and the service configured for it: the pair most sync tests need.
//!
//! [`start`] connects the org on the service (its inbox and outbox workers run, the org's
//! Outbound Messages are pointed at the service); [`start_detached`] leaves the org unconnected
//! so a test steps its own [`OutboxWorker`] ([`SyncEnv::outbox_worker`], [`drain`]).

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sfsync::config::{Config, OutboxConfig};
use sfsync::domain::{Company, CompanyProduct, Contact, OrgId, PushAs, SalesforceId};
use sfsync::salesforce::Client;
use sfsync::simulator::{Simulator, SimulatorConfig};
use sfsync::store::Store;
use sfsync::worker::outbox::{OutboxWorker, Outcome, StepReport};
use tempfile::TempDir;

use super::app::{self, TestApp};
use super::{connection, eventually};

/// The org's webhook key in a [`SyncEnv`].
pub const ENV_KEY: &str = "sync-test-webhook-key-1";

/// The marker field the simulated org has by default.
pub const MARKER: &str = "Sfsync_Id__c";

/// A simulated org and the service configured for it.
pub struct SyncEnv {
    pub sim: Simulator,
    pub org: OrgId,
    pub app: TestApp,
}

/// Outbox settings for tests: retries and pauses in milliseconds, not minutes.
pub fn outbox_config() -> OutboxConfig {
    OutboxConfig {
        retry_base_ms: 10,
        retry_cap_ms: 100,
        limit_pause_ms: 1000,
        ..OutboxConfig::default()
    }
}

/// The service's config for `org`, its store under `dir`: the catch-up sweep off, fast retries.
pub fn env_config(dir: &std::path::Path, org: &OrgId) -> Config {
    let mut c = super::config(&dir.join("store"), vec![connection(org, ENV_KEY, &[])]);
    c.outbox = outbox_config();
    c
}

/// Starts the service on `dir` for `sim`'s org, `adjust`ed; connected to the org (workers
/// running) when `connect`, and the org's Outbound Messages pointed at it when `deliver`.
pub async fn serve(
    sim: &Simulator,
    dir: TempDir,
    adjust: impl FnOnce(&mut Config),
    connect: bool,
    deliver: bool,
) -> TestApp {
    let mut config = env_config(dir.path(), &sim.org_id());
    adjust(&mut config);
    let app = app::start(config, dir, |app| {
        if connect {
            app.connect_salesforce(super::org::client_for(sim, &app.state().store));
        }
    })
    .await;
    if deliver {
        sim.set_outbound_url(Some(format!(
            "{}/webhooks/salesforce/outbound/{ENV_KEY}",
            app.base
        )));
    }
    app
}

/// A default org and the service connected to it.
pub async fn start() -> SyncEnv {
    start_with(SimulatorConfig::default(), |_| {}).await
}

/// An org started from `sim_config` and the service, `adjust`ed, connected to it.
pub async fn start_with(sim_config: SimulatorConfig, adjust: impl FnOnce(&mut Config)) -> SyncEnv {
    let sim = super::org::start(sim_config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = serve(&sim, dir, adjust, true, true).await;
    SyncEnv {
        org: sim.org_id(),
        sim,
        app,
    }
}

/// An org started without the marker field (its setup incomplete) and the service connected to
/// it.
pub async fn start_without_marker() -> SyncEnv {
    let config = SimulatorConfig {
        marker_field: None,
        ..SimulatorConfig::default()
    };
    start_with(config, |_| {}).await
}

/// A default org and the service, not connected: the test steps the outbox itself.
pub async fn start_detached(adjust: impl FnOnce(&mut Config)) -> SyncEnv {
    let sim = super::org::start(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = serve(&sim, dir, adjust, false, false).await;
    SyncEnv {
        org: sim.org_id(),
        sim,
        app,
    }
}

/// Steps the worker until nothing is left to do, each step hours later than the last so
/// back-off and pauses have passed. Returns the reports.
pub async fn drain(worker: &mut OutboxWorker) -> Vec<StepReport> {
    let mut reports = Vec::new();
    for i in 0..400 {
        let outcome = worker
            .step_at(Utc::now() + chrono::Duration::hours(2 + i))
            .await
            .expect("step");
        let done = outcome == Outcome::Idle && !worker.is_paused();
        reports.push(outcome.into_report());
        if done {
            return reports;
        }
    }
    panic!("the outbox did not drain: {:?}", reports.last());
}

/// Asserts no two live records of `object` carry the same marker; returns how many carry one.
pub fn assert_no_duplicates(sim: &Simulator, object: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for r in sim.list(object) {
        if r["IsDeleted"] == json!(true) {
            continue;
        }
        if let Some(m) = r[MARKER].as_str() {
            assert!(seen.insert(m.to_string()), "{object} duplicated: {m}");
        }
    }
    seen.len()
}

impl SyncEnv {
    pub fn store(&self) -> &Store {
        self.app.store()
    }

    /// The service's connection to the org.
    pub fn client(&self) -> Client {
        self.app
            .state
            .pull
            .orgs
            .get(&self.org)
            .expect("connected org")
    }

    /// An outbox worker on the service's store with its own connection to the org, following
    /// the service's `[sync]` rules.
    pub fn outbox_worker(&self) -> OutboxWorker {
        OutboxWorker::new(
            self.store().clone(),
            super::org::client_for(&self.sim, self.store()),
            outbox_config(),
            PushAs::Contact,
        )
        .with_rules(self.app.state.pull.rules.clone())
    }

    pub fn company_of(&self, id: &SalesforceId) -> Option<Company> {
        self.store()
            .companies(&self.org)
            .expect("companies")
            .into_iter()
            .find(|c| c.salesforce_id.as_ref() == Some(id))
    }

    pub fn contact_of(&self, id: &SalesforceId) -> Option<Contact> {
        self.store()
            .contacts(&self.org)
            .expect("contacts")
            .into_iter()
            .find(|c| c.salesforce_id.as_ref() == Some(id))
    }

    pub fn product_of(&self, id: &SalesforceId) -> Option<CompanyProduct> {
        self.store()
            .company_products(&self.org)
            .expect("products")
            .into_iter()
            .find(|p| p.salesforce_opportunity_id.as_ref() == Some(id))
    }

    /// Waits until the inbox is empty and the org has nothing left to deliver.
    pub async fn settle(&self, timeout: Duration) {
        eventually("inbox and outbound queue to drain", timeout, || async {
            let stats = self.sim.outbound_stats();
            (stats.pending == 0 && self.store().pending_count() == 0).then_some(())
        })
        .await;
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.app.api(method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Creates a record through the API and returns its local id.
    pub async fn create(&self, path: &str, body: Value) -> u64 {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 201, "{path}: {v}");
        v["record"]["id"].as_u64().expect("id")
    }

    /// A company named `name` with a website made from it.
    pub async fn company(&self, name: &str) -> u64 {
        self.create(
            "/companies",
            json!({"name": name, "website": format!("https://{}.example", name.to_lowercase())}),
        )
        .await
    }

    /// A local record as the API lists it.
    pub async fn listed(&self, path: &str, id: u64) -> Value {
        let (_, list) = self.get(path).await;
        list["items"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["id"] == json!(id)).cloned())
            .unwrap_or_else(|| panic!("{path} {id} not listed"))
    }

    /// The Salesforce id the local record `path`/`id` holds in `field`.
    pub async fn sf_id(&self, path: &str, id: u64, field: &str) -> SalesforceId {
        let r = self.listed(path, id).await;
        SalesforceId::parse(
            r[field]
                .as_str()
                .unwrap_or_else(|| panic!("{path} {id} unlinked: {r}")),
        )
        .expect("sf id")
    }

    /// A local company of this org, written straight to the store (no outbox entry).
    pub fn local_company(&self, name: &str, website: &str) -> u64 {
        self.store()
            .transact(|tx| {
                let c = Company {
                    id: tx.next_id()?,
                    org_id: self.org.clone(),
                    name: name.into(),
                    domain: sfsync::domain::normalize::domain(website),
                    website: Some(website.into()),
                    industry: None,
                    annual_revenue: None,
                    employees: None,
                    salesforce_id: None,
                    updated_at: Utc::now(),
                };
                tx.put_company(&c)?;
                Ok::<_, sfsync::store::TxAbort<()>>(c.id)
            })
            .expect("company")
    }

    /// Live records of an object in the org.
    pub fn live(&self, object: &str) -> Vec<Value> {
        self.sim
            .list(object)
            .into_iter()
            .filter(|r| r["IsDeleted"] != json!(true))
            .collect()
    }

    /// A record as the org holds it.
    pub fn record(&self, id: &SalesforceId) -> Value {
        self.sim.get(id).expect("record in the simulator")
    }
}
