//! The push side's test bench: a simulator, the real service configured for the simulator's org
//! on 127.0.0.1:0, and an outbox worker on the service's store that tests step directly.

use chrono::Utc;
use secrecy::{SecretBox, SecretString};
use serde_json::{Value, json};

use sfsync::app::App;
use sfsync::config::{Config, OutboxConfig};
use sfsync::domain::{OrgId, PushAs, SalesforceId};
use sfsync::salesforce::{Client, TokenKey};
use sfsync::simulator::{Simulator, SimulatorConfig};
use sfsync::store::Store;
use sfsync::worker::outbox::{OutboxWorker, Outcome, StepReport};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TOKEN, TestApp};

pub const MARKER: &str = "Sfsync_Id__c";

pub struct PushEnv {
    pub sim: Simulator,
    pub app: TestApp,
    pub worker: OutboxWorker,
    pub org: OrgId,
}

pub async fn start_sim() -> Simulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    Simulator::start(listener, SimulatorConfig::default())
        .await
        .expect("start simulator")
}

fn config_toml(store: &std::path::Path, org: &OrgId, push_as: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
api_token = "{TOKEN}"
[store]
path = "{store}"
[sync]
push_as = "{push_as}"
[outbox]
retry_base_ms = 10
retry_cap_ms = 100
limit_pause_ms = 1000
[[connections]]
org_id = "{org}"
webhook_key = "push-test-webhook-key-1"
"#,
        store = store.display(),
    )
}

pub fn outbox_config() -> OutboxConfig {
    OutboxConfig {
        retry_base_ms: 10,
        retry_cap_ms: 100,
        limit_pause_ms: 1000,
        ..OutboxConfig::default()
    }
}

/// A client for the simulator's org whose refresh token is sealed in `store`, starting without a
/// session as the service does: its first call refreshes it, and the token response names the
/// connection's user.
pub fn connecting_client(sim: &Simulator, store: &Store) -> Client {
    let key = TokenKey::new(1, SecretBox::new(Box::new([42u8; 32])));
    sfsync::tools::bench::loopback::client(sim, store, key).expect("client")
}

/// A client for the simulator's org whose refresh token is sealed in `store`.
pub fn client_for(sim: &Simulator, store: &Store) -> Client {
    connecting_client(sim, store)
        .with_access_token(SecretString::from(sim.credentials().access_token))
        .with_timeout(std::time::Duration::from_secs(10))
}

pub async fn push_env() -> PushEnv {
    push_env_as("contact").await
}

pub async fn push_env_as(push_as: &str) -> PushEnv {
    let sim = start_sim().await;
    let org = sim.org_id();
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        Config::from_toml(&config_toml(&dir.path().join("store"), &org, push_as)).expect("config");
    let app = App::build(&config).await.expect("build app");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    let app = TestApp {
        base,
        client: reqwest::Client::new(),
        state,
        shutdown,
        server: Some(server),
        dir,
    };
    let worker = worker_on(&sim, app.store());
    PushEnv {
        sim,
        app,
        worker,
        org,
    }
}

pub fn worker_on(sim: &Simulator, store: &Store) -> OutboxWorker {
    OutboxWorker::new(
        store.clone(),
        client_for(sim, store),
        outbox_config(),
        PushAs::Contact,
    )
}

/// Steps the worker until nothing is left to do, each step hours later than the last so back-off
/// and pauses have passed. Returns the reports.
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

impl PushEnv {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(format!("{}/api/v1{path}", self.app.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .patch(format!("{}/api/v1{path}", self.app.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("patch");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .app
            .client
            .get(format!("{}/api/v1{path}", self.app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a record through the API and returns its local id.
    pub async fn create(&self, path: &str, body: Value) -> u64 {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 201, "{path}: {v}");
        v["record"]["id"].as_u64().expect("id")
    }

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

    pub async fn sf_id(&self, path: &str, id: u64, field: &str) -> SalesforceId {
        let r = self.listed(path, id).await;
        SalesforceId::parse(
            r[field]
                .as_str()
                .unwrap_or_else(|| panic!("{path} {id} unlinked: {r}")),
        )
        .expect("sf id")
    }

    /// Live simulator records of an object.
    pub fn live(&self, object: &str) -> Vec<Value> {
        self.sim
            .list(object)
            .into_iter()
            .filter(|r| r["IsDeleted"] != json!(true))
            .collect()
    }

    pub fn record(&self, id: &SalesforceId) -> Value {
        self.sim.get(id).expect("record in the simulator")
    }
}

/// Asserts no two live records of `object` carry the same marker, and returns how many carry one.
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
