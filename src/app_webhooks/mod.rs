//! The app's webhooks: the outside system sfsync tells about each local change. This module
//! signs and POSTs one change ([`send`]) and keeps each webhook's live delivery state
//! ([`Hook`]), which `GET /api/v1/status` reports next to what the store knows (its cursor and
//! dead letters). It is the one module besides `salesforce` that makes HTTP calls; the worker
//! that decides what to send and when is `worker::app_webhooks`.

pub mod send;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::AppWebhook;
use crate::domain::{TypeFilter, WebhookSecret};
use crate::store::{ChangesRead, Store, StoreError};

pub use send::{SendError, Sender, webhook_id};

/// One configured webhook and how its deliveries are going.
#[derive(Debug)]
pub struct Hook {
    /// Where changes are POSTed; also its name.
    pub url: String,
    /// The signing key.
    pub secret: WebhookSecret,
    /// The change types it wants.
    pub filter: TypeFilter,
    live: Mutex<Live>,
}

/// What the worker has seen since the process started.
#[derive(Debug, Clone, Default, PartialEq)]
struct Live {
    failing_since: Option<DateTime<Utc>>,
    last_error: Option<String>,
    delivered_total: u64,
    failed_attempts_total: u64,
}

/// How one attempt ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The app took it.
    Delivered,
    /// It failed and will be tried again.
    Failed,
    /// It failed for the last time: now a dead letter.
    GaveUp,
}

impl Hook {
    /// A webhook as configured.
    pub fn new(config: &AppWebhook) -> Self {
        Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            filter: config.filter(),
            live: Mutex::default(),
        }
    }

    /// Records how an attempt ended; `error` is what a failed one got.
    pub fn attempted(&self, attempt: Attempt, error: Option<&SendError>) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        match attempt {
            Attempt::Delivered => {
                live.delivered_total += 1;
                live.failing_since = None;
            }
            Attempt::Failed | Attempt::GaveUp => {
                live.failed_attempts_total += 1;
                live.failing_since.get_or_insert_with(Utc::now);
            }
        }
        if let Some(e) = error {
            live.last_error = Some(e.to_string());
        }
    }

    /// Notes a problem that is not an attempt (entries compacted before they were sent).
    pub fn note(&self, problem: String) {
        if let Ok(mut live) = self.live.lock() {
            live.last_error = Some(problem);
        }
    }

    fn live(&self) -> Live {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The configured webhooks; cheap to clone.
pub type Hooks = Arc<Vec<Arc<Hook>>>;

/// The webhooks of a configuration.
pub fn hooks(config: &[AppWebhook]) -> Hooks {
    Arc::new(config.iter().map(|c| Arc::new(Hook::new(c))).collect())
}

/// One webhook's deliveries, as `GET /api/v1/status` reports them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HookStatus {
    /// The webhook's URL.
    pub url: String,
    /// The last change it has settled (delivered, or given up as a dead letter).
    pub cursor: u64,
    /// Changes committed after the cursor (of every type; a filtered webhook skips some).
    pub lag_entries: u64,
    /// Age of the oldest change after the cursor, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// Since when its attempts have failed without a success in between.
    pub failing_since: Option<DateTime<Utc>>,
    /// What the last failed attempt got.
    pub last_error: Option<String>,
    /// Changes it never took, waiting for a person (`/api/v1/app-webhooks/{n}/dead-letters`).
    pub dead_letters: u64,
    /// Changes delivered since the process started.
    pub delivered_total: u64,
    /// Failed attempts since the process started.
    pub failed_attempts_total: u64,
}

/// Where one webhook stands now.
pub fn status(store: &Store, hook: &Hook) -> Result<HookStatus, StoreError> {
    let cursor = store.delivery_cursor(&hook.url)?.unwrap_or(0);
    let head = store.committed_changes();
    let oldest = match store.read_changes(cursor, head, 1, &TypeFilter::all())? {
        ChangesRead::Page(p) => p.entries.first().map(|e| e.timestamp),
        ChangesRead::Gone { earliest } => store.change(earliest)?.map(|e| e.timestamp),
    };
    let lag_seconds = oldest.map_or(0.0, |t| {
        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    let live = hook.live();
    Ok(HookStatus {
        url: hook.url.clone(),
        cursor,
        lag_entries: head.saturating_sub(cursor),
        lag_seconds,
        failing_since: live.failing_since,
        last_error: live.last_error,
        dead_letters: store.app_dead_letter_count(&hook.url)?,
        delivered_total: live.delivered_total,
        failed_attempts_total: live.failed_attempts_total,
    })
}
