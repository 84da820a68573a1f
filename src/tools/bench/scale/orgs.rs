//! The simulated orgs of `bench scale`: one simulator per org in the bench's process, seeded with
//! Accounts and their Contacts, all sharing one connected app; and the login host in front of
//! them that the service's `salesforce.login_url` names, as one login host serves every org.
//!
//! The login host relays `/services/oauth2/…` to one org: a refresh-token grant to the org that
//! issued the token (learnt from the token responses it relayed), anything else to the org being
//! connected now ([`Orgs::connecting`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use crate::domain::SalesforceId;
use crate::simulator::{SeedSpec, Simulator, SimulatorConfig};
use crate::tools::bench::loopback;

/// Seeds the connected app every org shares.
const APP_SEED: u64 = 4_242;
/// The token endpoint, the one path whose grant picks the org.
const TOKEN_PATH: &str = "/services/oauth2/token";

/// The orgs and their login host.
pub(super) struct Orgs {
    /// One simulator per org.
    pub(super) sims: Vec<Simulator>,
    /// Each org's Contact ids.
    pub(super) contacts: Vec<Vec<SalesforceId>>,
    /// Records seeded in all orgs (Accounts and Contacts).
    pub(super) records: usize,
    /// The login host's URL.
    pub(super) login_url: String,
    front: Arc<Front>,
}

/// Starts `orgs` simulators with `records` spread over them, half Accounts and half Contacts
/// (one per Account), and the login host.
pub(super) async fn start(orgs: usize, records: usize) -> anyhow::Result<Orgs> {
    let accounts = (records / orgs / 2).max(1);
    let started = Instant::now();
    let mut sims = Vec::with_capacity(orgs);
    let mut contacts = Vec::with_capacity(orgs);
    for i in 0..orgs {
        let sim = loopback::simulator(SimulatorConfig {
            seed: 1_000 + i as u64,
            app_seed: Some(APP_SEED),
            daily_api_limit: 100_000_000,
            ..SimulatorConfig::default()
        })
        .await?;
        let seeded = sim
            .seed_org(&SeedSpec {
                accounts,
                contacts_per_account: 1,
                ..SeedSpec::default()
            })
            .map_err(|e| anyhow::anyhow!("seeding org {i}: {e}"))?;
        contacts.push(seeded.contacts);
        sims.push(sim);
    }
    let records = orgs * accounts * 2;
    eprintln!(
        "bench scale: {orgs} orgs seeded with {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let front = Arc::new(Front {
        targets: sims.iter().map(Simulator::instance_url).collect(),
        current: AtomicUsize::new(0),
        by_refresh: Mutex::new(HashMap::new()),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("the login host's client")?,
    });
    let login_url = serve_front(front.clone()).await?;
    Ok(Orgs {
        sims,
        contacts,
        records,
        login_url,
        front,
    })
}

impl Orgs {
    /// Sends the login host's authorize and code requests to org `i` from now on.
    pub(super) fn connecting(&self, i: usize) {
        self.front.current.store(i, Ordering::SeqCst);
    }

    /// Stops every simulator.
    pub(super) fn shutdown(&self) {
        for sim in &self.sims {
            sim.shutdown();
        }
    }
}

/// The login host's state.
struct Front {
    targets: Vec<String>,
    current: AtomicUsize,
    by_refresh: Mutex<HashMap<String, usize>>,
    http: reqwest::Client,
}

impl Front {
    /// The org a request goes to.
    fn pick(&self, path: &str, body: &[u8]) -> usize {
        if path == TOKEN_PATH {
            let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
            let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
            let known = form.get("refresh_token").and_then(|t| {
                let by_refresh = self.by_refresh.lock().ok()?;
                by_refresh.get(t).copied()
            });
            if let (true, Some(org)) = (refresh, known) {
                return org;
            }
        }
        self.current.load(Ordering::SeqCst)
    }

    /// Notes whose refresh token a token response carried.
    fn learn(&self, org: usize, body: &[u8]) {
        let token = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["refresh_token"].as_str().map(str::to_string));
        if let (Some(token), Ok(mut by_refresh)) = (token, self.by_refresh.lock()) {
            by_refresh.insert(token, org);
        }
    }
}

/// Serves the login host on a free loopback port; its URL.
async fn serve_front(front: Arc<Front>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the login host")?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(forward).with_state(front);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the login host stopped");
        }
    });
    Ok(url)
}

async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    match relay(&front, request).await {
        Ok(response) => response,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    }
}

/// Relays one request to the org [`Front::pick`] names and its answer back.
async fn relay(front: &Front, request: Request) -> anyhow::Result<Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await?;
    let path = parts.uri.path().to_string();
    let org = front.pick(&path, &body);
    let target = front.targets.get(org).context("no such org")?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = front
        .http
        .request(parts.method.clone(), format!("{target}{path_and_query}"))
        .body(body.to_vec());
    for name in [header::CONTENT_TYPE, header::COOKIE, header::ACCEPT] {
        for value in parts.headers.get_all(&name) {
            out = out.header(&name, value);
        }
    }
    let answer = out.send().await.context("relaying to the org")?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.context("the org's answer")?;
    if path == TOKEN_PATH && status.is_success() {
        front.learn(org, &bytes);
    }
    let mut response = Response::builder().status(status.as_u16());
    for name in [header::CONTENT_TYPE, header::LOCATION, header::SET_COOKIE] {
        for value in headers.get_all(&name) {
            response = response.header(&name, value);
        }
    }
    Ok(response.body(Body::from(bytes))?)
}
