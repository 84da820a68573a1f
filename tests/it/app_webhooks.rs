//! The app's webhooks: each change POSTed signed as Standard Webhooks asks, so that an app
//! verifies it with any implementation; retried on failure and given up as a dead letter after
//! the limit, listed, retried and discarded by a person; the delivery state in the status.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sfsync::simulator::SimulatorConfig;
use sfsync::tools::app_receiver::AppFaults;
use sha2::Sha256;

use crate::app_support::{APP_SECRET, caught_up, hook_status, start_app_env};
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(15);

/// Standard Webhooks' signature computed here, with nothing of sfsync: the key is the base64
/// after `whsec_`, the MAC is HMAC-SHA256 over `id.timestamp.body`, the signature its base64.
fn independent_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("prefix"))
        .expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[test]
fn the_independent_signature_reproduces_the_reference_vector() {
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    assert_eq!(
        independent_signature(
            APP_SECRET,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            body
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[tokio::test]
async fn each_change_reaches_the_app_signed_so_an_independent_verifier_accepts_it() {
    let s = start_app_env(SimulatorConfig::default(), |_| {}).await;
    let (status, _) = s
        .env
        .api(
            reqwest::Method::POST,
            "/companies",
            Some(json!({"name": "Acme", "website": "https://acme.example"})),
        )
        .await;
    assert_eq!(status, 201);
    let account = s
        .env
        .sim
        .create("Account", json!({"Name": "Globex"}))
        .expect("account");

    let received = eventually("created, pushed and pulled", WAIT, || async {
        let got = s.app.received();
        (got.len() >= 3).then_some(got)
    })
    .await;
    let (_, feed) = s.env.api(reqwest::Method::GET, "/changes", None).await;
    let feed = feed["changes"].as_array().cloned().unwrap_or_default();
    for r in &received {
        // Verified by the receiver with sfsync's verifier; verified again here without it.
        let expected = independent_signature(APP_SECRET, &r.id, &r.timestamp, &r.body);
        assert_eq!(r.signature, expected);
        assert_eq!(r.id, format!("chg_{}", r.entry.seq), "one id per change");
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        let logged = feed
            .iter()
            .find(|e| e["seq"] == body["seq"])
            .expect("in the feed");
        assert_eq!(
            &body, logged,
            "the POST carries the entry as the feed shows it"
        );
        let ts: i64 = r.timestamp.parse().expect("seconds");
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    }
    let kinds: Vec<String> = received.iter().map(|r| r.entry.kind.to_string()).collect();
    assert!(kinds.contains(&"company.created".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"company.pushed".to_string()), "{kinds:?}");
    assert!(
        received
            .iter()
            .any(|r| r.entry.data["salesforce_id"] == account.as_str()),
        "the pulled Account reached the app"
    );
    assert_eq!(s.app.posts_and_rejected().1, 0);
}

#[tokio::test]
async fn a_webhook_gets_only_the_types_it_asked_for() {
    let s = start_app_env(SimulatorConfig::default(), |c| {
        c.app_webhooks[0].types = vec!["company.pushed".into(), "contact.*".into()];
    })
    .await;
    for (path, body) in [
        ("/companies", json!({"name": "Acme"})),
        ("/contacts", json!({"last_name": "Lovelace"})),
    ] {
        let (status, _) = s.env.api(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 201);
    }
    let received = eventually("the push and the contact", WAIT, || async {
        let got: Vec<String> = s
            .app
            .received()
            .iter()
            .map(|r| r.entry.kind.to_string())
            .collect();
        let both =
            got.iter().any(|t| t == "company.pushed") && got.iter().any(|t| t == "contact.created");
        both.then_some(got)
    })
    .await;
    assert!(
        received
            .iter()
            .all(|t| t == "company.pushed" || t.starts_with("contact.")),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_change_the_app_keeps_refusing_becomes_a_dead_letter_that_a_person_retries() {
    let s = start_app_env(SimulatorConfig::default(), |c| c.changes.max_attempts = 3).await;
    s.app.set_faults(AppFaults {
        error_rate: 1.0,
        ..AppFaults::default()
    });
    let account = s
        .env
        .sim
        .create("Account", json!({"Name": "Refused"}))
        .expect("account");
    let dead = eventually("the dead letter", WAIT, || async {
        let (_, page) = s
            .env
            .api(reqwest::Method::GET, "/app-webhooks/0/dead-letters", None)
            .await;
        page["items"].as_array().and_then(|a| a.first()).cloned()
    })
    .await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["entry"]["type"], "company.created");
    assert_eq!(dead["entry"]["data"]["salesforce_id"], account.as_str());
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("answered 5")
    );
    let hook = caught_up(&s.env, WAIT).await;
    assert_eq!(hook["dead_letters"], 1);
    assert!(hook["failing_since"].is_string(), "{hook}");
    assert!(hook["last_error"].is_string(), "{hook}");
    assert_eq!(hook["url"], s.app.url.as_str());
    assert_eq!(s.app.received().len(), 0);

    s.app.set_faults(AppFaults::default());
    let seq = dead["entry"]["seq"].as_u64().expect("seq");
    let (status, _) = s
        .env
        .api(
            reqwest::Method::POST,
            &format!("/app-webhooks/0/dead-letters/{seq}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    eventually("the retried delivery", WAIT, || async {
        (s.app.received().iter().any(|r| r.entry.seq == seq)).then_some(())
    })
    .await;
    let hook = eventually("the dead letter gone", WAIT, || async {
        let hook = hook_status(&s.env).await;
        (hook["dead_letters"] == 0).then_some(hook)
    })
    .await;
    assert!(hook["failing_since"].is_null(), "{hook}");
    let (status, _) = s
        .env
        .api(
            reqwest::Method::POST,
            &format!("/app-webhooks/0/dead-letters/{seq}/discard"),
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing left to discard");
    let (status, _) = s
        .env
        .api(reqwest::Method::GET, "/app-webhooks/1/dead-letters", None)
        .await;
    assert_eq!(status, 404, "no second webhook");
}

#[tokio::test]
async fn the_status_shows_a_down_apps_lag_in_entries_and_seconds_while_sync_goes_on() {
    let s = start_app_env(SimulatorConfig::default(), |_| {}).await;
    s.app.stop();
    for i in 0..3 {
        let name = format!("While down {i}");
        s.env
            .sim
            .create("Account", json!({"Name": name}))
            .expect("account");
    }
    // Sync does not wait for the app: every Account is local while the app hears nothing.
    eventually("the pulls", WAIT, || async {
        (s.env.store().companies(&s.env.org).ok()?.len() == 3).then_some(())
    })
    .await;
    let hook = eventually("the lag", WAIT, || async {
        let hook = hook_status(&s.env).await;
        (hook["lag_entries"].as_u64() == Some(3) && hook["failing_since"].is_string())
            .then_some(hook)
    })
    .await;
    assert_eq!(hook["cursor"], 0);
    assert!(
        hook["lag_seconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{hook}"
    );
    assert!(
        hook["last_error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("transport"),
        "{hook}"
    );
    assert_eq!(hook["delivered_total"], 0);
}
