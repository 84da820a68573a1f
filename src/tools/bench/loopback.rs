//! A simulated org and the service on loopback, as the benchmarks and the demo run them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use secrecy::SecretString;

use crate::app::StoreTokens;
use crate::config::Config;
use crate::domain::OrgId;
use crate::salesforce::{Client, OAuthSettings, TokenKey, TokenStore as _, TokenVault};
use crate::simulator::{Simulator, SimulatorConfig};
use crate::store::Store;

/// A simulated org listening on a free loopback port.
pub async fn simulator(config: SimulatorConfig) -> anyhow::Result<Simulator> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator")?;
    Simulator::start(listener, config).await
}

/// The service's config for one org on loopback: a free port, the store in `store`, the catch-up
/// sweep off.
pub fn service_config(
    store: &Path,
    org: &OrgId,
    api_token: &str,
    webhook_key: &str,
) -> anyhow::Result<Config> {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"{api_token}\"\n[store]\npath = \"{}\"\n[sync]\nsweep_interval_s = 0\n[[connections]]\norg_id = \"{org}\"\nwebhook_key = \"{webhook_key}\"\n",
        store.display(),
    );
    Ok(Config::from_toml(&toml)?)
}

/// A connection to the simulated org whose refresh token is sealed with `key` and saved in
/// `store`, as the service keeps it. Its first call opens a session.
pub fn client(sim: &Simulator, store: &Store, key: TokenKey) -> anyhow::Result<Client> {
    let creds = sim.credentials();
    let settings = OAuthSettings {
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        redirect_uri: creds.redirect_uri,
        login_url: creds.login_url,
        api_version: sim.api_version(),
    };
    let vault = Arc::new(TokenVault::new(key));
    let tokens = Arc::new(StoreTokens(store.clone()));
    let sealed = vault.seal(&sim.org_id(), &SecretString::from(creds.refresh_token))?;
    tokens
        .save_sealed(&sim.org_id(), &sealed)
        .map_err(|e| anyhow::anyhow!("saving the refresh token: {e}"))?;
    Ok(Client::new(
        settings,
        sim.org_id(),
        sim.instance_url(),
        vault,
        tokens,
    )?)
}
