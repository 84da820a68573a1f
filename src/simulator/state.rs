//! The simulator's shared state behind one lock: the org, sessions, faults, counters, query
//! cursors and the Outbound Message queue, plus the operations the REST API and the control
//! surface both use (so a change made either way fires the same Outbound Messages).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::SimError;
use super::org::{Changed, ConvertOptions, ConvertResult, Org, Record};
use super::outbound::OutboundState;
use super::schema::{self, ObjectInfo};
use super::{SimCredentials, SimulatorConfig};
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
    /// Requests to `/services/oauth2/token` (not API calls: they count against no limit).
    #[serde(default)]
    pub token_requests: u64,
}

/// A pending authorization code.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
}

/// Sessions and grants.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    /// Live access tokens and the data calls each has made.
    pub(crate) access: HashMap<String, u64>,
    /// Live refresh tokens.
    pub(crate) refresh: Vec<String>,
    /// Unused authorization codes.
    pub(crate) codes: HashMap<String, CodeGrant>,
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

    /// A new access token for this org.
    pub(crate) fn new_access_token(&mut self, org_id: &OrgId) -> String {
        let token = format!("{}!AR{}", org_id.as_15(), self.token(96));
        self.auth.access.insert(token.clone(), 0);
        token
    }

    /// A fresh 64-bit value from the seeded generator.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

/// What every handler and the control handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) instance_url: String,
    pub(crate) org_id: OrgId,
    pub(crate) user_id: SalesforceId,
    pub(crate) credentials: SimCredentials,
    pub(crate) state: Mutex<State>,
    pub(crate) outbound_wake: Notify,
    pub(crate) cancel: CancellationToken,
    pub(crate) http: reqwest::Client,
}

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
            if st.outbound.rules.contains_key(*object) {
                let n = st.org.mint("04l");
                st.outbound.enqueue(n, object, id.clone());
                queued = true;
            }
        }
        if queued {
            self.outbound_wake.notify_one();
        }
    }

    /// Creates a record; `fire` queues Outbound Messages.
    pub(crate) fn create(
        &self,
        object: &str,
        body: &Map<String, Value>,
        fire: bool,
    ) -> Result<SalesforceId, SimError> {
        let obj = schema::object(object).ok_or_else(SimError::not_found)?;
        let mut st = self.lock();
        let record = st.org.prepare_create(obj, body)?;
        let id = st.org.commit_create(obj, record);
        if fire {
            self.notify_changes(&mut st, &[(obj.name, id.clone())]);
        }
        Ok(id)
    }

    /// Updates a record of `object` (any object when `None`); `fire` queues Outbound Messages.
    pub(crate) fn update(
        &self,
        object: Option<&str>,
        id: &str,
        body: &Map<String, Value>,
        fire: bool,
    ) -> Result<SalesforceId, SimError> {
        let obj = object_opt(object)?;
        let mut st = self.lock();
        let (obj, id, record) = st.org.prepare_update(obj, id, body)?;
        st.org.commit_update(obj, &id, record);
        if fire {
            self.notify_changes(&mut st, &[(obj.name, id.clone())]);
        }
        Ok(id)
    }

    /// Soft-deletes a record.
    pub(crate) fn delete(&self, object: Option<&str>, id: &str) -> Result<SalesforceId, SimError> {
        let obj = object_opt(object)?;
        self.lock().org.delete(obj, id)
    }

    /// Upserts by external id: `Ok((id, created))`, or the ids of several matches (HTTP 300).
    pub(crate) fn upsert(
        &self,
        object: &str,
        field: &str,
        value: &str,
        body: &Map<String, Value>,
        fire: bool,
    ) -> Result<Result<(SalesforceId, bool), Vec<SalesforceId>>, SimError> {
        let obj = schema::object(object).ok_or_else(SimError::not_found)?;
        let field = external_id_field(obj, field)?;
        let mut st = self.lock();
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
            st.org.find_by_field(obj, &field, value)
        };
        let (id, created) = match matches.as_slice() {
            [] => {
                let mut body = body.clone();
                if field != "Id" {
                    body.insert(field.clone(), Value::String(value.to_string()));
                }
                let record = st.org.prepare_create(obj, &body)?;
                (st.org.commit_create(obj, record), true)
            }
            [one] => {
                let (obj, id, record) = st.org.prepare_update(Some(obj), one.as_str(), body)?;
                st.org.commit_update(obj, &id, record);
                (id, false)
            }
            _ => return Ok(Err(matches)),
        };
        if fire {
            self.notify_changes(&mut st, &[(obj.name, id.clone())]);
        }
        Ok(Ok((id, created)))
    }

    /// Merges losers into a master record.
    pub(crate) fn merge(&self, master: &str, losers: &[String]) -> Result<(), SimError> {
        let mut st = self.lock();
        let changed = st.org.merge(master, losers)?;
        self.notify_changes(&mut st, &changed);
        Ok(())
    }

    /// Converts a lead.
    pub(crate) fn convert(
        &self,
        lead: &str,
        options: &ConvertOptions,
    ) -> Result<ConvertResult, SimError> {
        let mut st = self.lock();
        let (result, changed) = st.org.convert(lead, options)?;
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
        let obj = schema::object(object).ok_or_else(SimError::not_found)?;
        Ok(self.lock().org.all(obj).cloned().collect())
    }
}

fn object_opt(object: Option<&str>) -> Result<Option<&'static ObjectInfo>, SimError> {
    object
        .map(|o| schema::object(o).ok_or_else(SimError::not_found))
        .transpose()
}

/// The canonical name of a field usable as an external id: `Id` or a custom field.
pub(crate) fn external_id_field(obj: &ObjectInfo, field: &str) -> Result<String, SimError> {
    match obj.field(field) {
        Some(f) if f == "Id" || f.ends_with("__c") => Ok(f),
        _ => Err(SimError::not_found()),
    }
}

/// The token response `signature`: base64(HMAC-SHA256(client_secret, id + issued_at))
/// (salesforce-protocol.md 3.2).
pub fn token_signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes keys of any length"));
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Builds the shared state for a simulator listening at `instance_url`.
pub(crate) fn build(config: SimulatorConfig, instance_url: String) -> Arc<Shared> {
    use rand::SeedableRng;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let org_n = 1 + config.seed % 99_999;
    let org_id = OrgId::parse(SalesforceId::mint("00D", "5g", org_n).as_str())
        .unwrap_or_else(|_| unreachable!("00D ids are org ids"));
    let user_id = SalesforceId::mint("005", "5g", org_n);
    let mut hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:X}", rng.random_range(0..16u8)))
            .collect()
    };
    let client_secret = hex(64);
    let client_id = format!("3MVG9{}", hex(80));
    let mut st = State {
        org: Org::new(user_id.clone()),
        auth: Auth::default(),
        faults: Faults::default(),
        rng,
        calls: ApiCalls::default(),
        used: 0,
        cursors: HashMap::new(),
        cursors_opened: 0,
        outbound: OutboundState::new(&config),
    };
    let refresh_token = format!("5Aep{}", st.token(83));
    st.auth.refresh.push(refresh_token.clone());
    let access_token = st.new_access_token(&org_id);
    let credentials = SimCredentials {
        client_id,
        client_secret,
        refresh_token,
        access_token,
        redirect_uri: config.redirect_uri.clone(),
        instance_url: instance_url.clone(),
        login_url: instance_url.clone(),
    };
    Arc::new(Shared {
        config,
        instance_url,
        org_id,
        user_id,
        credentials,
        state: Mutex::new(st),
        outbound_wake: Notify::new(),
        cancel: CancellationToken::new(),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_signature_vector_holds() {
        let id = "https://login.salesforce.com/id/00Dxx0000001gPFEAY/005xx000001SwiUAAS";
        assert_eq!(
            token_signature("TESTSECRET123", id, "1278448832702"),
            "RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw="
        );
    }
}
