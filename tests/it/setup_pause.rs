//! Pushes of an object whose setup is broken wait with the setup check's reason, in status and
//! on the entry, instead of becoming dead letters one by one; a later check that passes resumes
//! them.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sfsync::simulator::FieldSpec;

use crate::support::env as pull_harness;
use crate::support::eventually;

const OBJECTS: [&str; 6] = ["Account", "Contact", "Lead", "Opportunity", "Task", "Event"];

#[tokio::test]
async fn a_push_waits_while_the_marker_field_is_missing_and_goes_through_once_it_is_added() {
    let env = pull_harness::start_without_marker().await;
    let (_, report) = env.api(Method::GET, "/setup", None).await;
    assert_eq!(report["ok"], false, "{report}");

    let (code, body) = env
        .api(
            Method::POST,
            "/contacts",
            Some(json!({"last_name": "Waits", "email": "waits@pause.example"})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["record"]["id"].as_u64().expect("id");
    let waiting = eventually("the push to pause", Duration::from_secs(10), || async {
        let (_, list) = env.api(Method::GET, "/outbox?state=pending", None).await;
        let entry = list["items"][0].clone();
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("paused"))
            .then_some(entry)
    })
    .await;
    let why = waiting["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("Sfsync_Id__c"), "{why}");
    let (_, status) = env.api(Method::GET, "/status", None).await;
    let paused = status["connections"][0]["paused"].clone();
    let contact = paused
        .as_array()
        .and_then(|p| p.iter().find(|o| o["object"] == "Contact").cloned())
        .unwrap_or_else(|| panic!("Contact not paused: {status}"));
    assert!(
        contact["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the marker field Sfsync_Id__c is missing")),
        "{contact}"
    );
    assert_eq!(status["outbox"]["dead"], 0, "{status}");
    assert!(env.sim.list("Contact").is_empty());

    for object in OBJECTS {
        env.sim
            .add_field(object, &FieldSpec::marker("Sfsync_Id__c"))
            .expect("add the marker field");
    }
    let (_, report) = env.api(Method::GET, "/setup", None).await;
    assert_eq!(report["ok"], true, "{report}");

    let linked = eventually(
        "the push to go through",
        Duration::from_secs(10),
        || async {
            let (_, c) = env.api(Method::GET, &format!("/contacts/{id}"), None).await;
            c["salesforce_id"].as_str().map(str::to_string)
        },
    )
    .await;
    assert!(linked.starts_with("003"), "{linked}");
    let (_, status) = env.api(Method::GET, "/status", None).await;
    assert_eq!(status["connections"][0]["paused"], json!([]), "{status}");
    assert_eq!(status["outbox"], json!({"pending": 0, "dead": 0}));
}
