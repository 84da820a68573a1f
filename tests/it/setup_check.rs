//! The org's setup checked from its describe: `GET /api/v1/setup`, `sfsync doctor` and the
//! summary in status, against a simulated org set up completely and one missing pieces.

use reqwest::Method;
use sfsync::simulator::FieldAccess;

use crate::support::TOKEN;
use crate::support::env::{self as pull_harness, SyncEnv as PullEnv};

async fn setup_report(env: &PullEnv) -> serde_json::Value {
    let (code, report) = env.api(Method::GET, "/setup", None).await;
    assert_eq!(code, 200, "{report}");
    report
}

#[tokio::test]
async fn an_org_set_up_as_the_guide_says_passes_every_check() {
    let env = pull_harness::start().await;
    let report = setup_report(&env).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["api_version"]["served"], true);
    let objects: Vec<&str> = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["object"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        objects,
        ["Account", "Contact", "Lead", "Opportunity", "Task", "Event"]
    );
    // The check lands in status too.
    let (_, status) = env.api(Method::GET, "/status", None).await;
    assert_eq!(status["connections"][0]["setup"]["ok"], true, "{status}");
}

#[tokio::test]
async fn an_org_without_the_marker_field_is_reported_object_by_object() {
    let env = pull_harness::start_without_marker().await;
    let report = setup_report(&env).await;
    assert_eq!(report["ok"], false);
    for object in report["objects"].as_array().expect("objects") {
        let problems = object["problems"].to_string();
        assert!(
            problems.contains("the marker field Sfsync_Id__c is missing"),
            "{object}"
        );
    }
}

#[tokio::test]
async fn a_field_the_integration_user_cannot_write_is_named() {
    let env = pull_harness::start().await;
    env.sim
        .set_field_access(
            None,
            "Contact",
            "Title",
            FieldAccess {
                readable: true,
                createable: false,
                updateable: false,
            },
        )
        .expect("field security");
    env.sim
        .set_field_access(
            None,
            "Account",
            "Sfsync_Id__c",
            FieldAccess {
                readable: true,
                createable: false,
                updateable: false,
            },
        )
        .expect("field security");
    let report = setup_report(&env).await;
    let problems_of = |name: &str| {
        report["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["object"] == name)
            .map(|o| o["problems"].to_string())
            .unwrap_or_default()
    };
    assert!(
        problems_of("Contact").contains("cannot write Title"),
        "{report}"
    );
    assert!(
        problems_of("Account").contains("cannot write Sfsync_Id__c"),
        "{report}"
    );
    assert!(problems_of("Lead").contains("[]"), "{report}");
}

fn doctor(base: &str) -> std::process::Output {
    crate::processes::sfsync()
        .args(["doctor", "--url", base])
        .env("SFSYNC_API_TOKEN", TOKEN)
        .output()
        .expect("run doctor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_what_is_missing_and_fails_until_it_is_fixed() {
    let env = pull_harness::start_without_marker().await;
    let base = env.app.base.clone();
    let out = tokio::task::spawn_blocking(move || doctor(&base))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Contact      MISSING: the marker field Sfsync_Id__c is missing"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("incomplete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let fixed = pull_harness::start().await;
    let base = fixed.app.base.clone();
    let out = tokio::task::spawn_blocking(move || doctor(&base))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("API version 62.0     served"), "{stdout}");
    assert!(stdout.contains("Opportunity  ok"), "{stdout}");
}
