//! The unauthenticated probes: `GET /healthz` (the process answers), `GET /readyz` (the store
//! can make a write durable) and `GET /metrics` (Prometheus text format). They answer plain
//! text for orchestrators and scrapers, not the local API's JSON errors.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::store::OutboxCounts;
use crate::telemetry::{Gauges, OrgGauges};

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
        state.telemetry.metrics.render(&gauges(&state)),
    )
        .into_response()
}

/// The state the scrape reports: queues, connection states and API usage per org.
fn gauges(state: &AppState) -> Gauges {
    let orgs = state
        .connections
        .all()
        .iter()
        .map(|conn| {
            let status = super::api::connection_status(state, conn);
            let outbox = state.store.outbox_counts(&conn.org_id).unwrap_or_else(|e| {
                tracing::error!(org = %conn.org_id, error = %e, "counting the outbox failed");
                OutboxCounts::default()
            });
            OrgGauges {
                org: conn.org_id.clone(),
                state: status.state,
                outbox_pending: outbox.pending,
                outbox_dead: outbox.dead,
                api_usage_ratio: status
                    .api_usage
                    .filter(|u| u.limit > 0)
                    .map(|u| u.used as f64 / u.limit as f64),
            }
        })
        .collect();
    Gauges {
        inbox_pending: state.store.pending_count(),
        orgs,
    }
}
