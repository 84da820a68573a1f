//! The real service on 127.0.0.1:0 with a temporary store, and a client for its endpoints.

use serde_json::Value;
use sfsync::app::App;
use sfsync::config::Config;
use sfsync::http::AppState;
use sfsync::http::webhook::signature;
use sfsync::store::Store;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::{TOKEN, decoded};

/// A running service and what tests read from it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: TempDir,
}

/// Starts the service from `config`, its store inside `dir`.
pub async fn spawn(config: Config, dir: TempDir) -> TestApp {
    start(config, dir, |_| {}).await
}

/// [`spawn`], with `before` run on the built service before it serves (to connect an org).
pub async fn start(config: Config, dir: TempDir, before: impl FnOnce(&App)) -> TestApp {
    let app = App::build(&config).await.expect("build app");
    before(&app);
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base,
        client: reqwest::Client::new(),
        state,
        shutdown,
        server: Some(server),
        dir,
    }
}

impl TestApp {
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub async fn post_outbound(
        &self,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/webhooks/salesforce/outbound/{key}", self.base))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(body)
            .send()
            .await
            .expect("post")
    }

    /// Posts a JSON event signed with `secret` at `ts`.
    pub async fn post_event(
        &self,
        key: &str,
        id: &str,
        ts: i64,
        secret: &str,
        body: &[u8],
    ) -> reqwest::Response {
        let sig = signature::sign(&decoded(secret), id, ts, body);
        self.post_event_raw(
            key,
            Some(id),
            Some(&ts.to_string()),
            Some(&sig),
            body.to_vec(),
        )
        .await
    }

    pub async fn post_event_raw(
        &self,
        key: &str,
        id: Option<&str>,
        ts: Option<&str>,
        sig: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/webhooks/salesforce/events/{key}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        req.send().await.expect("post")
    }

    /// `METHOD /api/v1{path}` with the API token: the status and the JSON answer (null when
    /// there is none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("api call");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn status(&self) -> Value {
        let (code, status) = self.api(reqwest::Method::GET, "/status", None).await;
        assert_eq!(code, 200, "{status}");
        status
    }

    /// Stops the service, waits for it to finish, and hands back its directory (for a restart).
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.expect("join").expect("server");
        }
        self.dir
    }
}
