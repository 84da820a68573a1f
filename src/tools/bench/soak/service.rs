//! The service under the soak: `sfsync serve` as a child process of this executable, so that it
//! can be SIGKILLed and started again on the same store, connected to the simulated org by the
//! sealed refresh token it finds in its store at every start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::Value;

use crate::salesforce::{TokenKey, TokenVault};
use crate::simulator::Simulator;
use crate::store::Store;

/// The API token the soak's service is configured with.
pub(super) const API_TOKEN: &str = "soak-api-token-0123456789";
/// The last path segment of the service's webhook URLs.
pub(super) const WEBHOOK_KEY: &str = "soak-webhook-key-000001";

/// Where the service keeps its files and how it is reached.
pub(super) struct ServiceFiles {
    dir: PathBuf,
    config: PathBuf,
    token_key: String,
    /// `http://127.0.0.1:PORT`.
    pub(super) base: String,
}

impl ServiceFiles {
    /// Writes the config (a fixed loopback port, so restarts keep the webhook URL; the catch-up
    /// sweep off, so a lost notification is not repaired behind the soak's back) and seals the
    /// org's refresh token into the store, as the OAuth callback leaves it.
    pub(super) fn prepare(dir: &Path, sim: &Simulator) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a free port")?
            .port();
        let store = dir.join("store");
        let config = dir.join("sfsync.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"{API_TOKEN}\"\n\
                 [store]\npath = \"{store}\"\n[salesforce]\nlogin_url = \"{login}\"\n\
                 [sync]\nsweep_interval_s = 0\n\
                 [outbox]\nretry_base_ms = 50\nretry_cap_ms = 1000\nmax_attempts = 10000\n\
                 limit_pause_ms = 2000\n\
                 [[connections]]\norg_id = \"{org}\"\nwebhook_key = \"{WEBHOOK_KEY}\"\n",
                store = store.display(),
                login = sim.instance_url(),
                org = sim.org_id(),
            ),
        )
        .context("writing the service's config")?;
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let token_key = STANDARD.encode(key);
        let vault = TokenVault::new(TokenKey::from_base64(
            1,
            &SecretString::from(token_key.clone()),
        )?);
        let sealed = vault.seal(
            &sim.org_id(),
            &SecretString::from(sim.credentials().refresh_token),
        )?;
        Store::open(&store)?.save_sealed_token(&sim.org_id(), &sealed)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            token_key,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The service's store directory.
    pub(super) fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// The URL the org sends its Outbound Messages to.
    pub(super) fn outbound_url(&self) -> String {
        format!("{}/webhooks/salesforce/outbound/{WEBHOOK_KEY}", self.base)
    }
}

/// A running `sfsync serve`; its stderr goes to `serve.log` in the soak's directory.
pub(super) struct ServiceProcess {
    child: Child,
}

impl ServiceProcess {
    /// Starts the service and waits until it answers `/readyz`.
    pub(super) async fn start(
        files: &ServiceFiles,
        sim: &Simulator,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let creds = sim.credentials();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(files.dir.join("serve.log"))
            .context("the service's log")?;
        let child = Command::new(std::env::current_exe().context("this executable")?)
            .args(["serve", "--config", &files.config.display().to_string()])
            .env_remove("SFSYNC_CONFIG")
            .env("SALESFORCE_CLIENT_ID", creds.client_id)
            .env("SALESFORCE_CLIENT_SECRET", creds.client_secret)
            .env(
                "SALESFORCE_REDIRECT_URI",
                format!("{}/oauth/salesforce/callback", files.base),
            )
            .env("SFSYNC_TOKEN_KEY", &files.token_key)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting sfsync serve")?;
        let mut process = Self { child };
        process.wait_ready(files, http).await?;
        Ok(process)
    }

    async fn wait_ready(
        &mut self,
        files: &ServiceFiles,
        http: &reqwest::Client,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("sfsync serve exited at start: {status}");
            }
            let ready = http.get(format!("{}/readyz", files.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "sfsync serve never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no flush, no goodbye.
    pub(super) fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait().context("reaping the killed service")?;
        Ok(())
    }

    /// SIGTERM, then waits for the clean exit (its final flush included).
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "sfsync serve exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "sfsync serve did not stop in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        // A child left behind by an error is not left running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The service's `/api/v1/status` document.
pub(super) async fn status(http: &reqwest::Client, files: &ServiceFiles) -> anyhow::Result<Value> {
    let resp = http
        .get(format!("{}/api/v1/status", files.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "status: {}", resp.status());
    Ok(resp.json().await?)
}
