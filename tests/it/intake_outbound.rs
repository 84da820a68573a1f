//! Outbound Messages through real HTTP: acknowledged only once stored, deduplicated, coalesced.

use sfsync::domain::{ObjectType, SalesforceId};
use sfsync::store::DedupeSource;

use crate::support::*;

const OUTBOUND_FIXTURES: [&str; 4] = [
    "outbound/contact_two_notifications.xml",
    "outbound/lead_three_notifications_15_char_ids.xml",
    "outbound/account.xml",
    "outbound/opportunity_sample_c.xml",
];

fn id(s: &str) -> SalesforceId {
    SalesforceId::parse(s).expect("id")
}

#[tokio::test]
async fn every_outbound_fixture_is_acknowledged_and_its_records_are_pending() {
    let app = spawn_app().await;
    for name in OUTBOUND_FIXTURES {
        let resp = app.post_outbound(KEY, fixture(name)).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/xml"),
            "{name}"
        );
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("<notificationsResponse") && body.contains("<Ack>true</Ack>"),
            "{name}: {body}"
        );
    }
    let pending = app.store().pending_records(&org()).expect("pending");
    let mut kinds: Vec<_> = pending.iter().map(|p| p.object).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ObjectType::ALL.to_vec());
    assert_eq!(pending.len(), 2 + 3 + 1 + 1);
    let status = app.status().await;
    assert_eq!(status["inbox"]["pending"], 7);
    assert_eq!(status["inbox"]["received_total"], 7);
}

#[tokio::test]
async fn fifteen_character_ids_are_stored_in_their_eighteen_character_form() {
    let app = spawn_app().await;
    let resp = app
        .post_outbound(
            KEY,
            fixture("outbound/lead_three_notifications_15_char_ids.xml"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let entry = app
        .store()
        .pending_record(&org(), ObjectType::Lead, &id("00Q7F000003xYzA"))
        .expect("read");
    assert!(entry.is_some());
    let stored: Vec<String> = app
        .store()
        .pending_records(&org())
        .expect("pending")
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert!(stored.iter().all(|s| s.len() == 18), "{stored:?}");
    assert!(
        app.store()
            .has_seen(
                &org(),
                DedupeSource::OutboundNotification,
                id("04l7F000008aeB1").as_str()
            )
            .expect("seen")
    );
}

#[tokio::test]
async fn the_same_message_twice_leaves_one_pending_entry_and_counts_the_duplicates() {
    let app = spawn_app().await;
    let body = fixture("outbound/contact_two_notifications.xml");
    for _ in 0..2 {
        let resp = app.post_outbound(KEY, body.clone()).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await.expect("body").contains("<Ack>true</Ack>"));
    }
    let entry = app
        .store()
        .pending_record(&org(), ObjectType::Contact, &id("0031I0000081tbPQAQ"))
        .expect("read")
        .expect("pending");
    assert_eq!(entry.notifications, 1);
    let status = app.status().await;
    assert_eq!(status["inbox"]["pending"], 2);
    assert_eq!(status["inbox"]["received_total"], 2);
    assert_eq!(status["inbox"]["duplicates_total"], 2);
}

#[tokio::test]
async fn notifications_for_one_record_collapse_and_keep_the_newest_system_modstamp() {
    let app = spawn_app().await;
    let newer = String::from_utf8(fixture("outbound/contact_two_notifications.xml")).expect("utf8");
    // A second delivery of the first record, under a new notification id, with an older stamp.
    let older = newer
        .replace("04l1I000000fztEQAQ", "04l1I000000fzuAQAQ")
        .replace("04l1I000000fzt9QAA", "04l1I000000fzuBQAQ")
        .replace("2024-05-01T10:00:00.000Z", "2023-01-01T00:00:00.000Z");
    assert_eq!(app.post_outbound(KEY, newer).await.status(), 200);
    assert_eq!(app.post_outbound(KEY, older).await.status(), 200);
    let entry = app
        .store()
        .pending_record(&org(), ObjectType::Contact, &id("0031I0000081tbPQAQ"))
        .expect("read")
        .expect("pending");
    assert_eq!(entry.notifications, 2);
    assert_eq!(
        entry.system_modstamp().map(|t| t.to_rfc3339()),
        Some("2024-05-01T10:00:00+00:00".to_string())
    );
}

async fn assert_fault(resp: reqwest::Response, status: u16) {
    assert_eq!(resp.status(), status);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("<soapenv:Fault>") && body.contains("<faultcode>soapenv:Client</faultcode>"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_401_and_nothing_is_stored() {
    let app = spawn_app().await;
    assert_fault(
        app.post_outbound("no-such-key-at-all-000", fixture("outbound/account.xml"))
            .await,
        401,
    )
    .await;
    assert_eq!(app.store().pending_count(), 0);
    assert_eq!(app.status().await["inbox"]["rejected_total"], 1);
}

#[tokio::test]
async fn another_orgs_message_on_this_key_is_refused_with_403() {
    let app = spawn_app().await;
    assert_fault(
        app.post_outbound(OTHER_KEY, fixture("outbound/account.xml"))
            .await,
        403,
    )
    .await;
    assert_eq!(app.store().pending_count(), 0);
    let other = sfsync::domain::OrgId::parse(OTHER_ORG).expect("org");
    assert!(
        app.store()
            .pending_records(&other)
            .expect("pending")
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_media_type_is_refused_with_415() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(format!("{}/webhooks/salesforce/outbound/{KEY}", app.base))
        .header("content-type", "application/json")
        .body(fixture("outbound/account.xml"))
        .send()
        .await
        .expect("post");
    assert_fault(resp, 415).await;
    assert_eq!(app.store().pending_count(), 0);
}

#[tokio::test]
async fn notifications_for_other_objects_are_acknowledged_and_counted_as_ignored() {
    let app = spawn_app().await;
    let task = String::from_utf8(fixture("outbound/account.xml"))
        .expect("utf8")
        .replace("sf:Account", "sf:Task")
        .replace("0017F000007ydJmQAI", "00T7F000007ydJmUAI");
    let resp = app.post_outbound(KEY, task).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("body").contains("<Ack>true</Ack>"));
    let status = app.status().await;
    assert_eq!(status["inbox"]["ignored_total"], 1);
    assert_eq!(status["inbox"]["pending"], 0);
}

#[tokio::test]
async fn nothing_is_acknowledged_when_the_flush_fails() {
    let app = spawn_app().await;
    app.store().inject_flush_failure(true);
    let resp = app
        .post_outbound(KEY, fixture("outbound/account.xml"))
        .await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.expect("body");
    assert!(
        !body.contains("<Ack>true</Ack>") && body.contains("Fault"),
        "{body}"
    );
    // The sender retries once the disk is back; the retry is acknowledged only after a flush.
    app.store().inject_flush_failure(false);
    let flushes = app.store().flushes_completed();
    let resp = app
        .post_outbound(KEY, fixture("outbound/account.xml"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(app.store().flushes_completed() > flushes);
}

#[tokio::test]
async fn every_ack_is_preceded_by_a_completed_flush() {
    let app = spawn_app().await;
    let before = app.store().flushes_completed();
    for name in OUTBOUND_FIXTURES {
        assert_eq!(app.post_outbound(KEY, fixture(name)).await.status(), 200);
        // Sequential requests: each ack waited on its own flush.
    }
    assert!(app.store().flushes_completed() >= before + OUTBOUND_FIXTURES.len() as u64);
}

#[tokio::test]
async fn the_status_endpoint_needs_the_bearer_token() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/status", app.base);
    assert_eq!(
        app.client.get(&url).send().await.expect("get").status(),
        401
    );
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let ok = app
        .client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(body["connections"][0]["org_id"], ORG);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_outbound(KEY, fixture("outbound/account.xml"))
            .await
            .status(),
        200
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(health.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(ready.status(), 200);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("get");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("sfsync_inbox_received_total 1"), "{text}");
    assert!(text.contains("sfsync_inbox_pending 1"), "{text}");
}

#[tokio::test]
async fn a_graceful_stop_keeps_what_was_acknowledged() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_outbound(KEY, fixture("outbound/contact_two_notifications.xml"))
            .await
            .status(),
        200
    );
    let store_dir = app.dir.path().join("store");
    let state = app.state.clone();
    let dir = app.stop().await;
    drop(state);
    let store = sfsync::store::Store::open(&store_dir).expect("reopen");
    assert_eq!(store.pending_records(&org()).expect("pending").len(), 2);
    drop(dir);
}

#[tokio::test]
async fn concurrent_messages_share_flushes_and_no_ack_precedes_its_flush() {
    let app = spawn_app().await;
    // A slow disk: each flush takes 300 ms. Every request waits for it, and requests that arrive
    // while a flush runs are answered together by the next one.
    app.store()
        .inject_flush_delay(std::time::Duration::from_millis(300));
    let before = app.store().flushes_completed();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..24u64 {
        let (client, base) = (app.client.clone(), app.base.clone());
        tasks.push(tokio::spawn(async move {
            let nid = SalesforceId::mint("04l", "G", n);
            let rid = SalesforceId::mint("003", "G", n);
            let body = sfsync::tools::bench::outbound_message_xml(&org(), &[(nid, rid)]);
            client
                .post(format!("{base}/webhooks/salesforce/outbound/{KEY}"))
                .header("content-type", "text/xml")
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "an ack came before a flush finished"
    );
    let flushes = app.store().flushes_completed() - before;
    assert!(
        (1..24).contains(&flushes),
        "{flushes} flushes for 24 concurrent messages"
    );
    assert_eq!(app.store().pending_count(), 24);
}
