//! `[console]`: the operator console at `/` (sign-in with the API token, sessions in memory).

use serde::Deserialize;

use super::env::flexible_bool;
use super::{ConfigError, invalid};

/// `[console]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Whether the console is served at `/` (default true). Off, `/` and `/login` answer 404.
    #[serde(default = "yes", deserialize_with = "flexible_bool")]
    pub enabled: bool,
    /// Seconds a console session lasts from sign-in (default 28800: 8 hours; 60 to 604800).
    #[serde(default = "default_session_ttl_s")]
    pub session_ttl_s: u64,
    /// Whether browsers reach sfsync only through a reverse proxy that terminates TLS
    /// (default false). When true, the session cookie is marked `Secure` and failed sign-ins
    /// are counted per client address as the proxy reports it (the last `X-Forwarded-For`
    /// entry, the one the proxy added); when false, the cookie is not marked `Secure` (sfsync
    /// itself serves plain HTTP, where a browser would drop a `Secure` cookie) and sign-ins are
    /// counted per peer address.
    #[serde(default, deserialize_with = "flexible_bool")]
    pub behind_tls_proxy: bool,
}

fn yes() -> bool {
    true
}

fn default_session_ttl_s() -> u64 {
    8 * 3600
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_s: default_session_ttl_s(),
            behind_tls_proxy: false,
        }
    }
}

impl ConsoleConfig {
    /// Checks the values and names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=7 * 24 * 3600).contains(&self.session_ttl_s) {
            return Err(invalid(
                "console.session_ttl_s",
                "must be 60 to 604800 seconds",
            ));
        }
        Ok(())
    }
}
