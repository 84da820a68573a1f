//! Configuration: one TOML file with environment overrides, validated at load.
//!
//! This is the only module that reads the environment. Every key is documented in
//! `deploy/sfsync.example.toml`. Environment overrides use the prefix `SFSYNC_` and `__` between
//! sections, e.g. `SFSYNC_SERVER__LISTEN=0.0.0.0:8080` or `SFSYNC_STORE__PATH=/var/lib/sfsync`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::OrgId;

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
    /// One entry per Salesforce org.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
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
}

fn default_sweep_interval_s() -> u64 {
    300
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            conflict_contact: crate::domain::ConflictPolicy::default(),
            conflict_company: crate::domain::ConflictPolicy::default(),
            push_as: crate::domain::PushAs::default(),
            stages: Vec::new(),
            sweep_interval_s: default_sweep_interval_s(),
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
    #[serde(default)]
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
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled store; created if missing.
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

/// `[[connections]]`: one Salesforce org.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The org id, 15 or 18 characters, prefix `00D`.
    pub org_id: String,
    /// The last path segment of this org's webhook URLs; unguessable, at least 16 characters.
    pub webhook_key: SecretString,
    /// Standard Webhooks secrets (`whsec_` + base64 of 24 to 64 bytes); several while rotating.
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
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

/// A connection once validated: the org id parsed, the secrets decoded.
#[derive(Clone)]
pub struct Connection {
    /// The org.
    pub org_id: OrgId,
    /// Its webhook path key.
    pub webhook_key: SecretString,
    /// Decoded Standard Webhooks keys.
    pub webhook_secrets: std::sync::Arc<Vec<secrecy::SecretBox<Vec<u8>>>>,
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

impl Config {
    /// Loads `path` (TOML), applies `SFSYNC_*` environment overrides and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Load(format!(
                "file {} does not exist",
                path.display()
            )));
        }
        Self::from_figment(
            Figment::from(Toml::file(path)).merge(Env::prefixed("SFSYNC_").split("__")),
        )
    }

    /// Parses a TOML string without environment overrides (tests, the demo, benchmarks).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let mut msg = e.kind.to_string();
            if !key.is_empty() {
                msg = format!("{key}: {msg}");
            }
            ConfigError::Load(msg)
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
        if self.store.dedupe_ttl_hours < 168 {
            return Err(invalid(
                "store.dedupe_ttl_hours",
                "must be at least 168 (Salesforce retries for 24 h; keep 7 days)",
            ));
        }
        if self.intake.max_body_bytes < 4096 {
            return Err(invalid("intake.max_body_bytes", "must be at least 4096"));
        }
        if !(self.outbox.limit_share > 0.0 && self.outbox.limit_share <= 1.0) {
            return Err(invalid(
                "outbox.limit_share",
                "must be above 0 and at most 1",
            ));
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
        let mut seen_keys = std::collections::HashSet::new();
        let mut seen_orgs = std::collections::HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            let org = OrgId::parse(&c.org_id)
                .map_err(|e| invalid(format!("connections[{i}].org_id"), e.to_string()))?;
            if !seen_orgs.insert(org.as_15().to_string()) {
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
            for (j, s) in c.webhook_secrets.iter().enumerate() {
                crate::http::webhook::signature::decode_secret(s.expose_secret()).map_err(|e| {
                    invalid(
                        format!("connections[{i}].webhook_secrets[{j}]"),
                        e.to_string(),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The validated connections.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections
            .iter()
            .filter_map(|c| {
                Some(Connection {
                    org_id: OrgId::parse(&c.org_id).ok()?,
                    webhook_key: c.webhook_key.clone(),
                    webhook_secrets: c
                        .webhook_secrets
                        .iter()
                        .filter_map(|s| {
                            crate::http::webhook::signature::decode_secret(s.expose_secret())
                                .ok()
                                .map(|k| secrecy::SecretBox::new(Box::new(k)))
                        })
                        .collect::<Vec<_>>()
                        .into(),
                })
            })
            .collect()
    }

    /// The connected app's OAuth settings: `SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET` and
    /// `SALESFORCE_REDIRECT_URI` from the environment, the rest from `[salesforce]`.
    pub fn oauth_settings(&self) -> Result<crate::salesforce::OAuthSettings, ConfigError> {
        let var = |name: &'static str| {
            std::env::var(name).map_err(|_| invalid(name, "environment variable is not set"))
        };
        Ok(crate::salesforce::OAuthSettings {
            client_id: var("SALESFORCE_CLIENT_ID")?,
            client_secret: SecretString::from(var("SALESFORCE_CLIENT_SECRET")?),
            redirect_uri: var("SALESFORCE_REDIRECT_URI")?,
            login_url: self.salesforce.login_url.clone(),
            api_version: self.salesforce.api_version.clone(),
        })
    }

    /// The key refresh tokens are sealed with: `SFSYNC_TOKEN_KEY`, base64 of 32 bytes.
    pub fn token_key() -> Result<crate::salesforce::TokenKey, ConfigError> {
        let raw = std::env::var("SFSYNC_TOKEN_KEY")
            .map_err(|_| invalid("SFSYNC_TOKEN_KEY", "environment variable is not set"))?;
        crate::salesforce::TokenKey::from_base64(1, &SecretString::from(raw))
            .map_err(|e| invalid("SFSYNC_TOKEN_KEY", e.to_string()))
    }

    /// How long dedupe keys live.
    pub fn dedupe_ttl(&self) -> Duration {
        Duration::from_secs(self.store.dedupe_ttl_hours * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
api_token = "0123456789abcdef0123"
[store]
path = "./data"
[[connections]]
org_id = "00D7F00000107Xs"
webhook_key = "a-long-random-key-1234"
webhook_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

    #[test]
    fn a_good_file_loads_and_normalizes_the_org_id() {
        let c = Config::from_toml(GOOD).expect("valid config");
        assert_eq!(c.connections()[0].org_id.as_str(), "00D7F00000107XsUAI");
        assert_eq!(c.intake.max_body_bytes, 1024 * 1024);
    }

    fn error_of(text: &str) -> String {
        Config::from_toml(text)
            .map(|_| ())
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn a_bad_org_id_is_named_by_its_key() {
        let e = error_of(&GOOD.replace("00D7F00000107Xs", "001xx"));
        assert!(e.contains("connections[0].org_id"), "{e}");
    }

    #[test]
    fn a_bad_secret_is_named_by_its_key_without_its_value() {
        let e = error_of(&GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!"));
        assert!(e.contains("connections[0].webhook_secrets[0]"), "{e}");
        assert!(!e.contains("!!"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = error_of(&GOOD.replace("[store]", "[store]\nsize = 3"));
        assert!(e.contains("size"), "{e}");
    }

    #[test]
    fn a_short_dedupe_window_is_refused() {
        let e = error_of(&GOOD.replace("[store]", "[store]\ndedupe_ttl_hours = 24"));
        assert!(e.contains("store.dedupe_ttl_hours"), "{e}");
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key() {
        let e = error_of(&GOOD.replace("\"127.0.0.1:8080\"", "8080"));
        assert!(e.contains("server.listen") || e.contains("listen"), "{e}");
    }
}
