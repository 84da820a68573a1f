//! The local API under `/api/v1` (bearer token) and the unauthenticated probes.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AppState;

mod pull;
mod push;

/// An API error: a status and a message for the caller. 5xx messages are opaque.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// The token is missing or wrong.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or invalid bearer token".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(
            serde_json::json!({"error": {"status": self.status.as_u16(), "message": self.message}}),
        );
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Refuses a request without the API's bearer token (401).
pub(super) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Digests are compared so the comparison's timing says nothing about the token.
    let expected = Sha256::digest(state.api_token.expose_secret().as_bytes());
    if given.is_empty() || Sha256::digest(given.as_bytes()) != expected {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

/// The `/api/v1` routes.
pub(super) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .merge(pull::routes())
        .merge(push::routes())
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// One entry per org.
    pub connections: Vec<ConnectionStatus>,
    /// The inbox.
    pub inbox: InboxStatus,
    /// The outbox: entries pending and dead letters, over every org.
    #[schema(value_type = Object)]
    pub outbox: crate::store::OutboxCounts,
    /// Salesforce API calls used and allowed (rolling 24 h), summed over connected orgs, as the
    /// latest `Sforce-Limit-Info` said; `null` before the first call.
    #[schema(value_type = Option<Object>)]
    pub api_usage: Option<crate::salesforce::ApiUsage>,
}

/// One org's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionStatus {
    /// The org id (18 characters).
    pub org_id: String,
    /// `not_configured` while the connected app's environment is missing or malformed,
    /// `not_connected` until an OAuth connection exists, then `connected` or `needs_reauth`.
    pub state: &'static str,
    /// Why the org is `not_configured`: the variables missing or malformed, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// This org's API usage, when known.
    #[schema(value_type = Option<Object>)]
    pub api_usage: Option<crate::salesforce::ApiUsage>,
}

/// Inbox figures: `pending` is stored; the totals count since the process started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxStatus {
    /// Records waiting to be pulled.
    pub pending: u64,
    /// Notifications stored for the first time.
    pub received_total: u64,
    /// Notifications already seen.
    pub duplicates_total: u64,
    /// Webhook requests refused.
    pub rejected_total: u64,
    /// Notifications acknowledged for objects sfsync does not sync.
    pub ignored_total: u64,
    /// Notifications that only reported sfsync's own writes: acknowledged, nothing pulled.
    pub echoes_total: u64,
}

#[utoipa::path(get, path = "/api/v1/status",
    responses((status = 200, body = Status), (status = 401, description = "missing or wrong bearer token")))]
async fn status(State(state): State<AppState>) -> Json<Status> {
    let c = &state.counters;
    let connections: Vec<ConnectionStatus> = state
        .connections
        .all()
        .iter()
        .map(|conn| {
            let client = state.pull.orgs.get(&conn.org_id);
            let not_configured = state.oauth.as_ref().err().filter(|_| client.is_none());
            ConnectionStatus {
                org_id: conn.org_id.to_string(),
                state: match client.as_ref().map(|c| c.state()) {
                    None if not_configured.is_some() => "not_configured",
                    None => "not_connected",
                    Some(crate::salesforce::ConnectionState::Connected) => "connected",
                    Some(crate::salesforce::ConnectionState::NeedsReauth) => "needs_reauth",
                },
                reason: not_configured.map(|r| r.to_string()),
                api_usage: client.and_then(|c| c.api_usage()),
            }
        })
        .collect();
    let api_usage = connections
        .iter()
        .filter_map(|c| c.api_usage)
        .reduce(|a, b| crate::salesforce::ApiUsage {
            used: a.used + b.used,
            limit: a.limit + b.limit,
        });
    Json(Status {
        connections,
        inbox: InboxStatus {
            pending: state.store.pending_count(),
            received_total: c.received_total(),
            duplicates_total: c.duplicates_total(),
            rejected_total: c.rejected_total(),
            ignored_total: c.ignored_total(),
            echoes_total: c.echoes_total(),
        },
        outbox: push::outbox_totals(&state),
        api_usage,
    })
}

/// The status route's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(status),
    components(schemas(Status, ConnectionStatus, InboxStatus))
)]
struct StatusApiDoc;

/// The whole local API's OpenAPI document, generated from the handlers.
pub(super) fn document() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    push::PushApiDoc::openapi()
        .merge_from(pull::PullApiDoc::openapi())
        .merge_from(StatusApiDoc::openapi())
}

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
