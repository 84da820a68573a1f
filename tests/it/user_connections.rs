//! Per-user connections: a sales rep connects their own Salesforce user through the web server
//! flow, and what the app writes on their behalf goes out with their token, so the org shows
//! them as its owner. Anyone without a connection, or whose token Salesforce refuses, is written
//! with the org's integration connection, and the status says who must connect again.

use std::time::Duration;

use secrecy::{SecretBox, SecretString};
use serde_json::{Value, json};
use sfsync::config::{Config, ConnectedApp};
use sfsync::salesforce::TokenKey;
use sfsync::simulator::{SimUser, Simulator, SimulatorConfig};

use crate::support::env::{assert_no_duplicates, env_config};
use crate::support::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The service's config for `sim`'s org with the connected app set up for it; nothing connected.
fn connected_app_config(sim: &Simulator, dir: &std::path::Path) -> Config {
    let creds = sim.credentials();
    let mut config = env_config(dir, &sim.org_id());
    // A paused outbox would outlast every wait here: a fallback must not cost a pause.
    config.outbox.limit_pause_ms = 600_000;
    config.salesforce.login_url = sim.instance_url();
    config.connected_app = Ok(ConnectedApp {
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        redirect_uri: "http://127.0.0.1:9/oauth/salesforce/callback".into(),
        token_key: TokenKey::new(1, SecretBox::new(Box::new([7u8; 32]))),
    });
    config
}

/// Runs the redirects as a browser would: the service's authorize route (with `query`), the
/// org's login page signed in as `who`, and back to the service's callback. Its answer.
async fn connect(app: &TestApp, query: &str, who: &SimUser) -> (u16, String) {
    let http = no_redirects();
    let resp = http
        .get(format!("{}/oauth/salesforce/authorize?{query}", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 302, "authorize?{query}");
    let to_salesforce = resp.headers()["location"].to_str().expect("location");
    let back = sign_in(to_salesforce, &who.username, &who.password).await;
    assert_eq!(back.status(), 302, "signed in as {}", who.username);
    let callback = url::Url::parse(back.headers()["location"].to_str().expect("location"))
        .expect("callback url");
    let done = http
        .get(format!(
            "{}/oauth/salesforce/callback?{}",
            app.base,
            callback.query().expect("query")
        ))
        .send()
        .await
        .expect("callback");
    (done.status().as_u16(), done.text().await.expect("body"))
}

/// A simulated org and the service, the org connected by its admin (as the integration user).
async fn org_connected_by_its_admin() -> (Simulator, TestApp) {
    let sim = org::start(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn(connected_app_config(&sim, dir.path()), dir).await;
    let admin = sim.integration_user().expect("integration user");
    let (code, body) = connect(&app, &format!("org_id={}", sim.org_id()), &admin).await;
    assert_eq!(code, 200, "{body}");
    (sim, app)
}

fn rep(sim: &Simulator) -> SimUser {
    sim.users()
        .into_iter()
        .find(|u| !u.integration)
        .expect("a sales rep")
}

/// `user`'s entry in the org's status, if listed.
async fn user_status(app: &TestApp, user: &str) -> Option<Value> {
    app.status().await["connections"][0]["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["user"] == user)
        .cloned()
}

/// Records an email sent for `user` (none: no user named) and waits until Salesforce has it;
/// the Task as the org holds it.
async fn email_pushed(app: &TestApp, sim: &Simulator, user: Option<&str>, subject: &str) -> Value {
    let mut body = json!({"kind": "email_sent", "subject": subject});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let (code, created) = app
        .api(reqwest::Method::POST, "/activities", Some(body))
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["record"]["id"].as_u64().expect("id");
    let sf = eventually(
        "the activity to be pushed",
        Duration::from_secs(15),
        || async {
            let (_, a) = app
                .api(reqwest::Method::GET, &format!("/activities/{id}"), None)
                .await;
            a["salesforce_id"].as_str().map(str::to_string)
        },
    )
    .await;
    sim.get(&sfsync::domain::SalesforceId::parse(&sf).expect("id"))
        .expect("the task in the org")
}

/// A company and an opportunity on it written for `user`, as the org holds them once pushed.
async fn company_and_deal_of(app: &TestApp, sim: &Simulator, user: &str) -> (Value, Value) {
    let company = json!({"name": "Babbage Engines", "website": "babbage.example", "user": user});
    let (code, created) = app
        .api(reqwest::Method::POST, "/companies", Some(company))
        .await;
    assert_eq!(code, 201, "{created}");
    let product = json!({"company_id": created["record"]["id"], "product": "Difference Engine",
        "status": "OPPORTUNITY", "opportunity_size": 1000.0, "user": user});
    let (code, body) = app
        .api(reqwest::Method::POST, "/company-products", Some(product))
        .await;
    assert_eq!(code, 201, "{body}");
    let account = eventually(
        "the account in the org",
        Duration::from_secs(15),
        || async {
            sim.list("Account")
                .into_iter()
                .find(|a| a["Name"] == "Babbage Engines")
        },
    )
    .await;
    let deal = eventually(
        "the opportunity in the org",
        Duration::from_secs(15),
        || async {
            sim.list("Opportunity")
                .into_iter()
                .find(|o| o["AccountId"] == account["Id"])
        },
    )
    .await;
    (account, deal)
}

#[tokio::test]
async fn a_reps_activity_and_contact_are_owned_by_the_rep_and_others_by_the_integration_user() {
    let (sim, app) = org_connected_by_its_admin().await;
    let (rep, admin) = (rep(&sim), sim.integration_user().expect("admin"));

    // A user id the app does not accept is refused before anyone signs in.
    let bad = no_redirects()
        .get(format!(
            "{}/oauth/salesforce/authorize?org_id={}&user=a%2Fb",
            app.base,
            sim.org_id()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("authorize");
    assert_eq!(bad.status(), 400);

    let query = format!("org_id={}&user=alice", sim.org_id());
    let (code, body) = connect(&app, &query, &rep).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("for user alice"), "{body}");
    let alice = user_status(&app, "alice").await.expect("alice listed");
    assert_eq!(alice["state"], "connected");

    let (code, contact) = app
        .api(
            reqwest::Method::POST,
            "/contacts",
            Some(json!({"last_name": "Lovelace", "email": "ada@acme.example", "user": "alice"})),
        )
        .await;
    assert_eq!(code, 201, "{contact}");
    let hers = email_pushed(&app, &sim, Some("alice"), "Intro, by Alice").await;
    let bobs = email_pushed(&app, &sim, Some("bob"), "Intro, by Bob").await;
    let nobodys = email_pushed(&app, &sim, None, "Intro, by the app").await;

    assert_eq!(hers["OwnerId"], rep.id.as_str(), "{hers}");
    assert_eq!(bobs["OwnerId"], admin.id.as_str(), "bob has no connection");
    assert_eq!(nobodys["OwnerId"], admin.id.as_str());
    let ada = eventually(
        "the contact in the org",
        Duration::from_secs(15),
        || async {
            sim.list("Contact")
                .into_iter()
                .find(|c| c["Email"] == "ada@acme.example")
        },
    )
    .await;
    assert_eq!(ada["OwnerId"], rep.id.as_str(), "{ada}");
    let (account, deal) = company_and_deal_of(&app, &sim, "alice").await;
    assert_eq!(account["OwnerId"], rep.id.as_str(), "{account}");
    assert_eq!(deal["OwnerId"], rep.id.as_str(), "{deal}");
    let alice = user_status(&app, "alice").await.expect("alice listed");
    assert_eq!(alice["salesforce_user_id"], rep.id.as_str());
    assert!(user_status(&app, "bob").await.is_none());

    app.stop().await;
    sim.shutdown();
}

#[tokio::test]
async fn a_revoked_rep_token_falls_back_to_the_integration_user_once_and_status_says_reconnect() {
    let (sim, app) = org_connected_by_its_admin().await;
    let (rep, admin) = (rep(&sim), sim.integration_user().expect("admin"));
    let query = format!("org_id={}&user=alice", sim.org_id());
    assert_eq!(connect(&app, &query, &rep).await.0, 200);
    let first = email_pushed(&app, &sim, Some("alice"), "Before the revoke").await;
    assert_eq!(first["OwnerId"], rep.id.as_str());

    // An admin revokes the rep's tokens in Salesforce.
    sim.revoke_user_tokens(&rep.id).expect("revoke");
    let fallback = email_pushed(&app, &sim, Some("alice"), "After the revoke").await;

    assert_eq!(fallback["OwnerId"], admin.id.as_str(), "{fallback}");
    let alice = user_status(&app, "alice").await.expect("alice listed");
    assert_eq!(alice["state"], "needs_reauth");
    assert_eq!(app.status().await["connections"][0]["state"], "connected");
    let tasks = sim.list("Task");
    assert_eq!(
        tasks
            .iter()
            .filter(|t| t["Subject"] == "After the revoke")
            .count(),
        1,
        "the refused call made no record, the fallback made one"
    );
    assert_no_duplicates(&sim, "Task");

    // Connecting again puts her writes back on her own token.
    assert_eq!(connect(&app, &query, &rep).await.0, 200);
    let again = email_pushed(&app, &sim, Some("alice"), "Reconnected").await;
    assert_eq!(again["OwnerId"], rep.id.as_str());
    let alice = user_status(&app, "alice").await.expect("alice listed");
    assert_eq!(alice["state"], "connected");

    app.stop().await;
    sim.shutdown();
}

#[tokio::test]
async fn a_reps_connection_survives_a_restart_sealed_in_the_store() {
    let (sim, app) = org_connected_by_its_admin().await;
    let rep = rep(&sim);
    let query = format!("org_id={}&user=alice", sim.org_id());
    assert_eq!(connect(&app, &query, &rep).await.0, 200);
    let org = sim.org_id();
    let sealed = app
        .store()
        .load_user_token(
            &org,
            &sfsync::domain::AppUser::parse("alice").expect("user"),
        )
        .expect("load")
        .expect("alice's refresh token stored");
    assert!(!sealed.is_empty());
    let dir = app.stop().await;

    let config = connected_app_config(&sim, dir.path());
    let app = spawn(config, dir).await;
    assert!(
        user_status(&app, "alice").await.is_some(),
        "listed at start"
    );
    let task = email_pushed(&app, &sim, Some("alice"), "After the restart").await;
    assert_eq!(task["OwnerId"], rep.id.as_str(), "{task}");
    assert_eq!(
        user_status(&app, "alice").await.expect("listed")["state"],
        "connected"
    );

    app.stop().await;
    sim.shutdown();
}
