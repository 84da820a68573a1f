//! Connecting an org through the web server flow against the simulator: authorize → Salesforce's
//! page → callback → the org is connected and its refresh token is stored sealed.

use secrecy::{SecretBox, SecretString};
use sfsync::config::ConnectedApp;
use sfsync::salesforce::TokenKey;
use sfsync::simulator::SimulatorConfig;

use crate::support::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn an_admin_connects_an_org_and_its_refresh_token_is_stored_sealed() {
    let sim = org::start(SimulatorConfig::default()).await;
    let creds = sim.credentials();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(
        &dir.path().join("store"),
        vec![connection(&sim.org_id(), KEY, &[SECRET])],
    );
    config.salesforce.login_url = sim.instance_url();
    config.connected_app = Ok(ConnectedApp {
        client_id: creds.client_id.clone(),
        client_secret: SecretString::from(creds.client_secret.clone()),
        redirect_uri: "http://127.0.0.1:9/oauth/salesforce/callback".into(),
        token_key: TokenKey::new(1, SecretBox::new(Box::new([7u8; 32]))),
    });
    let app = spawn(config, dir).await;
    let base = app.base.clone();
    let store = app.store().clone();
    let http = no_redirects();
    let org = sim.org_id();

    // The authorize route needs the API token and a configured org.
    let url = format!("{base}/oauth/salesforce/authorize?org_id={org}");
    assert_eq!(http.get(&url).send().await.expect("get").status(), 401);
    let other = http
        .get(format!(
            "{base}/oauth/salesforce/authorize?org_id=00D000000000001"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 400);
    let resp = http.get(&url).bearer_auth(TOKEN).send().await.expect("get");
    assert_eq!(resp.status(), 302);
    let to_salesforce = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        to_salesforce.starts_with(&sim.instance_url()),
        "{to_salesforce}"
    );
    assert!(
        to_salesforce.contains("code_challenge_method=S256"),
        "{to_salesforce}"
    );

    // The admin signs in on Salesforce's login page; Salesforce sends the browser back with a
    // code.
    let back = sign_in(&to_salesforce, &creds.username, &creds.password).await;
    assert_eq!(back.status(), 302);
    let callback =
        url::Url::parse(back.headers()["location"].to_str().expect("location")).expect("url");
    let query = callback.query().expect("query").to_string();
    let done = http
        .get(format!("{base}/oauth/salesforce/callback?{query}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .expect("body")
            .contains("connected to org")
    );

    let status: serde_json::Value = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let conn = status["connections"]
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["org_id"] == org.as_str())
        .cloned();
    assert_eq!(conn.expect("org listed")["state"], "connected");
    let sealed = store
        .load_sealed_token(&org)
        .expect("load")
        .expect("refresh token stored");
    assert!(
        !sealed
            .windows(creds.refresh_token.len())
            .any(|w| w == creds.refresh_token.as_bytes())
    );

    // A state is good for one callback only; a refusal from Salesforce is reported.
    let replay = http
        .get(format!("{base}/oauth/salesforce/callback?{query}"))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 400);
    let denied = http
        .get(format!("{base}/oauth/salesforce/callback?error=access_denied&error_description=end-user+denied+authorization"))
        .send()
        .await
        .expect("denied");
    assert_eq!(denied.status(), 400);
    assert!(denied.text().await.expect("body").contains("access_denied"));

    app.stop().await;
    sim.shutdown();
}

#[tokio::test]
async fn without_a_connected_app_the_authorize_route_says_what_is_missing() {
    let app = spawn_app().await;
    let resp = no_redirects()
        .get(format!(
            "{}/oauth/salesforce/authorize?org_id={ORG}",
            app.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 503);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("SALESFORCE_CLIENT_ID")
    );
}
