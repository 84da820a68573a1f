//! The one test harness: a typed config built in code ([`config`]), the service started from it
//! ([`app::spawn`]), a simulated org ([`org::start`]) and a client for it ([`org::client_for`]),
//! the two together as a synced pair ([`env::SyncEnv`]), and the small things every test file
//! needs (fixtures, polling, the org's login page).

pub mod app;
pub mod env;
pub mod org;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use sfsync::config::{Config, Connection};
use sfsync::domain::{OrgId, WebhookSecret};

pub use app::{TestApp, spawn};

pub const ORG: &str = "00D7F00000107XsUAI";
pub const OTHER_ORG: &str = "00D1I000003qqqEUAQ";
pub const KEY: &str = "test-webhook-key-0001";
pub const OTHER_KEY: &str = "test-webhook-key-0002";
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const TOKEN: &str = "test-api-token-0123456789";

/// One org a test config lists: its id, webhook key and Standard Webhooks secrets.
pub fn connection(org: &OrgId, key: &str, secrets: &[&str]) -> Connection {
    Connection {
        org_id: org.clone(),
        webhook_key: SecretString::from(key.to_string()),
        webhook_secrets: secrets
            .iter()
            .map(|s| WebhookSecret::parse(s).expect("secret"))
            .collect(),
    }
}

/// The service's config for tests, built in code: listening on 127.0.0.1:0, the API token
/// [`TOKEN`], the store under `store`, the catch-up sweep off, and `orgs` listed. Tests change
/// its typed fields before starting the service.
pub fn config(store: &Path, orgs: Vec<Connection>) -> Config {
    let mut c = Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\n[store]\npath = \"{}\"\n",
        store.display()
    ))
    .expect("the base test config");
    c.sync.sweep_interval_s = 0;
    c.connections = orgs;
    c
}

/// [`config`] with the two orgs most intake tests use: [`ORG`] (key [`KEY`], `secrets`) and
/// [`OTHER_ORG`] (key [`OTHER_KEY`], [`OLD_SECRET`]), the sweep at its default.
pub fn two_org_config(store: &Path, secrets: &[&str]) -> Config {
    let mut c = config(
        store,
        vec![
            connection(&org(), KEY, secrets),
            connection(&other_org(), OTHER_KEY, &[OLD_SECRET]),
        ],
    );
    c.sync.sweep_interval_s = 300;
    c
}

/// The same two orgs as a config file for the binary: what an operator writes, `server_extra`
/// lines added to `[server]`.
pub fn two_org_config_file(store: &Path, secrets: &[&str], server_extra: &str) -> String {
    let secrets: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\n{server_extra}\n\
         [store]\npath = \"{store}\"\n\
         [[connections]]\norg_id = \"{ORG}\"\nwebhook_key = \"{KEY}\"\nwebhook_secrets = [{secrets}]\n\
         [[connections]]\norg_id = \"{OTHER_ORG}\"\nwebhook_key = \"{OTHER_KEY}\"\nwebhook_secrets = [\"{OLD_SECRET}\"]\n",
        store = store.display(),
        secrets = secrets.join(", ")
    )
}

/// The service with the two intake orgs, [`ORG`]'s secrets `secrets`, after `adjust`.
pub async fn spawn_app_from(secrets: &[&str], adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = two_org_config(&dir.path().join("store"), secrets);
    adjust(&mut config);
    spawn(config, dir).await
}

/// The service with the two intake orgs, [`ORG`]'s secrets `secrets`.
pub async fn spawn_app_with(secrets: &[&str]) -> TestApp {
    spawn_app_from(secrets, |_| {}).await
}

/// The service with the two intake orgs, [`ORG`] signing with [`SECRET`].
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[SECRET]).await
}

/// A connected app as the environment would give it (its login host is never reached).
pub fn test_connected_app() -> sfsync::config::ConnectedApp {
    sfsync::config::ConnectedApp {
        client_id: "test-client-id".into(),
        client_secret: SecretString::from("test-client-secret".to_string()),
        redirect_uri: "http://127.0.0.1:9/oauth/salesforce/callback".into(),
        token_key: sfsync::salesforce::TokenKey::new(
            1,
            secrecy::SecretBox::new(Box::new([7u8; 32])),
        ),
    }
}

pub fn org() -> OrgId {
    OrgId::parse(ORG).expect("org")
}

pub fn other_org() -> OrgId {
    OrgId::parse(OTHER_ORG).expect("org")
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The key bytes of a `whsec_` secret.
pub fn decoded(secret: &str) -> Vec<u8> {
    WebhookSecret::parse(secret).expect("secret").key().to_vec()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
/// A hang cap, not a speed target.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the built `sfsync` binary with `args` and the variables `env` off the async workers,
/// and asserts it exited 0; its output.
pub async fn sfsync_succeeds(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sfsync"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run sfsync"))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sfsync {args:?}: {stderr}");
    out
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
