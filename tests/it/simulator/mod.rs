//! The simulator held against Salesforce's documented examples, with raw `reqwest` (not
//! sfsync's client) so the simulator cannot drift from Salesforce while agreeing with our own
//! client. One file per part of the API; the org and the helpers they share are here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sfsync::simulator::{
    DeliveryMode, DuplicateRuleSpec, Faults, FieldSpec, SimCredentials, Simulator, SimulatorConfig,
    UserSpec, ValidationRuleSpec, token_signature,
};

use crate::support::{self, sign_in};

mod discovery;
mod faults;
mod lists;
mod oauth;
mod outbound;
mod rest;
mod rules;
mod soql;
mod stages;
mod users;

struct Org {
    sim: Simulator,
    http: reqwest::Client,
    creds: SimCredentials,
    base: String,
}

impl Org {
    async fn start_with(config: SimulatorConfig) -> Org {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sim = Simulator::start(listener, config).await.expect("start");
        let creds = sim.credentials();
        let base = format!("{}/services/data/v62.0", sim.instance_url());
        Org {
            sim,
            http: reqwest::Client::new(),
            creds,
            base,
        }
    }

    async fn start() -> Org {
        Org::start_with(SimulatorConfig::default()).await
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
            .json(&body)
    }

    fn patch(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
            .json(&body)
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
    }

    /// A control-surface URL.
    fn ctl(&self, path: &str) -> String {
        format!("{}/__sim{path}", self.sim.instance_url())
    }

    /// Runs a SOQL query with the integration user's token.
    async fn query(&self, q: &str) -> (StatusCode, Value) {
        sent(self.get("/query").query(&[("q", q)])).await
    }

    async fn create(&self, object: &str, body: Value) -> String {
        let resp = self
            .post(&format!("/sobjects/{object}"), body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.expect("json");
        v["id"].as_str().expect("id").to_string()
    }
}

async fn body(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends `req` and reads its status and JSON body.
async fn sent(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    body(req.send().await.unwrap()).await
}

/// A tiny Outbound Message receiver on 127.0.0.1:0 that records every POST and nacks the first
/// `nacks` of them.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    nacks: Arc<std::sync::atomic::AtomicUsize>,
}

const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

impl Receiver {
    async fn start(nacks: usize) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .nacks
            .store(nacks, std::sync::atomic::Ordering::SeqCst);
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/om",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    r.seen.lock().unwrap().push((headers, body));
                    let nack = r
                        .nacks
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok();
                    let text = if nack {
                        ACK.replace("true", "false")
                    } else {
                        ACK.to_string()
                    };
                    ([("content-type", "text/xml; charset=utf-8")], text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/om", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn messages(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Polls `check` until it holds or five seconds pass.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fast_outbound(url: Option<String>) -> SimulatorConfig {
    SimulatorConfig {
        outbound_url: url,
        outbound_retry_base: Duration::from_millis(20),
        outbound_batch_window: Duration::from_millis(5),
        ..SimulatorConfig::default()
    }
}

/// The describe entry of one field.
fn field_of(describe: &Value, name: &str) -> Option<Value> {
    describe["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}
