//! `GET /api/v1/status`: each org's connection state and API usage, the inbox figures, the
//! outbox counts and the deliveries to the app's webhooks.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{app_webhooks, outbox};
use crate::app_webhooks::HookStatus;
use crate::config::Connection;
use crate::http::state::{AppState, Counters};
use crate::salesforce::{ApiUsage, ConnectionState};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Status {
    /// One entry per org.
    pub(crate) connections: Vec<ConnectionStatus>,
    /// The inbox.
    pub(crate) inbox: InboxStatus,
    /// The outbox: entries pending and dead letters, over every org.
    #[schema(value_type = Object)]
    pub(crate) outbox: crate::store::OutboxCounts,
    /// Salesforce API calls used and allowed (rolling 24 h), summed over connected orgs, as the
    /// latest `Sforce-Limit-Info` said; `null` before the first call.
    #[schema(value_type = Option<Object>)]
    pub(crate) api_usage: Option<ApiUsage>,
    /// The app's webhooks, in configuration order: each one's cursor, its lag in entries and
    /// seconds, since when it fails, its last error and its dead letters.
    pub(crate) app_webhooks: Vec<HookStatus>,
}

/// One org's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectionStatus {
    /// The org id (18 characters).
    pub(crate) org_id: String,
    /// `not_configured` while the connected app's environment is missing or malformed,
    /// `not_connected` until an OAuth connection exists, then `connected` or `needs_reauth`.
    pub(crate) state: &'static str,
    /// Why the org is `not_configured`: the variables missing or malformed, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// This org's API usage, when known.
    #[schema(value_type = Option<Object>)]
    pub(crate) api_usage: Option<ApiUsage>,
    /// The latest setup check (on connect, at start, and by `GET /api/v1/setup`), when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) setup: Option<SetupSummary>,
    /// Objects whose pushes wait because that check found their setup broken; they resume when
    /// a later check passes.
    pub(crate) paused: Vec<PausedObject>,
    /// The application users who connected their own Salesforce user to this org, in user id
    /// order.
    pub(crate) users: Vec<UserConnectionStatus>,
}

/// An application user's own connection to an org.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserConnectionStatus {
    /// The application's user id.
    pub(crate) user: String,
    /// `connected`, or `needs_reauth` once Salesforce refused their token (revoked, expired):
    /// their writes then go out with the org's connection until they connect again.
    pub(crate) state: &'static str,
    /// The Salesforce user (`005…`) their writes are made as, once a token named it.
    pub(crate) salesforce_user_id: Option<String>,
}

fn user_connections(state: &AppState, conn: &Connection) -> Vec<UserConnectionStatus> {
    state
        .pull
        .orgs
        .users_of(&conn.org_id)
        .into_iter()
        .map(|c| UserConnectionStatus {
            user: c.app_user().map(ToString::to_string).unwrap_or_default(),
            state: state_name(c.state()),
            salesforce_user_id: c.user_id().map(|u| u.to_string()),
        })
        .collect()
}

fn state_name(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Connected => "connected",
        ConnectionState::NeedsReauth => "needs_reauth",
    }
}

/// An object whose pushes wait for its setup to be fixed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PausedObject {
    /// The object's API name.
    pub(crate) object: String,
    /// What the setup check found missing.
    pub(crate) reason: String,
}

/// The objects the latest check found broken: their pushes wait.
fn paused(report: Option<&crate::sync::setup::SetupReport>) -> Vec<PausedObject> {
    report
        .map(|r| {
            r.objects
                .iter()
                .filter(|o| !o.problems.is_empty())
                .map(|o| PausedObject {
                    object: o.object.clone(),
                    reason: o.problems.join("; "),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The latest setup check of an org, in short.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SetupSummary {
    /// Nothing is missing.
    pub(crate) ok: bool,
    /// When it ran.
    pub(crate) checked_at: chrono::DateTime<chrono::Utc>,
    /// What is missing, each prefixed with its object (`Contact: …`).
    pub(crate) problems: Vec<String>,
}

impl From<crate::sync::setup::SetupReport> for SetupSummary {
    fn from(r: crate::sync::setup::SetupReport) -> Self {
        let mut problems: Vec<String> = r
            .objects
            .iter()
            .flat_map(|o| o.problems.iter().map(move |p| format!("{}: {p}", o.object)))
            .collect();
        if !r.api_version.served {
            problems.insert(
                0,
                format!(
                    "API version {} is not served by this org",
                    r.api_version.configured
                ),
            );
        }
        Self {
            ok: r.ok,
            checked_at: r.checked_at,
            problems,
        }
    }
}

/// Inbox figures: `pending` is stored; the totals count since the process started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InboxStatus {
    /// Records waiting to be pulled.
    pub(crate) pending: u64,
    /// Notifications stored for the first time.
    pub(crate) received_total: u64,
    /// Notifications already seen.
    pub(crate) duplicates_total: u64,
    /// Webhook requests refused.
    pub(crate) rejected_total: u64,
    /// Notifications acknowledged for objects sfsync does not sync.
    pub(crate) ignored_total: u64,
    /// Notifications that only reported sfsync's own writes: acknowledged, nothing pulled.
    pub(crate) echoes_total: u64,
}

/// One configured org as the status reports it (the console and the metrics show the same).
pub(crate) fn connection(state: &AppState, conn: &Connection) -> ConnectionStatus {
    let client = state.pull.orgs.get(&conn.org_id);
    let not_configured = state.oauth.as_ref().err().filter(|_| client.is_none());
    let report = state.setup.report(&conn.org_id);
    ConnectionStatus {
        org_id: conn.org_id.to_string(),
        state: match client.as_ref().map(|c| c.state()) {
            None if not_configured.is_some() => "not_configured",
            None => "not_connected",
            Some(s) => state_name(s),
        },
        reason: not_configured.map(|r| r.to_string()),
        api_usage: client.and_then(|c| c.api_usage()),
        paused: paused(report.as_ref()),
        users: user_connections(state, conn),
        setup: report.map(SetupSummary::from),
    }
}

fn inbox(c: &Counters, pending: u64) -> InboxStatus {
    InboxStatus {
        pending,
        received_total: c.received_total(),
        duplicates_total: c.duplicates_total(),
        rejected_total: c.rejected_total(),
        ignored_total: c.ignored_total(),
        echoes_total: c.echoes_total(),
    }
}

#[utoipa::path(get, path = "/api/v1/status",
    responses((status = 200, body = Status), (status = 401, description = "missing or wrong bearer token")))]
async fn status(State(state): State<AppState>) -> Json<Status> {
    let connections: Vec<ConnectionStatus> = state
        .connections
        .all()
        .iter()
        .map(|conn| connection(&state, conn))
        .collect();
    let api_usage = connections
        .iter()
        .filter_map(|c| c.api_usage)
        .reduce(|a, b| ApiUsage {
            used: a.used + b.used,
            limit: a.limit + b.limit,
        });
    Json(Status {
        connections,
        inbox: inbox(&state.counters, state.store.pending_count()),
        outbox: outbox::totals(&state),
        api_usage,
        app_webhooks: app_webhooks::statuses(&state).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading the app webhooks' deliveries failed");
            Vec::new()
        }),
    })
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(status),
    components(schemas(
        Status,
        ConnectionStatus,
        UserConnectionStatus,
        InboxStatus,
        SetupSummary,
        PausedObject
    ))
)]
pub(super) struct StatusDoc;
