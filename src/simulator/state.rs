//! The simulator's shared state behind one lock: the org, its users, sessions, faults, counters,
//! query cursors, list views and the Outbound Message queue, plus the record operations the REST
//! API and the control surface both use (so a change made either way fires the same Outbound
//! Messages). Org setup (users, fields, objects, rules, stages, views) is in `setup.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::config::{SimCredentials, SimulatorConfig};
use super::custom;
use super::error::SimError;
use super::listviews::ListView;
use super::merge::{ConvertOptions, ConvertResult};
use super::org::{Changed, Org, Save};
use super::outbound_state::OutboundState;
use super::schema::{ObjectDef, Schema};
use super::stages::add_default_stages;
use super::standard::standard_objects;
use super::users::{SimUser, UserSpec, Users};
use super::value::Record;
use crate::domain::{OrgId, SalesforceId};

/// Faults the org injects, switchable at run time. All rates are probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Extra latency on every data call, in milliseconds.
    pub latency_ms: u64,
    /// Share of data calls answered 503 `SERVER_UNAVAILABLE`.
    pub error_5xx_rate: f64,
    /// Share of writes answered 400 `UNABLE_TO_LOCK_ROW` (nothing is written).
    pub lock_row_rate: f64,
    /// An access token stops working after this many data calls; a refresh gives a new one.
    pub session_expiry_after_calls: Option<u64>,
    /// Overrides the configured daily API limit.
    pub daily_api_limit: Option<u64>,
    /// Share of data calls whose connection is closed before anything is done or answered.
    pub drop_connection_rate: f64,
    /// Share of writes that are committed and then have their connection closed unanswered.
    pub drop_after_commit_rate: f64,
}

/// API calls counted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCalls {
    /// Every counted data call.
    pub total: u64,
    /// Calls per endpoint, keyed like `GET /sobjects/{type}/{id}`.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Subrequests of composite calls per endpoint, keyed the same way (they are not calls:
    /// the composite call is counted once, under `POST /composite`).
    #[serde(default)]
    pub by_subrequest: BTreeMap<String, u64>,
    /// Requests to `/services/oauth2/token` (not API calls: they count against no limit).
    #[serde(default)]
    pub token_requests: u64,
}

/// A query cursor: the rows not yet returned.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// When the cursor was opened, to close the oldest first.
    pub(crate) opened: u64,
    pub(crate) rows: Vec<Value>,
    pub(crate) total: usize,
    pub(crate) batch: usize,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) org: Org,
    pub(crate) users: Users,
    pub(crate) auth: Auth,
    pub(crate) faults: Faults,
    pub(crate) rng: StdRng,
    pub(crate) calls: ApiCalls,
    /// Calls counted against the daily limit.
    pub(crate) used: u64,
    pub(crate) cursors: HashMap<String, Cursor>,
    /// Cursors opened so far.
    pub(crate) cursors_opened: u64,
    pub(crate) outbound: OutboundState,
    pub(crate) list_views: Vec<ListView>,
}

impl State {
    /// The daily API limit in force.
    pub(crate) fn limit(&self, config: &SimulatorConfig) -> u64 {
        self.faults
            .daily_api_limit
            .unwrap_or(config.daily_api_limit)
    }

    /// A random token of `len` alphanumeric characters.
    pub(crate) fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// Rolls a fault with probability `rate`.
    pub(crate) fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random_bool(rate.clamp(0.0, 1.0))
    }

    /// A new access token of `user` in this org, made from `refresh` when given.
    pub(crate) fn new_access_token(
        &mut self,
        org_id: &OrgId,
        user: &SalesforceId,
        refresh: Option<String>,
    ) -> String {
        let token = format!("{}!AR{}", org_id.as_15(), self.token(96));
        self.auth.add_access(token.clone(), user.clone(), refresh);
        token
    }

    /// A new refresh token of `user`.
    pub(crate) fn new_refresh_token(&mut self, user: &SalesforceId) -> String {
        let token = format!("5Aep{}", self.token(83));
        self.auth.add_refresh(token.clone(), user.clone());
        token
    }

    /// A fresh 64-bit value from the seeded generator.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Adds a user, generating a password when the spec has none.
    pub(crate) fn add_user(
        &mut self,
        spec: &UserSpec,
        integration: bool,
    ) -> Result<SimUser, SimError> {
        let password = match &spec.password {
            Some(p) => p.clone(),
            None => format!("{}1!", self.token(14)),
        };
        self.users.add(&mut self.org, spec, password, integration)
    }
}

/// Who writes, and whether they let an alert-only duplicate rule pass.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    pub(crate) user: SalesforceId,
    pub(crate) allow_duplicates: bool,
}

impl Writer {
    /// A write by `user`.
    pub(crate) fn user(user: SalesforceId) -> Self {
        Self {
            user,
            allow_duplicates: false,
        }
    }

    /// The save of this write, every rule in force.
    pub(crate) fn save(&self) -> Save<'_> {
        Save {
            allow_duplicates: self.allow_duplicates,
            ..Save::by(&self.user)
        }
    }
}

/// What every handler and the control handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) instance_url: String,
    pub(crate) org_id: OrgId,
    pub(crate) credentials: SimCredentials,
    pub(crate) state: Mutex<State>,
    pub(crate) outbound_wake: Notify,
    pub(crate) cancel: CancellationToken,
    pub(crate) http: reqwest::Client,
}

/// An upsert's outcome: the record and whether it was created, or the ids of several matches.
pub(crate) type Upserted = Result<(SalesforceId, bool), Vec<SalesforceId>>;

impl Shared {
    /// Locks the state (a panicked holder does not poison the simulator).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path prefix of this org's REST API (`/services/data/v62.0`).
    pub(crate) fn data_path(&self) -> String {
        format!("/services/data/v{}", self.config.api_version)
    }

    /// Queues Outbound Messages for changed records of ruled objects.
    pub(crate) fn notify_changes(&self, st: &mut State, changed: &[Changed]) {
        let mut queued = false;
        for (object, id) in changed {
            if st.outbound.rules.contains_key(object) {
                let n = st.org.mint("04l");
                st.outbound.enqueue(n, object, id.clone());
                queued = true;
            }
        }
        if queued {
            self.outbound_wake.notify_one();
        }
    }

    /// The user a change "as a user" is attributed to: `key` (username or id), else the first
    /// sales rep.
    pub(crate) fn actor(&self, key: Option<&str>) -> Result<SalesforceId, SimError> {
        let st = self.lock();
        let user = match key {
            Some(k) => st.users.by_name_or_id(k),
            None => st.users.default_actor(),
        };
        user.map(|u| u.id.clone()).ok_or_else(SimError::not_found)
    }

    /// Creates a record; `fire` queues Outbound Messages.
    pub(crate) fn create(
        &self,
        object: &str,
        body: &Map<String, Value>,
        who: &Writer,
        fire: bool,
    ) -> Result<SalesforceId, SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        let record = st.org.prepare_create(&obj, body, who.save())?;
        let id = st.org.commit_create(&obj, record, &who.user);
        if fire {
            self.notify_changes(&mut st, &[(obj.name.clone(), id.clone())]);
        }
        Ok(id)
    }

    /// Updates a record of `object` (any object when `None`); `fire` queues Outbound Messages.
    pub(crate) fn update(
        &self,
        object: Option<&str>,
        id: &str,
        body: &Map<String, Value>,
        who: &Writer,
        fire: bool,
    ) -> Result<SalesforceId, SimError> {
        let mut st = self.lock();
        let obj = object.map(|o| st.org.object(o)).transpose()?;
        let (obj, id, record) = st
            .org
            .prepare_update(obj.as_deref(), id, body, who.save())?;
        st.org.commit_update(&obj, &id, record, &who.user);
        if fire {
            self.notify_changes(&mut st, &[(obj.name.clone(), id.clone())]);
        }
        Ok(id)
    }

    /// Soft-deletes a record.
    pub(crate) fn delete(&self, object: Option<&str>, id: &str) -> Result<SalesforceId, SimError> {
        let mut st = self.lock();
        let obj = object.map(|o| st.org.object(o)).transpose()?;
        st.org.delete(obj.as_deref(), id)
    }

    /// Upserts by external id; `update_only` refuses to create.
    pub(crate) fn upsert(
        &self,
        object: &str,
        field: &str,
        value: &str,
        body: &Map<String, Value>,
        who: &Writer,
        update_only: bool,
    ) -> Result<Upserted, SimError> {
        let mut st = self.lock();
        let obj = st.org.object(object)?;
        let field = external_id_field(&st.org.schema, &who.user, &obj, field)?;
        let matches = if field == "Id" {
            match SalesforceId::parse(value)
                .ok()
                .and_then(|id| st.org.find(&id).map(|_| id))
            {
                Some(id) => vec![id],
                None if value.is_empty() => Vec::new(),
                None => return Err(SimError::not_found()),
            }
        } else {
            st.org.find_by_field(&obj, &field, value)
        };
        let (id, created) = match matches.as_slice() {
            [] if update_only => return Err(SimError::not_found()),
            [] => {
                let mut body = body.clone();
                if field != "Id" {
                    body.insert(field.clone(), Value::String(value.to_string()));
                }
                let record = st.org.prepare_create(&obj, &body, who.save())?;
                (st.org.commit_create(&obj, record, &who.user), true)
            }
            [one] => {
                let (obj, id, record) =
                    st.org
                        .prepare_update(Some(&obj), one.as_str(), body, who.save())?;
                st.org.commit_update(&obj, &id, record, &who.user);
                (id, false)
            }
            _ => return Ok(Err(matches)),
        };
        if self.config.outbound_on_api_writes {
            self.notify_changes(&mut st, &[(obj.name.clone(), id.clone())]);
        }
        Ok(Ok((id, created)))
    }

    /// Merges losers into a master record as `user`.
    pub(crate) fn merge(
        &self,
        master: &str,
        losers: &[String],
        user: &SalesforceId,
    ) -> Result<(), SimError> {
        let mut st = self.lock();
        let changed = st.org.merge(master, losers, user)?;
        self.notify_changes(&mut st, &changed);
        Ok(())
    }

    /// Converts a lead as `user`.
    pub(crate) fn convert(
        &self,
        lead: &str,
        options: &ConvertOptions,
        user: &SalesforceId,
    ) -> Result<ConvertResult, SimError> {
        let mut st = self.lock();
        let (result, changed) = st.org.convert(lead, options, user)?;
        self.notify_changes(&mut st, &changed);
        Ok(result)
    }

    /// A record as stored, deleted rows included.
    pub(crate) fn raw(&self, id: &str) -> Option<Record> {
        let id = SalesforceId::parse(id).ok()?;
        self.lock().org.find(&id).map(|(_, r)| r.clone())
    }

    /// Every record of an object as stored, deleted rows included.
    pub(crate) fn list(&self, object: &str) -> Result<Vec<Record>, SimError> {
        let st = self.lock();
        let obj = st.org.object(object)?;
        Ok(st.org.all(&obj).cloned().collect())
    }
}

/// The canonical name of a field usable as an external id: `Id` or an External ID field the
/// user can see; `NOT_FOUND` otherwise.
pub(crate) fn external_id_field(
    schema: &Schema,
    user: &SalesforceId,
    obj: &ObjectDef,
    field: &str,
) -> Result<String, SimError> {
    match schema.visible_field(user, obj, field) {
        Some(f) if f.name == "Id" || f.external_id => Ok(f.name.clone()),
        _ => Err(SimError::not_found()),
    }
}

/// The org's users at start: the integration user, then two sales reps.
fn default_users() -> [(UserSpec, bool); 3] {
    let user = |first: &str, last: &str, username: &str| UserSpec {
        username: username.to_string(),
        first_name: Some(first.to_string()),
        last_name: last.to_string(),
        email: None,
        password: None,
    };
    [
        (
            user("Integration", "User", "integration@sim.example.com"),
            true,
        ),
        (
            user("Ada", "Lovelace", "ada.lovelace@sim.example.com"),
            false,
        ),
        (
            user("Grace", "Hopper", "grace.hopper@sim.example.com"),
            false,
        ),
    ]
}

/// The org: standard objects, configured custom objects, users and stages.
fn new_state(config: &SimulatorConfig, rng: StdRng) -> Result<State, SimError> {
    let data_path = format!("/services/data/v{}", config.api_version);
    let mut org = Org::new(
        Schema::new(standard_objects(config.marker_field.as_deref())),
        data_path,
    );
    for spec in &config.custom_objects {
        let def = custom::object_def(spec, org.schema.next_custom_prefix())?;
        org.schema.add_object(def)?;
    }
    let mut st = State {
        org,
        users: Users::default(),
        auth: Auth::default(),
        faults: Faults::default(),
        rng,
        calls: ApiCalls::default(),
        used: 0,
        cursors: HashMap::new(),
        cursors_opened: 0,
        outbound: OutboundState::new(config),
        list_views: Vec::new(),
    };
    for (spec, integration) in default_users() {
        st.add_user(&spec, integration)?;
    }
    let admin = st
        .users
        .integration()
        .map(|u| u.id.clone())
        .ok_or_else(SimError::not_found)?;
    add_default_stages(&mut st.org, &admin)?;
    Ok(st)
}

/// A connected app's consumer key and secret, drawn from `rng`.
fn app_credentials(rng: &mut StdRng) -> (String, String) {
    let mut hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:X}", rng.random_range(0..16u8)))
            .collect()
    };
    let client_secret = hex(64);
    let client_id = format!("3MVG9{}", hex(80));
    (client_id, client_secret)
}

/// Builds the shared state for a simulator listening at `instance_url`.
pub(crate) fn build(config: SimulatorConfig, instance_url: String) -> anyhow::Result<Arc<Shared>> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let org_n = 1 + config.seed % 99_999;
    let org_id = OrgId::parse(SalesforceId::mint("00D", "5g", org_n).as_str())
        .map_err(|_| anyhow::anyhow!("minted org ids are org ids"))?;
    let (mut client_id, mut client_secret) = app_credentials(&mut rng);
    if let Some(app_seed) = config.app_seed {
        // The org's own generator has drawn the same values as without an app seed, so
        // everything after (users, passwords, tokens) is unchanged.
        (client_id, client_secret) = app_credentials(&mut StdRng::seed_from_u64(app_seed));
    }
    let mut st = new_state(&config, rng).map_err(|e| anyhow::anyhow!("setting up the org: {e}"))?;
    let integration = st
        .users
        .integration()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the org has an integration user"))?;
    let refresh_token = st.new_refresh_token(&integration.id);
    let access_token = st.new_access_token(&org_id, &integration.id, Some(refresh_token.clone()));
    let credentials = SimCredentials {
        client_id,
        client_secret,
        refresh_token,
        access_token,
        redirect_uri: config.redirect_uri.clone(),
        instance_url: instance_url.clone(),
        login_url: instance_url.clone(),
        username: integration.username,
        password: integration.password,
    };
    Ok(Arc::new(Shared {
        config,
        instance_url,
        org_id,
        credentials,
        state: Mutex::new(st),
        outbound_wake: Notify::new(),
        cancel: CancellationToken::new(),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orgs_with_one_app_seed_share_the_app_and_keep_their_own_ids_and_users() {
        let org = |seed, app_seed| {
            let config = SimulatorConfig {
                seed,
                app_seed,
                ..SimulatorConfig::default()
            };
            build(config, "http://127.0.0.1:1".into()).expect("build")
        };
        let (a, b) = (org(3, Some(9)), org(4, Some(9)));
        assert_eq!(a.credentials.client_id, b.credentials.client_id);
        assert_eq!(a.credentials.client_secret, b.credentials.client_secret);
        assert_ne!(a.org_id, b.org_id);
        let alone = org(3, None);
        assert_ne!(alone.credentials.client_id, a.credentials.client_id);
        assert_eq!(alone.credentials.password, a.credentials.password);
        assert_eq!(alone.credentials.refresh_token, a.credentials.refresh_token);
    }
}
