//! An app on loopback that listens to sfsync's webhooks, as the demo, `bench feed` and the tests
//! run it: one axum route that verifies each POST with the Standard Webhooks verifier (over the
//! raw body, before parsing) and records it. It can misbehave on purpose ([`AppFaults`]):
//! answer 5xx, answer late, or both, at random, without recording what it refused.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use crate::domain::WebhookSecret;
use crate::http::webhook::signature::{self, SignedHeaders};
use crate::store::ChangeEntry;

/// How the app misbehaves, each a share of requests from 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AppFaults {
    /// Answered 500 or 503 without being recorded.
    pub error_rate: f64,
    /// Answered only after `slow_ms` (then normally, or with a fault).
    pub slow_rate: f64,
    /// How late a slow answer is.
    pub slow_ms: u64,
}

/// One verified delivery.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it was verified.
    pub at: Instant,
    /// Its `webhook-id`.
    pub id: String,
    /// Its `webhook-timestamp`.
    pub timestamp: String,
    /// Its `webhook-signature`.
    pub signature: String,
    /// The raw body, as signed.
    pub body: Bytes,
    /// The body parsed.
    pub entry: ChangeEntry,
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    /// Every POST, whatever became of it.
    posts: u64,
    /// POSTs whose signature did not verify.
    rejected: u64,
    /// POSTs that arrived, counted before a slow answer's wait.
    arrived: u64,
}

#[derive(Clone)]
struct Shared {
    secret: Arc<WebhookSecret>,
    faults: Arc<Mutex<AppFaults>>,
    log: Arc<Mutex<Log>>,
}

/// The running app.
pub struct AppReceiver {
    /// Where sfsync should POST.
    pub url: String,
    shared: Shared,
    stop: CancellationToken,
}

impl AppReceiver {
    /// Starts the app on a free loopback port; it verifies with `secret`.
    pub async fn start(secret: WebhookSecret) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the app receiver")?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Shared {
            secret: Arc::new(secret),
            faults: Arc::default(),
            log: Arc::default(),
        };
        let app = Router::new()
            .route("/hooks/sfsync", post(receive))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "app receiver stopped");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/hooks/sfsync"),
            shared,
            stop,
        })
    }

    /// Makes the app misbehave (or behave again, with the default).
    pub fn set_faults(&self, faults: AppFaults) {
        if let Ok(mut f) = self.shared.faults.lock() {
            *f = faults;
        }
    }

    /// Every verified delivery so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .map(|l| l.received.clone())
            .unwrap_or_default()
    }

    /// POSTs so far (answered or not) and those whose signature failed.
    pub fn posts_and_rejected(&self) -> (u64, u64) {
        self.shared
            .log
            .lock()
            .map(|l| (l.posts, l.rejected))
            .unwrap_or_default()
    }

    /// POSTs that have arrived so far, answered or still held by a slow answer.
    pub fn arrived(&self) -> u64 {
        self.shared
            .log
            .lock()
            .map(|l| l.arrived)
            .unwrap_or_default()
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for AppReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether this request meets a fault, and how late it answers.
fn draw(faults: &Arc<Mutex<AppFaults>>) -> (bool, Option<Duration>) {
    let f = faults.lock().map(|f| *f).unwrap_or_default();
    let mut rng = rand::rng();
    let fail = rng.random_bool(f.error_rate.clamp(0.0, 1.0));
    let slow = rng.random_bool(f.slow_rate.clamp(0.0, 1.0));
    (fail, slow.then(|| Duration::from_millis(f.slow_ms)))
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (fail, late) = draw(&s.faults);
    if let Ok(mut log) = s.log.lock() {
        log.arrived += 1;
    }
    if let Some(late) = late {
        tokio::time::sleep(late).await;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let now = chrono::Utc::now().timestamp();
    let verified = signature::verify(
        signed,
        &body,
        std::slice::from_ref(s.secret.as_ref()),
        now,
        300,
    );
    let Ok(mut log) = s.log.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    log.posts += 1;
    if verified.is_err() {
        log.rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if fail {
        return match log.posts % 2 {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
    }
    let Ok(entry) = serde_json::from_slice::<ChangeEntry>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    log.received.push(Received {
        at: Instant::now(),
        id: signed.id.unwrap_or_default().to_string(),
        timestamp: signed.timestamp.unwrap_or_default().to_string(),
        signature: signed.signature.unwrap_or_default().to_string(),
        body,
        entry,
    });
    StatusCode::NO_CONTENT
}
