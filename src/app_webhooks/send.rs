//! One change POSTed to an app's webhook, signed as Standard Webhooks asks: `webhook-id`
//! (`chg_<seq>`, the same on every attempt, so the app can drop duplicates), `webhook-timestamp`
//! (the attempt's time, in seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `id.timestamp.body` keyed with the decoded secret). The body is the entry's JSON.
//!
//! Only a 2xx answer delivers. Redirects are not followed (a 3xx is a failure), every call has
//! a deadline, and a `Retry-After` in seconds on 429 or 503 is kept for the back-off.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::domain::WebhookSecret;
use crate::http::webhook::signature;
use crate::store::ChangeEntry;

/// Why a POST did not deliver. Messages hold neither the secret nor the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The app answered, but not 2xx.
    #[error("answered {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// How long the app asked to wait (`Retry-After` in seconds on 429 or 503).
        retry_after: Option<Duration>,
    },
    /// No answer within the deadline.
    #[error("timed out")]
    Timeout,
    /// No connection, or it broke.
    #[error("transport: {0}")]
    Transport(String),
}

impl SendError {
    /// The wait the app asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The HTTP client the deliveries share.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
}

/// `webhook-id` of a change: unique per change, the same on each attempt.
pub fn webhook_id(seq: u64) -> String {
    format!("chg_{seq}")
}

impl Sender {
    /// A client whose every call ends after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sfsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Transport(e.to_string()))?;
        Ok(Self { http })
    }

    /// POSTs `entry` to `url`, signed with `secret` at `now` (seconds since the epoch).
    #[tracing::instrument(skip_all, fields(seq = entry.seq, kind = %entry.kind))]
    pub async fn post(
        &self,
        url: &str,
        secret: &WebhookSecret,
        entry: &ChangeEntry,
        now: i64,
    ) -> Result<(), SendError> {
        let body = serde_json::to_vec(entry).map_err(|e| SendError::Transport(e.to_string()))?;
        let id = webhook_id(entry.seq);
        let sig = signature::sign(secret.key(), &id, now, &body);
        let resp = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|_| matches!(status.as_u16(), 429 | 503))
            .map(Duration::from_secs);
        Err(SendError::Status {
            status: status.as_u16(),
            retry_after,
        })
    }
}

fn classify(e: reqwest::Error) -> SendError {
    if e.is_timeout() {
        SendError::Timeout
    } else {
        SendError::Transport(e.without_url().to_string())
    }
}
