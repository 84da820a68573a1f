//! `GET /api/v1/{kind}/{id}/history`: each change applied to a record, oldest first, with its
//! side, its event, its rule and the policy that decided it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::env::start;
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(10);

fn change(v: &Value) -> (&str, &str, &str, Option<&str>) {
    (
        v["side"].as_str().unwrap_or_default(),
        v["event"].as_str().unwrap_or_default(),
        v["rule"].as_str().unwrap_or_default(),
        v["policy"].as_str(),
    )
}

#[tokio::test]
async fn a_records_history_tells_each_change_its_side_event_rule_and_policy() {
    let env = start().await;
    let account = env
        .sim
        .create(
            "Account",
            json!({"Name": "Historic", "Website": "historic.example"}),
        )
        .expect("create");
    let company = eventually("the account pulled", WAIT, || async {
        env.company_of(&account)
    })
    .await;
    env.sim
        .update(&account, json!({"Industry": "Energy"}))
        .expect("update");
    eventually("the change pulled", WAIT, || async {
        env.company_of(&account)
            .filter(|c| c.industry.as_deref() == Some("Energy"))
    })
    .await;
    let path = format!("/companies/{}", company.id);
    let (status, body) = env
        .api(Method::PATCH, &path, Some(json!({"employees": 12})))
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, history) = env.api(Method::GET, &format!("{path}/history"), None).await;
    let (missing, _) = env
        .api(Method::GET, "/companies/999999/history", None)
        .await;
    let (no_history, _) = env.api(Method::GET, "/outbox/1/history", None).await;
    let (bad_id, _) = env.api(Method::GET, "/companies/abc/history", None).await;
    let (bad_limit, refused) = env
        .api(Method::GET, &format!("{path}/history?limit=0"), None)
        .await;

    assert_eq!(status, 200, "{history}");
    let items = history["items"].as_array().expect("items");
    let changes: Vec<_> = items.iter().map(change).collect();
    assert_eq!(
        changes,
        vec![
            ("salesforce", "notification", "create", None),
            (
                "salesforce",
                "notification",
                "match:salesforce_id",
                Some("salesforce_wins")
            ),
            ("local", "api", "api:update", None),
        ],
        "{history}"
    );
    assert!(items.iter().all(|c| c["at"].is_string()));
    assert_eq!(history["next"], Value::Null);
    assert_eq!((missing, no_history, bad_id), (404, 404, 400));
    assert_eq!(
        (bad_limit, &refused["error"]["field"]),
        (400, &json!("limit"))
    );
}
