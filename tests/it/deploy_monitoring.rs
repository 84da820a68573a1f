//! `deploy/prometheus/alerts.yml` and `deploy/grafana/sfsync.json` against the service: every
//! expression parses as PromQL, and every metric it reads is one a running sfsync exports at
//! `/metrics`. The alerts cover what an operator must hear about.

use std::collections::BTreeSet;
use std::path::PathBuf;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;
use sfsync::simulator::SimulatorConfig;

use crate::metrics::{exported_names, scrape};
use crate::support::env::start_with;

fn deploy_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    duration: String,
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// The metric names an expression reads.
struct Names(BTreeSet<String>);

impl ExprVisitor for Names {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let selector = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = selector {
            let name = vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__")
                    .map(|m| m.value.clone())
            });
            self.0.insert(name.expect("a selector names its metric"));
        }
        Ok(true)
    }
}

/// Parses `expr` as PromQL and returns the metrics it reads.
fn metrics_of(expr: &str) -> BTreeSet<String> {
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}\n{e}"));
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed).expect("walk");
    assert!(!names.0.is_empty(), "reads no metric: {expr}");
    names.0
}

fn rules() -> Vec<Rule> {
    let file: RuleFile = serde_norway::from_str(&deploy_file("prometheus/alerts.yml"))
        .expect("alerts.yml is a Prometheus rule file");
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// Every `expr` of the dashboard's panels, with Grafana's variables replaced by what they stand
/// for, so that the text is PromQL.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/sfsync.json")).expect("dashboard JSON");
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let expr = expr.replace("$__rate_interval", "5m").replace("$org", ".*");
            out.push((title.clone(), expr));
        }
    }
    out
}

#[tokio::test]
async fn every_alert_and_dashboard_query_reads_metrics_the_service_exports() {
    let env = start_with(SimulatorConfig::default(), |c| {
        c.sync.sweep_interval_s = 3600
    })
    .await;
    let exported = exported_names(&scrape(&env.app.base).await);

    let alerts = rules()
        .into_iter()
        .map(|r| (format!("alert {}", r.alert), r.expr));
    let panels = dashboard_queries()
        .into_iter()
        .map(|(title, e)| (format!("panel {title}"), e));
    let mut read = BTreeSet::new();
    for (place, expr) in alerts.chain(panels) {
        for name in metrics_of(&expr) {
            assert!(
                exported.contains(&name),
                "{place} reads {name}, which sfsync does not export"
            );
            read.insert(name);
        }
    }
    for family in crate::metrics::FAMILIES.iter().map(|(name, _)| *name) {
        let shown = read.iter().any(|n| n.starts_with(family));
        assert!(shown, "{family} is on no dashboard panel and in no alert");
    }
}

#[test]
fn the_alerts_cover_reauth_dead_letters_inbox_lag_the_api_budget_and_the_sweep() {
    let rules = rules();
    for rule in &rules {
        assert!(rule.duration.ends_with('m'), "{}: for", rule.alert);
        assert!(
            rule.labels.contains_key("severity"),
            "{}: severity",
            rule.alert
        );
        for key in ["summary", "description", "runbook"] {
            assert!(rule.annotations.contains_key(key), "{}: {key}", rule.alert);
        }
    }
    let reads = |needle: &str| {
        rules
            .iter()
            .any(|r| metrics_of(&r.expr).iter().any(|n| n.starts_with(needle)))
    };
    assert!(rules.iter().any(|r| {
        r.expr
            .contains("sfsync_connection_state{state=\"needs_reauth\"}")
    }));
    for needle in [
        "sfsync_outbox_dead",
        "sfsync_pull_freshness_seconds",
        "sfsync_inbox_pending",
        "sfsync_api_usage_ratio",
        "sfsync_sweep_last_success_timestamp_seconds",
    ] {
        assert!(reads(needle), "no alert reads {needle}");
    }
}

#[test]
fn an_expression_that_is_not_promql_is_caught() {
    assert!(parser::parse("sfsync_outbox_dead >").is_err());
    assert!(parser::parse("rate(sfsync_push_total[5m)").is_err());
    assert!(parser::parse("sum by (org (sfsync_outbox_dead)").is_err());
}
