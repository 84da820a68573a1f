//! `GET /api/v1/changes` (pages and long polls) and `GET /api/v1/changes/stream` (server-sent
//! events resumed from `Last-Event-ID`); 410 with the earliest kept entry past the retention.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::{ORG, TOKEN, TestApp, sfsync_succeeds, spawn_app};

/// A cap for a hang: every wait below returns long before it.
const CAP: Duration = Duration::from_secs(10);

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    app.api(reqwest::Method::GET, path, None).await
}

async fn company(app: &TestApp, name: &str) -> u64 {
    let resp = app
        .client
        .post(format!("{}/api/v1/companies", app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"org_id": ORG, "name": name}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    body["record"]["id"].as_u64().expect("id")
}

fn seqs(page: &Value) -> Vec<u64> {
    page["changes"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["seq"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_feed_pages_by_sequence_number_and_filters_by_type() {
    let app = spawn_app().await;
    let (status, empty) = get(&app, "/changes").await;
    assert_eq!((status, empty), (200, json!({"changes": [], "next": 0})));
    let ids = [company(&app, "A").await, company(&app, "B").await];
    let patched = app
        .client
        .patch(format!("{}/api/v1/companies/{}", app.base, ids[0]))
        .bearer_auth(TOKEN)
        .json(&json!({"org_id": ORG, "industry": "Energy"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);

    let (_, first) = get(&app, "/changes?limit=2").await;
    assert_eq!(seqs(&first), [1, 2]);
    assert_eq!(first["next"], 2);
    let (_, rest) = get(&app, "/changes?after=2&limit=2").await;
    assert_eq!(seqs(&rest), [3]);
    assert_eq!(rest["changes"][0]["type"], "company.updated");
    assert_eq!(rest["changes"][0]["data"]["industry"], "Energy");
    assert_eq!(rest["changes"][0]["org_id"], ORG);

    let (_, updates) = get(&app, "/changes?types=company.updated").await;
    assert_eq!(seqs(&updates), [3]);
    let (_, none) = get(&app, "/changes?types=contact.*").await;
    assert_eq!(seqs(&none), Vec::<u64>::new());
    assert_eq!(none["next"], 3, "past the entries of other types");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("wait=61", "wait"),
        ("types=contacts.*", "types"),
        ("after=x", "after"),
        ("since=1", "since"),
    ] {
        let (status, body) = get(&app, &format!("/changes?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_a_change_lands() {
    let app = spawn_app().await;
    company(&app, "Before").await;
    let waiting = {
        let (client, base) = (app.client.clone(), app.base.clone());
        tokio::spawn(async move {
            let url = format!("{base}/api/v1/changes?after=1&wait=25");
            let resp = client
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("get");
            resp.json::<Value>().await.expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    company(&app, "After").await;
    // It was asked to wait 25 s: an answer within the cap means it answered on the change.
    let page = tokio::time::timeout(CAP, waiting)
        .await
        .expect("answered on the change")
        .expect("join");
    assert_eq!(seqs(&page), [2]);
    assert_eq!(page["changes"][0]["data"]["name"], "After");

    let (status, quiet) = get(&app, "/changes?after=2&wait=1").await;
    assert_eq!((status, seqs(&quiet)), (200, vec![]));
    assert_eq!(quiet["next"], 2);
}

/// Reads server-sent events until `n` have come: `(id, event, data)` each.
async fn events(resp: reqwest::Response, n: usize) -> Vec<(String, String, Value)> {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(CAP, body.next())
            .await
            .expect("an event within the cap")
            .expect("more of the stream")
            .expect("bytes");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_string())
            };
            if let (Some(id), Some(event), Some(data)) =
                (field("id"), field("event"), field("data"))
            {
                out.push((id, event, serde_json::from_str(&data).expect("data")));
            }
        }
    }
    out
}

async fn stream(app: &TestApp, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}/api/v1/changes/stream", app.base))
        .bearer_auth(TOKEN);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("stream")
}

#[tokio::test]
async fn the_stream_sends_each_change_as_an_event_and_resumes_from_last_event_id() {
    let app = spawn_app().await;
    company(&app, "One").await;
    let resp = stream(&app, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    let live = tokio::spawn(events(resp, 2));
    company(&app, "Two").await;
    let got = live.await.expect("join");
    assert_eq!(got[0].0, "1");
    assert_eq!(got[0].1, "company.created");
    assert_eq!(got[0].2["data"]["name"], "One");
    assert_eq!(
        (got[1].0.as_str(), &got[1].2["data"]["name"]),
        ("2", &json!("Two"))
    );

    let resumed = events(stream(&app, Some("1")).await, 1).await;
    assert_eq!(resumed[0].0, "2", "resumed after the last event seen");
    let bad = stream(&app, Some("abc")).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_reader_behind_the_retention_is_told_gone_with_the_earliest_kept() {
    let app = spawn_app().await;
    for name in ["A", "B", "C"] {
        company(&app, name).await;
    }
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        app.store().compact_changes(cutoff, 100).expect("compact"),
        3
    );
    company(&app, "D").await;

    let (status, body) = get(&app, "/changes?after=1").await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["earliest"], 4);
    let (status, page) = get(&app, "/changes?after=3").await;
    assert_eq!((status, seqs(&page)), (200, vec![4]));
    let (status, oldest) = get(&app, "/changes").await;
    assert_eq!(
        (status, seqs(&oldest)),
        (200, vec![4]),
        "no after: the oldest kept"
    );
    assert_eq!(stream(&app, Some("2")).await.status(), 410);
    let from_oldest = events(stream(&app, None).await, 1).await;
    assert_eq!(from_oldest[0].0, "4");
}

#[tokio::test]
async fn the_openapi_document_describes_the_feed_the_stream_and_the_dead_letters() {
    let app = spawn_app().await;
    let (_, doc) = get(&app, "/openapi.json").await;
    for path in [
        "/api/v1/changes",
        "/api/v1/changes/stream",
        "/api/v1/app-webhooks",
        "/api/v1/app-webhooks/{id}/dead-letters",
        "/api/v1/app-webhooks/{id}/dead-letters/{seq}/retry",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let entry = &doc["components"]["schemas"]["ChangeEntry"]["properties"];
    for field in ["seq", "org_id", "type", "timestamp", "data"] {
        assert!(entry[field].is_object(), "ChangeEntry.{field}");
    }
    let status = &doc["components"]["schemas"]["Status"]["properties"];
    assert!(status["app_webhooks"].is_object());
}

#[tokio::test]
async fn the_changes_command_prints_the_feed_and_with_follow_each_change_as_it_lands() {
    let app = spawn_app().await;
    company(&app, "Acme").await;
    company(&app, "Globex").await;
    let args = ["changes", "--url", &app.base];
    let out = sfsync_succeeds(&args, &[("SFSYNC_API_TOKEN", TOKEN)]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("#1 ") && lines[0].contains(" company.created "));
    assert!(lines[1].contains("\"Globex\""), "{stdout}");

    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_sfsync"))
        .args([
            "changes",
            "--follow",
            "--after",
            "2",
            "--types",
            "company.*",
            "--json",
        ])
        .args(["--url", &app.base, "--token", TOKEN])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("follow");
    let stdout = follower.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    company(&app, "Initech").await;
    let printed = tokio::time::timeout(CAP, lines.next_line())
        .await
        .expect("a line within the cap")
        .expect("read")
        .expect("a line");
    let entry: Value = serde_json::from_str(&printed).expect("json");
    assert_eq!(
        (entry["seq"].as_u64(), &entry["data"]["name"]),
        (Some(3), &json!("Initech"))
    );
    follower.kill().await.expect("stop following");
}
