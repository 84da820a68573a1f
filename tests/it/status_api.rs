//! `/api/v1/status` reports each org's connection state and the API budget in use.

use reqwest::Method;

use crate::helpers::*;
use crate::pull_harness;

#[tokio::test]
async fn an_org_without_a_salesforce_connection_is_reported_not_connected() {
    let app = spawn_app().await;
    let status = app.status().await;
    assert_eq!(status["connections"][0]["state"], "not_connected");
    assert!(status["api_usage"].is_null());
    assert_eq!(status["outbox"]["pending"], 0);
}

#[tokio::test]
async fn a_connected_org_reports_connected_and_its_api_usage() {
    let env = pull_harness::start().await;
    // One call through the org's client so a Sforce-Limit-Info header has been read.
    env.client().fetch_limits().await.expect("limits");
    let (code, status) = env.api(Method::GET, "/status", None).await;
    assert_eq!(code, 200);
    let conn = &status["connections"][0];
    assert_eq!(conn["org_id"], env.org.as_str());
    assert_eq!(conn["state"], "connected");
    let used = conn["api_usage"]["used"].as_u64().expect("used");
    assert!(used >= 1, "{status}");
    assert!(conn["api_usage"]["limit"].as_u64().expect("limit") > used);
    assert_eq!(status["api_usage"]["used"], conn["api_usage"]["used"]);
}
