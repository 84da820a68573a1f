//! A simulated org and the service on loopback, as the benchmarks and the demo run them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

use crate::app::{App, StoreTokens};
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

/// The service on loopback with a temporary store, connected to a simulated org whose Outbound
/// Messages it receives; running until [`Service::stop`].
pub struct Service {
    /// The service's store.
    pub store: Store,
    /// The org's connection, as the service's workers use it.
    pub client: Client,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Builds the service for `sim`'s org, lets `before` write to its store before any worker
    /// runs, connects the org, starts the service and points the org's Outbound Messages at it.
    pub async fn start(
        sim: &Simulator,
        webhook_key: &str,
        before: impl FnOnce(&Store) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        Self::start_adjusted(sim, webhook_key, |_| {}, before).await
    }

    /// [`Service::start`] with the service's configuration `adjust`ed first.
    pub async fn start_adjusted(
        sim: &Simulator,
        webhook_key: &str,
        adjust: impl FnOnce(&mut crate::config::Config),
        before: impl FnOnce(&Store) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temporary store")?;
        let org = sim.org_id();
        let mut config = service_config(
            &dir.path().join("store"),
            &org,
            "bench-api-token-0123456789",
            webhook_key,
        )?;
        adjust(&mut config);
        let app = App::build(&config).await?;
        let base = format!("http://{}", app.local_addr());
        let store = app.state().store.clone();
        before(&store)?;
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let client = client(sim, &store, TokenKey::new(1, SecretBox::new(Box::new(key))))?;
        app.connect_salesforce(client.clone());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until(shutdown.clone()));
        sim.set_outbound_url(Some(format!(
            "{base}/webhooks/salesforce/outbound/{webhook_key}"
        )));
        Ok(Self {
            store,
            client,
            shutdown,
            server,
            _dir: dir,
        })
    }

    /// Stops the service (its final flush included) and removes its store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await.context("server task")?
    }
}
