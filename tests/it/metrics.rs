//! `GET /metrics` read as Prometheus reads it (parsed with `prometheus-parse`): every family the
//! service promises is there with its help text and type before anything happens, and the
//! values move when what they count happens (a notification, a pull, a push, a refresh, a
//! refused request, a dead letter, a sweep).

use std::collections::BTreeSet;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use reqwest::Method;
use serde_json::json;
use sfsync::simulator::SimulatorConfig;

use crate::support::env::{SyncEnv, start_with};
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(15);

/// The families the service exports, with their Prometheus type.
pub const FAMILIES: &[(&str, &str)] = &[
    ("sfsync_inbox_received_total", "counter"),
    ("sfsync_inbox_duplicates_total", "counter"),
    ("sfsync_inbox_rejected_total", "counter"),
    ("sfsync_inbox_ignored_total", "counter"),
    ("sfsync_inbox_echoes_total", "counter"),
    ("sfsync_inbox_replayed_different_total", "counter"),
    ("sfsync_inbox_pending", "gauge"),
    ("sfsync_inbox_ack_seconds", "histogram"),
    ("sfsync_pull_applied_total", "counter"),
    ("sfsync_pull_freshness_seconds", "histogram"),
    ("sfsync_outbox_pending", "gauge"),
    ("sfsync_outbox_dead", "gauge"),
    ("sfsync_push_total", "counter"),
    ("sfsync_api_calls_total", "counter"),
    ("sfsync_api_usage_ratio", "gauge"),
    ("sfsync_api_budget_ratio", "gauge"),
    ("sfsync_token_refreshes_total", "counter"),
    ("sfsync_connection_state", "gauge"),
    ("sfsync_sweep_last_success_timestamp_seconds", "gauge"),
    ("sfsync_sweep_interval_seconds", "gauge"),
    ("sfsync_app_webhook_deliveries_total", "counter"),
    ("sfsync_app_webhook_lag_seconds", "histogram"),
];

/// The service's `/metrics`, parsed.
pub async fn scrape(base: &str) -> Scrape {
    let resp = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("prometheus text format")
}

/// Every series name a query may read: each sample's name, and for a histogram its `_bucket`,
/// `_sum` and `_count` series.
pub fn exported_names(scrape: &Scrape) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for s in &scrape.samples {
        names.insert(s.metric.clone());
        if matches!(s.value, Value::Histogram(_)) {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", s.metric));
            }
        }
    }
    names
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Counter(_) => "counter",
        Value::Gauge(_) => "gauge",
        Value::Histogram(_) => "histogram",
        Value::Summary(_) => "summary",
        Value::Untyped(_) => "untyped",
    }
}

/// The value of the series `name` whose labels include `labels`; for a histogram, its count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert!(!found.is_empty(), "no series {name} {labels:?}");
    found
        .iter()
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn env() -> SyncEnv {
    start_with(SimulatorConfig::default(), |c| {
        c.sync.sweep_interval_s = 3600
    })
    .await
}

#[tokio::test]
async fn every_family_is_exported_with_its_help_and_type_before_anything_happens() {
    let env = env().await;
    let org = env.org.to_string();

    let scrape = scrape(&env.app.base).await;

    for (name, kind) in FAMILIES {
        let help = scrape
            .docs
            .get(*name)
            .map(String::as_str)
            .unwrap_or_default();
        assert!(help.len() > 10, "{name} has no help text");
        let samples: Vec<&Sample> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == *name)
            .collect();
        assert!(!samples.is_empty(), "{name} is not exported");
        for s in samples {
            assert_eq!(type_of(&s.value), *kind, "{name}");
        }
    }
    assert_eq!(
        value(
            &scrape,
            "sfsync_connection_state",
            &[("org", &org), ("state", "connected")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "sfsync_connection_state",
            &[("org", &org), ("state", "needs_reauth")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            "sfsync_inbox_rejected_total",
            &[("reason", "signature")]
        ),
        0.0
    );
    assert_eq!(
        value(&scrape, "sfsync_api_budget_ratio", &[("side", "push")]),
        0.8
    );
    assert_eq!(value(&scrape, "sfsync_sweep_interval_seconds", &[]), 3600.0);
}

/// The first scrape where `done` holds.
async fn scrape_until(base: &str, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    eventually(what, WAIT, || async {
        let s = scrape(base).await;
        done(&s).then_some(s)
    })
    .await
}

/// A record created in the org: a notification in, a pull, a local write, API calls.
async fn a_pull_moves_intake_pull_and_api_figures(env: &SyncEnv, before: &Scrape) -> Scrape {
    let (base, org) = (&env.app.base, env.org.as_str());
    let account = json!({"Name": "Metrics Ltd", "Website": "metrics.example"});
    env.sim.create("Account", account).expect("create");
    let created = [("object", "Account"), ("result", "created")];
    let pulled = scrape_until(base, "the account pulled", |s| {
        value(s, "sfsync_pull_applied_total", &created) >= 1.0
    })
    .await;
    assert!(value(&pulled, "sfsync_inbox_received_total", &[]) >= 1.0);
    assert!(value(&pulled, "sfsync_inbox_ack_seconds", &[]) >= 1.0);
    assert!(value(&pulled, "sfsync_pull_freshness_seconds", &[]) >= 1.0);
    let calls = |s: &Scrape| value(s, "sfsync_api_calls_total", &[("org", org)]);
    assert!(calls(&pulled) > calls(before));
    assert!(value(&pulled, "sfsync_api_usage_ratio", &[("org", org)]) > 0.0);
    let swept = value(
        &pulled,
        "sfsync_sweep_last_success_timestamp_seconds",
        &[("org", org)],
    );
    assert!(swept > 1.7e9, "{swept}");
    pulled
}

/// A local contact pushed, and a lead Salesforce refuses (a dead letter).
async fn pushes_move_push_and_outbox_figures(env: &SyncEnv) -> Scrape {
    let (base, org) = (&env.app.base, env.org.as_str());
    let pushed = json!({"last_name": "Pushed", "email": "p@metrics.example"});
    let (status, _) = env.api(Method::POST, "/contacts", Some(pushed)).await;
    assert_eq!(status, 201);
    let refused = json!({"last_name": "Refused", "push_as": "lead"});
    env.api(Method::POST, "/contacts", Some(refused)).await;
    let ok = [("object", "Contact"), ("result", "ok")];
    let s = scrape_until(base, "the pushes", |s| {
        value(s, "sfsync_push_total", &ok) >= 1.0
            && value(s, "sfsync_outbox_dead", &[("org", org)]) == 1.0
    })
    .await;
    let dead = [("object", "Lead"), ("result", "dead")];
    assert_eq!(value(&s, "sfsync_push_total", &dead), 1.0);
    s
}

#[tokio::test]
async fn the_values_move_when_what_they_count_happens() {
    let env = env().await;
    let base = env.app.base.clone();
    let before = scrape(&base).await;

    a_pull_moves_intake_pull_and_api_figures(&env, &before).await;
    let pushed = pushes_move_push_and_outbox_figures(&env).await;

    // An expired session: the next call refreshes it.
    let refreshes = value(&pushed, "sfsync_token_refreshes_total", &[]);
    env.sim.expire_sessions();
    let after = json!({"last_name": "After", "email": "a@metrics.example"});
    env.api(Method::POST, "/contacts", Some(after)).await;
    scrape_until(&base, "a refresh", |s| {
        value(s, "sfsync_token_refreshes_total", &[]) > refreshes
    })
    .await;

    // A request to a key nobody has is refused and counted by its reason.
    let refused = reqwest::Client::new()
        .post(format!(
            "{base}/webhooks/salesforce/outbound/not-a-key-of-anyone-000"
        ))
        .header("content-type", "text/xml")
        .body("<x/>")
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    let after = scrape(&base).await;
    let unknown = [("reason", "unknown_key")];
    assert_eq!(value(&after, "sfsync_inbox_rejected_total", &unknown), 1.0);
}

#[tokio::test]
async fn the_last_successful_sweep_kept_in_the_store_is_reported_from_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let org = crate::support::org();
    let at = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    {
        let store = sfsync::store::Store::open(&path).expect("store");
        store.set_last_sweep(&org, at).expect("last sweep");
        store.make_durable().await.expect("durable");
    }
    let connections = vec![crate::support::connection(&org, crate::support::KEY, &[])];
    let app = crate::support::spawn(crate::support::config(&path, connections), dir).await;

    let scrape = scrape(&app.base).await;

    let swept = [("org", crate::support::ORG)];
    let reported = value(
        &scrape,
        "sfsync_sweep_last_success_timestamp_seconds",
        &swept,
    );
    assert_eq!(reported, at.timestamp_millis() as f64 / 1000.0);
}
