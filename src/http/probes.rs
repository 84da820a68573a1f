//! The unauthenticated probes: `GET /healthz` (the process answers), `GET /readyz` (the store
//! can make a write durable) and `GET /metrics` (Prometheus text format). They answer plain
//! text for orchestrators and scrapers, not the local API's JSON errors.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::AppState;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store can make a write durable.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.make_durable().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.counters.render(state.store.pending_count()),
    )
        .into_response()
}
