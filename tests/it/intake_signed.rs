//! Signed JSON events through real HTTP: verified before parsing, deduplicated by webhook-id.

use sfsync::domain::{ObjectType, SalesforceId};
use sfsync::store::DedupeSource;

use crate::support::*;

const EVENT_FIXTURES: [&str; 4] = [
    "events/contact_update.json",
    "events/opportunity_delete.json",
    "events/account_cdc_update.json",
    "events/lead_cdc_create.json",
];

#[tokio::test]
async fn every_event_fixture_is_accepted_and_its_records_are_pending() {
    let app = spawn_app().await;
    for (i, name) in EVENT_FIXTURES.iter().enumerate() {
        let resp = app
            .post_event(
                KEY,
                &format!("msg_fixture_{i}"),
                now(),
                SECRET,
                &fixture(name),
            )
            .await;
        assert_eq!(resp.status(), 200, "{name}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "accepted", "{name}");
        assert_eq!(body["duplicate"], false, "{name}");
    }
    let pending = app.store().pending_records(&org()).expect("pending");
    assert_eq!(pending.len(), 2 + 1 + 1 + 1);
    let deleted = app
        .store()
        .pending_record(
            &org(),
            ObjectType::Opportunity,
            &SalesforceId::parse("0067F000003pmdW").expect("id"),
        )
        .expect("read")
        .expect("pending");
    assert_eq!(deleted.change, sfsync::domain::ChangeType::Delete);
}

#[tokio::test]
async fn a_sender_retry_resigned_with_a_fresh_timestamp_takes_effect_once() {
    let app = spawn_app().await;
    let body = fixture("events/contact_update.json");
    let first = app
        .post_event(KEY, "msg_retry_1", now() - 100, SECRET, &body)
        .await;
    assert_eq!(first.status(), 200);
    let second = app
        .post_event(KEY, "msg_retry_1", now(), SECRET, &body)
        .await;
    assert_eq!(second.status(), 200);
    let body: serde_json::Value = second.json().await.expect("json");
    assert_eq!(body["duplicate"], true);
    let status = app.status().await;
    assert_eq!(status["inbox"]["received_total"], 1);
    assert_eq!(status["inbox"]["duplicates_total"], 1);
    let entry = app
        .store()
        .pending_record(
            &org(),
            ObjectType::Contact,
            &SalesforceId::parse("0031I0000081tbP").expect("id"),
        )
        .expect("read")
        .expect("pending");
    assert_eq!(entry.notifications, 1);
    assert!(
        app.store()
            .has_seen(&org(), DedupeSource::WebhookId, "msg_retry_1")
            .expect("seen")
    );
}

/// Log lines written while it is the thread's subscriber (the test runtime runs the service's
/// tasks on the test's thread).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

async fn metric(app: &TestApp, name: &str) -> String {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_replayed_id_with_another_signed_body_is_a_duplicate_counted_and_logged() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app().await;
    let body = fixture("events/contact_update.json");
    let other = fixture("events/opportunity_delete.json");
    let post = |ts: i64, body: Vec<u8>| {
        let app = &app;
        async move {
            let resp = app.post_event(KEY, "msg_replay_1", ts, SECRET, &body).await;
            assert_eq!(resp.status(), 200);
            let json: serde_json::Value = resp.json().await.expect("json");
            json["duplicate"].as_bool().expect("duplicate")
        }
    };
    let counted = "sfsync_inbox_replayed_different_total";
    let warning = "webhook-id replayed with a different body";

    assert!(!post(now() - 10, body.clone()).await);
    assert!(post(now(), body).await, "the same body again");
    assert_eq!(metric(&app, counted).await, format!("{counted} 0"));
    assert!(!logs.text().contains(warning), "{}", logs.text());

    assert!(post(now(), other).await, "another body, validly signed");
    assert_eq!(metric(&app, counted).await, format!("{counted} 1"));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning in {text}"));
    assert!(
        line.contains("WARN") && line.contains("msg_replay_1"),
        "{line}"
    );
    assert!(line.contains(org().as_str()), "{line}");
    assert!(
        !line.contains("Opportunity") && !line.contains("0067F000003pmdW"),
        "{line}"
    );
    let deleted = SalesforceId::parse("0067F000003pmdW").expect("id");
    let stored = app
        .store()
        .pending_record(&org(), ObjectType::Opportunity, &deleted);
    assert_eq!(stored.expect("read"), None, "the second body is not stored");
}

async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("json error body");
    (
        status,
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn bad_signatures_and_headers_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let body = fixture("events/contact_update.json");
    let ts = now().to_string();
    let good = sfsync::http::webhook::signature::sign(&decoded(SECRET), "msg_x", now(), &body);
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, u16);
    let cases: Vec<Case<'_>> = vec![
        (Some("msg_x"), Some(&ts), Some("v1,"), 401),
        (
            Some("msg_x"),
            Some(&ts),
            Some("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="),
            401,
        ),
        (
            Some("msg_x"),
            Some(&ts),
            Some("sha256=757107ea0eb2509f"),
            401,
        ),
        (Some("msg_x"), Some(&ts), Some("v1,%%%%"), 401),
        (None, Some(&ts), Some(good.as_str()), 400),
        (Some("msg_x"), None, Some(good.as_str()), 400),
        (Some("msg_x"), Some(&ts), None, 400),
        (Some("msg_x"), Some("yesterday"), Some(good.as_str()), 400),
        (Some("msg.x"), Some(&ts), Some(good.as_str()), 400),
    ];
    for (id, t, sig, want) in cases {
        let resp = app.post_event_raw(KEY, id, t, sig, body.clone()).await;
        let (status, message) = error_of(resp).await;
        assert_eq!(status, want, "{id:?} {t:?} {sig:?}: {message}");
        assert!(
            !message.contains("whsec_") && !message.contains(&good),
            "{message}"
        );
    }
    assert_eq!(app.store().pending_count(), 0);
    assert_eq!(app.status().await["inbox"]["rejected_total"], 9);
}

#[tokio::test]
async fn timestamps_outside_five_minutes_either_way_are_refused() {
    let app = spawn_app().await;
    let body = fixture("events/contact_update.json");
    for (offset, want) in [(-400, 401), (400, 401), (-250, 200), (250, 200)] {
        let id = format!("msg_window_{}", offset + 1000);
        let resp = app
            .post_event(KEY, &id, now() + offset, SECRET, &body)
            .await;
        assert_eq!(resp.status(), want, "offset {offset}");
    }
}

#[tokio::test]
async fn the_signature_is_checked_before_the_body_is_parsed() {
    let app = spawn_app().await;
    let garbage = b"{not json".to_vec();
    let (status, _) = error_of(app.post_event(KEY, "msg_g1", now(), SECRET, &garbage).await).await;
    assert_eq!(status, 400);
    let (status, _) = error_of(
        app.post_event(KEY, "msg_g2", now(), OLD_SECRET, &garbage)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    // A re-serialized (equal but not identical) body fails.
    let body = fixture("events/contact_update.json");
    let sig = sfsync::http::webhook::signature::sign(&decoded(SECRET), "msg_g3", now(), &body);
    let reserialized =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).expect("json"))
            .expect("ser");
    assert_ne!(reserialized, body);
    let resp = app
        .post_event_raw(
            KEY,
            Some("msg_g3"),
            Some(&now().to_string()),
            Some(&sig),
            reserialized,
        )
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn keys_rotate_old_and_new_both_verify_then_the_old_one_stops() {
    let rotating = spawn_app_with(&[OLD_SECRET, SECRET]).await;
    let body = fixture("events/contact_update.json");
    let ts = now();
    let old_sig =
        sfsync::http::webhook::signature::sign(&decoded(OLD_SECRET), "msg_rot1", ts, &body);
    let new_sig = sfsync::http::webhook::signature::sign(&decoded(SECRET), "msg_rot1", ts, &body);
    let both = format!("{old_sig} {new_sig}");
    let t = ts.to_string();
    for sig in [&both, &new_sig, &old_sig] {
        let resp = rotating
            .post_event_raw(KEY, Some("msg_rot1"), Some(&t), Some(sig), body.clone())
            .await;
        assert_eq!(resp.status(), 200);
    }
    let rotated = spawn_app_with(&[SECRET]).await;
    let resp = rotated
        .post_event_raw(
            KEY,
            Some("msg_rot2"),
            Some(&t),
            Some(&old_sig),
            body.clone(),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let resp = rotated.post_event(KEY, "msg_rot2", ts, SECRET, &body).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_body_naming_another_org_is_refused_with_403() {
    let app = spawn_app().await;
    let body =
        br#"{"org_id":"00D1I000003qqqE","object":"Contact","record_ids":["0031I0000081tbP"]}"#;
    let (status, _) = error_of(app.post_event(KEY, "msg_org", now(), SECRET, body).await).await;
    assert_eq!(status, 403);
    // Signed with the other org's secret on the other org's key, it is that org's event.
    let resp = app
        .post_event(OTHER_KEY, "msg_org", now(), OLD_SECRET, body)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.store().pending_records(&org()).expect("pending").len(),
        0
    );
}

#[tokio::test]
async fn a_signature_made_with_another_orgs_secret_is_refused() {
    let app = spawn_app().await;
    let body = fixture("events/contact_update.json");
    let (status, _) = error_of(
        app.post_event(KEY, "msg_cross", now(), OLD_SECRET, &body)
            .await,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_wrong_media_type_is_refused_with_415() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(format!("{}/webhooks/salesforce/events/{KEY}", app.base))
        .header("content-type", "text/plain")
        .body(fixture("events/contact_update.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(error_of(resp).await.0, 415);
}

#[tokio::test]
async fn a_wildcard_change_event_records_a_resync_request() {
    let app = spawn_app().await;
    let body = br#"{"ChangeEventHeader":{"entityName":"Account","recordIds":["001*"],"changeType":"UPDATE","commitTimestamp":1696444513000}}"#;
    assert_eq!(
        app.post_event(KEY, "msg_wild", now(), SECRET, body)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.store().resync_requests(&org()).expect("resync"),
        vec![ObjectType::Account]
    );
}

#[tokio::test]
async fn a_change_event_for_sfsyncs_own_write_is_acknowledged_without_a_pull() {
    let app = spawn_app().await;
    let echo = br#"{"ChangeEventHeader":{"entityName":"Contact","recordIds":["0031I0000081tbPQAQ"],"changeType":"UPDATE","changeOrigin":"com/salesforce/api/rest/62.0;client=sfsync","commitTimestamp":1714640000000}}"#;
    let resp = app.post_event(KEY, "msg_echo", now(), SECRET, echo).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.store().pending_count(), 0);
    assert_eq!(app.status().await["inbox"]["ignored_total"], 1);
    // The same change made by someone else is pulled.
    let theirs = String::from_utf8_lossy(echo).replace("client=sfsync", "client=SfdcInternalAPI/");
    let resp = app
        .post_event(KEY, "msg_theirs", now(), SECRET, theirs.as_bytes())
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.store().pending_count(), 1);
}
