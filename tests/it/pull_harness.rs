//! The pull side's test harness: a simulated org and the real service on 127.0.0.1:0, wired
//! the way the service wires them (the org's client on the App, Outbound Messages from the
//! simulator to the service's webhook), and a poll-with-timeout helper.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use secrecy::{SecretBox, SecretString};
use sfsync::app::App;
use sfsync::config::Config;
use sfsync::domain::{Company, CompanyProduct, Contact, OrgId, SalesforceId};
use sfsync::salesforce::{Client, TokenKey};
use sfsync::simulator::{Simulator, SimulatorConfig};
use sfsync::store::Store;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::helpers::TOKEN;

pub const KEY: &str = "pull-webhook-key-0001";

pub struct Service {
    pub base: String,
    pub store: Store,
    pub state: sfsync::http::AppState,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct PullEnv {
    pub sim: Simulator,
    pub org: OrgId,
    pub svc: Service,
    pub dir: TempDir,
    pub http: reqwest::Client,
}

pub async fn start_sim(config: SimulatorConfig) -> Simulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    Simulator::start(listener, config)
        .await
        .expect("start simulator")
}

pub fn config_toml(store: &Path, org: &OrgId, sync: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
api_token = "{TOKEN}"
[store]
path = "{store}"
[sync]
{sync}
[[connections]]
org_id = "{org}"
webhook_key = "{KEY}"
"#,
        store = store.display(),
    )
}

/// A client for the simulator's org whose refresh token is sealed in the service's store.
pub fn client_for(sim: &Simulator, store: &Store) -> Client {
    let key = TokenKey::new(1, SecretBox::new(Box::new([7u8; 32])));
    sfsync::tools::bench::loopback::client(sim, store, key)
        .expect("client")
        .with_timeout(Duration::from_secs(5))
        .with_access_token(SecretString::from(sim.credentials().access_token))
}

/// Starts the service on `dir` against `sim` and points the simulator's Outbound Messages at it.
pub async fn start_service(sim: &Simulator, dir: &Path, sync: &str) -> Service {
    let svc = start_service_quiet(sim, dir, sync).await;
    sim.set_outbound_url(Some(format!(
        "{}/webhooks/salesforce/outbound/{KEY}",
        svc.base
    )));
    svc
}

/// The service without pointing Outbound Messages at it (they stay held or dropped).
pub async fn start_service_quiet(sim: &Simulator, dir: &Path, sync: &str) -> Service {
    let config =
        Config::from_toml(&config_toml(&dir.join("store"), &sim.org_id(), sync)).expect("config");
    let app = App::build(&config).await.expect("build app");
    app.connect_salesforce(client_for(sim, &app.state().store));
    run(app)
}

/// Runs a built service in the background.
pub fn run(app: App) -> Service {
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    Service {
        base,
        store: state.store.clone(),
        state,
        shutdown,
        server: Some(server),
    }
}

impl Service {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.expect("join").expect("server");
        }
    }
}

/// A simulator and the service, with sweeps off (tests run them explicitly).
pub async fn start() -> PullEnv {
    start_with(SimulatorConfig::default(), "sweep_interval_s = 0").await
}

pub async fn start_with(config: SimulatorConfig, sync: &str) -> PullEnv {
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_service(&sim, dir.path(), sync).await;
    PullEnv::of(sim, svc, dir)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl PullEnv {
    /// The environment of a simulator and a service running on `dir`.
    pub fn of(sim: Simulator, svc: Service, dir: TempDir) -> Self {
        Self {
            org: sim.org_id(),
            sim,
            svc,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.svc.store
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

    /// Waits until the inbox is empty and the simulator has nothing left to deliver.
    pub async fn settle(&self, timeout: Duration) {
        eventually("inbox and outbound queue to drain", timeout, || async {
            let stats = self.sim.outbound_stats();
            (stats.pending == 0 && self.store().pending_count() == 0).then_some(())
        })
        .await;
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
                    updated_at: chrono::Utc::now(),
                };
                tx.put_company(&c)?;
                Ok::<_, sfsync::store::TxAbort<()>>(c.id)
            })
            .expect("company")
    }

    pub fn client(&self) -> Client {
        self.svc
            .state
            .pull
            .orgs
            .get(&self.org)
            .expect("connected org")
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.svc.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("api call");
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}
