//! `[changes]` and `[[app_webhooks]]`: how long the change log keeps its entries, how changes
//! are delivered, and the app's webhooks that receive them.

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::domain::{TypeFilter, WebhookSecret};

/// `[changes]`: the change log and its deliveries to the app's webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesConfig {
    /// Hours an entry stays in the log; older ones are compacted away (default 168, 7 days).
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u64,
    /// Seconds one POST to an app's webhook may take before it counts as failed (default 10).
    #[serde(default = "default_delivery_timeout_s")]
    pub delivery_timeout_s: u64,
    /// POSTs in flight at once per webhook, each to a different record (default 16).
    #[serde(default = "default_delivery_concurrency")]
    pub delivery_concurrency: usize,
    /// Attempts per change before it becomes a dead letter of that webhook (default 15).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The ceiling of the first retry's wait, in milliseconds (default 1,000); each next
    /// retry's ceiling doubles, up to `retry_cap_ms`, and the wait is random below it.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// The longest wait between two attempts, in milliseconds (default 300,000).
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        Self {
            retention_hours: default_retention_hours(),
            delivery_timeout_s: default_delivery_timeout_s(),
            delivery_concurrency: default_delivery_concurrency(),
            max_attempts: default_max_attempts(),
            retry_base_ms: default_retry_base_ms(),
            retry_cap_ms: default_retry_cap_ms(),
        }
    }
}

fn default_retention_hours() -> u64 {
    7 * 24
}
fn default_delivery_timeout_s() -> u64 {
    10
}
fn default_delivery_concurrency() -> usize {
    16
}
fn default_max_attempts() -> u32 {
    15
}
fn default_retry_base_ms() -> u64 {
    1_000
}
fn default_retry_cap_ms() -> u64 {
    300_000
}

/// `[[app_webhooks]]`: one endpoint of the app that receives every change (or those of
/// `types`) as a Standard Webhooks signed POST. Its `Debug` never shows the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppWebhook {
    /// Where to POST (`http` or `https`); also the webhook's name in the status, the API and
    /// the store, which keeps its cursor by it.
    pub url: String,
    /// The signing secret: `whsec_` followed by the base64 of 24 to 64 bytes.
    pub secret: WebhookSecret,
    /// Change types to send: `kind.what` or `kind.*` (default: every type).
    #[serde(default)]
    pub types: Vec<String>,
}

impl std::fmt::Debug for AppWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppWebhook")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .field("types", &self.types)
            .finish()
    }
}

impl AppWebhook {
    /// The change types this webhook wants (checked by [`validate`]).
    pub fn filter(&self) -> TypeFilter {
        TypeFilter::parse(&self.types).unwrap_or_default()
    }
}

/// Checks `[changes]` and every `[[app_webhooks]]` entry, naming the first bad key.
pub(super) fn validate(changes: &ChangesConfig, hooks: &[AppWebhook]) -> Result<(), ConfigError> {
    if changes.retention_hours == 0 {
        return Err(invalid("changes.retention_hours", "must be at least 1"));
    }
    if !(1..=300).contains(&changes.delivery_timeout_s) {
        return Err(invalid(
            "changes.delivery_timeout_s",
            "must be 1 to 300 seconds",
        ));
    }
    if !(1..=256).contains(&changes.delivery_concurrency) {
        return Err(invalid("changes.delivery_concurrency", "must be 1 to 256"));
    }
    if changes.max_attempts == 0 {
        return Err(invalid("changes.max_attempts", "must be at least 1"));
    }
    if changes.retry_base_ms == 0 || changes.retry_cap_ms < changes.retry_base_ms {
        return Err(invalid(
            "changes.retry_cap_ms",
            "must be at least changes.retry_base_ms, which must be above 0",
        ));
    }
    let mut urls = std::collections::HashSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let scheme_ok = url::Url::parse(&hook.url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !scheme_ok {
            return Err(invalid(
                format!("app_webhooks[{i}].url"),
                "must be an http or https URL",
            ));
        }
        if !urls.insert(hook.url.as_str()) {
            return Err(invalid(format!("app_webhooks[{i}].url"), "listed twice"));
        }
        if let Err(e) = TypeFilter::parse(&hook.types) {
            return Err(invalid(format!("app_webhooks[{i}].types"), e.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The example config's `[[app_webhooks]]` entry, uncommented.
    fn example_with_webhook() -> String {
        let example = include_str!("../../deploy/sfsync.example.toml");
        let (head, tail) = example
            .split_once("\n# [[app_webhooks]]\n")
            .expect("the example documents [[app_webhooks]]");
        let uncommented: Vec<&str> = tail
            .lines()
            .filter(|l| {
                l.starts_with("# url") || l.starts_with("# secret") || l.starts_with("# types")
            })
            .map(|l| &l[2..])
            .collect();
        format!("{head}\n[[app_webhooks]]\n{}\n", uncommented.join("\n"))
    }

    #[test]
    fn the_example_app_webhook_loads_with_its_filter() {
        let config = Config::from_toml(&example_with_webhook()).expect("example loads");
        assert_eq!(config.app_webhooks.len(), 1);
        let hook = &config.app_webhooks[0];
        assert_eq!(hook.url, "https://app.example.com/hooks/sfsync");
        assert!(
            hook.filter()
                .wants("contact.converted".parse().expect("type"))
        );
        assert!(
            !hook
                .filter()
                .wants("company.updated".parse().expect("type"))
        );
        assert!(
            !format!("{hook:?}").contains("whsec_"),
            "the secret stays out of Debug"
        );
        assert_eq!(config.changes.retention_hours, 168);
        assert_eq!(config.connections.len(), 1, "the whole example");
    }

    #[test]
    fn a_bad_webhook_or_delivery_setting_is_refused_naming_its_key() {
        let base = example_with_webhook();
        for (from, to, key) in [
            (
                "https://app.example.com/hooks/sfsync",
                "ftp://app.example.com/x",
                "app_webhooks[0].url",
            ),
            ("\"contact.*\"", "\"contacts.*\"", "app_webhooks[0].types"),
            (
                "retention_hours = 168",
                "retention_hours = 0",
                "changes.retention_hours",
            ),
            (
                "delivery_concurrency = 16",
                "delivery_concurrency = 0",
                "changes.delivery_concurrency",
            ),
            (
                "retry_cap_ms = 300000\n\n#",
                "retry_cap_ms = 10\n\n#",
                "changes.retry_cap_ms",
            ),
        ] {
            let text = base.replacen(from, to, 1);
            let err = Config::from_toml(&text).expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let twice = format!(
            "{base}\n[[app_webhooks]]\nurl = \"https://app.example.com/hooks/sfsync\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n"
        );
        let err = Config::from_toml(&twice).expect_err("twice").to_string();
        assert!(err.contains("app_webhooks[1].url"), "{err}");
        let short = base.replace("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "whsec_AAAA");
        let err = Config::from_toml(&short)
            .expect_err("short secret")
            .to_string();
        assert!(err.contains("secret") && !err.contains("AAAA"), "{err}");
    }
}
