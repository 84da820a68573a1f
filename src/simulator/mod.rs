//! A Salesforce org on loopback: OAuth, REST, query, composite, Outbound Messages and faults.
//!
//! [`Simulator::start`] serves the org on a bound listener and spawns the Outbound Message
//! deliverer. Everything it answers follows salesforce-protocol.md: the token response
//! (3.1, 3.2), sObject CRUD and upsert (2.1), query/queryAll with cursors (2.2), sObject
//! Collections (2.4), error bodies and `Sforce-Limit-Info` (2.5), merges and lead conversion (4),
//! and SOAP Outbound Messages (1). Tests, the demo and benchmarks drive it through the
//! [`Simulator`] handle's methods; other processes use the same operations under `/__sim/…`:
//!
//! | control endpoint | does |
//! |---|---|
//! | `GET /__sim/credentials` | client id/secret, tokens, instance URL |
//! | `GET\|POST /__sim/records/{Type}` | list (deleted rows included) / create as a user |
//! | `GET\|PATCH\|DELETE /__sim/records/{Type}/{Id}` | raw read / update / delete as a user |
//! | `POST /__sim/merge` `{"master_id","loser_ids"}` | merge |
//! | `POST /__sim/convert` `{"lead_id","account_id"?,"do_not_create_opportunity"?}` | convert a lead |
//! | `GET\|PUT /__sim/faults` | [`Faults`] |
//! | `GET\|PUT /__sim/outbound` `{"url"?,"rules"?,"mode"?}` | destination, rules, [`DeliveryMode`], [`OutboundStats`] |
//! | `GET /__sim/api-calls` | [`ApiCalls`] plus `used`/`limit` |
//! | `POST /__sim/expire-sessions`, `POST /__sim/reset-usage` | end every session / zero the daily usage |
//! | `POST /__sim/seed` [`SeedSpec`] | bulk-create an org |

mod control;
mod error;
mod org;
mod outbound;
mod rest;
mod schema;
mod soql;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use error::SimError;
pub use org::{ConvertOptions, ConvertResult};
pub use outbound::{DeliveryMode, OutboundStats};
pub use state::{ApiCalls, Faults, token_signature};

use crate::domain::{OrgId, SalesforceId};

/// How a simulator starts.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Seeds every random choice (credentials, tokens, faults, out-of-order delivery) and the org id.
    pub seed: u64,
    /// The API version in URLs it hands out (`62.0`); requests may use any `vNN.0`.
    pub api_version: String,
    /// Where Outbound Messages go; `None` holds them until a URL is set.
    pub outbound_url: Option<String>,
    /// Data calls allowed before `REQUEST_LIMIT_EXCEEDED`.
    pub daily_api_limit: u64,
    /// The first retry delay of an unacknowledged Outbound Message; it doubles per attempt.
    pub outbound_retry_base: Duration,
    /// The longest retry delay (Salesforce: two hours).
    pub outbound_retry_max: Duration,
    /// How long the deliverer waits after a change so a burst travels in one message.
    pub outbound_batch_window: Duration,
    /// Whether writes through the REST API fire Outbound Messages (as when the integration user
    /// may send them); control-surface writes always do.
    pub outbound_on_api_writes: bool,
    /// The redirect URI handed out with the credentials (authorize accepts any absolute URI).
    pub redirect_uri: String,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            api_version: "62.0".into(),
            outbound_url: None,
            daily_api_limit: 100_000,
            outbound_retry_base: Duration::from_secs(1),
            outbound_retry_max: Duration::from_secs(2 * 3600),
            outbound_batch_window: Duration::from_millis(20),
            outbound_on_api_writes: true,
            redirect_uri: "http://localhost:8080/oauth/callback".into(),
        }
    }
}

/// What a client needs to talk to the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret (signs token responses).
    pub client_secret: String,
    /// A refresh token that works from the start.
    pub refresh_token: String,
    /// An access token that works from the start.
    pub access_token: String,
    /// The redirect URI to use in the web server flow.
    pub redirect_uri: String,
    /// Where the REST API lives (`http://127.0.0.1:PORT`).
    pub instance_url: String,
    /// Where OAuth lives (the same host).
    pub login_url: String,
}

/// How many records [`Simulator::seed_org`] creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedSpec {
    /// Accounts.
    pub accounts: usize,
    /// Contacts per account.
    pub contacts_per_account: usize,
    /// Opportunities per account.
    pub opportunities_per_account: usize,
    /// Leads.
    pub leads: usize,
    /// Tasks per contact.
    pub tasks_per_contact: usize,
    /// Queue Outbound Messages for the created records.
    pub fire_outbound: bool,
}

/// The ids [`Simulator::seed_org`] created, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSummary {
    /// Account ids.
    pub accounts: Vec<SalesforceId>,
    /// Contact ids.
    pub contacts: Vec<SalesforceId>,
    /// Opportunity ids.
    pub opportunities: Vec<SalesforceId>,
    /// Lead ids.
    pub leads: Vec<SalesforceId>,
    /// Task ids.
    pub tasks: Vec<SalesforceId>,
}

/// A running simulated org. Cheap to clone; every clone controls the same org.
#[derive(Clone, Debug)]
pub struct Simulator {
    shared: Arc<state::Shared>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Simulator {
    /// Serves the org on `listener` and spawns the Outbound Message deliverer.
    pub async fn start(
        listener: tokio::net::TcpListener,
        config: SimulatorConfig,
    ) -> anyhow::Result<Simulator> {
        let addr = listener
            .local_addr()
            .context("reading the simulator's listen address")?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let instance_url = format!("http://{host}:{}", addr.port());
        let shared = state::build(config, instance_url);
        let app =
            rest::router(shared.clone()).into_make_service_with_connect_info::<rest::ConnKill>();
        let cancel = shared.cancel.clone();
        tokio::spawn(async move {
            let serve = axum::serve(rest::SimListener(listener), app)
                .with_graceful_shutdown(async move { cancel.cancelled().await });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped");
            }
        });
        tokio::spawn(outbound::run(shared.clone()));
        Ok(Simulator { shared })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn instance_url(&self) -> String {
        self.shared.instance_url.clone()
    }

    /// The org's id (`00D…`).
    pub fn org_id(&self) -> OrgId {
        self.shared.org_id.clone()
    }

    /// The connected app's credentials and tokens that work from the start.
    pub fn credentials(&self) -> SimCredentials {
        self.shared.credentials.clone()
    }

    /// The API version in the URLs it hands out (`62.0`).
    pub fn api_version(&self) -> String {
        self.shared.config.api_version.clone()
    }

    /// Stops serving and delivering.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    /// Creates a record as a user would (fires Outbound Messages).
    pub fn create(&self, object: &str, fields: Value) -> Result<SalesforceId, SimError> {
        self.shared.create(object, &obj(fields), true)
    }

    /// Updates a record as a user would (fires Outbound Messages).
    pub fn update(&self, id: &SalesforceId, fields: Value) -> Result<(), SimError> {
        self.shared
            .update(None, id.as_str(), &obj(fields), true)
            .map(|_| ())
    }

    /// Updates a record as the org's user `user` would, someone other than the API user the
    /// connected app acts as (fires Outbound Messages; `LastModifiedById` is `user`).
    pub fn update_as(
        &self,
        user: &SalesforceId,
        id: &SalesforceId,
        fields: Value,
    ) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let (obj, id, record) = st.org.prepare_update(None, id.as_str(), &obj(fields))?;
        st.org.commit_update_by(obj, &id, record, user);
        self.shared.notify_changes(&mut st, &[(obj.name, id)]);
        Ok(())
    }

    /// Deletes a record as a user would.
    pub fn delete(&self, id: &SalesforceId) -> Result<(), SimError> {
        self.shared.delete(None, id.as_str()).map(|_| ())
    }

    /// Merges one or two losers into `master` (Account, Contact or Lead).
    pub fn merge(&self, master: &SalesforceId, losers: &[SalesforceId]) -> Result<(), SimError> {
        let losers: Vec<String> = losers.iter().map(|l| l.to_string()).collect();
        self.shared.merge(master.as_str(), &losers)
    }

    /// Converts a lead into an account, a contact and (unless suppressed) an opportunity.
    pub fn convert_lead(
        &self,
        lead: &SalesforceId,
        options: ConvertOptions,
    ) -> Result<ConvertResult, SimError> {
        self.shared.convert(lead.as_str(), &options)
    }

    /// A record as stored (deleted rows included, nulls absent), or `None`.
    pub fn get(&self, id: &SalesforceId) -> Option<Value> {
        self.shared.raw(id.as_str()).map(Value::Object)
    }

    /// Every record of an object as stored, deleted rows included, in creation order.
    pub fn list(&self, object: &str) -> Vec<Value> {
        self.shared
            .list(object)
            .unwrap_or_default()
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    /// Switches faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Ends every live session now: the next data call with any current token gets 401.
    pub fn expire_sessions(&self) {
        self.shared.lock().auth.access.clear();
    }

    /// API calls counted so far, per endpoint and in total.
    pub fn api_calls(&self) -> ApiCalls {
        self.shared.lock().calls.clone()
    }

    /// Calls counted against the daily limit.
    pub fn api_usage(&self) -> u64 {
        self.shared.lock().used
    }

    /// Zeroes the daily usage (a new 24-hour window).
    pub fn reset_api_usage(&self) {
        self.shared.lock().used = 0;
    }

    /// Points Outbound Messages at `url` (`None` holds them).
    pub fn set_outbound_url(&self, url: Option<String>) {
        self.shared.lock().outbound.url = url;
        self.shared.outbound_wake.notify_one();
    }

    /// Sets the fields the Outbound Message action of `object` sends; an empty list removes the rule.
    pub fn set_outbound_rule(&self, object: &str, fields: &[&str]) {
        let mut st = self.shared.lock();
        if fields.is_empty() {
            st.outbound.rules.remove(object);
        } else {
            st.outbound.rules.insert(
                object.to_string(),
                fields.iter().map(|f| (*f).to_string()).collect(),
            );
        }
    }

    /// Switches duplicate and out-of-order delivery.
    pub fn set_delivery_mode(&self, mode: DeliveryMode) {
        self.shared.lock().outbound.mode = mode;
    }

    /// The deliverer's counters.
    pub fn outbound_stats(&self) -> OutboundStats {
        self.shared.lock().outbound.stats()
    }

    /// Bulk-creates records with deterministic, seeded values.
    pub fn seed_org(&self, spec: &SeedSpec) -> Result<SeedSummary, SimError> {
        seed(&self.shared, spec)
    }
}

/// Bulk-creates an org (see [`SeedSpec`]).
fn seed(shared: &state::Shared, spec: &SeedSpec) -> Result<SeedSummary, SimError> {
    const INDUSTRIES: &[&str] = &["Technology", "Banking", "Retail", "Energy", "Healthcare"];
    const STAGES: &[&str] = &[
        "Prospecting",
        "Qualification",
        "Needs Analysis",
        "Negotiation/Review",
        "Closed Won",
    ];
    const FIRST: &[&str] = &[
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
    ];
    const LAST: &[&str] = &[
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
    ];
    let fire = spec.fire_outbound;
    let mut out = SeedSummary::default();
    let pick = |list: &[&'static str]| -> &'static str {
        let n = shared.lock().next_u64() as usize;
        list[n % list.len()]
    };
    for a in 0..spec.accounts {
        let account = shared.create(
            "Account",
            &obj(
                json!({"Name": format!("Seed Account {a}"), "Industry": pick(INDUSTRIES),
                "Website": format!("https://account{a}.example.com"), "NumberOfEmployees": 10 + a}),
            ),
            fire,
        )?;
        for c in 0..spec.contacts_per_account {
            let (first, last) = (pick(FIRST), pick(LAST));
            let contact = shared.create(
                "Contact",
                &obj(json!({"FirstName": first, "LastName": last, "AccountId": account.as_str(),
                    "Email": format!("{}.{}.{a}.{c}@example.com", first.to_lowercase(), last.to_lowercase())})),
                fire,
            )?;
            for t in 0..spec.tasks_per_contact {
                let task = shared.create(
                    "Task",
                    &obj(json!({"Subject": format!("Call {t}"), "WhoId": contact.as_str(), "ActivityDate": "2024-06-01"})),
                    fire,
                )?;
                out.tasks.push(task);
            }
            out.contacts.push(contact);
        }
        for o in 0..spec.opportunities_per_account {
            let opp = shared.create(
                "Opportunity",
                &obj(json!({"Name": format!("Seed Deal {a}-{o}"), "StageName": pick(STAGES),
                    "CloseDate": "2024-12-31", "Amount": 1000.0 * (1 + o) as f64, "AccountId": account.as_str()})),
                fire,
            )?;
            out.opportunities.push(opp);
        }
        out.accounts.push(account);
    }
    for l in 0..spec.leads {
        let lead = shared.create(
            "Lead",
            &obj(json!({"FirstName": pick(FIRST), "LastName": pick(LAST), "Company": format!("Seed Lead Co {l}"),
                "Email": format!("lead{l}@example.com")})),
            fire,
        )?;
        out.leads.push(lead);
    }
    Ok(out)
}

/// `sfsync simulator`: binds `listen`, prints one JSON line (`instance_url`, `org_id`,
/// `client_id`, `client_secret`, `refresh_token`, `access_token`, `redirect_uri`) and serves
/// until ctrl-c.
pub async fn run_cli(
    listen: SocketAddr,
    outbound_url: Option<String>,
    seed: u64,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let config = SimulatorConfig {
        seed,
        outbound_url,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(listener, config).await?;
    let creds = sim.credentials();
    let line = json!({
        "instance_url": sim.instance_url(),
        "org_id": sim.org_id().as_str(),
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "refresh_token": creds.refresh_token,
        "access_token": creds.access_token,
        "redirect_uri": creds.redirect_uri,
        "api_version": sim.api_version(),
    });
    println!("{line}");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    sim.shutdown();
    Ok(())
}
