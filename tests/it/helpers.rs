//! `spawn_app()`: the real service on 127.0.0.1:0 with a temporary store, and a client for it.

use std::path::PathBuf;

use sfsync::app::App;
use sfsync::config::Config;
use sfsync::domain::OrgId;
use sfsync::http::AppState;
use sfsync::http::webhook::signature;
use sfsync::store::Store;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const ORG: &str = "00D7F00000107XsUAI";
pub const OTHER_ORG: &str = "00D1I000003qqqEUAQ";
pub const KEY: &str = "test-webhook-key-0001";
pub const OTHER_KEY: &str = "test-webhook-key-0002";
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const TOKEN: &str = "test-api-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: TempDir,
}

pub fn config_toml(store: &std::path::Path, secrets: &[&str]) -> String {
    let secrets: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
api_token = "{TOKEN}"
[store]
path = "{store}"
[[connections]]
org_id = "{ORG}"
webhook_key = "{KEY}"
webhook_secrets = [{secrets}]
[[connections]]
org_id = "{OTHER_ORG}"
webhook_key = "{OTHER_KEY}"
webhook_secrets = ["{OLD_SECRET}"]
"#,
        store = store.display(),
        secrets = secrets.join(", ")
    )
}

/// Starts the service with `secrets` for the main org.
pub async fn spawn_app_with(secrets: &[&str]) -> TestApp {
    spawn_app_from(secrets, |_| {}).await
}

/// A connected app as the environment would give it (the login host is never reached).
pub fn test_connected_app() -> sfsync::config::ConnectedApp {
    sfsync::config::ConnectedApp {
        client_id: "test-client-id".into(),
        client_secret: secrecy::SecretString::from("test-client-secret".to_string()),
        redirect_uri: "http://127.0.0.1:9/oauth/salesforce/callback".into(),
        token_key: sfsync::salesforce::TokenKey::new(
            1,
            secrecy::SecretBox::new(Box::new([7u8; 32])),
        ),
    }
}

/// Starts the service with `secrets` for the main org, after `adjust` has changed its config.
pub async fn spawn_app_from(secrets: &[&str], adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        Config::from_toml(&config_toml(&dir.path().join("store"), secrets)).expect("config");
    adjust(&mut config);
    let app = App::build(&config).await.expect("build app");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base,
        client: reqwest::Client::new(),
        state,
        shutdown,
        server: Some(server),
        dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[SECRET]).await
}

pub fn org() -> OrgId {
    OrgId::parse(ORG).expect("org")
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn decoded(secret: &str) -> Vec<u8> {
    sfsync::domain::WebhookSecret::parse(secret)
        .expect("secret")
        .key()
        .to_vec()
}

impl TestApp {
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub async fn post_outbound(
        &self,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/webhooks/salesforce/outbound/{key}", self.base))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(body)
            .send()
            .await
            .expect("post")
    }

    /// Posts a JSON event signed with `secret` at `ts`.
    pub async fn post_event(
        &self,
        key: &str,
        id: &str,
        ts: i64,
        secret: &str,
        body: &[u8],
    ) -> reqwest::Response {
        let sig = signature::sign(&decoded(secret), id, ts, body);
        self.post_event_raw(
            key,
            Some(id),
            Some(&ts.to_string()),
            Some(&sig),
            body.to_vec(),
        )
        .await
    }

    pub async fn post_event_raw(
        &self,
        key: &str,
        id: Option<&str>,
        ts: Option<&str>,
        sig: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/webhooks/salesforce/events/{key}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        req.send().await.expect("post")
    }

    /// `GET /api/v1{path}` with the token: the status and the JSON answer.
    pub async fn api_get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn status(&self) -> serde_json::Value {
        self.client
            .get(format!("{}/api/v1/status", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.expect("join").expect("server");
        }
        self.dir
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The named `<input>`s of an HTML page and their values, in page order.
pub fn form_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        let raw = &tag[start..start + len];
        Some(quick_xml::escape::unescape(raw).map_or_else(|_| raw.to_string(), |v| v.into_owned()))
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

/// Signs in on the simulated org's login page as a browser would: opens `authorize_url`, fills
/// the form's username and password and posts it with its other fields. Returns the answer to
/// the post, a 302 back to the client when the credentials are right.
pub async fn sign_in(authorize_url: &str, username: &str, password: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = http.get(authorize_url).send().await.expect("login page");
    assert_eq!(page.status(), 200, "the authorize URL shows the login page");
    let html = page.text().await.expect("html");
    let action_at = html.find("action=\"").expect("a form") + 8;
    let action = &html[action_at..action_at + html[action_at..].find('"').expect("action")];
    let url = url::Url::parse(authorize_url)
        .and_then(|u| u.join(action))
        .expect("form url");
    let form: Vec<(String, String)> = form_inputs(&html)
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "username" => (name, username.to_string()),
            "pw" => (name, password.to_string()),
            _ => (name, value),
        })
        .collect();
    http.post(url).form(&form).send().await.expect("sign in")
}
