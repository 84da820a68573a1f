//! How a simulator starts ([`SimulatorConfig`]) and what a client needs to talk to it
//! ([`SimCredentials`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::custom::CustomObjectSpec;

/// The exactly-once marker field sfsync's default configuration names (`outbox.marker_field`).
pub const DEFAULT_MARKER_FIELD: &str = "Sfsync_Id__c";

/// How a simulator starts.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Seeds every random choice (credentials, passwords, tokens, faults, out-of-order delivery)
    /// and the org id.
    pub seed: u64,
    /// Seeds the connected app's consumer key and secret instead of `seed` when set, so that
    /// several orgs (each its own simulator) share one connected app, as orgs share one app
    /// installed from a package; everything else still follows `seed`.
    pub app_seed: Option<u64>,
    /// The API version in URLs it hands out (`62.0`); requests may use any `vNN.0`.
    pub api_version: String,
    /// Where Outbound Messages go; `None` holds them until a URL is set.
    pub outbound_url: Option<String>,
    /// Data calls allowed before `REQUEST_LIMIT_EXCEEDED`.
    pub daily_api_limit: u64,
    /// The first retry delay of an unacknowledged Outbound Message; it doubles per attempt.
    pub outbound_retry_base: Duration,
    /// The longest retry delay (Salesforce: two hours).
    pub outbound_retry_max: Duration,
    /// How long a notification waits for others to share its message (a message of 100 goes at
    /// once), so a burst travels in one message.
    pub outbound_batch_window: Duration,
    /// Outbound Messages in flight at once (at least 1). Salesforce sends from a queue with
    /// retries independent of order but does not document how many messages it has in flight
    /// to one endpoint; 1, the default, sends the next only once the previous is answered.
    pub outbound_concurrency: usize,
    /// Whether writes through the REST API fire Outbound Messages (as when the integration user
    /// may send them); control-surface writes always do.
    pub outbound_on_api_writes: bool,
    /// The redirect URI handed out with the credentials (authorize accepts any absolute URI).
    pub redirect_uri: String,
    /// The exactly-once marker field (Text(255), External ID, Unique) on Account, Contact, Lead,
    /// Opportunity, Task and Event; `None` starts an org an admin has not set up for sfsync.
    pub marker_field: Option<String>,
    /// Custom objects the org has from the start.
    pub custom_objects: Vec<CustomObjectSpec>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            app_seed: None,
            api_version: "62.0".into(),
            outbound_url: None,
            daily_api_limit: 100_000,
            outbound_retry_base: Duration::from_secs(1),
            outbound_retry_max: Duration::from_secs(2 * 3600),
            outbound_batch_window: Duration::from_millis(20),
            outbound_concurrency: 1,
            outbound_on_api_writes: true,
            redirect_uri: "http://localhost:8080/oauth/callback".into(),
            marker_field: Some(DEFAULT_MARKER_FIELD.into()),
            custom_objects: Vec::new(),
        }
    }
}

/// What a client needs to talk to the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret (signs token responses).
    pub client_secret: String,
    /// A refresh token of the integration user that works from the start.
    pub refresh_token: String,
    /// An access token of the integration user that works from the start.
    pub access_token: String,
    /// The redirect URI to use in the web server flow.
    pub redirect_uri: String,
    /// Where the REST API lives (`http://127.0.0.1:PORT`).
    pub instance_url: String,
    /// Where OAuth lives (the same host).
    pub login_url: String,
    /// The integration user's username, for the login page.
    pub username: String,
    /// The integration user's password, for the login page.
    pub password: String,
}
