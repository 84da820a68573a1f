//! `/api/v1/status` reports each org's connection state and the API budget in use.

use reqwest::Method;

use crate::support::env as pull_harness;
use crate::support::*;

#[tokio::test]
async fn an_org_without_a_salesforce_connection_is_reported_not_connected() {
    let app = spawn_app_from(&[SECRET], |c| c.connected_app = Ok(test_connected_app())).await;
    let status = app.status().await;
    assert_eq!(status["connections"][0]["state"], "not_connected");
    assert!(status["connections"][0].get("reason").is_none(), "{status}");
    assert!(status["api_usage"].is_null());
    assert_eq!(status["outbox"]["pending"], 0);
}

#[tokio::test]
async fn without_a_connected_app_every_org_is_not_configured_with_the_reason() {
    let app = spawn_app().await;
    let status = app.status().await;
    for conn in status["connections"].as_array().expect("connections") {
        assert_eq!(conn["state"], "not_configured", "{status}");
        assert!(
            conn["reason"]
                .as_str()
                .is_some_and(|r| r.contains("SALESFORCE_CLIENT_ID")),
            "{status}"
        );
    }
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

#[tokio::test]
async fn the_openapi_document_covers_status_imports_and_conflicts_too() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/status",
        "/api/v1/imports",
        "/api/v1/imports/{id}",
        "/api/v1/conflicts",
        "/api/v1/conflicts/{id}/resolve",
        "/api/v1/contacts",
        "/api/v1/outbox",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["schemas"]["Status"].is_object());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_a_wrong_token_is_refused() {
    let app = spawn_app().await;
    for (value, expected) in [
        (format!("Bearer {TOKEN}"), 200),
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER  {TOKEN}"), 200),
        (format!("Basic {TOKEN}"), 401),
        ("bearer wrong-token-0000000000".to_string(), 401),
        ("Bearer".to_string(), 401),
    ] {
        let resp = app
            .client
            .get(format!("{}/api/v1/status", app.base))
            .header("authorization", &value)
            .send()
            .await
            .expect("status");
        assert_eq!(resp.status(), expected, "{value}");
    }
}
