//! What the configuration reads from the environment: the `SFSYNC_<SECTION>__<KEY>` overrides,
//! the connected app and its refresh-token key, and booleans as environment variables spell
//! them.

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// The Salesforce connected app sfsync signs in through, and the key that seals refresh tokens
/// at rest. Its `Debug` shows the client id only.
#[derive(Clone)]
pub struct ConnectedApp {
    /// The consumer key (`SALESFORCE_CLIENT_ID`).
    pub client_id: String,
    /// The consumer secret (`SALESFORCE_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// The callback URL registered on the app (`SALESFORCE_REDIRECT_URI`).
    pub redirect_uri: String,
    /// The refresh-token key (`SFSYNC_TOKEN_KEY`, base64 of 32 bytes).
    pub token_key: crate::salesforce::TokenKey,
}

impl std::fmt::Debug for ConnectedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedApp")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Why the connected app is not usable: the variables missing or malformed, by name, never by
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotConfigured(pub String);

pub(super) fn connected_app_not_read() -> Result<ConnectedApp, NotConfigured> {
    ConnectedApp::from_env(|_| None)
}

/// The environment variables that hold the connected app and the token key.
pub(super) const CONNECTED_APP_VARS: [&str; 4] = [
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_REDIRECT_URI",
    "SFSYNC_TOKEN_KEY",
];

impl ConnectedApp {
    /// Reads the four variables through `var`; the error names each one missing or malformed.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, NotConfigured> {
        let value = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let missing: Vec<&str> = CONNECTED_APP_VARS
            .into_iter()
            .filter(|name| value(name).is_none())
            .collect();
        let mut problems = Vec::new();
        match missing.as_slice() {
            [] => {}
            [one] => problems.push(format!("{one} is not set")),
            many => problems.push(format!("{} are not set", many.join(", "))),
        }
        let token_key =
            value("SFSYNC_TOKEN_KEY").and_then(
                |raw| match crate::salesforce::TokenKey::from_base64(1, &SecretString::from(raw)) {
                    Ok(key) => Some(key),
                    Err(_) => {
                        problems.push("SFSYNC_TOKEN_KEY is not base64 of 32 bytes".into());
                        None
                    }
                },
            );
        let redirect_uri = value("SALESFORCE_REDIRECT_URI").and_then(|uri| {
            let ok = url::Url::parse(&uri)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                problems.push("SALESFORCE_REDIRECT_URI is not an http(s) URL".into());
            }
            ok.then_some(uri)
        });
        match (
            value("SALESFORCE_CLIENT_ID"),
            value("SALESFORCE_CLIENT_SECRET"),
            redirect_uri,
            token_key,
        ) {
            (Some(client_id), Some(secret), Some(redirect_uri), Some(key))
                if problems.is_empty() =>
            {
                Ok(Self {
                    client_id: client_id.trim().to_string(),
                    client_secret: SecretString::from(secret),
                    redirect_uri,
                    token_key: key,
                })
            }
            _ => Err(NotConfigured(problems.join("; "))),
        }
    }
}

/// A boolean written as `true/false`, `1/0`, `yes/no` or `on/off` (any case), as a TOML boolean
/// or as a string (environment variables are strings).
pub(super) fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    let parsed = match Raw::deserialize(d)? {
        Raw::Bool(b) => Some(b),
        Raw::Int(0) => Some(false),
        Raw::Int(1) => Some(true),
        Raw::Int(_) => None,
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
    };
    parsed.ok_or_else(|| serde::de::Error::custom("expected 1/0, true/false or yes/no"))
}

/// The `SFSYNC_<SECTION>__<KEY>` variables as (variable, dotted key, value). A variable with
/// `__` whose parts are not all non-empty is refused by name.
pub(super) fn key_overrides(
    env: &[(String, String)],
) -> Result<Vec<(String, String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("SFSYNC_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if parts.iter().any(String::is_empty) {
            return Err(ConfigError::Load(format!(
                "{name}: not a config key (SFSYNC_<SECTION>__<KEY>)"
            )));
        }
        out.push((name.clone(), parts.join("."), value.clone()));
    }
    Ok(out)
}
