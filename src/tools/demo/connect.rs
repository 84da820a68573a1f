//! Section 2: the service starts with the org's connected app, and the org is connected through
//! the redirects an operator's browser follows: sfsync's authorize route → the org's login page
//! (signed in as the integration user) → sfsync's callback.

use anyhow::Context as _;
use rand::Rng as _;
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

use super::org::Org;
use super::{Service, until};
use crate::app::{App, AppOptions};
use crate::config::{Config, ConnectedApp};
use crate::salesforce::TokenKey;

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The service on a fresh store, with the org listed, its connected app configured and the
/// demo's app listening to its changes; the org's Outbound Messages are pointed at it.
pub(crate) async fn start_service(org: &Org) -> anyhow::Result<Service> {
    let dir = tempfile::tempdir().context("temporary store")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = random_token(32);
    let key = random_token(24);
    let mut config = Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{token}\"\n[store]\npath = \"{}\"\n\
         [salesforce]\nlogin_url = \"{}\"\n[sync]\nsweep_interval_s = 0\n\
         [[connections]]\norg_id = \"{}\"\nwebhook_key = \"{key}\"\n",
        dir.path().join("store").display(),
        org.sim.instance_url(),
        org.sim.org_id()
    ))?;
    // The token key is made in-process: the demo's refresh token lives only as long as it does.
    let mut raw = [0u8; 32];
    rand::rng().fill(&mut raw);
    let creds = org.sim.credentials();
    config.connected_app = Ok(ConnectedApp {
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        redirect_uri: format!("{base}/oauth/salesforce/callback"),
        token_key: TokenKey::new(1, SecretBox::new(Box::new(raw))),
    });
    let (receiver, hook) = super::app::start().await?;
    config.app_webhooks.push(hook);
    let app = App::build_on(&config, listener, AppOptions::default()).await?;
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    org.sim
        .set_outbound_url(Some(format!("{base}/webhooks/salesforce/outbound/{key}")));
    Ok(Service {
        base,
        token,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        state,
        shutdown,
        server,
        app: receiver,
        _dir: dir,
    })
}

/// The value of the `Location` header of a redirect.
fn location(resp: &reqwest::Response) -> anyhow::Result<String> {
    anyhow::ensure!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    Ok(resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("a redirect without a Location")?
        .to_string())
}

/// The login form's target and fields, the username and password filled in.
fn login_form(
    page: &str,
    at: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<(url::Url, Vec<(String, String)>)> {
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the login page has no form")?;
    let action = quick_xml::escape::unescape(action)?.into_owned();
    let target = url::Url::parse(at)?.join(&action)?;
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|v| {
                quick_xml::escape::unescape(v).map_or_else(|_| v.to_string(), |u| u.into_owned())
            })
    };
    let fields = page
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let name = attr(tag, "name")?;
            let value = match name.as_str() {
                "username" => username.to_string(),
                "pw" => password.to_string(),
                _ => attr(tag, "value").unwrap_or_default(),
            };
            Some((name, value))
        })
        .collect();
    Ok((target, fields))
}

/// Walks the OAuth redirects as a browser would and waits for the setup check that follows.
pub(crate) async fn connect(svc: &Service, org: &Org) -> anyhow::Result<()> {
    println!("\n2. Connecting the org (the redirects an operator's browser follows)");
    let org_id = org.sim.org_id();
    let start = svc
        .http
        .get(format!(
            "{}/oauth/salesforce/authorize?org_id={org_id}",
            svc.base
        ))
        .bearer_auth(&svc.token)
        .send()
        .await?;
    let login = location(&start)?;
    println!("   sfsync /oauth/salesforce/authorize  → 302 to the org's login page (PKCE S256)");
    let page = svc.http.get(&login).send().await?.text().await?;
    let creds = org.sim.credentials();
    let (target, form) = login_form(&page, &login, &creds.username, &creds.password)?;
    let signed_in = svc.http.post(target).form(&form).send().await?;
    let callback = location(&signed_in)?;
    println!(
        "   the org's login page, signed in as {}  → 302 to sfsync's callback",
        creds.username
    );
    let done = svc.http.get(&callback).send().await?;
    anyhow::ensure!(
        done.status().is_success(),
        "the callback answered {}",
        done.status()
    );
    println!(
        "   sfsync /oauth/salesforce/callback   → code exchanged, signature checked, refresh token sealed"
    );
    let setup = until("the setup check", || async {
        let status = svc.api(reqwest::Method::GET, "/status", None).await?;
        Ok(Some(status["connections"][0]["setup"].clone()).filter(|s| !s.is_null()))
    })
    .await?;
    let problems = setup["problems"].as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        println!(
            "   setup check (the org's describe): marker field, fields, permissions, API version: nothing missing"
        );
    }
    for p in problems {
        println!("   setup check: MISSING {}", p.as_str().unwrap_or_default());
    }
    Ok(())
}
