//! `sfsync demo`: one command, no setup, nothing beyond loopback, told as a Salesforce admin
//! would want it told.
//!
//! 1. **The org**: a simulated Salesforce org is seeded, with the setup the guide asks for (the
//!    marker field, Outbound Messages on four objects, an integration user).
//! 2. **Connecting**: the service starts with a connected app, and the org is connected through
//!    the same redirects an operator's browser takes (authorize → the org's login page →
//!    callback); the setup check that follows is printed.
//! 3. **Import from Salesforce**: Accounts, then the Contacts and Opportunities of three of them.
//! 4. **Changes in Salesforce**: edits, a new Contact, a new Lead and its conversion arrive as
//!    real Outbound Messages; a merge and a delete (which send none) are found by the catch-up
//!    sweep. Each row is read back from the local API after the change.
//! 5. **Changes in the app**: a contact, an email, a meeting and an opportunity written through
//!    the local API and pushed through the outbox; each row is read back from the org.
//! 6. **What it cost**: API calls per phase, notifications and duplicates.
//! 7. **What the app received**: every change, POSTed signed to a tiny app on loopback.

mod app;
mod connect;
mod org;
mod pull;
mod push;
mod table;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::DemoArgs;

/// How long any one wait may take before the demo gives up.
const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it yields a value or [`WAIT`] passes.
async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The running service, as the demo talks to it: its local API and its store-side handles.
pub(crate) struct Service {
    base: String,
    token: String,
    http: reqwest::Client,
    state: crate::http::AppState,
    shutdown: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The app that listens to the service's changes.
    app: crate::tools::app_receiver::AppReceiver,
    _dir: tempfile::TempDir,
}

impl Service {
    /// `METHOD /api/v1{path}` with the API token; the JSON answer, or the API's error.
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let code = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            code.is_success(),
            "{method} {path} answered {code}: {value}"
        );
        Ok(value)
    }

    /// The one local record of `kind` linked to `salesforce_id`, when there is one.
    async fn linked(&self, kind: &str, salesforce_id: &str) -> anyhow::Result<Option<Value>> {
        let page = self
            .api(
                reqwest::Method::GET,
                &format!("/{kind}?salesforce_id={salesforce_id}"),
                None,
            )
            .await?;
        Ok(page["items"].as_array().and_then(|a| a.first()).cloned())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await.context("server task")??;
        Ok(())
    }
}

/// Runs the demo.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let org = org::start(args).await?;
    let svc = connect::start_service(&org).await?;
    let mut costs = table::Costs::default();
    connect::connect(&svc, &org).await?;
    costs.mark("connecting and the setup check", &org.sim);
    pull::import(&svc, &org).await?;
    costs.mark("imports", &org.sim);
    let pulled = pull::changes(&svc, &org).await?;
    costs.mark(
        "pulling the changes (Outbound Messages and the sweep)",
        &org.sim,
    );
    table::print_rows("   what the local API now shows", &pulled.rows);
    let pushed = push::app_changes(&svc, &org, &pulled.survivor).await?;
    costs.mark("pushing the app's changes", &org.sim);
    table::print_rows("   what the org now holds", &pushed);
    table::print_summary(&svc, &org, &costs, started.elapsed()).await?;
    app::report(&svc).await?;
    svc.stop().await?;
    org.sim.shutdown();
    Ok(())
}
