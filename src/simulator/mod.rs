//! A Salesforce org on loopback: OAuth with a login page, REST, query, composite, describe, list
//! views, Outbound Messages and faults.
//!
//! [`Simulator::start`] serves the org on a bound listener and spawns the Outbound Message
//! deliverer. It answers in Salesforce's documented shapes: the token response and its
//! signature, sObject CRUD and upsert, query/queryAll with cursors, sObject Collections, error
//! bodies and `Sforce-Limit-Info`, merges and lead conversion, and SOAP Outbound Messages. The org
//! has users (an integration user and sales reps, each with a password for the login page);
//! every token belongs to one, and every write is attributed to its user. Tests, the demo and benchmarks drive it through the [`Simulator`]
//! handle's methods; other processes use the same operations under `/__sim/…`:
//!
//! | control endpoint | does |
//! |---|---|
//! | `GET /__sim/credentials` | client id/secret, tokens, instance URL, the integration user's `username`/`password`, every user |
//! | `GET\|POST /__sim/records/{Type}[?as=user]` | list (deleted rows included) / create as a user |
//! | `GET\|PATCH\|DELETE /__sim/records/{Type}/{Id}[?as=user]` | raw read / update / delete as a user |
//! | `POST /__sim/merge[?as=user]` `{"master_id","loser_ids"}` | merge |
//! | `POST /__sim/convert[?as=user]` `{"lead_id","account_id"?,"do_not_create_opportunity"?}` | convert a lead |
//! | `GET\|PUT /__sim/faults` | [`Faults`] |
//! | `GET\|PUT /__sim/outbound` `{"url"?,"rules"?,"mode"?}` | destination, rules, [`DeliveryMode`], [`OutboundStats`] |
//! | `GET /__sim/api-calls` | [`ApiCalls`] plus `used`/`limit` |
//! | `POST /__sim/expire-sessions`, `POST /__sim/reset-usage` | end every session / zero the daily usage |
//! | `POST /__sim/seed` [`SeedSpec`] | bulk-create an org |
//! | `GET\|POST /__sim/users` [`UserSpec`] | the users with passwords / add a sales user |
//! | `POST /__sim/users/{user}/revoke` | revoke every token and login session of one user |
//! | `POST /__sim/objects` [`CustomObjectSpec`] | add a custom object |
//! | `POST /__sim/fields/{Type}` [`FieldSpec`], `DELETE /__sim/fields/{Type}/{Field}` | add / remove a custom field (the marker field too) |
//! | `PUT /__sim/field-security` `{"user"?,"object","field","readable"?,"createable"?,"updateable"?}` | field-level security of a user (the integration user by default) |
//! | `GET\|POST /__sim/opportunity-stages` [`StageSpec`] | the stages / add one |
//! | `PUT\|DELETE /__sim/duplicate-rules/{Type}` [`DuplicateRuleSpec`] | switch a duplicate rule on / off |
//! | `PUT\|DELETE /__sim/validation-rules/{Type}` [`ValidationRuleSpec`] | switch a validation rule on / off |
//! | `POST /__sim/listviews/{Type}` [`ListViewSpec`] | add a list view |
//!
//! The simulator uses nothing of sfsync but `crate::domain`'s ids. Its files, by concern:
//! `router` (routes), `guard` (authentication, metering, faults), `oauth` (login page, tokens,
//! UserInfo), `records`, `query`, `collections`, `composite`, `meta` (versions, describe, limits, list views);
//! the org itself in `state`, `org`, `save`, `merge`, `schema`, `standard`, `custom`, `stages`,
//! `rules`, `users`, `auth`, `listviews`, `describe`, `soql`, `soql_eval`; Outbound Messages in
//! `outbound_state` and `outbound`; the control surface in `control`, `control_setup`, `setup`
//! and `seed`.

mod auth;
mod collections;
mod composite;
mod config;
mod control;
mod control_setup;
mod custom;
mod describe;
mod error;
mod guard;
mod listener;
mod listviews;
mod merge;
mod meta;
mod oauth;
mod org;
mod outbound;
mod outbound_state;
mod query;
mod records;
mod router;
mod rules;
mod save;
mod schema;
mod seed;
mod setup;
mod soql;
mod soql_eval;
mod stages;
mod standard;
mod state;
mod users;
mod value;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value, json};

pub use config::{DEFAULT_MARKER_FIELD, SimCredentials, SimulatorConfig};
pub use custom::{CustomObjectSpec, FieldSpec};
pub use error::SimError;
pub use listviews::ListViewSpec;
pub use merge::{ConvertOptions, ConvertResult};
pub use oauth::token_signature;
pub use outbound_state::{DeliveryMode, OutboundStats};
pub use rules::{DuplicateRuleSpec, ValidationRuleSpec};
pub use schema::{FieldAccess, FieldType};
pub use seed::{SeedSpec, SeedSummary};
pub use stages::StageSpec;
pub use state::{ApiCalls, Faults};
pub use users::{SimUser, UserSpec};

use crate::domain::{OrgId, SalesforceId};
use listener::{ConnKill, SimListener};
use state::Writer;

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
        let shared = state::build(config, instance_url)?;
        let app = router::router(shared.clone()).into_make_service_with_connect_info::<ConnKill>();
        let cancel = shared.cancel.clone();
        tokio::spawn(async move {
            let serve = axum::serve(SimListener(listener), app)
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

    /// The connected app's credentials and the integration user's tokens and password.
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

    /// Every user of the org with their password: the integration user first, then the reps.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.users()
    }

    /// The user sfsync connects as (the owner of [`Simulator::credentials`]'s tokens).
    pub fn integration_user(&self) -> Option<SimUser> {
        self.users().into_iter().find(|u| u.integration)
    }

    /// Adds a sales user who can sign in on the login page.
    pub fn add_user(&self, spec: &UserSpec) -> Result<SimUser, SimError> {
        self.shared.add_user(spec)
    }

    /// Revokes every token and login session of one user; other users keep working.
    pub fn revoke_user_tokens(&self, user: &SalesforceId) -> Result<(), SimError> {
        self.shared.revoke_user(user.as_str())
    }

    /// Creates a record as the first sales rep would (fires Outbound Messages).
    pub fn create(&self, object: &str, fields: Value) -> Result<SalesforceId, SimError> {
        let who = Writer::user(self.shared.actor(None)?);
        self.shared.create(object, &obj(fields), &who, true)
    }

    /// Creates a record as `user` (fires Outbound Messages).
    pub fn create_as(
        &self,
        user: &SalesforceId,
        object: &str,
        fields: Value,
    ) -> Result<SalesforceId, SimError> {
        let who = Writer::user(self.shared.actor(Some(user.as_str()))?);
        self.shared.create(object, &obj(fields), &who, true)
    }

    /// Updates a record as the first sales rep would (fires Outbound Messages).
    pub fn update(&self, id: &SalesforceId, fields: Value) -> Result<(), SimError> {
        let who = Writer::user(self.shared.actor(None)?);
        let body = obj(fields);
        self.shared
            .update(None, id.as_str(), &body, &who, true)
            .map(|_| ())
    }

    /// Updates a record as `user` (fires Outbound Messages).
    pub fn update_as(
        &self,
        user: &SalesforceId,
        id: &SalesforceId,
        fields: Value,
    ) -> Result<(), SimError> {
        let who = Writer::user(self.shared.actor(Some(user.as_str()))?);
        let body = obj(fields);
        self.shared
            .update(None, id.as_str(), &body, &who, true)
            .map(|_| ())
    }

    /// Deletes a record as a user would.
    pub fn delete(&self, id: &SalesforceId) -> Result<(), SimError> {
        self.shared.delete(None, id.as_str()).map(|_| ())
    }

    /// Merges one or two losers into `master` (Account, Contact or Lead) as the first sales rep.
    pub fn merge(&self, master: &SalesforceId, losers: &[SalesforceId]) -> Result<(), SimError> {
        let losers: Vec<String> = losers.iter().map(|l| l.to_string()).collect();
        let user = self.shared.actor(None)?;
        self.shared.merge(master.as_str(), &losers, &user)
    }

    /// Converts a lead into an account, a contact and (unless suppressed) an opportunity, as the
    /// first sales rep.
    pub fn convert_lead(
        &self,
        lead: &SalesforceId,
        options: ConvertOptions,
    ) -> Result<ConvertResult, SimError> {
        let user = self.shared.actor(None)?;
        self.shared.convert(lead.as_str(), &options, &user)
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
        self.shared.lock().auth.expire_all();
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

    /// Sets the fields the Outbound Message action of `object` sends; an empty list removes the
    /// rule. Fields the object lacks are `INVALID_FIELD`.
    pub fn set_outbound_rule(&self, object: &str, fields: &[&str]) -> Result<(), SimError> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        self.shared.set_outbound_rule(object, &fields)
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
        seed::seed(&self.shared, spec)
    }

    /// Adds a custom object.
    pub fn add_custom_object(&self, spec: &CustomObjectSpec) -> Result<(), SimError> {
        self.shared.add_custom_object(spec)
    }

    /// Adds a custom field to an object.
    pub fn add_field(&self, object: &str, spec: &FieldSpec) -> Result<(), SimError> {
        self.shared.add_field(object, spec)
    }

    /// Removes a custom field from an object.
    pub fn remove_field(&self, object: &str, field: &str) -> Result<(), SimError> {
        self.shared.remove_field(object, field)
    }

    /// Sets what `user` (the integration user when `None`) may do with a field.
    pub fn set_field_access(
        &self,
        user: Option<&SalesforceId>,
        object: &str,
        field: &str,
        access: FieldAccess,
    ) -> Result<(), SimError> {
        let user = user.map(SalesforceId::as_str);
        self.shared.set_field_access(user, object, field, access)
    }

    /// Adds an opportunity stage.
    pub fn add_opportunity_stage(&self, spec: &StageSpec) -> Result<SalesforceId, SimError> {
        self.shared.add_stage(spec)
    }

    /// Switches the duplicate rule of an object on (`Some`) or off.
    pub fn set_duplicate_rule(
        &self,
        object: &str,
        rule: Option<DuplicateRuleSpec>,
    ) -> Result<(), SimError> {
        self.shared.set_duplicate_rule(object, rule)
    }

    /// Switches the validation rule of an object on (`Some`) or off.
    pub fn set_validation_rule(
        &self,
        object: &str,
        rule: Option<ValidationRuleSpec>,
    ) -> Result<(), SimError> {
        self.shared.set_validation_rule(object, rule)
    }

    /// Adds a list view to an object.
    pub fn add_list_view(
        &self,
        object: &str,
        spec: &ListViewSpec,
    ) -> Result<SalesforceId, SimError> {
        self.shared.add_list_view(object, spec)
    }
}

/// `sfsync simulator`: binds `listen`, prints one JSON line (`instance_url`, `org_id`,
/// `client_id`, `client_secret`, `refresh_token`, `access_token`, `redirect_uri`, `api_version`,
/// the integration user's `username` and `password`, every user in `users`) and serves until
/// ctrl-c.
pub async fn run_cli(listen: SocketAddr, config: SimulatorConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
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
        "username": creds.username,
        "password": creds.password,
        "users": sim.users(),
    });
    println!("{line}");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    sim.shutdown();
    Ok(())
}
