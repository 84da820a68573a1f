//! The operator's whole path through the built binary, as the README tells it: `sfsync simulator`
//! as the org in one process, `sfsync serve` with a config file and the README's environment in
//! another; connect the org through the real redirects, pull a change, push a contact, stop with
//! SIGTERM under load, restart from the sealed refresh token, and find no secret anywhere. A
//! sales rep connects their own user through the same redirects, and their activity is theirs in
//! the org, before and after the restart.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfsync::domain::SalesforceId;

use crate::processes::{Process, files_below, free_port, port_in};

const API_TOKEN: &str = "operator-api-token-0123456789";
const WEBHOOK_KEY: &str = "operator-webhook-key-0001";
const TOKEN_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The simulated org, started as `sfsync simulator` prints it.
struct Org {
    _process: Process,
    creds: Value,
    url: String,
    org_id: String,
}

impl Org {
    fn start() -> Self {
        let mut process = Process::start(
            &["simulator", "--listen", "127.0.0.1:0", "--seed", "29"],
            &[],
        );
        let creds: Value =
            serde_json::from_str(&process.first_stdout_line()).expect("one JSON line");
        let url = creds["instance_url"].as_str().expect("url").to_string();
        let org_id = creds["org_id"].as_str().expect("org").to_string();
        Self {
            _process: process,
            creds,
            url,
            org_id,
        }
    }

    fn cred(&self, name: &str) -> String {
        self.creds[name].as_str().unwrap_or_default().to_string()
    }
}

/// `sfsync serve` as the README starts it.
fn serve(dir: &Path, port: u16, org: &Org, json_logs: bool) -> Process {
    let config = dir.join("sfsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"{API_TOKEN}\"\n\
             [store]\npath = \"{store}\"\n[salesforce]\nlogin_url = \"{login}\"\n\
             [outbox]\nretry_base_ms = 50\nretry_cap_ms = 500\n\
             [[connections]]\norg_id = \"{org_id}\"\nwebhook_key = \"{WEBHOOK_KEY}\"\n",
            store = dir.join("store").display(),
            login = org.url,
            org_id = org.org_id,
        ),
    )
    .expect("config");
    let mut env = vec![
        ("SALESFORCE_CLIENT_ID", org.cred("client_id")),
        ("SALESFORCE_CLIENT_SECRET", org.cred("client_secret")),
        (
            "SALESFORCE_REDIRECT_URI",
            format!("http://127.0.0.1:{port}/oauth/salesforce/callback"),
        ),
        ("SFSYNC_TOKEN_KEY", TOKEN_KEY.to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    if json_logs {
        env.push(("SFSYNC_LOG_JSON", "1".to_string()));
    }
    let mut process = Process::start(&["serve", "--config", &config.display().to_string()], &env);
    let line = process.wait_for("listening");
    assert_eq!(port_in(&line), port);
    process
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Follows redirects from `url` to the callback; the org's login page on the way is signed in
/// as a browser would, as `user` (username, password).
async fn walk_to_callback(
    http: &reqwest::Client,
    org: &Org,
    mut url: String,
    user: (&str, &str),
) -> reqwest::Response {
    let mut signed_in = false;
    for _ in 0..6 {
        let resp = http.get(&url).send().await.expect("get");
        let resp = if resp.status() == 200 && url.starts_with(&org.url) {
            signed_in = true;
            crate::support::sign_in(&url, user.0, user.1).await
        } else {
            resp
        };
        if !resp.status().is_redirection() {
            assert!(signed_in, "the org's login page was never shown");
            return resp;
        }
        url = resp.headers()["location"]
            .to_str()
            .expect("location")
            .into();
    }
    panic!("too many redirects");
}

async fn api(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(API_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("api");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("json")
}

/// A list endpoint's records, whether the answer is a plain array or a page of `items`.
fn items(v: &Value) -> Vec<Value> {
    v.get("items")
        .unwrap_or(v)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn eventually<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An Outbound Message about `record` with its own notification id.
fn outbound_message(org_id: &str, record: &str, n: u64) -> String {
    let notification = SalesforceId::mint("04l", "9Z", n);
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org_id}</OrganizationId><ActionId>04k7F0000008V3jQAE</ActionId><SessionId xsi:nil="true"/><EnterpriseUrl>https://x.example/services/Soap/c/62.0</EnterpriseUrl><PartnerUrl>https://x.example/services/Soap/u/62.0</PartnerUrl><Notification><Id>{notification}</Id><sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{record}</sf:Id><sf:SystemModstamp>2024-05-03T12:00:00.000Z</sf:SystemModstamp></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

/// Posts messages `from..` until `stop`; returns how many were acknowledged (Ack true).
async fn load(
    base: String,
    org_id: String,
    record: String,
    from: u64,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<u64> {
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut n = from;
    while !stop.is_cancelled() {
        let resp = http
            .post(format!("{base}/webhooks/salesforce/outbound/{WEBHOOK_KEY}"))
            .header("content-type", "text/xml; charset=utf-8")
            .body(outbound_message(&org_id, &record, n))
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 200 => {
                if r.text().await.is_ok_and(|t| t.contains("<Ack>true</Ack>")) {
                    acked.push(n);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
        n += 1;
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_connects_an_org_syncs_both_ways_stops_and_restarts_without_a_new_login() {
    let org = Org::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut service = serve(dir.path(), port, &org, false);
    let http = no_redirects();

    // Connect: the API token starts the flow, the org's login page signs in, the callback
    // stores the refresh token sealed.
    let start = http
        .get(format!(
            "{base}/oauth/salesforce/authorize?org_id={}",
            org.org_id
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("authorize");
    assert_eq!(start.status(), 302);
    let to_org = start.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(to_org.starts_with(&org.url), "{to_org}");
    let admin = (org.cred("username"), org.cred("password"));
    let done = walk_to_callback(&http, &org, to_org, (&admin.0, &admin.1)).await;
    assert_eq!(done.status(), 200, "{:?}", done.text().await);
    let status = api(&http, &base, reqwest::Method::GET, "/status", None).await;
    assert_eq!(status["connections"][0]["state"], "connected", "{status}");
    // Connecting checks the org's setup; doctor checks it again on request.
    eventually("the setup check after connecting", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let s = api(&http, &base, reqwest::Method::GET, "/status", None).await;
            (s["connections"][0]["setup"]["ok"] == true).then_some(s)
        }
    })
    .await;
    let doctor_base = base.clone();
    let doctor = tokio::task::spawn_blocking(move || {
        Process::start(
            &["doctor", "--url", &doctor_base],
            &[("SFSYNC_API_TOKEN", API_TOKEN.to_string())],
        )
        .wait_exit(Duration::from_secs(30))
    })
    .await
    .expect("join");
    assert!(doctor.0.success(), "sfsync doctor failed: {:?}", doctor.0);

    // The org sends Outbound Messages to the service's webhook URL.
    let resp = http
        .put(format!("{}/__sim/outbound", org.url))
        .json(&json!({"url": format!("{base}/webhooks/salesforce/outbound/{WEBHOOK_KEY}")}))
        .send()
        .await
        .expect("outbound");
    assert!(resp.status().is_success());

    // A record created in the org arrives as an Outbound Message and is pulled.
    let created: Value = http
        .post(format!("{}/__sim/records/Account", org.url))
        .json(&json!({"Name": "Operator Path Industries", "Website": "https://operator-path.example"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("id");
    let account = created["id"].as_str().expect("id").to_string();
    let company = eventually("the account to be pulled", || {
        let (http, base, account) = (http.clone(), base.clone(), account.clone());
        async move {
            let list = api(&http, &base, reqwest::Method::GET, "/companies", None).await;
            items(&list)
                .into_iter()
                .find(|c| c["salesforce_id"].as_str() == Some(account.as_str()))
        }
    })
    .await;
    assert_eq!(company["name"], "Operator Path Industries");

    // A local contact is pushed and lands once.
    api(
        &http,
        &base,
        reqwest::Method::POST,
        "/contacts",
        Some(json!({"company_id": company["id"], "first_name": "Ada", "last_name": "Operator", "email": "ada@operator-path.example"})),
    )
    .await;
    eventually("the contact to reach the org", || {
        let (http, url) = (http.clone(), org.url.clone());
        async move {
            let all = sim_records(&http, &url, "Contact").await?;
            let found: Vec<Value> = all
                .iter()
                .filter(|c| c["Email"] == "ada@operator-path.example")
                .cloned()
                .collect();
            (!found.is_empty()).then(|| json!(found))
        }
    })
    .await;
    let drained = eventually("the outbox to drain", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let s = api(&http, &base, reqwest::Method::GET, "/status", None).await;
            (s["outbox"]["pending"] == 0).then_some(s)
        }
    })
    .await;
    let contacts = sim_records(&http, &org.url, "Contact")
        .await
        .expect("the org's contacts");
    let copies = contacts
        .iter()
        .filter(|c| c["Email"] == "ada@operator-path.example")
        .count();
    assert_eq!(copies, 1, "{drained}");
    let rep = rep_connects_and_emails(&http, &base, &org, "Before the restart").await;

    // SIGTERM under load: exit 0 within 10 s.
    let stop = tokio_util::sync::CancellationToken::new();
    let senders: Vec<_> = (0..8u64)
        .map(|i| {
            tokio::spawn(load(
                base.clone(),
                org.org_id.clone(),
                account.clone(),
                1_000_000 + i * 100_000,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    service.signal("-TERM");
    let (exit, took) = tokio::task::block_in_place(|| service.wait_exit(Duration::from_secs(10)));
    stop.cancel();
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.expect("sender"));
    }
    assert!(exit.success(), "exit {exit:?}\n{}", service.log.join("\n"));
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(!acked.is_empty(), "the load never got an ack");
    eprintln!(
        "sigterm under load: {} acked, exit after {took:?}",
        acked.len()
    );
    let first_log = std::mem::take(&mut service.log);
    drop(service);

    // Restart (JSON logs this time): the sealed refresh token reconnects the org, no login.
    let mut service = serve(dir.path(), port, &org, true);
    let status = api(&http, &base, reqwest::Method::GET, "/status", None).await;
    assert_eq!(status["connections"][0]["state"], "connected", "{status}");
    // The rep's connection came back from the store too: their next activity is theirs.
    assert_eq!(
        status["connections"][0]["users"][0]["user"], "rep-1",
        "{status}"
    );
    let task = emailed(&http, &base, &org, "After the restart").await;
    assert_eq!(task["OwnerId"], rep, "{task}");
    // Every acknowledged message is remembered: sent again, each is a duplicate.
    let client = reqwest::Client::new();
    for n in &acked {
        let resp = client
            .post(format!("{base}/webhooks/salesforce/outbound/{WEBHOOK_KEY}"))
            .header("content-type", "text/xml; charset=utf-8")
            .body(outbound_message(&org.org_id, &account, *n))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 200);
    }
    let status = api(&http, &base, reqwest::Method::GET, "/status", None).await;
    assert_eq!(status["inbox"]["received_total"], 0, "{status}");
    assert_eq!(status["inbox"]["duplicates_total"], acked.len(), "{status}");
    // The reconnected org still pulls: its session comes from the sealed refresh token.
    http.patch(format!("{}/__sim/records/Account/{account}", org.url))
        .json(&json!({"Name": "Operator Path Holdings"}))
        .send()
        .await
        .expect("update");
    eventually("the rename to be pulled after the restart", || {
        let (http, base, account) = (http.clone(), base.clone(), account.clone());
        async move {
            let list = api(&http, &base, reqwest::Method::GET, "/companies", None).await;
            items(&list).into_iter().find(|c| {
                c["salesforce_id"].as_str() == Some(account.as_str())
                    && c["name"] == "Operator Path Holdings"
            })
        }
    })
    .await;
    service.signal("-TERM");
    let (exit, _) = tokio::task::block_in_place(|| service.wait_exit(Duration::from_secs(10)));
    assert!(exit.success());
    let second_log = std::mem::take(&mut service.log);
    for line in &second_log {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }

    // No secret in either log, nor in plain text in the store.
    let secrets = [
        org.cred("client_secret"),
        org.cred("refresh_token"),
        org.cred("access_token"),
        API_TOKEN.to_string(),
        TOKEN_KEY.to_string(),
        WEBHOOK_KEY.to_string(),
    ];
    // Refresh tokens the org issues are 5Aep + 83 characters; access tokens hold "!AR" + 96.
    let session_like = |text: &str| {
        ["5Aep", "!AR"].iter().any(|mark| {
            text.match_indices(mark).any(|(at, _)| {
                text[at + mark.len()..]
                    .chars()
                    .take(24)
                    .filter(char::is_ascii_alphanumeric)
                    .count()
                    == 24
            })
        })
    };
    for line in first_log.iter().chain(&second_log) {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
        assert!(!session_like(line), "a token in the log: {line}");
    }
    for (path, bytes) in files_below(&dir.path().join("store")) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !session_like(&text),
            "{} holds a token in plain text",
            path.display()
        );
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds a secret",
                path.display()
            );
        }
    }
}

/// A sales rep (the first user `sfsync simulator` printed who is not the integration user)
/// connects their own user as the app's user `rep-1`, through the redirects; an email recorded
/// for `rep-1` lands in the org owned by them. Their Salesforce user id.
async fn rep_connects_and_emails(
    http: &reqwest::Client,
    base: &str,
    org: &Org,
    subject: &str,
) -> String {
    let users = org.creds["users"].as_array().expect("users");
    let rep = users
        .iter()
        .find(|u| u["integration"] == false)
        .expect("a sales rep");
    let start = http
        .get(format!(
            "{base}/oauth/salesforce/authorize?org_id={}&user=rep-1",
            org.org_id
        ))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("authorize");
    assert_eq!(start.status(), 302);
    let to_org = start.headers()["location"].to_str().expect("location");
    let login = (
        rep["username"].as_str().expect("username"),
        rep["password"].as_str().expect("password"),
    );
    let done = walk_to_callback(http, org, to_org.to_string(), login).await;
    assert_eq!(done.status(), 200, "{:?}", done.text().await);
    let status = api(http, base, reqwest::Method::GET, "/status", None).await;
    let listed = &status["connections"][0]["users"][0];
    assert_eq!(listed["user"], "rep-1", "{status}");
    assert_eq!(listed["state"], "connected", "{status}");
    let task = emailed(http, base, org, subject).await;
    let id = rep["id"].as_str().expect("rep id").to_string();
    assert_eq!(task["OwnerId"], id.as_str(), "{task}");
    id
}

/// Every record of `object` the simulated org at `url` holds, read through its control API.
async fn sim_records(http: &reqwest::Client, url: &str, object: &str) -> Option<Vec<Value>> {
    let all: Value = http
        .get(format!("{url}/__sim/records/{object}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    all.as_array().cloned()
}

/// Records an email sent for `rep-1` and waits for its Task in the org.
async fn emailed(http: &reqwest::Client, base: &str, org: &Org, subject: &str) -> Value {
    let body = json!({"kind": "email_sent", "subject": subject, "user": "rep-1"});
    api(http, base, reqwest::Method::POST, "/activities", Some(body)).await;
    eventually("the task to reach the org", || {
        let (http, url, subject) = (http.clone(), org.url.clone(), subject.to_string());
        async move {
            sim_records(&http, &url, "Task")
                .await?
                .iter()
                .find(|t| t["Subject"] == subject.as_str())
                .cloned()
        }
    })
    .await
}
