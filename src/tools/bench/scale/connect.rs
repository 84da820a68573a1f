//! Connecting each org through the OAuth redirects (the bench signs in on the org's login page
//! as a browser would) and importing its records through `POST /api/v1/imports`.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::orgs::Orgs;
use super::service::API_TOKEN;
use crate::simulator::Simulator;

/// The local API at `base`.
pub(super) struct Api {
    /// Follows no redirects: the bench walks them itself.
    pub(super) http: reqwest::Client,
    /// The service's base URL.
    pub(super) base: String,
}

impl Api {
    /// `GET /api/v1{path}` as JSON; an error unless 2xx.
    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = answer.status();
        anyhow::ensure!(status.is_success(), "GET {path}: {status}");
        Ok(answer.json().await?)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let answer = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = answer.status();
        anyhow::ensure!(status.is_success(), "POST {path}: {status}");
        Ok(answer.json().await?)
    }
}

fn location(answer: &reqwest::Response) -> anyhow::Result<String> {
    anyhow::ensure!(
        answer.status().is_redirection(),
        "expected a redirect, got {}",
        answer.status()
    );
    Ok(answer
        .headers()
        .get(reqwest::header::LOCATION)
        .context("a redirect without a location")?
        .to_str()?
        .to_string())
}

/// Connects org `i`: the service's authorize redirect, the org's login page signed in as its
/// integration user, the callback back at the service.
pub(super) async fn connect(api: &Api, orgs: &Orgs, i: usize) -> anyhow::Result<()> {
    let sim = orgs.sims.get(i).context("no such org")?;
    orgs.connecting(i);
    let start = api
        .http
        .get(format!(
            "{}/oauth/salesforce/authorize?org_id={}",
            api.base,
            sim.org_id()
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await?;
    let login = url::Url::parse(&location(&start)?)?;
    let page = api.http.get(login.clone()).send().await?;
    anyhow::ensure!(page.status() == 200, "no login page: {}", page.status());
    let creds = sim.credentials();
    let mut form: Vec<(String, String)> = login.query_pairs().into_owned().collect();
    form.push(("username".into(), creds.username));
    form.push(("pw".into(), creds.password));
    let signed_in = api
        .http
        .post(login.join("/services/oauth2/authorize")?)
        .form(&form)
        .send()
        .await?;
    let callback = api.http.get(location(&signed_in)?).send().await?;
    anyhow::ensure!(
        callback.status() == 200,
        "the callback of org {i} answered {}",
        callback.status()
    );
    Ok(())
}

/// Imports every Account of `sim`'s org, then the records of its "All Contacts" list view;
/// the rows applied.
pub(super) async fn import(api: &Api, sim: &Simulator) -> anyhow::Result<u64> {
    let org = sim.org_id().to_string();
    let accounts = json!({"kind": "accounts", "org": org, "filter": ""});
    let mut applied = run_import(api, accounts).await?;
    let views = api
        .get(&format!("/imports/list-views?object=Contact&org_id={org}"))
        .await?;
    let all = views["items"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["developer_name"] == "AllContacts"))
        .and_then(|v| v["id"].as_str())
        .context("no All Contacts list view")?
        .to_string();
    let contacts = json!({"kind": "list_view", "org": org, "object": "Contact", "list_view": all});
    applied += run_import(api, contacts).await?;
    Ok(applied)
}

/// Starts one import and follows its progress until it is done; the rows it applied.
async fn run_import(api: &Api, what: Value) -> anyhow::Result<u64> {
    let started = api.post("/imports", what.clone()).await?;
    let id = started["id"].as_u64().context("an import id")?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = api.get(&format!("/imports/{id}")).await?;
        match status["state"].as_str() {
            Some("running") => {}
            Some("done") => {
                let quarantined = status["quarantined"].as_u64().unwrap_or(0);
                anyhow::ensure!(quarantined == 0, "{quarantined} rows quarantined: {status}");
                return status["processed"].as_u64().context("processed");
            }
            _ => anyhow::bail!("import {what} ended: {status}"),
        }
    }
}
