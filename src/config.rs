//! Configuration: one TOML file with environment overrides, validated at load.
//!
//! This is the only module that reads the environment, and [`Config::load`] reads all of it:
//!
//! - `SFSYNC_<SECTION>__<KEY>` overrides one config key, e.g. `SFSYNC_SERVER__LISTEN=0.0.0.0:8080`
//!   or `SFSYNC_OUTBOX__UPSERT_ON_MARKER=yes`. A variable of that form that names no key is an
//!   error naming the variable. Booleans take `1/0/true/false/yes/no/on/off`.
//! - `SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET`, `SALESFORCE_REDIRECT_URI` (the connected
//!   app) and `SFSYNC_TOKEN_KEY` (the key that seals refresh tokens) fill
//!   [`Config::connected_app`]. When they are missing or malformed the service still starts; the
//!   orgs then report `not_configured` with the reason.
//! - Every other `SFSYNC_*` variable (`SFSYNC_CONFIG`, `SFSYNC_API_TOKEN`, `SFSYNC_LOG_JSON`, …)
//!   belongs to the command line, not to the config.
//!
//! Every key is documented in `deploy/sfsync.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{OrgId, WebhookSecret};

mod activities;
mod console;
mod env;
mod feed;

pub use activities::{
    ActivitiesConfig, ActivityFields, ActivityKinds, ActivityTarget, CustomActivity,
    STANDARD_OBJECTS,
};
pub use console::ConsoleConfig;
pub use env::{ConnectedApp, NotConfigured};
use env::{connected_app_not_read, key_overrides};
pub use feed::{AppWebhook, ChangesConfig};

/// Why the configuration cannot be used. Each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or a value has the wrong type.
    #[error("config: {0}")]
    Load(String),
    /// A value is present but not acceptable.
    #[error("config: {key}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `connections[0].org_id`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and the local API.
    pub server: ServerConfig,
    /// The embedded store.
    pub store: StoreConfig,
    /// Webhook intake limits.
    #[serde(default)]
    pub intake: IntakeConfig,
    /// The Salesforce API and OAuth endpoints.
    #[serde(default)]
    pub salesforce: SalesforceConfig,
    /// Pull rules (the match ladder's conflict policies, the stage table).
    #[serde(default)]
    pub sync: SyncConfig,
    /// Push delivery (retries, API budget).
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// What activities become in Salesforce: Task and Event, or a custom object.
    #[serde(default)]
    pub activities: ActivitiesConfig,
    /// The operator console.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// One entry per Salesforce org.
    #[serde(default)]
    pub connections: Vec<Connection>,
    /// The change log's retention and its deliveries to the app's webhooks.
    #[serde(default)]
    pub changes: ChangesConfig,
    /// The app's endpoints that receive each change, signed.
    #[serde(default)]
    pub app_webhooks: Vec<AppWebhook>,
    /// The connected app and the refresh-token key, read from the environment by
    /// [`Config::load`] (never from the file), or why they could not be read.
    #[serde(skip, default = "connected_app_not_read")]
    pub connected_app: Result<ConnectedApp, NotConfigured>,
}

/// `[salesforce]`. The connected app's client id, secret and redirect URI come from the
/// environment (`SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET`, `SALESFORCE_REDIRECT_URI`);
/// the key that encrypts refresh tokens at rest from `SFSYNC_TOKEN_KEY` (base64 of 32 bytes).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// OAuth host: `https://login.salesforce.com`, `https://test.salesforce.com` or a My Domain.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// REST API version, e.g. `62.0`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Seconds before a Salesforce call times out.
    #[serde(default = "default_sf_timeout")]
    pub request_timeout_s: u64,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            login_url: default_login_url(),
            api_version: default_api_version(),
            request_timeout_s: default_sf_timeout(),
        }
    }
}

/// `[sync]`: how pulled records are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Contacts and Leads: `salesforce_wins` (default) or `ours_wins`.
    #[serde(default)]
    pub conflict_contact: crate::domain::ConflictPolicy,
    /// Companies: `salesforce_wins` (default) or `ours_wins`.
    #[serde(default)]
    pub conflict_company: crate::domain::ConflictPolicy,
    /// What a new local contact is pushed as: `contact` (default) or `lead`.
    #[serde(default)]
    pub push_as: crate::domain::PushAs,
    /// Rows added to (or replacing rows of) the standard stage table: `StageName` → status and
    /// internal stage.
    #[serde(default)]
    pub stages: Vec<crate::domain::StageRule>,
    /// Seconds between catch-up sweeps (one also runs at start-up); 0 turns the schedule off.
    #[serde(default = "default_sweep_interval_s")]
    pub sweep_interval_s: u64,
    /// Share of the org's daily API limit pulls may use before they pause (above 0, at most 1).
    #[serde(default = "default_pull_limit_share")]
    pub limit_share: f64,
}

fn default_sweep_interval_s() -> u64 {
    300
}
fn default_pull_limit_share() -> f64 {
    0.9
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            conflict_contact: crate::domain::ConflictPolicy::default(),
            conflict_company: crate::domain::ConflictPolicy::default(),
            push_as: crate::domain::PushAs::default(),
            stages: Vec::new(),
            sweep_interval_s: default_sweep_interval_s(),
            limit_share: default_pull_limit_share(),
        }
    }
}

/// `[outbox]`: how local changes are delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// First retry delay in milliseconds (full jitter up to it, doubling per attempt).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest retry delay in milliseconds.
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// Share of the org's daily API limit sfsync may use before it pauses (0 to 1).
    #[serde(default = "default_limit_share")]
    pub limit_share: f64,
    /// How long an org's pushes pause when its API budget is spent or `limit_share` is reached,
    /// in milliseconds, before the budget is checked again.
    #[serde(default = "default_limit_pause_ms")]
    pub limit_pause_ms: u64,
    /// A custom text field (on Account, Contact, Lead, Opportunity, Task and Event) that carries
    /// `sfsync:{kind}:{local id}` on every record sfsync creates, so a retried create finds the
    /// record an unanswered attempt made instead of making a second one.
    #[serde(default = "default_marker_field")]
    pub marker_field: String,
    /// Whether `marker_field` is an External ID field in the org: creates then go out as upserts
    /// by it (idempotent), without a look-up before a retry.
    #[serde(default, deserialize_with = "env::flexible_bool")]
    pub upsert_on_marker: bool,
    /// Failed sends after which an entry becomes a dead letter even though its errors were
    /// transient (default 50: at most about three and a half hours at the default back-off).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry_base_ms: default_retry_base_ms(),
            retry_cap_ms: default_retry_cap_ms(),
            limit_share: default_limit_share(),
            limit_pause_ms: default_limit_pause_ms(),
            marker_field: default_marker_field(),
            upsert_on_marker: false,
            max_attempts: default_max_attempts(),
        }
    }
}

fn default_limit_pause_ms() -> u64 {
    60_000
}
fn default_marker_field() -> String {
    "Sfsync_Id__c".into()
}
fn default_max_attempts() -> u32 {
    50
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Bearer token that `/api/v1` requires.
    pub api_token: SecretString,
    /// Seconds a request may take before it is answered 408.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u64,
    /// Seconds a client has to send a complete request head, counted from connecting or from
    /// its previous response; a slower or idle keep-alive connection is closed (default 10).
    #[serde(default = "default_header_read_timeout_s")]
    pub header_read_timeout_s: u64,
    /// Seconds a request body may pause between two pieces before the request fails (default 10).
    #[serde(default = "default_body_read_timeout_s")]
    pub body_read_timeout_s: u64,
    /// Connections open at once; more wait in the kernel's accept queue. 0 (default): three
    /// quarters of the process's open-file limit, at most 10,000.
    #[serde(default)]
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM before every connection is closed
    /// (default 10).
    #[serde(default = "default_shutdown_grace_s")]
    pub shutdown_grace_s: u64,
}

fn default_header_read_timeout_s() -> u64 {
    10
}
fn default_body_read_timeout_s() -> u64 {
    10
}
fn default_shutdown_grace_s() -> u64 {
    10
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the embedded store; created if missing.
    pub path: PathBuf,
    /// How long a notification's dedupe key is kept, in hours (at least 168: 7 days).
    #[serde(default = "default_dedupe_ttl_h")]
    pub dedupe_ttl_hours: u64,
}

/// `[intake]`: limits on what the webhook endpoints accept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Largest accepted request body in bytes (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Allowed clock skew of signed events in seconds, both ways (default 300).
    #[serde(default = "default_tolerance")]
    pub timestamp_tolerance_s: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            timestamp_tolerance_s: default_tolerance(),
        }
    }
}

/// `[[connections]]`: one Salesforce org. Its `Debug` shows the org id and how many secrets it
/// has, never the key or the secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The org id, 15 or 18 characters, prefix `00D`; held as 18.
    pub org_id: OrgId,
    /// The last path segment of this org's webhook URLs; unguessable, at least 16 characters.
    pub webhook_key: SecretString,
    /// Standard Webhooks secrets (`whsec_` + base64 of 24 to 64 bytes); several while rotating.
    #[serde(default)]
    pub webhook_secrets: Vec<WebhookSecret>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("org_id", &self.org_id)
            .field("webhook_key", &"[REDACTED]")
            .field("webhook_secrets", &self.webhook_secrets.len())
            .finish()
    }
}

fn default_login_url() -> String {
    "https://login.salesforce.com".into()
}
fn default_api_version() -> String {
    "62.0".into()
}
fn default_sf_timeout() -> u64 {
    30
}
fn default_retry_base_ms() -> u64 {
    1_000
}
fn default_retry_cap_ms() -> u64 {
    300_000
}
fn default_limit_share() -> f64 {
    0.8
}
fn default_request_timeout_s() -> u64 {
    30
}
fn default_dedupe_ttl_h() -> u64 {
    7 * 24
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_tolerance() -> u64 {
    300
}

impl Config {
    /// Loads `path` (TOML), applies the `SFSYNC_<SECTION>__<KEY>` overrides of the process
    /// environment, validates the result, and reads the connected app's variables.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with the environment given as name/value pairs.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Load(format!(
                "file {} does not exist",
                path.display()
            )));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let overrides = key_overrides(&env)?;
        let mut figment = Figment::from(Toml::file(path));
        for (_, key, value) in &overrides {
            figment = figment.merge(Serialized::default(key, value));
        }
        let mut config = Self::from_figment(figment, &overrides)?;
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        config.connected_app = ConnectedApp::from_env(lookup);
        Ok(config)
    }

    /// Parses a TOML string without environment overrides (tests, the demo, benchmarks). The
    /// connected app is left unset; callers that need one set [`Config::connected_app`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)), &[])
    }

    fn from_figment(
        figment: Figment,
        overrides: &[(String, String, String)],
    ) -> Result<Self, ConfigError> {
        let config: Config = figment.extract_lossy().map_err(|e| {
            let mut path = e.path.clone();
            if let figment::error::Kind::UnknownField(field, _) = &e.kind {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
            }
            // A key set from the environment is named by its variable.
            let dotted = path.join(".");
            let shown = path.iter().fold(String::new(), |mut out, part| {
                if part.parse::<usize>().is_ok() {
                    out.push_str(&format!("[{part}]"));
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(part);
                }
                out
            });
            let from_env = overrides
                .iter()
                .find(|(_, key, _)| *key == dotted || key.starts_with(&format!("{dotted}.")))
                .filter(|_| !dotted.is_empty());
            let key = match from_env {
                Some((var, _, _)) => var.clone(),
                None => shown,
            };
            let msg = e.kind.to_string();
            ConfigError::Load(if key.is_empty() {
                msg
            } else {
                format!("{key}: {msg}")
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value and names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.api_token.expose_secret().len() < 16 {
            return Err(invalid(
                "server.api_token",
                "must be at least 16 characters",
            ));
        }
        for (key, value, max) in [
            (
                "server.request_timeout_s",
                self.server.request_timeout_s,
                3600,
            ),
            (
                "server.header_read_timeout_s",
                self.server.header_read_timeout_s,
                300,
            ),
            (
                "server.body_read_timeout_s",
                self.server.body_read_timeout_s,
                300,
            ),
            ("server.shutdown_grace_s", self.server.shutdown_grace_s, 300),
        ] {
            if value == 0 || value > max {
                return Err(invalid(key, format!("must be 1 to {max} seconds")));
            }
        }
        self.console.validate()?;
        if self.store.dedupe_ttl_hours < 168 {
            return Err(invalid(
                "store.dedupe_ttl_hours",
                "must be at least 168 (Salesforce retries for 24 h; keep 7 days)",
            ));
        }
        if self.intake.max_body_bytes < 4096 {
            return Err(invalid("intake.max_body_bytes", "must be at least 4096"));
        }
        for (key, share) in [
            ("sync.limit_share", self.sync.limit_share),
            ("outbox.limit_share", self.outbox.limit_share),
        ] {
            if !(share > 0.0 && share <= 1.0) {
                return Err(invalid(key, "must be above 0 and at most 1"));
            }
        }
        if self.outbox.retry_base_ms == 0 || self.outbox.retry_cap_ms < self.outbox.retry_base_ms {
            return Err(invalid(
                "outbox.retry_cap_ms",
                "must be at least outbox.retry_base_ms, which must be above 0",
            ));
        }
        let version_ok = self
            .salesforce
            .api_version
            .split_once('.')
            .is_some_and(|(major, minor)| major.parse::<u32>().is_ok() && minor == "0");
        if !version_ok {
            return Err(invalid("salesforce.api_version", "must look like 62.0"));
        }
        if url::Url::parse(&self.salesforce.login_url).is_err() {
            return Err(invalid("salesforce.login_url", "must be a URL"));
        }
        self.activities.validate()?;
        self.validate_connections()
    }

    /// Each `[[connections]]` entry: one per org, each with its own well-formed webhook key.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let mut seen_keys = std::collections::HashSet::new();
        let mut seen_orgs = std::collections::HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            if !seen_orgs.insert(c.org_id.as_15().to_string()) {
                return Err(invalid(
                    format!("connections[{i}].org_id"),
                    "org listed twice",
                ));
            }
            let key = c.webhook_key.expose_secret();
            if key.len() < 16
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    format!("connections[{i}].webhook_key"),
                    "must be at least 16 characters of [A-Za-z0-9_-]",
                ));
            }
            if !seen_keys.insert(key.to_string()) {
                return Err(invalid(
                    format!("connections[{i}].webhook_key"),
                    "used twice",
                ));
            }
        }
        feed::validate(&self.changes, &self.app_webhooks)
    }

    /// The connected app's OAuth settings with the login host and API version of
    /// `[salesforce]`, and the refresh-token key; or why they are not configured.
    pub fn oauth(
        &self,
    ) -> Result<
        (
            crate::salesforce::OAuthSettings,
            crate::salesforce::TokenKey,
        ),
        NotConfigured,
    > {
        let app = self.connected_app.as_ref().map_err(Clone::clone)?;
        Ok((
            crate::salesforce::OAuthSettings {
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone(),
                redirect_uri: app.redirect_uri.clone(),
                login_url: self.salesforce.login_url.clone(),
                api_version: self.salesforce.api_version.clone(),
            },
            app.token_key.clone(),
        ))
    }

    /// Where activities go (`[activities]`), a custom object's marker defaulting to `[outbox]
    /// marker_field`.
    pub fn activity_target(&self) -> ActivityTarget {
        self.activities.target(&self.outbox.marker_field)
    }

    /// How long dedupe keys live.
    pub fn dedupe_ttl(&self) -> Duration {
        Duration::from_secs(self.store.dedupe_ttl_hours * 3600)
    }
}

#[cfg(test)]
mod tests;
