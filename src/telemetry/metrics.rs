//! The Prometheus metrics of one app, recorded through the `metrics` crate into this app's own
//! recorder (never the global one) and rendered by `metrics-exporter-prometheus`.
//!
//! Every family is described (help text and unit) when the recorder is built, and every series
//! whose labels are known in advance (each configured org, each object and result) starts at
//! zero, so that an alert or a dashboard never reads an absent series. Gauges that describe the
//! current state (queues, connection states, API usage) are set from a [`Gauges`] snapshot when
//! `/metrics` is scraped.

use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::domain::OrgId;

/// Notifications stored for the first time.
pub const INBOX_RECEIVED: &str = "sfsync_inbox_received_total";
/// Notifications already seen (a sender's retry).
pub const INBOX_DUPLICATES: &str = "sfsync_inbox_duplicates_total";
/// Webhook requests refused, by reason.
pub const INBOX_REJECTED: &str = "sfsync_inbox_rejected_total";
/// Notifications for objects sfsync does not sync.
pub const INBOX_IGNORED: &str = "sfsync_inbox_ignored_total";
/// Notifications that only reported sfsync's own write (nothing pulled).
pub const INBOX_ECHOES: &str = "sfsync_inbox_echoes_total";
/// Signed events whose `webhook-id` came again with another body (answered as duplicates).
pub const INBOX_REPLAYED_DIFFERENT: &str = "sfsync_inbox_replayed_different_total";
/// Records waiting to be pulled.
pub const INBOX_PENDING: &str = "sfsync_inbox_pending";
/// From a webhook request's arrival to its acknowledgement.
pub const INBOX_ACK: &str = "sfsync_inbox_ack_seconds";
/// Pulled records applied, by object and result.
pub const PULL_APPLIED: &str = "sfsync_pull_applied_total";
/// From a record's `SystemModstamp` to its local write.
pub const PULL_FRESHNESS: &str = "sfsync_pull_freshness_seconds";
/// Outbox entries waiting to be pushed, per org.
pub const OUTBOX_PENDING: &str = "sfsync_outbox_pending";
/// Dead letters, per org.
pub const OUTBOX_DEAD: &str = "sfsync_outbox_dead";
/// Outbox entries sent, by object and result.
pub const PUSH: &str = "sfsync_push_total";
/// Salesforce REST calls, by org and kind.
pub const API_CALLS: &str = "sfsync_api_calls_total";
/// Share of the org's daily API limit in use, from the latest `Sforce-Limit-Info`.
pub const API_USAGE_RATIO: &str = "sfsync_api_usage_ratio";
/// The share of each org's daily limit sfsync's pushes (`[outbox] limit_share`) and pulls
/// (`[sync] limit_share`) may use, by `side`.
pub const API_BUDGET_SHARE: &str = "sfsync_api_budget_ratio";
/// Access-token refreshes sent to the token endpoint.
pub const TOKEN_REFRESHES: &str = "sfsync_token_refreshes_total";
/// Each org's connection state, one series per state, 1 for the current one.
pub const CONNECTION_STATE: &str = "sfsync_connection_state";
/// When each org's catch-up sweep last finished without error.
pub const SWEEP_LAST_SUCCESS: &str = "sfsync_sweep_last_success_timestamp_seconds";
/// The configured time between sweeps (`[sync] sweep_interval_s`; 0: no schedule).
pub const SWEEP_INTERVAL: &str = "sfsync_sweep_interval_seconds";
/// Change deliveries to the app's webhooks, by result.
pub const APP_WEBHOOK_DELIVERIES: &str = "sfsync_app_webhook_deliveries_total";
/// From a local change to its delivery to the app's webhook.
pub const APP_WEBHOOK_LAG: &str = "sfsync_app_webhook_lag_seconds";

/// Kinds of metric, as Prometheus types them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// One family: name, type, unit and help text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The metric name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its unit, when it has one.
    pub unit: Option<Unit>,
    /// What it measures.
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, unit: Option<Unit>, help: &'static str) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
    }
}

/// Every family the service exports.
pub const FAMILIES: &[Family] = &[
    family(
        INBOX_RECEIVED,
        Kind::Counter,
        Some(Unit::Count),
        "Notifications stored for the first time (Outbound Message notifications and signed events).",
    ),
    family(
        INBOX_DUPLICATES,
        Kind::Counter,
        Some(Unit::Count),
        "Notifications already stored before (a sender's retry), acknowledged again.",
    ),
    family(
        INBOX_REJECTED,
        Kind::Counter,
        Some(Unit::Count),
        "Webhook requests refused, by reason.",
    ),
    family(
        INBOX_IGNORED,
        Kind::Counter,
        Some(Unit::Count),
        "Notifications acknowledged for objects sfsync does not sync.",
    ),
    family(
        INBOX_ECHOES,
        Kind::Counter,
        Some(Unit::Count),
        "Notifications that only reported sfsync's own write: acknowledged, nothing pulled.",
    ),
    family(
        INBOX_REPLAYED_DIFFERENT,
        Kind::Counter,
        Some(Unit::Count),
        "Signed events whose webhook-id was already stored with another body: answered as duplicates, the new body dropped.",
    ),
    family(
        INBOX_PENDING,
        Kind::Gauge,
        Some(Unit::Count),
        "Records waiting to be pulled, over every org.",
    ),
    family(
        INBOX_ACK,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Seconds from a webhook request's arrival to its acknowledgement (the notification durable on disk).",
    ),
    family(
        PULL_APPLIED,
        Kind::Counter,
        Some(Unit::Count),
        "Pulled records applied locally, by object and result.",
    ),
    family(
        PULL_FRESHNESS,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Seconds from a record's SystemModstamp in Salesforce to its local write.",
    ),
    family(
        OUTBOX_PENDING,
        Kind::Gauge,
        Some(Unit::Count),
        "Outbox entries waiting to be pushed, per org.",
    ),
    family(
        OUTBOX_DEAD,
        Kind::Gauge,
        Some(Unit::Count),
        "Dead letters waiting for a person to retry or discard them, per org.",
    ),
    family(
        PUSH,
        Kind::Counter,
        Some(Unit::Count),
        "Outbox entries sent to Salesforce, by object and result (ok, retry, dead, repointed).",
    ),
    family(
        API_CALLS,
        Kind::Counter,
        Some(Unit::Count),
        "Salesforce REST calls sent, by org and kind (query, composite, sobject, describe, other).",
    ),
    family(
        API_USAGE_RATIO,
        Kind::Gauge,
        Some(Unit::Percent),
        "Share (0 to 1) of the org's daily API limit in use, from the latest Sforce-Limit-Info.",
    ),
    family(
        API_BUDGET_SHARE,
        Kind::Gauge,
        Some(Unit::Percent),
        "Share (0 to 1) of each org's daily API limit sfsync's pushes ([outbox] limit_share) and pulls ([sync] limit_share) may use before they pause, by side.",
    ),
    family(
        TOKEN_REFRESHES,
        Kind::Counter,
        Some(Unit::Count),
        "Access-token refreshes sent to Salesforce's token endpoint.",
    ),
    family(
        CONNECTION_STATE,
        Kind::Gauge,
        None,
        "1 for each org's current connection state (connected, needs_reauth, not_connected, not_configured), 0 for the others.",
    ),
    family(
        SWEEP_LAST_SUCCESS,
        Kind::Gauge,
        Some(Unit::Seconds),
        "Unix time at which the org's catch-up sweep last finished without error (0: not since start).",
    ),
    family(
        SWEEP_INTERVAL,
        Kind::Gauge,
        Some(Unit::Seconds),
        "Configured seconds between catch-up sweeps ([sync] sweep_interval_s; 0: no schedule).",
    ),
    family(
        APP_WEBHOOK_DELIVERIES,
        Kind::Counter,
        Some(Unit::Count),
        "Change deliveries to the app's webhooks, by result.",
    ),
    family(
        APP_WEBHOOK_LAG,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Seconds from a local change to its delivery to the app's webhook.",
    ),
];

/// The reasons a webhook request is refused, as `sfsync_inbox_rejected_total` labels them.
pub const REJECT_REASONS: &[&str] = &[
    "unknown_key",
    "not_configured",
    "wrong_org",
    "too_large",
    "media_type",
    "body_read",
    "signature",
    "malformed",
    "store",
];
/// The objects records are pulled as.
pub const PULL_OBJECTS: &[&str] = &["Account", "Contact", "Lead", "Opportunity"];
/// What applying a pulled record did (`Applied::label`), or `failed` when it could not be read.
pub const PULL_RESULTS: &[&str] = &[
    "created",
    "updated",
    "unchanged",
    "quarantined",
    "unlinked",
    "relinked",
    "ignored",
    "stale",
    "failed",
];
/// The objects outbox entries are pushed as.
pub const PUSH_OBJECTS: &[&str] = &["Account", "Contact", "Lead", "Opportunity", "Task", "Event"];
/// What sending an outbox entry did.
pub const PUSH_RESULTS: &[&str] = &["ok", "retry", "dead", "repointed"];
/// The kinds of REST call counted per org.
pub const CALL_KINDS: &[&str] = &["query", "composite", "sobject", "describe", "other"];
/// The connection states.
pub const STATES: &[&str] = &[
    "connected",
    "needs_reauth",
    "not_connected",
    "not_configured",
];
/// The results of a delivery to the app's webhook.
pub const DELIVERY_RESULTS: &[&str] = &["ok", "retry", "failed"];

/// Acknowledgements: half a millisecond to ten seconds.
const ACK_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Freshness and lag: a tenth of a second to a day.
const LAG_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0,
    86400.0,
];

static META: Metadata<'static> = Metadata::new(module_path!(), ::metrics::Level::INFO, None);

/// The state a scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Records waiting to be pulled.
    pub inbox_pending: u64,
    /// Each configured org.
    pub orgs: Vec<OrgGauges>,
}

/// One org's state at scrape time.
#[derive(Debug, Clone)]
pub struct OrgGauges {
    /// The org.
    pub org: OrgId,
    /// Its connection state, one of [`STATES`].
    pub state: &'static str,
    /// Outbox entries waiting.
    pub outbox_pending: u64,
    /// Dead letters.
    pub outbox_dead: u64,
    /// Share of its daily API limit in use, when known.
    pub api_usage_ratio: Option<f64>,
}

/// One app's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    inbox_received: Counter,
    inbox_duplicates: Counter,
    inbox_ignored: Counter,
    inbox_echoes: Counter,
    inbox_replayed_different: Counter,
    inbox_ack: Histogram,
    pull_freshness: Histogram,
    token_refreshes: Counter,
    app_webhook_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::for_orgs([])
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect()
}

impl Metrics {
    /// A recorder with every family described and every known series at zero.
    pub fn for_orgs<'a>(orgs: impl IntoIterator<Item = &'a OrgId>) -> Self {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in [
            (INBOX_ACK, ACK_BUCKETS),
            (PULL_FRESHNESS, LAG_BUCKETS),
            (APP_WEBHOOK_LAG, LAG_BUCKETS),
        ] {
            // Only an empty list is refused, and these are non-empty constants; were one refused,
            // histograms would render as summaries and the metrics test would say so.
            builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        }
        // Names already carry their unit and `_total`; recommended naming keeps them so and
        // would add a unit a new family forgot.
        let recorder = builder.with_recommended_naming(true).build_recorder();
        for f in FAMILIES {
            let (name, unit, help) = (KeyName::from_const_str(f.name), f.unit, f.help.into());
            match f.kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
                Kind::Histogram => recorder.describe_histogram(name, unit, help),
            }
        }
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &META);
        let histogram =
            |name: &'static str| recorder.register_histogram(&Key::from_static_name(name), &META);
        let metrics = Self {
            inbox_received: counter(INBOX_RECEIVED),
            inbox_duplicates: counter(INBOX_DUPLICATES),
            inbox_ignored: counter(INBOX_IGNORED),
            inbox_echoes: counter(INBOX_ECHOES),
            inbox_replayed_different: counter(INBOX_REPLAYED_DIFFERENT),
            inbox_ack: histogram(INBOX_ACK),
            pull_freshness: histogram(PULL_FRESHNESS),
            token_refreshes: counter(TOKEN_REFRESHES),
            app_webhook_lag: histogram(APP_WEBHOOK_LAG),
            recorder,
        };
        metrics.start_known_series(orgs);
        metrics
    }

    /// Registers every series whose labels are known now, at zero.
    fn start_known_series<'a>(&self, orgs: impl IntoIterator<Item = &'a OrgId>) {
        for reason in REJECT_REASONS {
            self.counter(INBOX_REJECTED, &[("reason", reason)])
                .increment(0);
        }
        for object in PULL_OBJECTS {
            for result in PULL_RESULTS {
                self.counter(PULL_APPLIED, &[("object", object), ("result", result)])
                    .increment(0);
            }
        }
        for object in PUSH_OBJECTS {
            for result in PUSH_RESULTS {
                self.counter(PUSH, &[("object", object), ("result", result)])
                    .increment(0);
            }
        }
        for result in DELIVERY_RESULTS {
            self.counter(APP_WEBHOOK_DELIVERIES, &[("result", result)])
                .increment(0);
        }
        self.gauge(INBOX_PENDING, &[]).set(0.0);
        for side in ["push", "pull"] {
            self.gauge(API_BUDGET_SHARE, &[("side", side)]).set(0.0);
        }
        self.gauge(SWEEP_INTERVAL, &[]).set(0.0);
        for org in orgs {
            let org = org.as_str();
            for kind in CALL_KINDS {
                self.counter(API_CALLS, &[("org", org), ("kind", kind)])
                    .increment(0);
            }
            for state in STATES {
                self.gauge(CONNECTION_STATE, &[("org", org), ("state", state)])
                    .set(0.0);
            }
            for name in [
                OUTBOX_PENDING,
                OUTBOX_DEAD,
                API_USAGE_RATIO,
                SWEEP_LAST_SUCCESS,
            ] {
                self.gauge(name, &[("org", org)]).set(0.0);
            }
        }
    }

    fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels(pairs)), &META)
    }

    fn gauge(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels(pairs)), &META)
    }

    /// Counts what one webhook request stored: new notifications and duplicates.
    pub fn inbox_stored(&self, received: u64, duplicates: u64) {
        self.inbox_received.increment(received);
        self.inbox_duplicates.increment(duplicates);
    }

    /// Counts a refused webhook request; `reason` is one of [`REJECT_REASONS`].
    pub fn inbox_rejected(&self, reason: &'static str) {
        self.counter(INBOX_REJECTED, &[("reason", reason)])
            .increment(1);
    }

    /// Counts notifications for objects sfsync does not sync.
    pub fn inbox_ignored(&self, n: u64) {
        self.inbox_ignored.increment(n);
    }

    /// Counts signed events whose `webhook-id` came again with another body.
    pub fn inbox_replayed_different(&self, n: u64) {
        self.inbox_replayed_different.increment(n);
    }

    /// Counts notifications that only reported sfsync's own write.
    pub fn inbox_echoes(&self, n: u64) {
        self.inbox_echoes.increment(n);
    }

    /// Observes the time from a webhook request's arrival to its acknowledgement.
    pub fn inbox_acked(&self, took: Duration) {
        self.inbox_ack.record(took.as_secs_f64());
    }

    /// Counts an applied pulled record; `result` is one of [`PULL_RESULTS`].
    pub fn pull_applied(&self, object: &str, result: &'static str) {
        self.counter(PULL_APPLIED, &[("object", object), ("result", result)])
            .increment(1);
    }

    /// Observes how long after its `SystemModstamp` a record was written locally.
    pub fn pull_freshness(&self, age: chrono::TimeDelta) {
        self.pull_freshness
            .record(age.num_milliseconds().max(0) as f64 / 1000.0);
    }

    /// Counts sent outbox entries; `result` is one of [`PUSH_RESULTS`].
    pub fn pushed(&self, object: &str, result: &'static str, n: u64) {
        self.counter(PUSH, &[("object", object), ("result", result)])
            .increment(n);
    }

    /// Counts one REST call of `org`; `kind` is one of [`CALL_KINDS`].
    pub fn api_call(&self, org: &OrgId, kind: &'static str) {
        self.counter(API_CALLS, &[("org", org.as_str()), ("kind", kind)])
            .increment(1);
    }

    /// Counts one access-token refresh.
    pub fn token_refreshed(&self) {
        self.token_refreshes.increment(1);
    }

    /// Records that `org`'s sweep finished without error now.
    pub fn sweep_succeeded(&self, org: &OrgId) {
        self.sweep_succeeded_at(org, chrono::Utc::now());
    }

    /// Records that `org`'s sweep finished without error at `at` (at start: the time the store
    /// kept, so a restart does not look like a sweep that never succeeded).
    pub fn sweep_succeeded_at(&self, org: &OrgId, at: chrono::DateTime<chrono::Utc>) {
        self.gauge(SWEEP_LAST_SUCCESS, &[("org", org.as_str())])
            .set(at.timestamp_millis() as f64 / 1000.0);
    }

    /// Counts one delivery to the app's webhook; `result` is one of [`DELIVERY_RESULTS`]. The
    /// change feed's deliverer calls it.
    pub fn app_webhook_delivered(&self, result: &'static str) {
        self.counter(APP_WEBHOOK_DELIVERIES, &[("result", result)])
            .increment(1);
    }

    /// Observes the time from a local change to its delivery to the app's webhook. The change
    /// feed's deliverer calls it.
    pub fn app_webhook_lag(&self, lag: Duration) {
        self.app_webhook_lag.record(lag.as_secs_f64());
    }

    /// Sets the gauges that repeat configuration: the API budget shares of pushes and pulls,
    /// and the sweep interval.
    pub fn configured(&self, push_share: f64, pull_share: f64, sweep_interval: Duration) {
        self.gauge(API_BUDGET_SHARE, &[("side", "push")])
            .set(push_share);
        self.gauge(API_BUDGET_SHARE, &[("side", "pull")])
            .set(pull_share);
        self.gauge(SWEEP_INTERVAL, &[])
            .set(sweep_interval.as_secs_f64());
    }

    /// Drains recorded histogram samples into their buckets; run it now and then so samples do
    /// not pile up between scrapes.
    pub fn upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }

    /// The Prometheus text exposition, with the state gauges set from `now`.
    pub fn render(&self, now: &Gauges) -> String {
        self.gauge(INBOX_PENDING, &[]).set(now.inbox_pending as f64);
        for o in &now.orgs {
            let org = o.org.as_str();
            for state in STATES {
                let on = if *state == o.state { 1.0 } else { 0.0 };
                self.gauge(CONNECTION_STATE, &[("org", org), ("state", state)])
                    .set(on);
            }
            self.gauge(OUTBOX_PENDING, &[("org", org)])
                .set(o.outbox_pending as f64);
            self.gauge(OUTBOX_DEAD, &[("org", org)])
                .set(o.outbox_dead as f64);
            self.gauge(API_USAGE_RATIO, &[("org", org)])
                .set(o.api_usage_ratio.unwrap_or(0.0));
        }
        self.recorder.handle().render()
    }
}

/// The kind of a REST call, from its path, as `sfsync_api_calls_total` labels it.
pub fn call_kind(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or_default();
    if path.contains("/query") {
        "query"
    } else if path.contains("/composite/") || path.ends_with("/composite") {
        "composite"
    } else if path.ends_with("/describe") || path.ends_with("/describe/") {
        "describe"
    } else if path.contains("/sobjects/") {
        "sobject"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_help_and_type_before_any_event() {
        let org = OrgId::parse("00D7F00000107Xs").expect("org");
        let metrics = Metrics::for_orgs([&org]);

        let text = metrics.render(&Gauges::default());

        for f in FAMILIES {
            assert!(text.contains(&format!("# HELP {} ", f.name)), "{}", f.name);
            assert!(text.contains(&format!("# TYPE {} ", f.name)), "{}", f.name);
        }
        assert!(
            text.contains("# TYPE sfsync_inbox_ack_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn calls_are_told_apart_by_their_path() {
        assert_eq!(call_kind("/services/data/v62.0/queryAll?q=SELECT"), "query");
        assert_eq!(call_kind("/services/data/v62.0/query/01g-2000"), "query");
        assert_eq!(
            call_kind("/services/data/v62.0/composite/sobjects/Contact"),
            "composite"
        );
        assert_eq!(call_kind("/services/data/v62.0/composite"), "composite");
        assert_eq!(
            call_kind("/services/data/v62.0/sobjects/Contact/describe"),
            "describe"
        );
        assert_eq!(
            call_kind("/services/data/v62.0/sobjects/Contact/003x"),
            "sobject"
        );
        assert_eq!(call_kind("/services/data/"), "other");
    }
}
