//! The HTTP surface: one router, one cheap-to-clone [`AppState`].
//!
//! - `POST /webhooks/salesforce/outbound/{webhook_key}`: Outbound Messages (SOAP).
//! - `POST /webhooks/salesforce/events/{webhook_key}`: Standard-Webhooks-signed JSON events.
//! - `/api/v1/…`: the local API (bearer token).
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text format).
//! - `/`, `/login`, `/orgs/{org}`: the operator console (session cookie, CSRF on forms).

pub mod api;
mod console;
pub mod oauth;
mod probes;
pub mod serve;
mod state;
pub mod webhook;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use console::Console;
pub use state::{AppState, Connections, Counters};

/// How long a request, and each pause in its body, may take.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeouts {
    /// The whole request, answered 408 past it.
    pub request: Duration,
    /// The longest pause between two pieces of a request body.
    pub body_read: Duration,
}

/// The whole router.
pub fn router(state: AppState, timeouts: RequestTimeouts) -> Router {
    Router::new()
        .route(
            "/webhooks/salesforce/outbound/{webhook_key}",
            post(webhook::outbound),
        )
        .route(
            "/webhooks/salesforce/events/{webhook_key}",
            post(webhook::events),
        )
        .nest("/api/v1", api::router(state.clone()))
        .merge(console::router(state.clone()))
        .route("/oauth/salesforce/callback", get(oauth::callback))
        .merge(
            Router::new()
                .route("/oauth/salesforce/authorize", get(oauth::authorize))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    api::require_token,
                )),
        )
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeouts.request,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            timeouts.body_read,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // The path holds the webhook key: log the route, never the key.
                let route = req
                    .uri()
                    .path()
                    .rsplit_once('/')
                    .map_or("/", |(head, _)| head)
                    .to_string();
                tracing::info_span!("http", method = %req.method(), route = %route)
            }),
        )
        .with_state(state)
}
