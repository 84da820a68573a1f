//! `sfsync serve` as a child process of the bench, as an operator runs it: a config file listing
//! every org, the connected app and the token key in its environment, stopped with SIGTERM.
//! Being its own process, its peak RSS (`VmHWM`) and start-up time are its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;

use crate::domain::OrgId;
use crate::tools::bench::measure;

/// The service's API token.
pub(super) const API_TOKEN: &str = "bench-scale-api-token-0123456789";

/// Org `i`'s webhook key.
pub(super) fn webhook_key(i: usize) -> String {
    format!("bench-scale-webhook-{i:05}")
}

/// How to start the service: its config file, port and environment.
pub(super) struct Setup {
    config: PathBuf,
    log: PathBuf,
    port: u16,
    env: Vec<(&'static str, String)>,
}

impl Setup {
    /// Writes the config for `orgs` (their logins at `login_url`) with the store in `dir`.
    pub(super) fn write(
        dir: &Path,
        login_url: &str,
        orgs: &[OrgId],
        client_id: String,
        client_secret: String,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a free port")?
            .port();
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"{API_TOKEN}\"\n\
             [store]\npath = \"{}\"\n[salesforce]\nlogin_url = \"{login_url}\"\n\
             [sync]\nsweep_interval_s = 0\n",
            dir.join("store").display()
        );
        for (i, org) in orgs.iter().enumerate() {
            toml.push_str(&format!(
                "[[connections]]\norg_id = \"{org}\"\nwebhook_key = \"{}\"\n",
                webhook_key(i)
            ));
        }
        let config = dir.join("sfsync.toml");
        std::fs::write(&config, toml).context("writing the config")?;
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let env = vec![
            ("SALESFORCE_CLIENT_ID", client_id),
            ("SALESFORCE_CLIENT_SECRET", client_secret),
            (
                "SALESFORCE_REDIRECT_URI",
                format!("http://127.0.0.1:{port}/oauth/salesforce/callback"),
            ),
            (
                "SFSYNC_TOKEN_KEY",
                base64::engine::general_purpose::STANDARD.encode(key),
            ),
            ("RUST_LOG", "warn".to_string()),
        ];
        Ok(Self {
            config,
            log: dir.join("serve.log"),
            port,
            env,
        })
    }

    /// The service's base URL.
    pub(super) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the service and waits until `/readyz` answers 200; the process and how long that
    /// took.
    pub(super) async fn start(&self, http: &reqwest::Client) -> anyhow::Result<(Serve, Duration)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .context("the service's log file")?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting sfsync serve")?;
        let ready = format!("{}/readyz", self.base());
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("sfsync serve exited ({status}); see {}", self.log.display());
            }
            let answer = http.get(&ready).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("sfsync serve not ready after 600 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        let pid = child.id().context("the service's pid")?;
        Ok((Serve { child, pid }, took))
    }
}

/// A running `sfsync serve`.
pub(super) struct Serve {
    child: tokio::process::Child,
    pid: u32,
}

impl Serve {
    /// Its peak resident set so far, in MiB.
    pub(super) fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        measure::peak_rss_mb(self.pid).context("reading VmHWM of the service")
    }

    /// SIGTERM, then waits for a clean exit.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("kill -TERM")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.pid);
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .context("the service did not stop within 120 s")??;
        anyhow::ensure!(status.success(), "the service exited with {status}");
        Ok(())
    }
}

/// Bytes in every file below `dir`: their lengths, and what the file system allocated for them
/// (less where a file is sparse).
fn bytes_below(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let mut total = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total.0 += meta.len();
                total.1 += allocated(&meta);
            }
        }
    }
    Ok(total)
}

/// The bytes the file system allocated for a file (its 512-byte blocks), where it tells.
fn allocated(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::blocks(meta) * 512
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

/// Each entry of `dir` (a file, or a directory and everything below it) with its length and
/// allocated bytes, the longest first.
pub(super) fn store_files(dir: &Path) -> anyhow::Result<Vec<(String, (u64, u64))>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let bytes = if meta.is_dir() {
            bytes_below(&entry.path())?
        } else {
            (meta.len(), allocated(&meta))
        };
        out.push((entry.file_name().to_string_lossy().into_owned(), bytes));
    }
    out.sort_by_key(|(_, (len, _))| std::cmp::Reverse(*len));
    Ok(out)
}
