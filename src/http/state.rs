//! What every handler shares: [`AppState`] (cheap to clone), the configured [`Connections`] and
//! the intake [`Counters`]. Apart from the router so that the handlers' modules depend on the
//! state without depending on the module that routes to them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::oauth;
use super::webhook::outbound_message::XmlLimits;
use crate::config::Connection;
use crate::store::{IngestOutcome, Store};

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

/// Intake counters since start, for `/api/v1/status` and `/metrics`.
pub struct Counters {
    received: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    ignored: AtomicU64,
    /// Counted by the inbox worker, which recognises echoes where pulls are decided.
    echoes: Arc<AtomicU64>,
    prom_received: Counter,
    prom_duplicates: Counter,
    prom_rejected: Counter,
    prom_ignored: Counter,
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("received", &self.received_total())
            .finish()
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl Counters {
    /// Counters whose echo count is `echoes`, the one the inbox worker adds to.
    pub fn new(echoes: Arc<AtomicU64>) -> Self {
        use metrics::{Key, Metadata, Recorder};
        let recorder = PrometheusBuilder::new().build_recorder();
        let meta = Metadata::new(module_path!(), metrics::Level::INFO, None);
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &meta);
        Self {
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            echoes,
            prom_received: counter("sfsync_inbox_received_total"),
            prom_duplicates: counter("sfsync_inbox_duplicates_total"),
            prom_rejected: counter("sfsync_inbox_rejected_total"),
            prom_ignored: counter("sfsync_inbox_ignored_total"),
            recorder,
        }
    }

    /// Counts what one ingest did.
    pub fn record(&self, o: &IngestOutcome) {
        self.received.fetch_add(o.accepted, Ordering::Relaxed);
        self.duplicates.fetch_add(o.duplicates, Ordering::Relaxed);
        self.prom_received.increment(o.accepted);
        self.prom_duplicates.increment(o.duplicates);
    }
    /// Counts one rejected request.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.prom_rejected.increment(1);
    }
    /// Counts notifications for objects sfsync does not sync.
    pub fn ignored(&self, n: u64) {
        self.ignored.fetch_add(n, Ordering::Relaxed);
        self.prom_ignored.increment(n);
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
    /// The Prometheus text exposition of every counter, plus the pending gauge.
    pub fn render(&self, pending: u64) -> String {
        let mut out = self.recorder.handle().render();
        out.push_str("# TYPE sfsync_inbox_echoes_total counter\n");
        out.push_str(&format!(
            "sfsync_inbox_echoes_total {}\n",
            self.echoes_total()
        ));
        out.push_str("# TYPE sfsync_inbox_pending gauge\n");
        out.push_str(&format!("sfsync_inbox_pending {pending}\n"));
        out
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
    pub oauth: Result<Arc<oauth::OAuthFlow>, Arc<str>>,
    /// The setup check and each org's latest report.
    pub setup: Arc<crate::sync::setup::Setup>,
    /// The app's webhooks and how their deliveries go.
    pub app_webhooks: crate::app_webhooks::Hooks,
    /// The longest wait of a long poll of the change feed.
    pub feed_wait: std::time::Duration,
}
