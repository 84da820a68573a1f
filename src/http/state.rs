//! What every handler shares: [`AppState`] (cheap to clone), the configured [`Connections`] and
//! the intake [`Counters`]. Apart from the router so that the handlers' modules depend on the
//! state without depending on the module that routes to them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::oauth::OAuthFlow;
use super::webhook::outbound_message::XmlLimits;
use crate::config::Connection;
use crate::domain::OrgId;
use crate::store::{IngestOutcome, Store};
use crate::telemetry::{Metrics, Telemetry};

/// The connections, looked up by a digest of their webhook key so the lookup's timing says
/// nothing about the key.
#[derive(Debug, Default)]
pub struct Connections {
    by_key: HashMap<[u8; 32], Connection>,
    all: Vec<Connection>,
}

impl Connections {
    /// Indexes the configured connections.
    pub fn new(connections: Vec<Connection>) -> Self {
        let by_key = connections
            .iter()
            .map(|c| {
                (
                    Sha256::digest(c.webhook_key.expose_secret().as_bytes()).into(),
                    c.clone(),
                )
            })
            .collect();
        Self {
            by_key,
            all: connections,
        }
    }

    /// The connection whose webhook key this is.
    pub fn by_key(&self, key: &str) -> Option<&Connection> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_key.get(&digest)
    }

    /// Every connection.
    pub fn all(&self) -> &[Connection] {
        &self.all
    }
}

/// Intake counters since start, for `/api/v1/status`; each count also goes to its Prometheus
/// counter.
pub struct Counters {
    received: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    ignored: AtomicU64,
    /// Counted by the inbox worker, which recognises echoes where pulls are decided.
    echoes: Arc<AtomicU64>,
    last_notification: Mutex<HashMap<OrgId, DateTime<Utc>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("received", &self.received_total())
            .finish()
    }
}

impl Counters {
    /// Counters that also count into `metrics`; the echo count is `echoes`, the one the inbox
    /// worker adds to.
    pub fn new(metrics: Arc<Metrics>, echoes: Arc<AtomicU64>) -> Self {
        Self {
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            echoes,
            last_notification: Mutex::default(),
            metrics,
        }
    }

    /// Counts what one ingest of `org`'s notifications did.
    pub fn record(&self, org: &OrgId, o: &IngestOutcome) {
        let now = Utc::now();
        let mut last = self
            .last_notification
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last.get_mut(org) {
            Some(at) => *at = now,
            None => {
                last.insert(org.clone(), now);
            }
        }
        drop(last);
        self.received.fetch_add(o.accepted, Ordering::Relaxed);
        self.duplicates.fetch_add(o.duplicates, Ordering::Relaxed);
        self.metrics.inbox_stored(o.accepted, o.duplicates);
        // A signed event id replayed with another body (answered as a duplicate).
        self.metrics.inbox_replayed_different(o.replayed_different);
    }
    /// Counts one rejected request; `reason` labels it in `sfsync_inbox_rejected_total`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.inbox_rejected(reason);
    }
    /// Counts notifications for objects sfsync does not sync.
    pub fn ignored(&self, n: u64) {
        self.ignored.fetch_add(n, Ordering::Relaxed);
        self.metrics.inbox_ignored(n);
    }
    /// Notifications recognised as the echo of sfsync's own write.
    pub fn echoes_total(&self) -> u64 {
        self.echoes.load(Ordering::Relaxed)
    }
    /// Deliveries stored for the first time.
    pub fn received_total(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Deliveries already seen.
    pub fn duplicates_total(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    /// Requests refused.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Notifications acknowledged but not synced (other object types).
    pub fn ignored_total(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }
    /// When `org`'s latest notification was stored, since start.
    pub fn last_notification(&self, org: &OrgId) -> Option<DateTime<Utc>> {
        self.last_notification
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(org)
            .copied()
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The configured orgs.
    pub connections: Arc<Connections>,
    /// Intake counters.
    pub counters: Arc<Counters>,
    /// The local API's bearer token.
    pub api_token: Arc<SecretString>,
    /// Largest webhook body.
    pub max_body: usize,
    /// Signed-event clock tolerance in seconds.
    pub timestamp_tolerance_s: u64,
    /// XML limits for Outbound Messages.
    pub xml_limits: XmlLimits,
    /// Benchmark floor only: acknowledge without storing. Never set by configuration.
    pub skip_store: bool,
    /// The pull side: Salesforce connections per org, pull rules, imports.
    pub pull: crate::sync::orgs::PullContext,
    /// What a new contact is pushed as unless the request says otherwise (`[sync] push_as`).
    pub push_as: crate::domain::PushAs,
    /// The OAuth connect flow, or why the connected app is not configured (variable names
    /// only).
    pub oauth: Result<Arc<OAuthFlow>, Arc<str>>,
    /// The setup check and each org's latest report.
    pub setup: Arc<crate::sync::setup::Setup>,
    /// The app's webhooks and how their deliveries go.
    pub app_webhooks: crate::app_webhooks::Hooks,
    /// The longest wait of a long poll of the change feed.
    pub feed_wait: std::time::Duration,
    /// Metrics and recent errors.
    pub telemetry: Telemetry,
    /// The operator console: its settings and sessions.
    pub console: Arc<super::console::Console>,
}
